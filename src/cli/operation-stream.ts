/**
 * Following a deploy or rollback on the agent (DeployStream, Rollback: a
 * DeployEvent per step, then the result) until it is done, Ctrl-C comes or
 * the deadline passes; and what the command prints and exits with then.
 *
 * - An agent older than the streaming RPC answers UNIMPLEMENTED before any
 *   event (client.ts: AgentVersionError): a deploy then falls back to the
 *   unary Deploy (no progress); a rollback fails saying which version it needs.
 * - Ctrl-C stops the waiting, never the operation: the agent finishes it
 *   (or undoes it) and records it. The CLI says so and exits 130: through
 *   interrupt.ts's onInterrupt in the real CLI, through an injected
 *   InterruptSource in in-process tests.
 * - A passed deadline is an McpError `timed_out`, which the caller's
 *   changeState turns into exit 3 (outcome.ts).
 */
import type {
  ComponentResult,
  DeployEvent,
  DeployResponse,
  StepProgress,
} from "../gen/mcp/v1/mcp.js";
import { McpError } from "../util/errors.js";
import { isUnimplemented, type AgentClient } from "./client.js";
import type { CliContext } from "./context.js";
import { processIO } from "./context.js";
import { onInterrupt, wasInterrupted } from "./interrupt.js";
import { EXIT } from "./outcome.js";
import { formatJson } from "./output.js";
import { ProgressPrinter, formatSummary } from "./progress.js";

/** Calls `stop` on an interruption (Ctrl-C); returns the unsubscribe. */
export type InterruptSource = (stop: () => void) => () => void;

/** For in-process runs (tests): nothing interrupts. */
export const noInterrupts: InterruptSource = () => () => undefined;

export interface OperationResult {
  results: ComponentResult[];
  /** The revision the agent recorded; 0 when it did not say (the unary fallback). */
  revision: number;
  /** false: an older agent, served by the unary Deploy. */
  streamed: boolean;
}

export type Followed =
  | { interrupted: false; result: OperationResult }
  /** `started`: the agent had begun (an event came, or the unary request went out). */
  | { interrupted: true; started: boolean };

export interface FollowOptions {
  onProgress: (p: StepProgress) => void;
  interrupts: InterruptSource;
  /** For an agent without the streaming RPC; none: UNIMPLEMENTED is an error. */
  fallback?: () => Promise<DeployResponse>;
}

const STOP = Symbol("interrupted");

/** Reads the operation's events until its result (see the file comment). */
export async function followOperation(
  client: Pick<AgentClient, "name">,
  events: () => AsyncIterable<DeployEvent>,
  opts: FollowOptions,
): Promise<Followed> {
  let unsubscribe: () => void = () => undefined;
  const stopped = new Promise<typeof STOP>((resolve) => {
    unsubscribe = opts.interrupts(() => resolve(STOP));
  });
  try {
    const it = events()[Symbol.asyncIterator]();
    let seen = false;
    let result: OperationResult | undefined;
    for (;;) {
      let next: IteratorResult<DeployEvent> | typeof STOP;
      try {
        next = await Promise.race([it.next(), stopped]);
      } catch (err) {
        if (seen || !opts.fallback || !isUnimplemented(err, "deployStream")) throw err;
        const answer = await Promise.race([opts.fallback(), stopped]);
        if (answer === STOP) return { interrupted: true, started: true };
        return {
          interrupted: false,
          result: { results: answer.results, revision: 0, streamed: false },
        };
      }
      if (next === STOP) {
        // Leaving the stream cancels the call; the agent carries on regardless.
        it.return?.(undefined).catch(() => undefined);
        return { interrupted: true, started: seen };
      }
      if (next.done) break;
      seen = true;
      const event = next.value;
      if (event.progress) opts.onProgress(event.progress);
      if (event.result) {
        result = { results: event.result.results, revision: event.revision, streamed: true };
      }
    }
    if (!result) {
      throw new McpError(
        "internal",
        `node ${client.name}: the agent ended the stream without a result`,
      );
    }
    return { interrupted: false, result };
  } finally {
    unsubscribe();
  }
}

/** How a deploy or rollback command shows its operation. */
export interface ShowOptions {
  /** Only the result, no progress. */
  quiet?: boolean | undefined;
  /** The result as JSON (no progress). */
  json?: boolean | undefined;
}

/** What the operation is, for its messages. */
export interface OperationWhat {
  verb: "deploy" | "rollback";
  service: string;
  node: string;
}

/** The command's half of an operation: where progress goes and where Ctrl-C comes from. */
export interface OperationView {
  printer: ProgressPrinter;
  onProgress: (p: StepProgress) => void;
  /** The request went out in a way the agent acts on (the unary fallback). */
  markStarted: () => void;
  interrupts: InterruptSource;
}

/**
 * Progress on stdout (lines as steps end; on a terminal also the running
 * step) unless quiet or JSON. Ctrl-C in the real CLI: interrupt.ts prints
 * what `interruptedMessage` says and exits 130.
 */
export function operationView(
  ctx: CliContext,
  show: ShowOptions,
  what: OperationWhat,
  interrupts?: InterruptSource,
): OperationView {
  const real = ctx.io === processIO;
  const printer = new ProgressPrinter((t) => ctx.io.out(t), real && process.stdout.isTTY === true);
  const quiet = show.quiet === true || show.json === true;
  let started = false;
  const fromProcess: InterruptSource = (stop) =>
    onInterrupt(() => {
      stop();
      printer.clear();
      return interruptedMessage(what, started);
    });
  return {
    printer,
    onProgress: (p) => {
      started = true;
      if (!quiet) printer.event(p);
    },
    markStarted: () => (started = true),
    interrupts: interrupts ?? (real ? fromProcess : noInterrupts),
  };
}

/** What `mcp: interrupted: …` says: the agent goes on, and where to look. */
export function interruptedMessage(what: OperationWhat, started: boolean): string {
  const finish =
    what.verb === "deploy"
      ? "finishes or rolls back the deploy"
      : "finishes or undoes the rollback";
  const look = `see mcp history ${what.service} / mcp status ${what.service}`;
  return started
    ? `interrupted: the agent on node ${what.node} goes on and ${finish}; ${look}`
    : `interrupted: the agent on node ${what.node} may have received the ${what.verb}; if so it goes on and ${finish}; ${look}`;
}

/** Prints the end of an operation and returns the exit code (0 done, 1 failed, 130 interrupted). */
export function finishOperation(
  ctx: CliContext,
  view: OperationView,
  followed: Followed,
  what: OperationWhat,
  show: ShowOptions,
): number {
  view.printer.clear();
  if (followed.interrupted) {
    // The real CLI's Ctrl-C handler has printed it already (interrupt.ts).
    if (!wasInterrupted()) ctx.io.err(`mcp: ${interruptedMessage(what, followed.started)}\n`);
    return EXIT.interrupted;
  }
  const { results, revision } = followed.result;
  if (show.json) {
    ctx.io.out(
      formatJson({
        node: what.node,
        service: what.service,
        ...(revision > 0 ? { revision } : {}),
        results,
      }),
    );
  } else {
    ctx.io.out(formatSummary(results));
  }
  return results.every((r) => r.success) ? EXIT.ok : EXIT.failed;
}
