/**
 * Observed state: what podman says, matched to registry components, and
 * written back to the registry with an event for every transition. Used by
 * LiveCheck, GetServiceStatus and the agent's start-up reconciliation.
 */
import type { ComponentRow } from "../../registry/index.js";
import { isSideContainer, splitContainerName } from "../../runtime/args.js";
import type { ContainerStatus } from "../../runtime/types.js";
import type { AgentContext } from "../context.js";
import type { ObservedSnapshot } from "./snapshot.js";

/** Observed state of a component whose container is gone. */
export const REMOVED = "removed";

export function componentKey(service: string, component: string): string {
  return `${service}/${component}`;
}

/**
 * Maps containers to `service/component` keys: by our labels first, then by
 * name against the known services (so `mc-proxy` is not read as `mc`).
 * Containers that match no registry component are returned as unmanaged.
 */
export function matchContainers(
  containers: ContainerStatus[],
  components: Pick<ComponentRow, "service" | "name">[],
): { byKey: Map<string, ContainerStatus>; unmanaged: ContainerStatus[] } {
  const known = new Set(components.map((c) => componentKey(c.service, c.name)));
  // A Set: unlabelled containers (anyone's on the host) are looked up, never scanned against every service.
  const services = new Set(components.map((c) => c.service));
  const byKey = new Map<string, ContainerStatus>();
  const unmanaged: ContainerStatus[] = [];
  for (const container of containers) {
    // An old container kept while its replacement starts, or a new version's
    // trial (operations/steps), carries the component's labels too; it is
    // neither the component nor unmanaged.
    if (isSideContainer(container.name)) continue;
    const service = container.labels["mcp.service"];
    const component = container.labels["mcp.component"];
    let key: string | undefined;
    if (service && component) {
      key = componentKey(service, component);
    } else {
      const split = splitContainerName(container.name, services);
      if (split) key = componentKey(split.service, split.component);
    }
    if (key !== undefined && known.has(key)) byKey.set(key, container);
    else unmanaged.push(container);
  }
  return { byKey, unmanaged };
}

/** Whether observed state disagrees with desired state (`ignore` never drifts). */
export function isDrift(desired: string, observed: string): boolean {
  if (desired === "ignore") return false;
  if (desired === "running") return observed !== "running";
  // desired stopped: anything but a live container is fine
  return observed === "running" || observed === "paused";
}

/**
 * Asks podman for every container, updates each component's observed state
 * in the registry and records a `state` event for every change.
 *
 * A restart podman did between two refreshes (a restart policy at work: same
 * container, same state, a later start time) is a `state` event too, with
 * prev = new state and the message "restarted": flap detection counts state
 * events, and a container that crash-loops faster than the refresh interval
 * would otherwise look steady.
 *
 * A row that changed while podman was listing (a deploy finished meanwhile)
 * is newer than the snapshot and is left alone. With `skipBusy` (the
 * monitor), components of a service that has an operation in progress are
 * left alone too: mid-deploy, "no container" is a step, not a fact.
 */
export async function refreshObserved(
  ctx: AgentContext,
  opts: { skipBusy?: boolean } = {},
): Promise<ObservedSnapshot> {
  const listedAt = new Date().toISOString();
  const containers = await ctx.runtime.list();
  const rows = ctx.registry.components.list();
  const { byKey, unmanaged } = matchContainers(containers, rows);
  const changed: ComponentRow[] = [];
  const skipped = new Set<string>();
  ctx.registry.transaction(() => {
    for (const row of rows) {
      const key = componentKey(row.service, row.name);
      if (row.updatedAt > listedAt || (opts.skipBusy && ctx.serviceLocks.isLocked(row.service))) {
        skipped.add(key);
        continue;
      }
      const container = byKey.get(key);
      const observed = container ? container.state : REMOVED;
      const startedAt = container?.startedAt ? container.startedAt.toISOString() : null;
      const restarted = isUnseenRestart(row, container, startedAt);
      if (
        observed === row.observedState &&
        (container?.id ?? "") === row.containerId &&
        !restarted
      ) {
        continue;
      }
      ctx.registry.components.setObserved(row.service, row.name, {
        state: observed,
        containerId: container?.id ?? "",
        startedAt,
      });
      if (observed !== row.observedState || restarted) {
        ctx.registry.events.add({
          service: row.service,
          component: row.name,
          kind: "state",
          prevState: row.observedState,
          newState: observed,
          message: restarted ? `restarted (started ${startedAt})` : "",
        });
      }
      changed.push(row);
    }
  });
  const components = changed.length > 0 ? ctx.registry.components.list() : rows;
  return { components, byKey, unmanaged, skipped };
}

/**
 * The same container, in the same state, started later than the registry
 * recorded: podman restarted it in between. The recorded time is the agent's
 * clock just after `run`/`start` returned or podman's own start time, both at
 * or after podman's (whole-second) start time of that same start, so only a
 * later start is strictly greater.
 */
function isUnseenRestart(
  row: ComponentRow,
  container: ContainerStatus | undefined,
  startedAt: string | null,
): boolean {
  return (
    container !== undefined &&
    container.id === row.containerId &&
    container.state === row.observedState &&
    startedAt !== null &&
    row.startedAt !== null &&
    Date.parse(startedAt) > Date.parse(row.startedAt)
  );
}
