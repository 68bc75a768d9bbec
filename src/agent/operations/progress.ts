/**
 * Live progress of a component operation: each step as it starts and ends
 * (with its duration), health attempts, and undo. The streaming deploy RPC
 * forwards these to the CLI (`web: pull ✓ 0.3s`); unary callers ignore them.
 */
export type StepPhase = "start" | "ok" | "failed" | "undo" | "info";

export interface StepProgress {
  component: string;
  step: string;
  phase: StepPhase;
  /** Since the step started (0 for "start"). */
  elapsedMs: number;
  /** e.g. `health 2/3 connect ECONNREFUSED`, or the failure. */
  detail: string;
}

export type ProgressSink = (progress: StepProgress) => void;

export const ignoreProgress: ProgressSink = () => undefined;
