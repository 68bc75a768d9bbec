/**
 * The one runner of every component operation (docs/ARCHITECTURE.md,
 * "Component operations and their steps"): an ordered list of named steps,
 * each with `run` and, if it changes something, `undo`. The runner reports
 * each step as it starts and ends, stops at a crash point before each (tests),
 * and on a failure undoes the steps that completed, newest first, then throws
 * a StepError naming the failed step. Steps marked `after commit` run once the
 * operation is done: their failure is logged, never undone. Trailing steps
 * marked `after reply` may be handed to the caller instead (`env.later`), so
 * the operation's answer does not wait for them.
 */
import type { Logger } from "pino";
import { StepError, errorMessage } from "../../../util/errors.js";
import type { CrashPoint } from "../crash-points.js";
import type { ProgressSink } from "../progress.js";

export interface Step<S> {
  /** Shown in progress and errors, and the crash point `<kind>:<name>`. */
  name: string;
  run(state: S): Promise<void>;
  /** Puts back what `run` did; runs only if `run` completed. */
  undo?(state: S): Promise<void>;
  /** A clean-up after the operation committed: a failure is only logged. */
  afterCommit?: boolean;
  /**
   * An `afterCommit` clean-up nobody waits for: when the runner is given
   * `later`, it and the steps after it run there instead (the caller still
   * runs them before it lets go of the service's lock).
   */
  afterReply?: boolean;
}

export interface RunEnv {
  /** deploy, rollback, start, restart, recover: the crash points' prefix. */
  kind: string;
  component: string;
  progress: ProgressSink;
  logger: Logger;
  crashPoint?: CrashPoint | undefined;
  /**
   * Takes the steps from the first `afterReply` one on, to run when the
   * caller has answered (they never throw but for a crash point); without
   * it they run now, like every other step.
   */
  later?: ((rest: () => Promise<void>) => void) | undefined;
}

export async function runSteps<S>(steps: readonly Step<S>[], state: S, env: RunEnv): Promise<void> {
  const done: Step<S>[] = [];
  const report = (
    step: string,
    phase: "start" | "ok" | "failed" | "undo",
    started: number,
    detail = "",
  ) =>
    env.progress({
      component: env.component,
      step,
      phase,
      elapsedMs: phase === "start" ? 0 : Date.now() - started,
      detail,
    });
  for (const [i, step] of steps.entries()) {
    if (step.afterReply && env.later) {
      const rest = steps.slice(i);
      env.later(() => runSteps(rest, state, { ...env, later: undefined }));
      return;
    }
    await env.crashPoint?.(`${env.kind}:${step.name}`, env.component);
    const started = Date.now();
    report(step.name, "start", started);
    try {
      await step.run(state);
      report(step.name, "ok", started);
      done.push(step);
    } catch (err) {
      const detail = errorMessage(err);
      report(step.name, "failed", started, detail);
      if (step.afterCommit) {
        env.logger.warn({ err: detail, step: step.name }, "clean-up after commit failed");
        continue;
      }
      await undoAll(done, state, env, report);
      if (err instanceof StepError) throw err;
      throw new StepError(step.name, detail, { cause: err });
    }
  }
}

async function undoAll<S>(
  done: Step<S>[],
  state: S,
  env: RunEnv,
  report: (step: string, phase: "undo", started: number, detail?: string) => void,
): Promise<void> {
  for (const step of done.reverse()) {
    if (!step.undo) continue;
    const started = Date.now();
    try {
      await step.undo(state);
      report(step.name, "undo", started);
    } catch (err) {
      // Later undos still run: each puts back its own part.
      env.logger.error({ err: errorMessage(err), step: step.name }, "undo failed");
      report(step.name, "undo", started, `failed: ${errorMessage(err)}`);
    }
  }
}
