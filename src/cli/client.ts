/**
 * The CLI's connection to one node's agent: TLS 1.3 pinned to the node's CA,
 * the bearer token on every call (unary and streaming), typed promise helpers,
 * and gRPC failures turned into one-line McpErrors naming the node.
 *
 * Two failures get their own typed errors, for every command: an agent that
 * is not there at all (refused, no route, a name that does not resolve:
 * NodeNotAnsweringError, with a hint line on how to start it), and an agent
 * older than the call (UNIMPLEMENTED: the client asks the agent's version
 * with NodeStatus and raises AgentVersionError, see src/protocol/rpc-versions.ts).
 */
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { checkServerIdentity, createSecureContext } from "node:tls";
import {
  credentials,
  Metadata,
  status,
  type ClientOptions,
  type ServiceError,
  type VerifyOptions,
} from "@grpc/grpc-js";
import { isLoopbackHost, parseHostPort } from "../config/address.js";
import type { ResolvedNode } from "../config/cli.js";
import { MAX_MESSAGE_BYTES } from "../protocol/limits.js";
import { RPC_SINCE, compareVersions, rpcName, type RpcMethod } from "../protocol/rpc-versions.js";
import { ERROR_CODE_KEY } from "../protocol/wire.js";
import { McpAgentServiceClient, McpAgentServiceService } from "../gen/mcp/v1/mcp.js";
import { formatBytes } from "../protocol/file-paths.js";
import { McpError, errorMessage, type McpErrorCode } from "../util/errors.js";
import { DEFAULT_CALL_TIMEOUT_MS, VERSION_PROBE_TIMEOUT_MS, formatLimit } from "./limits.js";
import { NodeNotAnsweringError } from "./hints.js";

type Service = typeof McpAgentServiceService;
type MethodName = keyof Service;

/** Methods with one response (everything but `logs`). */
export type UnaryMethod = {
  [K in MethodName]: Service[K]["responseStream"] extends true ? never : K;
}[MethodName];
/** Server-streaming methods (`logs`). */
export type StreamMethod = Exclude<MethodName, UnaryMethod>;
export type RequestOf<M extends MethodName> = Parameters<Service[M]["requestSerialize"]>[0];
export type ResponseOf<M extends MethodName> = ReturnType<Service[M]["responseDeserialize"]>;

export interface CallOpts {
  /** Deadline for the call; default 60 s for unary calls, none for streams. `Infinity` = none. */
  timeoutMs?: number;
}

export interface DialOptions {
  /** `host:port` of the agent. */
  address: string;
  /** PEM of the CA that issued the agent's certificate (the only CA trusted). */
  caCertPem: string;
  token: string;
  /** Node name for error messages; defaults to the address. */
  name?: string;
  /** Largest response accepted (PullFile carries file contents); default 64 MiB. */
  maxMessageBytes?: number;
}

export interface AgentClient {
  readonly name: string;
  readonly address: string;
  /** The generated client, for anything the helpers do not cover. Token and TLS apply. */
  readonly raw: McpAgentServiceClient;
  /** One unary RPC as a promise, e.g. `client.call("deploy", req)`. Rejects with McpError. */
  call<M extends UnaryMethod>(
    method: M,
    request: RequestOf<M>,
    opts?: CallOpts,
  ): Promise<ResponseOf<M>>;
  /** Alias of `call`. */
  unary<M extends UnaryMethod>(
    method: M,
    request: RequestOf<M>,
    opts?: CallOpts,
  ): Promise<ResponseOf<M>>;
  /**
   * A server-streaming RPC as an async iterable; leaving the loop early cancels
   * the call. Failures are thrown as McpError.
   */
  stream<M extends StreamMethod>(
    method: M,
    request: RequestOf<M>,
    opts?: CallOpts,
  ): AsyncIterable<ResponseOf<M>>;
  /**
   * A failure of a call to `method` made some other way (on `raw`) as the
   * McpError the helpers above would throw: UNIMPLEMENTED becomes an
   * AgentVersionError (asking the agent's version first), anything else goes
   * through toMcpError. Never rejects.
   */
  explain(err: unknown, method: MethodName, timeoutMs?: number): Promise<McpError>;
  close(): void;
}

export { START_AGENT_HINT, NodeNotAnsweringError, hintLine, hintOf } from "./hints.js";

