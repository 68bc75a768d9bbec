/**
 * How long the CLI waits, in one place (README "Time limits"). No imports:
 * client.ts, deadline.ts, context.ts and program.ts all read it, and
 * `mcp --version` must stay cheap.
 */

/**
 * Connecting to an agent (TCP + TLS + HTTP/2), for every command. `--timeout`
 * and `[client] connect_timeout` override it. 5 s proved too short on a loaded
 * machine: calls that would have succeeded failed.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** A unary call that names no deadline of its own (reads: list, status, pull ...). */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

/**
 * Asking an agent its version (NodeStatus) after it said a call is
 * unimplemented (client.ts): the connection is up, so this is quick.
 */
export const VERSION_PROBE_TIMEOUT_MS = 10_000;

/**
 * Fan-out commands (ps, list, status, node list/status, service show/export
 * without a node) give each node the connect timeout to connect and twice it
 * for everything (files, connection, calls), so one dead node holds them
 * `connect` long and one slow node `2 × connect` at most.
 */
export function fanOutLimits(connectMs: number): { connectMs: number; totalMs: number } {
  return { connectMs, totalMs: 2 * connectMs };
}

/**
 * Deadlines of the calls that change state, generous for the work each may do
 * (a deploy pulls images and waits for every component to start; stop waits
 * up to 10 s per container before podman kills it). `--deadline` overrides
 * them per command. When one passes, the CLI cannot know the outcome: it says
 * so and exits 3 (outcome.ts).
 */
export const STATE_CHANGE_DEADLINE_MS = {
  deploy: 15 * 60_000,
  rollback: 15 * 60_000,
  start: 10 * 60_000,
  restart: 10 * 60_000,
  stop: 5 * 60_000,
  undeploy: 5 * 60_000,
  adopt: 5 * 60_000,
  sync: 2 * 60_000,
  purge: 2 * 60_000,
  // An L7 route waits for its certificate (ACME: the issuer's own bound).
  "route add": 5 * 60_000,
  "route remove": 2 * 60_000,
} as const;

export type StateChangeVerb = keyof typeof STATE_CHANGE_DEADLINE_MS;

/** `5 s`, `1.5 s`, `250 ms`, `15 min`: how a limit reads in a message. */
export function formatLimit(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms >= 120_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 100) / 10} s`;
}
