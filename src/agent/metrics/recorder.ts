/**
 * What the agent's operations tell the metrics as things happen (deploys,
 * drift and flap events, RPCs): a small interface on the agent context
 * (`ctx.metrics`), so the places that count need no prom-client and unit
 * tests over the fake runtime need no registry. metrics.ts implements it.
 */

/** The monitor's conditions that have an event of their own (src/monitor/monitor.ts). */
export type CountedCondition = "drift" | "flap";

export interface MetricsRecorder {
  /** A deploy or rollback of `service` ended: its results are known (or it threw). */
  deployEnded(deploy: { service: string; kind: string; ok: boolean; seconds: number }): void;
  /** The monitor recorded a `drift` or `flap` event for a component of `service`. */
  conditionEntered(kind: CountedCondition, service: string): void;
  /** An RPC ended with `code`, a gRPC status name such as "OK" or "UNAUTHENTICATED". */
  rpcEnded(method: string, code: string, seconds: number): void;
}
