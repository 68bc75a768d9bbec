/**
 * A component's health in steady state, as pure functions: given what the
 * monitor knew and one check's result, the new state and whether that is a
 * transition worth an event (README, "Health in steady state"). The health
 * loop (src/monitor/health.ts) runs the checks, keeps this state per
 * component and records it.
 *
 * - `starting`: a container the monitor has not seen pass yet. Failures
 *   within the plan's start period (since the container started) do not
 *   count.
 * - `retries` consecutive counted failures → `unhealthy`; one pass →
 *   `healthy`. A healthy component that fails fewer times stays healthy.
 * - Only a change between healthy and unhealthy is a transition (an event).
 *   The first pass of a new component is not news; the first verdict
 *   `unhealthy` is, even without an earlier pass.
 * - A new container (redeploy, or a restart by podman) starts over as
 *   `starting`, except that an unhealthy component stays unhealthy until a
 *   check passes: a restart alone does not end the episode.
 * - Not checked: `""` (not desired and observed running, or not yet seen)
 *   and `none` (the definition says `type = "none"`).
 */
import type { CheckResult } from "./probe.js";

export type HealthStatus = "" | "starting" | "healthy" | "unhealthy" | "none";

export const HEALTH_STATUSES: readonly HealthStatus[] = [
  "",
  "starting",
  "healthy",
  "unhealthy",
  "none",
];

/** The last verdict: "" before the first. */
export type HealthVerdict = "" | "healthy" | "unhealthy";

export interface HealthMemo {
  status: HealthStatus;
  /** Consecutive failures counted (outside the start period) since the last pass. */
  failures: number;
  /** The last verdict, kept while the component is not checked: transitions are against it. */
  verdict: HealthVerdict;
}

export interface HealthTransition {
  kind: "healthy" | "unhealthy";
  from: HealthVerdict;
  /** The check's output: the event's message. */
  output: string;
}

export interface HealthStep {
  memo: HealthMemo;
  transition: HealthTransition | undefined;
}

/** What a check's verdict is weighed against. */
export interface CheckContext {
  nowMs: number;
  /** When the checked container started (ms since the epoch); null: unknown, long ago. */
  startedAtMs: number | null;
  retries: number;
  startPeriodMs: number;
}

/** The memo for a status read back from the registry (an agent restarted). */
export function recalled(status: HealthStatus): HealthMemo {
  const verdict = status === "healthy" || status === "unhealthy" ? status : "";
  return { status, failures: 0, verdict };
}

/** A container to check from now on: a new one, restarted, or first seen. */
export function watching(memo: HealthMemo): HealthMemo {
  return { ...memo, status: memo.status === "unhealthy" ? "unhealthy" : "starting", failures: 0 };
}

/** Not checked (any more): `""`, or `none` for a component whose definition says so. */
export function notChecked(memo: HealthMemo, status: "" | "none"): HealthMemo {
  return { ...memo, status, failures: 0 };
}

/** Whether a failure at `t.nowMs` falls within the container's start period. */
export function inStartPeriod(t: CheckContext): boolean {
  return t.startPeriodMs > 0 && t.startedAtMs !== null && t.nowMs - t.startedAtMs < t.startPeriodMs;
}

/** One check's result applied to `memo`. */
export function applyCheck(memo: HealthMemo, result: CheckResult, t: CheckContext): HealthStep {
  if (result.healthy) {
    const transition: HealthTransition | undefined =
      memo.verdict === "unhealthy"
        ? { kind: "healthy", from: "unhealthy", output: result.output }
        : undefined;
    return { memo: { status: "healthy", failures: 0, verdict: "healthy" }, transition };
  }
  if (inStartPeriod(t)) return { memo, transition: undefined };
  const failures = Math.min(memo.failures + 1, t.retries);
  if (failures < t.retries) return { memo: { ...memo, failures }, transition: undefined };
  const transition: HealthTransition | undefined =
    memo.verdict === "unhealthy"
      ? undefined
      : { kind: "unhealthy", from: memo.verdict, output: result.output };
  return { memo: { status: "unhealthy", failures, verdict: "unhealthy" }, transition };
}
