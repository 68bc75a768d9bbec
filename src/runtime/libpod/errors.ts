/**
 * The typed error of Podman's REST API. Kept in its own module (no imports
 * from the rest of src/runtime) so the classifiers in ../errors.ts can
 * import it without an import cycle.
 */
import { McpError } from "../../util/errors.js";

export interface LibpodErrorFields {
  /** `start`, `create`, `pull`…: the API call, for messages. */
  what: string;
  /** The HTTP status; 0 when no answer came (socket refused, timed out, connection reset). */
  status: number;
  /** Podman's `message` (the whole chain, as the CLI prints it after `Error: `). */
  apiMessage?: string;
  /** Podman's `cause`: the innermost error alone (`no such container`). */
  apiCause?: string;
  timedOut?: boolean;
  /** Why there was no answer, when status is 0. */
  reason?: string;
  cause?: unknown;
}

/** A call to Podman's API that failed: an error answer, an error inside a stream, or no answer. */
export class LibpodError extends McpError {
  readonly what: string;
  readonly status: number;
  readonly apiMessage: string;
  readonly apiCause: string;
  readonly timedOut: boolean;

  constructor(f: LibpodErrorFields) {
    const detail = f.apiMessage || f.reason || "";
    // An error inside a 200 stream (pull) is no HTTP failure: "failed", not "HTTP 200".
    const outcome = f.timedOut ? "timed out" : f.status >= 400 ? `HTTP ${f.status}` : "failed";
    super("runtime", `podman API ${f.what} ${outcome}${detail ? `: ${detail}` : ""}`, {
      cause: f.cause,
    });
    this.name = "LibpodError";
    this.what = f.what;
    this.status = f.status;
    this.apiMessage = f.apiMessage ?? "";
    this.apiCause = f.apiCause ?? "";
    this.timedOut = f.timedOut ?? false;
  }
}

/**
 * Podman's error body (`{"cause","message","response"}`) as a LibpodError;
 * a body that is not one (a proxy, a crash) keeps its first line as the message.
 */
export function libpodErrorFromBody(what: string, status: number, body: string): LibpodError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed === "object" && parsed !== null) {
    const o = parsed as Record<string, unknown>;
    const message = typeof o.message === "string" ? o.message : "";
    const cause = typeof o.cause === "string" ? o.cause : "";
    if (message || cause)
      return new LibpodError({ what, status, apiMessage: message, apiCause: cause });
  }
  return new LibpodError({ what, status, apiMessage: body.trim().split("\n")[0] ?? "" });
}
