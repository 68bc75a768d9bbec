/**
 * Recovery when the agent starts (reference §8.9): the registry survives the
 * agent, podman may have moved on meanwhile.
 *
 * - A component desired `running` with no live container (gone, or left
 *   exited/created, e.g. after a reboot without a podman restart service) is
 *   recreated with runComponent from the spec of its last successful
 *   revision (what a deploy or rollback last ran), not from the registry row
 *   when `sync` recorded another spec there since: sync records intent, and
 *   recovery must not deploy intent (recoverySpec). Then the row is set back
 *   to the spec that runs, so `mcp status` shows the file differs. A
 *   component with no revision (deployed before history existed) uses its
 *   row's spec as before. Its recorded host ports
 *   are preferred (kept when still free) and nothing is pulled; an image no
 *   longer in local storage fails that component only (a `recover_failed`
 *   event says why) and the others go on. A `recover` event records each
 *   recreation and why it was needed.
 * - A paused container is left paused (someone paused it on purpose).
 * - Components desired `stopped` or `ignore` are never touched, nor are
 *   components the agent never started itself (deployedAt null: only synced,
 *   or adopted with a partial spec) — recreating those would deploy intent.
 * - Containers the registry does not know are left alone and reported: a log
 *   line and an `unmanaged` event each (service = their `mcp.service` label,
 *   else their name), so `mcp status` shows them and `mcp adopt` can take them
 *   over. Containers labelled for another node belong to that node's agent
 *   (several agents can share one podman, as in the tests): they are logged at
 *   debug level only, not recorded as events.
 *
 * The reference says "no running container"; the issue says "container is
 * gone". Both are covered: an exited container with desired `running` is
 * exactly what a node reboot leaves behind, and the operator expects it back.
 */
import type { ComponentSpec } from "../../gen/mcp/v1/mcp.js";
import type { ComponentRow, RevisionRow } from "../../registry/index.js";
import type { ContainerStatus } from "../../runtime/types.js";
import type { AgentContext } from "../context.js";
import { runComponent } from "./deploy.js";
import { lastGoodSpec, sameSpec } from "./rollback.js";
import { settleInterrupted } from "./interrupted.js";
import { componentKey, refreshObserved } from "../observed/refresh.js";

/** Container states recovery leaves alone for a component desired running. */
const LIVE_STATES = new Set(["running", "paused"]);

export interface RecreateDecision {
  row: ComponentRow;
  /** Why: "container was gone", "container was exited", ... */
  reason: string;
}

export interface UnmanagedContainer {
  container: ContainerStatus;
  /** The `mcp.service` label, else the container's name. */
  service: string;
  /** The `mcp.component` label, else "". */
  component: string;
}

export interface RecoveryPlan {
  recreate: RecreateDecision[];
  unmanaged: UnmanagedContainer[];
  /** Labelled for another node: that agent's business. */
  foreign: ContainerStatus[];
}

/** What recovery should do, given the registry and what podman runs (pure). */
export function planRecovery(
  components: ComponentRow[],
  byKey: ReadonlyMap<string, ContainerStatus>,
  unmatched: ContainerStatus[],
  node: string,
): RecoveryPlan {
  const recreate: RecreateDecision[] = [];
  for (const row of components) {
    // Only what this agent ran from a complete stored spec comes back:
    // components only synced (intent, never deployed) or adopted (spec
    // reconstructed: image and ports only) are left to the operator.
    if (row.desiredState !== "running" || row.deployedAt === null) continue;
    const container = byKey.get(componentKey(row.service, row.name));
    if (container && LIVE_STATES.has(container.state)) continue;
    recreate.push({
      row,
      reason: container ? `container was ${container.state || "unknown"}` : "container was gone",
    });
  }
  const unmanaged: UnmanagedContainer[] = [];
  const foreign: ContainerStatus[] = [];
  for (const container of unmatched) {
    const labelNode = container.labels["mcp.node"];
    if (labelNode && labelNode !== node) {
      foreign.push(container);
      continue;
    }
    unmanaged.push({
      container,
      service: container.labels["mcp.service"] || container.name,
      component: container.labels["mcp.component"] ?? "",
    });
  }
  return { recreate, unmanaged, foreign };
}

/**
 * The spec recovery recreates a component from: its last successful
 * revision's (what last ran), else the row's. `record` says the row holds
 * another spec (sync changed it) and must be set back to what will run.
 */
export function recoverySpec(
  row: Pick<ComponentRow, "name" | "spec">,
  revisions: readonly RevisionRow[],
): { spec: ComponentSpec; record: boolean; revision?: number } {
  const good = lastGoodSpec(revisions, row.name);
  if (!good) return { spec: row.spec, record: false };
  return { spec: good.spec, record: !sameSpec(good.spec, row.spec), revision: good.revision };
}

export interface RecoveryReport {
  /** `service/component` keys recreated. */
  recovered: string[];
  /** `service/component` → why it could not be recreated. */
  failed: Map<string, string>;
  /** Names of unmanaged containers reported. */
  unmanaged: string[];
}

/**
 * Refreshes observed state, recreates what should run, reports unmanaged
 * containers. Throws only if podman cannot list containers at all.
 */
export async function recoverAtStart(ctx: AgentContext): Promise<RecoveryReport> {
  const { registry, logger } = ctx;
  // First what an earlier agent left half done, so the plan below sees the
  // registry and podman agreeing on every component's spec.
  await settleInterrupted(ctx);
  const snapshot = await refreshObserved(ctx);
  const plan = planRecovery(
    snapshot.components,
    snapshot.byKey,
    snapshot.unmanaged,
    ctx.settings.node,
  );
  const report: RecoveryReport = { recovered: [], failed: new Map(), unmanaged: [] };
  for (const { row, reason } of plan.recreate) {
    const key = componentKey(row.service, row.name);
    const result = await ctx.serviceLocks.runExclusive(row.service, () => {
      const { spec, record, revision } = recoverySpec(row, registry.revisions.list(row.service));
      logger.info(
        { service: row.service, component: row.name, reason, revision, specChangedBySync: record },
        "recovering component",
      );
      return runComponent(ctx, row.service, spec, {
        kind: "recover",
        pull: false,
        note: record
          ? `${reason}; recreated from revision ${revision}, not the synced spec`
          : reason,
        ...(record ? { record: { ord: row.ord, desiredState: row.desiredState } } : {}),
      });
    });
    // runComponent has logged and recorded the outcome (`recover` / `recover_failed`).
    if (result.success) report.recovered.push(key);
    else report.failed.set(key, result.error);
  }
  if (plan.unmanaged.length > 0) {
    registry.transaction(() => {
      for (const u of plan.unmanaged) {
        registry.events.add({
          service: u.service,
          component: u.component,
          kind: "unmanaged",
          newState: u.container.state,
          message: `container ${u.container.name} (${u.container.image}) is not in this agent's registry; left alone`,
        });
      }
    });
  }
  for (const u of plan.unmanaged) {
    logger.warn(
      { container: u.container.name, image: u.container.image, state: u.container.state },
      "container not managed by this agent; left alone",
    );
    report.unmanaged.push(u.container.name);
  }
  if (plan.foreign.length > 0) {
    logger.debug(
      { containers: plan.foreign.map((c) => c.name) },
      "containers labelled for other nodes",
    );
  }
  logger.info(
    {
      recovered: report.recovered.length,
      failed: report.failed.size,
      unmanaged: report.unmanaged.length,
    },
    "recovery done",
  );
  return report;
}