/**
 * The agent does not implement an RPC this CLI called: it is older than the
 * version that introduced it (`needs`, src/protocol/rpc-versions.ts).
 * `agentVersion` is what NodeStatus said, or undefined when it could not be
 * asked. Nothing was done on the agent.
 */
export class AgentVersionError extends McpError {
  constructor(
    readonly node: string,
    readonly method: RpcMethod,
    readonly needs: string,
    readonly agentVersion: string | undefined,
    options?: { cause?: unknown },
  ) {
    const rpc = rpcName(method);
    super(
      "failed_precondition",
      agentVersion === undefined
        ? `agent on node ${node} does not know ${rpc}; this needs ${needs} or later`
        : compareVersions(agentVersion, needs) < 0
          ? `agent on node ${node} is version ${agentVersion}; this needs ${needs} or later`
          : `agent on node ${node} is version ${agentVersion} but does not implement ${rpc} (this needs ${needs} or later)`,
      options,
    );
    this.name = "AgentVersionError";
  }
}

/**
 * Whether `err` says the agent does not implement the call (an
 * AgentVersionError from the client's helpers, or a raw gRPC UNIMPLEMENTED);
 * with `method`, only for that RPC. For falling back to an older RPC, e.g.
 * DeployStream → Deploy: nothing was done on the agent.
 */
export function isUnimplemented(err: unknown, method?: RpcMethod): boolean {
  if (err instanceof AgentVersionError) return method === undefined || err.method === method;
  if (err instanceof McpError) return false;
  return isGrpcUnimplemented(err);
}

/** A gRPC status UNIMPLEMENTED that is not an McpError the agent sent. */
function isGrpcUnimplemented(err: unknown): boolean {
  const se = err as Partial<ServiceError> | undefined;
  if (se?.code !== status.UNIMPLEMENTED) return false;
  const [sent] = se.metadata?.get(ERROR_CODE_KEY) ?? [];
  return !(typeof sent === "string" && MCP_CODES.has(sent));
}

const CODE_FOR_STATUS: Partial<Record<status, McpErrorCode>> = {
  [status.INVALID_ARGUMENT]: "invalid_argument",
  [status.NOT_FOUND]: "not_found",
  [status.ALREADY_EXISTS]: "failed_precondition",
  [status.FAILED_PRECONDITION]: "failed_precondition",
  [status.ABORTED]: "step_failed",
};

const MCP_CODES = new Set<string>([
  "invalid_definition",
  "invalid_config",
  "invalid_argument",
  "not_found",
  "failed_precondition",
  "step_failed",
  "runtime",
  "ports_exhausted",
  "unavailable",
  "timed_out",
  "internal",
] satisfies McpErrorCode[]);

/**
 * grpc-js's message-size failures as a sentence that names the limit, or
 * undefined for any other text. "Received ... larger than max" comes from
 * either end (the agent reading a request, or the CLI reading an answer);
 * "Sent ..." from the agent's answer; "Attempted to send ..." from the CLI's
 * own request.
 */
export function messageSizeReason(details: string): string | undefined {
  const size = (n: string | undefined) => `${formatBytes(Number(n))} (${n} bytes)`;
  const limit = (n: string | undefined) => `${formatBytes(Number(n))} gRPC message limit`;
  let m = /Sent message larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
  if (m) return `the agent's answer, ${size(m[1])}, is over its ${limit(m[2])}`;
  m = /Received message larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
  if (m) return `a message of ${size(m[1])} is over the ${limit(m[2])}`;
  m = /Attempted to send message with a size larger than (\d+)/.exec(details);
  if (m) return `the request is over the CLI's ${limit(m[1])}`;
  return undefined;
}

/**
 * Why nothing answers at `address`, when grpc's reason says so (refused, no
 * route, no such name); undefined for anything else (a reset, a TLS failure).
 */
export function notAnsweringWhy(details: string, address: string): string | undefined {
  if (/\bECONNREFUSED\b/.test(details)) return "connection refused";
  if (/\b(?:EHOSTUNREACH|EHOSTDOWN)\b/.test(details)) return "no route to host";
  if (/\b(?:ENETUNREACH|ENETDOWN)\b/.test(details)) return "network unreachable";
  if (/Name resolution failed|\b(?:ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL)\b/.test(details)) {
    let host = address;
    try {
      ({ host } = parseHostPort(address));
    } catch {
      // keep the address as written
    }
    return `${host} does not resolve`;
  }
  return undefined;
}

