/**
 * Pure rules for `mcp logs` / the Logs RPC, shared by the CLI (checks before
 * dialling) and the agent (the authority): which component a request means,
 * and which `--tail` / `--since` values are passed on to `podman logs`.
 */
import type { LogsRequest } from "../gen/mcp/v1/mcp.js";
import type { LogOptions } from "../runtime/types.js";
import { McpError } from "../util/errors.js";

/** A Go duration, as podman parses it: `10m`, `1h30m`, `1.5h`, `500ms` (no sign). */
const DURATION = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;
/** Unix seconds, optionally fractional. */
const UNIX_TIME = /^\d+(?:\.\d+)?$/;
/** A date, optionally with a zone: `2024-01-01`, `2024-01-01Z`, `2024-01-01+02:00`. */
const DATE = /^\d{4}-\d{2}-\d{2}(?:Z|[+-]\d{2}:\d{2})?$/;
/** RFC 3339 with seconds, zone optional (local time then): `2024-01-01T10:00:00.5Z`. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})?$/;

/**
 * Checks a `--since` value. Podman accepts more spellings than these, but it
 * reports a bad one only after `podman logs` started, on the same stderr as
 * the container's own output; checking first gives a clean INVALID_ARGUMENT.
 * The forms were checked against podman 4.3.1 (`2024-01-01T10:00`, without
 * seconds, is one podman refuses).
 */
export function checkSince(since: string): string {
  if (
    since.length <= 64 &&
    (DURATION.test(since) || UNIX_TIME.test(since) || DATE.test(since) || DATE_TIME.test(since))
  ) {
    return since;
  }
  throw new McpError(
    "invalid_argument",
    `--since "${since}": expected a duration (10m, 1h30m), a date (2024-01-31), an RFC 3339 time (2024-01-31T10:00:00Z) or Unix seconds`,
  );
}

/** Checks a `--tail` / `-n` count typed by the operator: a whole number ≥ 1. */
export function parseTail(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    // The wire's tail is "0 = all", so zero lines cannot be asked for; `-f --since 1s` comes close.
    throw new McpError("invalid_argument", `-n/--tail: expected a whole number ≥ 1, got "${text}"`);
  }
  return n;
}

/** The podman options a request asks for (tail 0 = everything). */
export function logOptions(req: LogsRequest): LogOptions {
  if (req.tail < 0) {
    throw new McpError("invalid_argument", `tail ${req.tail}: expected 0 (all) or a count ≥ 1`);
  }
  return {
    ...(req.tail > 0 ? { tail: req.tail } : {}),
    follow: req.follow,
    timestamps: req.timestamps,
    ...(req.since ? { since: checkSince(req.since) } : {}),
  };
}

/**
 * The component a logs request means: the one named, or the only one. A
 * service with several components needs one named (the message lists them).
 */
export function pickComponent(
  service: string,
  components: readonly string[],
  requested: string,
  node: string,
): string {
  if (requested) {
    if (components.includes(requested)) return requested;
    throw new McpError(
      "not_found",
      `service ${service} has no component "${requested}" on node ${node}` +
        (components.length > 0 ? ` (it has: ${components.join(", ")})` : ""),
    );
  }
  const [only, ...others] = components;
  if (only === undefined) {
    throw new McpError("not_found", `service ${service} has no components on node ${node}`);
  }
  if (others.length > 0) {
    throw new McpError(
      "invalid_argument",
      `service ${service} has ${components.length} components (${components.join(", ")}): name one, e.g. mcp logs ${service}/${only}`,
    );
  }
  return only;
}
