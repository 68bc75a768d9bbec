/**
 * Exit codes, and the one failure after which the CLI cannot say what
 * happened: a state-changing call whose deadline passed. The request may have
 * reached the agent, which carries on without us (a deploy is not cancelled
 * because its caller stopped waiting), so "failed" would be a lie. The CLI
 * says the operation may still be running, how to look, and exits 3.
 *
 * A connection that never came up is different: nothing was sent, the
 * command failed, exit 1.
 */
import { McpError, type McpErrorCode } from "../util/errors.js";
import type { StateChangeVerb } from "./limits.js";

export const EXIT = {
  ok: 0,
  failed: 1,
  /** deploy, rollback, start, stop, restart, undeploy: bad input or usage (changeExitCodeFor). */
  usage: 2,
  /** A state change's deadline passed: it may have happened, or may still. */
  unknown: 3,
  /** Ctrl-C (128 + SIGINT; interrupt.ts). */
  interrupted: 130,
} as const;

/** What a state-changing command is doing, for its deadline and its message. */
export interface StateChange {
  verb: StateChangeVerb;
  /** `hello`, `hello/web`; none for sync and a purge sweep. */
  target?: string | undefined;
  /** The call's deadline. */
  deadlineMs: number;
}

/** The command that shows whether the change happened. */
export function lookCommand(change: Pick<StateChange, "verb" | "target">): string {
  const service = change.target?.split("/")[0];
  if (change.verb === "sync") return "mcp sync --dry-run";
  if (change.verb === "route add" || change.verb === "route remove") return "mcp route list";
  if (change.verb === "purge") return service ? `mcp purge --dry-run ${change.target}` : "mcp list";
  return service ? `mcp status ${service}` : "mcp status";
}

/** A state change whose outcome is unknown: its call's deadline passed. */
export class OutcomeUnknownError extends McpError {
  constructor(
    readonly change: Pick<StateChange, "verb" | "target">,
    reason: string,
    options?: { cause?: unknown },
  ) {
    const what = change.target ? `${change.verb} ${change.target}` : change.verb;
    super(
      "timed_out",
      `${what}: ${reason}; the ${change.verb} may still be running on the agent: check with "${lookCommand(change)}"`,
      options,
    );
    this.name = "OutcomeUnknownError";
  }
}

/** `err` as an OutcomeUnknownError when it is a passed deadline; otherwise `err` itself. */
export function asOutcome(err: unknown, change: Pick<StateChange, "verb" | "target">): unknown {
  if (
    err instanceof McpError &&
    err.code === "timed_out" &&
    !(err instanceof OutcomeUnknownError)
  ) {
    return new OutcomeUnknownError(change, err.message, { cause: err });
  }
  return err;
}

/** The exit code of a command that failed with `err`. */
export function exitCodeFor(err: unknown): number {
  return err instanceof OutcomeUnknownError ? EXIT.unknown : EXIT.failed;
}

/**
 * What the operator typed or wrote is wrong: the command line, the
 * definition, the CLI config (token included), or a service, component or
 * node that does not exist. Fixing the input, not retrying, is what helps.
 */
const BAD_INPUT = new Set<string>([
  "invalid_argument",
  "invalid_definition",
  "invalid_config",
  "not_found",
] satisfies McpErrorCode[]);

/**
 * The exit code of deploy, rollback, start, stop, restart or undeploy that
 * failed with `err` (README "Exit codes"): 2 for bad input or usage, 3 when
 * the CLI stopped waiting while the agent may still work, else 1 (failed;
 * what ran before keeps serving, or was restored).
 */
export function changeExitCodeFor(err: unknown): number {
  if (err instanceof OutcomeUnknownError) return EXIT.unknown;
  if (err instanceof McpError && BAD_INPUT.has(err.code)) return EXIT.usage;
  return EXIT.failed;
}