/**
 * A gRPC failure as a one-line McpError that names the node and what to do.
 * `timeoutMs` is the call's deadline, for the message when it passed.
 */
export function toMcpError(
  err: unknown,
  node: string,
  address: string,
  timeoutMs?: number,
): McpError {
  if (err instanceof McpError) return err;
  const se = err as Partial<ServiceError>;
  if (typeof se.code !== "number") {
    return new McpError("internal", `node ${node}: ${errorMessage(err)}`, { cause: err });
  }
  // grpc-js wraps connection failures in boilerplate; keep the part that says what happened.
  const details = (se.details || se.message || "")
    .replace(/\s+/g, " ")
    .replace(/^No connection established\. Last error: (?:Error: )?/, "")
    .replace(/ ?Resolution note:\s*$/, "")
    .replace(/\.$/, "")
    .trim();
  const fail = (code: McpErrorCode, message: string) => new McpError(code, message, { cause: err });
  // The agent sends its McpError code in a trailer.
  const [sent] = se.metadata?.get(ERROR_CODE_KEY) ?? [];
  if (typeof sent === "string" && MCP_CODES.has(sent)) {
    return fail(sent as McpErrorCode, `node ${node}: ${details}`);
  }
  switch (se.code) {
    case status.UNAVAILABLE:
      if (/certificate|self[- ]signed|verify|altnames|SSL|TLS|handshake/i.test(details)) {
        return fail(
          "unavailable",
          `node ${node} (${address}): TLS verification failed (is ca_cert the CA that issued this agent's certificate?): ${details}`,
        );
      }
      {
        const why = notAnsweringWhy(details, address);
        if (why) return new NodeNotAnsweringError(node, address, why, { cause: err });
      }
      return fail("unavailable", `node ${node} (${address}) unreachable: ${details}`);
    case status.DEADLINE_EXCEEDED:
      // The request may have reached the agent: what it asked for may be under way.
      return fail(
        "timed_out",
        timeoutMs !== undefined && Number.isFinite(timeoutMs)
          ? `node ${node} (${address}) did not answer within ${formatLimit(timeoutMs)}`
          : `node ${node} (${address}) did not answer in time: ${details}`,
      );
    case status.RESOURCE_EXHAUSTED: {
      const reason = messageSizeReason(details);
      return fail(reason ? "invalid_argument" : "internal", `node ${node}: ${reason ?? details}`);
    }
    case status.UNAUTHENTICATED:
      return fail(
        "invalid_config",
        `node ${node} rejected the token (${details}): check token_path in the CLI config`,
      );
    case status.PERMISSION_DENIED:
      return fail("invalid_config", `node ${node} refused the call: ${details}`);
    case status.UNIMPLEMENTED:
      // The client's helpers turn this into an AgentVersionError (explain).
      return fail(
        "failed_precondition",
        `node ${node}: the agent does not support this call (${details}); is it older than the CLI?`,
      );
    case status.CANCELLED:
      return fail("internal", `node ${node}: call cancelled: ${details}`);
    default:
      return fail(CODE_FOR_STATUS[se.code] ?? "internal", `node ${node}: ${details}`);
  }
}

function deadline(timeoutMs: number | undefined, fallback: number): { deadline?: number } {
  const ms = timeoutMs ?? fallback;
  return Number.isFinite(ms) ? { deadline: Date.now() + ms } : {};
}

/**
 * Opens a channel to an agent. Nothing connects until the first call.
 *
 * Loopback IPs are verified as `localhost` and other IPs against their IP SAN;
 * in both cases the TLS SNI is a name, never an IP, which is what Node's
 * DEP0123 warning is about. The connection still goes to the exact address
 * configured (dialling "localhost" could land on ::1 instead).
 */
