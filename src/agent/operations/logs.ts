/**
 * The Logs RPC (server streaming, reference §6.5): `podman logs` of one
 * component's container, streamed as LogsResponse{data} chunks as podman
 * writes them. Authentication is the server's interceptor, as for every RPC.
 *
 * - The component may be omitted when the service has exactly one;
 *   otherwise the error lists them (logs-options.ts).
 * - The container's stdout and stderr are both streamed (interleaved as they
 *   arrive; the wire has one `data` field), so the operator sees errors too.
 * - Backpressure: when the client reads slowly, podman's pipes are paused.
 * - `follow`: podman ends by itself when the container stops, and the stream
 *   then ends cleanly (OK). A client that cancels (Ctrl-C) or disconnects
 *   gets its `podman logs` process killed at once; so does agent shutdown,
 *   which cancels open calls.
 * - This agent's podman uses the k8s-file log driver, so `podman logs` is all
 *   there is; the reference's journald/journalctl path (rootless agents under
 *   systemd) is not needed here.
 */
import type { ServerWritableStream, handleServerStreamingCall } from "@grpc/grpc-js";
import type { LogsRequest, LogsResponse } from "../../gen/mcp/v1/mcp.js";
import { containerName } from "../../runtime/names.js";
import { isInvalidSince, isNoSuchContainer } from "../../runtime/errors.js";
import type { LogStream } from "../../runtime/types.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { logOptions, pickComponent } from "../../protocol/logs-options.js";
import { toServiceError } from "../server/rpc.js";

type LogsCall = ServerWritableStream<LogsRequest, LogsResponse>;

/** The container a request means, checked to exist. */
export async function resolveLogsTarget(
  ctx: AgentContext,
  service: string,
  component: string,
): Promise<{ component: string; container: string }> {
  const node = ctx.settings.node;
  if (!service) throw new McpError("invalid_argument", "no service given");
  if (!ctx.registry.services.get(service)) {
    throw new McpError("not_found", `unknown service "${service}" on node ${node}`);
  }
  const names = ctx.registry.components.list(service).map((c) => c.name);
  const picked = pickComponent(service, names, component, node);
  const container = containerName(service, picked);
  if (!(await ctx.runtime.inspect(container))) {
    throw new McpError(
      "failed_precondition",
      `${service}/${picked} has no container on node ${node} (deploy or start it first)`,
    );
  }
  return { component: picked, container };
}

/** A failed `podman logs` as a typed one-line error. */
function logsFailure(err: unknown, label: string): McpError {
  if (isNoSuchContainer(err)) {
    return new McpError("not_found", `${label}: the container is gone`, { cause: err });
  }
  if (isInvalidSince(err)) {
    return new McpError("invalid_argument", `${label}: ${errorMessage(err)}`, { cause: err });
  }
  if (err instanceof McpError) return err;
  return new McpError("runtime", `${label}: ${errorMessage(err)}`, { cause: err });
}

/**
 * Copies a running `podman logs` to the call until podman ends (then the call
 * ends OK) or the client goes away (then podman is killed). Rejects with the
 * podman failure otherwise.
 */
export function pipeLogs(logs: LogStream, call: LogsCall, label: string): Promise<void> {
  const sources = [logs.stdout, logs.stderr];
  let paused = false;
  const resume = () => {
    paused = false;
    for (const s of sources) s.resume();
  };
  const onData = (chunk: Buffer) => {
    if (call.cancelled || call.writableEnded) return; // dropped: nobody is listening
    if (!call.write({ data: chunk }) && !paused) {
      paused = true;
      for (const s of sources) s.pause();
      call.once("drain", resume);
    }
  };
  const onCancel = () => {
    logs.kill();
    resume(); // paused pipes would keep podman's exit from being noticed
  };
  call.on("cancelled", onCancel);
  for (const s of sources) s.on("data", onData);
  if (call.cancelled) onCancel(); // cancelled before we listened
  const detach = () => {
    call.off("cancelled", onCancel);
    call.off("drain", resume);
  };
  return logs.done.then(
    () => {
      detach();
      if (!call.cancelled && !call.writableEnded) call.end();
    },
    (err: unknown) => {
      detach();
      logs.kill();
      throw logsFailure(err, label);
    },
  );
}

export async function streamLogs(ctx: AgentContext, call: LogsCall): Promise<void> {
  const req = call.request;
  const options = logOptions(req);
  const { component, container } = await resolveLogsTarget(ctx, req.service, req.component);
  const label = `logs ${req.service}/${component}`;
  if (call.cancelled) return;
  ctx.logger.debug({ service: req.service, component, ...options }, "logs stream started");
  await pipeLogs(ctx.runtime.logs(container, options), call, label);
  ctx.logger.debug(
    { service: req.service, component, cancelled: call.cancelled },
    "logs stream ended",
  );
}

/** The grpc-js handler: a failure ends the stream with its status (unless it already ended). */
export function logsHandler(
  ctx: AgentContext,
): handleServerStreamingCall<LogsRequest, LogsResponse> {
  return (call) => {
    streamLogs(ctx, call).then(undefined, (err: unknown) => {
      if (call.cancelled || call.writableEnded || call.destroyed) {
        ctx.logger.debug({ err: errorMessage(err) }, "logs failed after the stream ended");
      } else {
        // grpc-js turns an 'error' event on the call into the final status.
        call.emit("error", toServiceError(err));
      }
    });
  };
}
