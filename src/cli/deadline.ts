/**
 * Time limits for talking to a node, so one dead or hung node cannot stall a
 * command that asks several.
 *
 * grpc-js has no connect timeout of its own: a call waits for a connection
 * until its deadline, and a node that drops packets (or an agent that accepts
 * TCP but never finishes TLS, e.g. a stopped process) would hold `mcp ps` for
 * the 60 s unary deadline. So:
 *
 * - `waitConnected` bounds the connection phase (TCP + TLS + HTTP/2) of every
 *   command by the connect timeout (`--timeout`, `[client] connect_timeout`,
 *   15 s by default); a connection that fails outright (refused, bad
 *   certificate) returns at once and the call then reports grpc's reason;
 * - `withNodeDeadline` bounds the whole exchange of a fan-out command
 *   (reading the node's files, connecting, every call) by one deadline, and
 *   its connection phase by the connect timeout.
 *
 * grpc-js does not abort its own pending TCP connect / TLS handshake when a
 * channel is closed (1.14: `Http2SubchannelConnector.shutdown` only closes an
 * established session); src/bin/mcp-cli.ts therefore exits explicitly once the
 * command is done instead of waiting for such sockets to time out.
 */
import { connectivityState } from "@grpc/grpc-js";
import type { ResolvedNode } from "../config/cli.js";
import { McpError, errorMessage } from "../util/errors.js";
import { NodeNotAnsweringError, connectNode, type AgentClient, type CallOpts } from "./client.js";
import { DEFAULT_CALL_TIMEOUT_MS, formatLimit } from "./limits.js";

export { formatLimit };

/**
 * Connecting and calls inside `withNodeDeadline` end this long after the
 * shared deadline, so the deadline's own one-line reason wins over grpc's
 * DEADLINE_EXCEEDED text.
 */
const CALL_GRACE_MS = 250;

/**
 * The timeout for one call that must end by `deadline` (epoch ms): what the
 * caller asked for (or the client's default), cut to the time left, never
 * negative.
 */
export function callTimeout(
  requested: number | undefined,
  deadline: number,
  now: number,
  fallback = DEFAULT_CALL_TIMEOUT_MS,
): number {
  return Math.max(0, Math.min(requested ?? fallback, deadline - now));
}

/**
 * The reason part of a node error, without the `node NAME (ADDRESS)` prefix
 * the client puts in front (the CLI prints the node name itself) and without
 * a leading `unreachable:` (the callers say that).
 */
export function nodeReason(message: string, node: string): string {
  const escaped = node.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const reason = message
    .replace(new RegExp(`^node ${escaped}(?: \\([^)]*\\))?:? `), "")
    .replace(/^unreachable: /, "");
  return reason || message;
}

/**
 * Why a node did not answer, without its name: what the connection ran into
 * for an agent that is not there ("connection refused"), else the error's
 * reason (nodeReason). What fan-out commands and `mcp ui` show per node.
 */
export function failureReason(err: unknown, node: string): string {
  return err instanceof NodeNotAnsweringError ? err.why : nodeReason(errorMessage(err), node);
}

export function notAnsweredError(client: { name: string; address: string }, ms: number): McpError {
  return new McpError(
    "unavailable",
    `node ${client.name} (${client.address}) did not answer within ${formatLimit(ms)}`,
  );
}

/**
 * Resolves once the client's channel is connected, or has failed to connect
 * (the next call then fails at once with grpc's reason: refused, TLS, ...).
 * Rejects with an `unavailable` McpError when neither happens in `timeoutMs`.
 */
export function waitConnected(client: AgentClient, timeoutMs: number): Promise<void> {
  const channel = client.raw.getChannel();
  const deadline = Date.now() + Math.max(0, timeoutMs);
  return new Promise<void>((resolve, reject) => {
    const settle = (state: connectivityState): void => {
      if (state === connectivityState.READY || state === connectivityState.TRANSIENT_FAILURE) {
        resolve();
        return;
      }
      if (state === connectivityState.SHUTDOWN) {
        reject(new McpError("internal", `node ${client.name}: the connection was closed`));
        return;
      }
      channel.watchConnectivityState(state, deadline, (err) => {
        if (err) reject(notAnsweredError(client, timeoutMs));
        else settle(channel.getConnectivityState(true));
      });
    };
    settle(channel.getConnectivityState(true));
  });
}

/** `client` with every call's deadline cut to `deadline` (+ a small grace). */
export function boundedClient(client: AgentClient, deadline: number): AgentClient {
  const bound = (opts: CallOpts | undefined): CallOpts => ({
    ...opts,
    timeoutMs: callTimeout(opts?.timeoutMs, deadline + CALL_GRACE_MS, Date.now()),
  });
  const call: AgentClient["call"] = (method, request, opts) =>
    client.call(method, request, bound(opts));
  return {
    name: client.name,
    address: client.address,
    raw: client.raw,
    call,
    unary: call,
    stream: (method, request, opts) => client.stream(method, request, bound(opts)),
    explain: (err, method, timeoutMs) => client.explain(err, method, timeoutMs),
    close: () => client.close(),
  };
}

/** A fan-out's limits for one node: the connection phase, and everything together. */
export interface NodeLimits {
  connectMs: number;
  totalMs: number;
}

/**
 * Dials `node` and runs `fn` with everything (the node's CA and token files,
 * the connection, every call `fn` makes) bounded by `totalMs` from now, and
 * the connection phase by `connectMs` (a number: both the same).
 * Past either, rejects with `node NAME (ADDRESS) did not answer within …`
 * (naming the limit that passed) and closes the connection; the client is
 * always closed.
 */
export async function withNodeDeadline<T>(
  node: ResolvedNode,
  limits: number | NodeLimits,
  fn: (client: AgentClient) => Promise<T>,
  connect: (node: ResolvedNode) => Promise<AgentClient> = connectNode,
): Promise<T> {
  const { connectMs, totalMs: timeoutMs } =
    typeof limits === "number" ? { connectMs: limits, totalMs: limits } : limits;
  const deadline = Date.now() + timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let client: AgentClient | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(notAnsweredError({ name: node.name, address: node.address }, timeoutMs)),
      timeoutMs,
    );
  });
  let finished = false;
  const work = async (): Promise<T> => {
    const dialled = await connect(node);
    client = dialled;
    // Past the deadline already (slow file system): nobody closes it but us.
    if (finished) dialled.close();
    // The grace lets the shared deadline fire first, with the full limit in
    // its message, when the connect limit is not the shorter one.
    const left = deadline - Date.now() + CALL_GRACE_MS;
    await waitConnected(dialled, connectMs < left ? connectMs : left);
    return fn(boundedClient(dialled, deadline));
  };
  try {
    return await Promise.race([work(), expired]);
  } finally {
    finished = true;
    clearTimeout(timer);
    client?.close();
  }
}