export function dialAgent(opts: DialOptions): AgentClient {
  const name = opts.name ?? opts.address;
  const address = opts.address;
  let host: string;
  try {
    ({ host } = parseHostPort(address));
  } catch (err) {
    throw new McpError("invalid_config", `node ${name}: ${errorMessage(err)}`);
  }
  const token = opts.token.trim();
  if (!token) throw new McpError("invalid_config", `node ${name}: the token is empty`);

  const maxBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  const options: Partial<ClientOptions> = {
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
  };
  const verify: VerifyOptions = {};
  if (isIP(host)) {
    const expected = isLoopbackHost(host) ? "localhost" : host;
    options["grpc.ssl_target_name_override"] = isIP(expected) ? "mcp-agent" : expected;
    verify.checkServerIdentity = (_sni, cert) => checkServerIdentity(expected, cert);
  }
  // The pinned CA is the only trust root, and the client insists on TLS 1.3 too.
  const tls = credentials.createFromSecureContext(
    createSecureContext({ ca: opts.caCertPem, minVersion: "TLSv1.3" }),
    verify,
  );
  const bearer = credentials.createFromMetadataGenerator((_params, cb) => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    cb(null, md);
  });
  const raw = new McpAgentServiceClient(
    address,
    credentials.combineChannelCredentials(tls, bearer),
    options,
  );

  const call = <M extends UnaryMethod>(
    method: M,
    request: RequestOf<M>,
    callOpts: CallOpts = {},
  ) => {
    const def = McpAgentServiceService[method];
    return new Promise<ResponseOf<M>>((resolve, reject) => {
      raw.makeUnaryRequest(
        def.path,
        def.requestSerialize as (v: RequestOf<M>) => Buffer,
        def.responseDeserialize as (b: Buffer) => ResponseOf<M>,
        request,
        new Metadata(),
        deadline(callOpts.timeoutMs, DEFAULT_CALL_TIMEOUT_MS),
        (err, res) => {
          if (err)
            void explain(err, method, callOpts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS).then(reject);
          else resolve(res as ResponseOf<M>);
        },
      );
    });
  };

  async function* stream<M extends StreamMethod>(
    method: M,
    request: RequestOf<M>,
    callOpts: CallOpts = {},
  ): AsyncGenerator<ResponseOf<M>> {
    const def = McpAgentServiceService[method];
    const s = raw.makeServerStreamRequest(
      def.path,
      def.requestSerialize as (v: RequestOf<M>) => Buffer,
      def.responseDeserialize as (b: Buffer) => ResponseOf<M>,
      request,
      new Metadata(),
      deadline(callOpts.timeoutMs, Infinity),
    );
    try {
      for await (const msg of s) yield msg as ResponseOf<M>;
    } catch (err) {
      throw await explain(err, method, callOpts.timeoutMs);
    } finally {
      // Leaving early: cancel the call. The CANCELLED status then arrives as an
      // 'error' event nobody listens to any more; swallow it.
      s.on("error", () => {});
      s.cancel();
    }
  }

  /**
   * The version gate: an RPC the agent does not implement means an agent
   * older than this CLI, so ask its version (NodeStatus, which every agent
   * has) and say which one is needed.
   */
  async function explain(err: unknown, method: MethodName, timeoutMs?: number): Promise<McpError> {
    if (!isGrpcUnimplemented(err)) return toMcpError(err, name, address, timeoutMs);
    let version: string | undefined;
    if (method !== "nodeStatus") {
      try {
        const res = await call("nodeStatus", {}, { timeoutMs: VERSION_PROBE_TIMEOUT_MS });
        version = res.agentVersion || undefined;
      } catch {
        // An agent that cannot say its version: "does not know <RPC>".
      }
    }
    return new AgentVersionError(name, method, RPC_SINCE[method], version, { cause: err });
  }

  return {
    name,
    address,
    raw,
    call,
    unary: call,
    stream,
    explain: (err, method, timeoutMs) =>
      explain(err, method, timeoutMs).catch(() => toMcpError(err, name, address, timeoutMs)),
    close: () => raw.close(),
  };
}

/** Dials a node from the CLI config, reading its CA and token files. */
export async function connectNode(
  node: ResolvedNode,
  maxMessageBytes?: number,
): Promise<AgentClient> {
  const read = async (what: string, path: string) => {
    try {
      return await readFile(path, "utf8");
    } catch (err) {
      throw new McpError(
        "invalid_config",
        `node ${node.name}: cannot read ${what} ${path}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  };
  const [caCertPem, token] = await Promise.all([
    read("CA certificate", node.caCert),
    read("token file", node.tokenPath),
  ]);
  return dialAgent({
    address: node.address,
    caCertPem,
    token,
    name: node.name,
    ...(maxMessageBytes ? { maxMessageBytes } : {}),
  });
}
