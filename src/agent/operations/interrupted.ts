/**
 * Operations an agent did not live to finish. A component operation
 * (deploy.ts runComponent) records itself as pending before it touches the
 * component's container and clears that when it commits or rolls back
 * (registry migration 3). At the next start, before recovery, each pending
 * one is settled:
 *
 * - finish, when the operation is not health-gated (start, restart,
 *   recover) and the container under the component's name is a new one (not
 *   the one the registry knew before) and runs: the operation got as far as
 *   `start container`, so only its commit is missing;
 * - undo, otherwise (always for a deploy or rollback: its new version never
 *   proved itself): a new container (created, started or not) or a trial
 *   goes, an old container that was set aside comes back under its name (a
 *   stop of it still under way ends first) and is started again if it ran,
 *   and the registry gets the component's previous spec, desired state and
 *   host ports back (a component the operation was creating is dropped, and
 *   a service left without components with it). Recovery then recreates
 *   what should run.
 *
 * Set-aside and trial containers whose operation is over (the agent died
 * before removing them) are removed. After this the registry and podman
 * agree on which spec each component runs, every held port belongs to a
 * component, and nothing is left "desired running" that was never run.
 */
import type { ComponentRow, PendingOperation } from "../../registry/index.js";
import {
  LABEL_NODE,
  containerName,
  isSideContainer,
  setAsideName,
  trialName,
} from "../../runtime/names.js";
import type { ContainerStatus } from "../../runtime/types.js";
import type { AgentContext } from "../context.js";
import { restorePrevious } from "./steps/component.js";
import { componentKey } from "../observed/refresh.js";

export type Settlement = "finish" | "undo";

/** Whether `container` (the one under the component's name now) is the operation's own. */
function isNewContainer(op: PendingOperation, container: ContainerStatus | undefined): boolean {
  return container !== undefined && container.id !== (op.previous?.containerId ?? "");
}

/** Finish or undo a pending operation, given the container under the component's name (pure). */
export function settle(op: PendingOperation, container: ContainerStatus | undefined): Settlement {
  if (op.gated) return "undo";
  return isNewContainer(op, container) && container?.state === "running" ? "finish" : "undo";
}

export interface InterruptedReport {
  /** `service/component` keys whose operation was finished. */
  finished: string[];
  /** `service/component` keys whose operation was undone. */
  undone: string[];
  /** Set-aside and trial containers removed because their operation was over. */
  removedAside: string[];
}

/** Settles every pending operation in the registry (see the file comment). */
export async function settleInterrupted(ctx: AgentContext): Promise<InterruptedReport> {
  const report: InterruptedReport = { finished: [], undone: [], removedAside: [] };
  const containers = await ctx.runtime.list();
  const byName = new Map(containers.map((c) => [c.name, c]));
  const settled = new Set<string>();
  for (const row of ctx.registry.components.list()) {
    if (!row.pending) continue;
    const name = containerName(row.service, row.name);
    settled.add(setAsideName(name));
    settled.add(trialName(name));
    const current = byName.get(name);
    const key = componentKey(row.service, row.name);
    if (settle(row.pending, current) === "finish" && current) {
      await finish(ctx, row, row.pending, current);
      report.finished.push(key);
    } else {
      await undo(ctx, row, row.pending, current, byName.get(setAsideName(name)));
      report.undone.push(key);
    }
  }
  for (const c of containers) {
    if (!isSideContainer(c.name) || settled.has(c.name)) continue;
    if (c.labels[LABEL_NODE] !== ctx.settings.node) continue;
    await ctx.runtime.remove(c.name, { force: true, timeoutSeconds: 0 });
    report.removedAside.push(c.name);
  }
  for (const service of ctx.registry.services.list()) {
    if (ctx.registry.components.list(service.name).length === 0) {
      ctx.registry.services.delete(service.name);
    }
  }
  if (report.finished.length + report.undone.length + report.removedAside.length > 0) {
    ctx.logger.warn(report, "settled operations an earlier agent left unfinished");
  }
  return report;
}

async function finish(
  ctx: AgentContext,
  row: ComponentRow,
  op: PendingOperation,
  container: ContainerStatus,
): Promise<void> {
  const aside = setAsideName(containerName(row.service, row.name));
  await ctx.runtime.remove(aside, { force: true, timeoutSeconds: 0 });
  const { registry } = ctx;
  registry.transaction(() => {
    const startedAt = (container.startedAt ?? new Date()).toISOString();
    registry.components.setObserved(row.service, row.name, {
      state: container.state,
      containerId: container.id,
      startedAt,
    });
    registry.components.setDeployed(row.service, row.name, startedAt);
    registry.components.setPending(row.service, row.name, null);
    registry.events.add({
      service: row.service,
      component: row.name,
      kind: op.kind,
      newState: container.state,
      message: `${op.kind} of ${row.spec.image} finished at agent start (the agent had stopped after starting the container)`,
    });
  });
}

async function undo(
  ctx: AgentContext,
  row: ComponentRow,
  op: PendingOperation,
  current: ContainerStatus | undefined,
  aside: ContainerStatus | undefined,
): Promise<void> {
  const name = containerName(row.service, row.name);
  const remove = (what: string) => ctx.runtime.remove(what, { force: true, timeoutSeconds: 0 });
  await remove(trialName(name));
  if (isNewContainer(op, current)) await remove(name);
  let old = current && !isNewContainer(op, current) ? current : undefined;
  if (aside) {
    // The old container was set aside; with the new one gone it gets its name back.
    if (old) await remove(aside.name);
    else {
      // Its stop (begun while the new container was created) may still be
      // under way in a podman that outlived the agent, or left half-done by
      // one that did not: it ends first, or the start below would fail.
      if (aside.state === "stopping") {
        await ctx.runtime.stop(aside.name, ctx.settings.stopTimeoutSeconds);
      }
      await ctx.runtime.rename(aside.name, name);
      old = aside;
    }
  }
  // It ran before the operation stopped it: it serves again.
  if (old && op.wasRunning && old.state !== "running") await ctx.runtime.start(name);
  const { registry } = ctx;
  const message = `agent stopped during ${op.kind} (started ${op.startedAt}); undone at agent start`;
  registry.transaction(() => {
    if (op.previous) {
      restorePrevious(ctx, row.service, row.name, op.previous);
      registry.components.setPending(row.service, row.name, null);
    } else {
      registry.components.delete(row.service, row.name);
    }
    registry.events.add({
      service: row.service,
      component: row.name,
      kind: `${op.kind}_interrupted`,
      message,
    });
  });
  ctx.logger.warn({ service: row.service, component: row.name, kind: op.kind }, message);
}
