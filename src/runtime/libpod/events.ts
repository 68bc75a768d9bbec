/**
 * Podman's event stream for the agent's own containers (issue 9, "observed
 * state fed by events"; docs/ARCHITECTURE.md "Runtime"): one request to
 * `/libpod/events?stream=true` filtered by label, read a line at a time
 * into typed container events. What the agent makes of them (its in-memory
 * view, reconciling after the stream drops) is its own; this only reads.
 */
import type { LibpodClient } from "./client.js";
import { eventsRequest } from "./requests.js";

/** One container event, as much of it as the agent uses. */
export interface ContainerEvent {
  /** Podman's action: create, init, start, kill, died, cleanup, remove, pause, … */
  action: string;
  id: string;
  name: string;
  labels: Record<string, string>;
  /** On `died`: how the container ended. */
  exitCode?: number;
  time: Date;
}

/** Attributes podman puts beside the labels in `Actor.Attributes`. */
const NOT_LABELS = new Set(["containerExitCode", "image", "name", "podId"]);

/** One line of the stream as a ContainerEvent; anything else (another type, noise) is undefined. */
export function parseEvent(line: string): ContainerEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const e = raw as Record<string, unknown>;
  if (e.Type !== "container" || typeof e.Action !== "string") return undefined;
  const actor = (e.Actor ?? {}) as { ID?: unknown; Attributes?: Record<string, unknown> };
  const attributes = actor.Attributes ?? {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) {
    if (!NOT_LABELS.has(k) && typeof v === "string") labels[k] = v;
  }
  const nano = typeof e.timeNano === "number" ? e.timeNano : Number(e.time ?? 0) * 1e9;
  const event: ContainerEvent = {
    action: e.Action,
    id: typeof actor.ID === "string" ? actor.ID : typeof e.id === "string" ? e.id : "",
    name: typeof attributes.name === "string" ? attributes.name : "",
    labels,
    time: new Date(nano / 1e6),
  };
  const exit = attributes.containerExitCode;
  if (e.Action === "died" && typeof exit === "string" && /^\d+$/.test(exit)) {
    event.exitCode = Number(exit);
  }
  return event;
}

/**
 * The observed state an action leaves a container in (podman's words, as
 * `inspect` says them); undefined for actions that change none (exec,
 * cleanup, kill: the `died` that follows says it).
 */
export function stateAfter(action: string): string | undefined {
  switch (action) {
    case "create":
      return "created";
    case "start":
    case "unpause":
    case "restart":
      return "running";
    case "died":
      return "exited";
    case "pause":
      return "paused";
    case "remove":
      return "removed";
    default:
      return undefined;
  }
}

export interface EventWatch {
  /**
   * Resolves once podman answered the request (it sends its headers at
   * once): from then on no event is missed. Rejects as `ended` does when
   * the stream could not be opened.
   */
  opened: Promise<void>;
  /**
   * Resolves when the stream ends (stop(), the service closing it); rejects
   * with a LibpodError when it could not be opened or broke off.
   */
  ended: Promise<void>;
  stop(): void;
}

/**
 * Follows the containers carrying `labels`, calling `onEvent` for each
 * event in order. The stream has no end of its own: `ended` settles when
 * it drops (the caller re-lists and watches again) or after stop().
 */
export function watchEvents(
  client: LibpodClient,
  labels: readonly string[],
  onEvent: (event: ContainerEvent) => void,
): EventWatch {
  const stream = client.stream(eventsRequest({ labels }), { what: "events", timeoutMs: 0 });
  const response = stream.response;
  let stopped = false;
  const ended = response.then(
    (res) =>
      new Promise<void>((resolve, reject) => {
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const event = parseEvent(buffered.slice(0, nl));
            buffered = buffered.slice(nl + 1);
            if (event) onEvent(event);
          }
        });
        res.once("end", () => resolve());
        res.once("close", () => resolve());
        res.once("error", (err) => (stopped ? resolve() : reject(err)));
      }),
    (err: unknown) => {
      if (!stopped) throw err;
    },
  );
  return {
    opened: response.then(
      () => undefined,
      (err: unknown) => {
        if (!stopped) throw err;
      },
    ),
    ended,
    stop: () => {
      stopped = true;
      stream.abort();
    },
  };
}
