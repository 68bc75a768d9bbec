/**
 * A component's panel on `mcp ui`'s page: the tail of its logs (the Logs
 * RPC without follow, as `mcp logs -n N -t` prints it) and its recent
 * events (GetServiceStatus of its service).
 */
import type { AgentClient } from "../client.js";
import { streamToSink, type LogsSink } from "../commands/logs.js";
import { failureReason } from "../deadline.js";
import { newestFirst, uiEvent } from "./snapshot.js";
import type { UiComponentDetail } from "./view-types.js";

export interface ComponentRef {
  service: string;
  component: string;
}

/** Lines of the tail, and the most of it the panel holds (a page, not a log viewer). */
export const LOG_TAIL_LINES = 200;
export const LOG_MAX_BYTES = 256 * 1024;
const EVENT_LIMIT = 100;

/** A sink that keeps what arrives, up to `maxBytes`, then stops the stream. */
export function collectingSink(maxBytes: number): LogsSink & {
  text(): string;
  truncated: boolean;
} {
  const chunks: Buffer[] = [];
  let size = 0;
  let stop: ((code: number) => void) | undefined;
  const sink = {
    truncated: false,
    write(chunk: Uint8Array): Promise<void> {
      const room = maxBytes - size;
      if (chunk.length > room) {
        chunks.push(Buffer.from(chunk.subarray(0, Math.max(0, room))));
        size = maxBytes;
        sink.truncated = true;
        stop?.(0);
      } else {
        chunks.push(Buffer.from(chunk));
        size += chunk.length;
      }
      return Promise.resolve();
    },
    onStop(fn: (code: number) => void): () => void {
      stop = fn;
      return () => (stop = undefined);
    },
    text: () => Buffer.concat(chunks).toString("utf8"),
  };
  return sink;
}

export async function componentDetail(
  client: AgentClient,
  ref: ComponentRef,
  timeoutMs: number,
): Promise<UiComponentDetail> {
  const sink = collectingSink(LOG_MAX_BYTES);
  // A removed container has no logs; its events still say what happened.
  const logs = streamToSink(
    client,
    {
      service: ref.service,
      component: ref.component,
      tail: LOG_TAIL_LINES,
      follow: false,
      timestamps: true,
      since: "",
    },
    sink,
  ).then(
    () => undefined,
    (err: unknown) => failureReason(err, client.name),
  );
  const [logsError, status] = await Promise.all([
    logs,
    client.call("getServiceStatus", { name: ref.service, eventLimit: EVENT_LIMIT }, { timeoutMs }),
  ]);
  const events = status.recentEvents
    .filter((e) => e.component === ref.component || e.component === "")
    .map((e) => uiEvent(client.name, e));
  return {
    logs: sink.text(),
    truncated: sink.truncated,
    ...(logsError === undefined ? {} : { logsError }),
    events: newestFirst(events),
  };
}
