/**
 * DeployStream and Rollback (server streaming): a DeployEvent{progress} for
 * each step as it starts and ends, then one DeployEvent{result, revision}.
 *
 * - Errors before anything is deployed (bad input, policy, unknown revision)
 *   end the stream with a status carrying the McpError code trailer, exactly
 *   like the unary Deploy (rpc.ts).
 * - A client that goes away (Ctrl-C, a passed deadline, a dropped
 *   connection) does not stop the operation: a component half-way through
 *   its steps would be left to the next agent start. The operation runs to
 *   its end (or its own undo), records its revision and result as always;
 *   only the writing stops.
 * - The result goes out as soon as the operation says it (`answer`), before
 *   the old containers are removed; the handler's promise, like the
 *   service's lock, still waits for that clean-up (operations/deploy.ts).
 * - Authentication is the server's interceptor, as for every RPC.
 */
import type { ServerWritableStream, handleServerStreamingCall } from "@grpc/grpc-js";
import type { ComponentResult, DeployEvent } from "../../gen/mcp/v1/mcp.js";
import { errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import type { ProgressSink } from "../operations/progress.js";
import { toServiceError } from "./rpc.js";

/** What the streamed operation gets: where progress goes, and where it says its revision. */
export interface StreamedRun {
  progress: ProgressSink;
  taken: (revision: number) => void;
  /** The results, to stream now: the work may still be cleaning up. */
  answer: (results: ComponentResult[]) => void;
}

type EventCall<Req> = ServerWritableStream<Req, DeployEvent>;

function gone(call: EventCall<unknown>): boolean {
  return call.cancelled || call.writableEnded || call.destroyed;
}

/**
 * Runs `work`, streaming its progress and then its result to `call`.
 * Resolves when the work is done, whether or not anyone still listens.
 */
export async function streamDeployEvents<Req>(
  ctx: AgentContext,
  call: EventCall<Req>,
  what: string,
  work: (run: StreamedRun) => Promise<ComponentResult[]>,
): Promise<void> {
  let revision = 0;
  const send = (event: DeployEvent) => {
    // Backpressure is not needed: a deploy sends a few dozen small events.
    if (!gone(call)) call.write(event);
  };
  let answered = false;
  const answer = (results: ComponentResult[]) => {
    if (answered) return;
    answered = true;
    if (gone(call)) {
      ctx.logger.info(
        { what, revision, ok: results.every((r) => r.success) },
        "finished after the client went away",
      );
      return;
    }
    send({ result: { results }, revision });
    call.end();
  };
  try {
    answer(
      await work({
        progress: (p) => send({ progress: p, revision: 0 }),
        taken: (n) => (revision = n),
        answer,
      }),
    );
  } catch (err) {
    if (answered) {
      // Only a crash point fails the clean-up after the answer (runner.ts).
      ctx.logger.warn({ what, err: errorMessage(err) }, "clean-up after the answer failed");
    } else if (!gone(call)) {
      // grpc-js turns an 'error' event on the call into the final status.
      call.emit("error", toServiceError(err));
    } else {
      ctx.logger.info({ what, err: errorMessage(err) }, "refused after the client went away");
    }
  }
}

/** A server-streaming handler that streams `work` (see streamDeployEvents). */
export function deployEventsHandler<Req>(
  ctx: AgentContext,
  what: (req: Req) => string,
  work: (req: Req, run: StreamedRun) => Promise<ComponentResult[]>,
): handleServerStreamingCall<Req, DeployEvent> {
  return (call) => {
    const label = what(call.request);
    streamDeployEvents(ctx, call, label, (run) => work(call.request, run)).then(
      undefined,
      (err: unknown) => ctx.logger.error({ what: label, err: errorMessage(err) }, "stream failed"),
    );
  };
}
