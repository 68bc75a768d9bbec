/**
 * Observed state: what podman says, matched to registry components, and
 * written back to the registry with an event for every transition. Used by
 * LiveCheck, GetServiceStatus and the agent's start-up reconciliation.
 */
import type { ComponentRow } from "../registry/index.js";
import { splitContainerName } from "../runtime/args.js";
import type { ContainerStatus } from "../runtime/types.js";
import type { AgentContext } from "./context.js";

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
  const services = [...new Set(components.map((c) => c.service))];
  const byKey = new Map<string, ContainerStatus>();
  const unmanaged: ContainerStatus[] = [];
  for (const container of containers) {
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
 */
export async function refreshObserved(ctx: AgentContext): Promise<{
  components: ComponentRow[];
  byKey: Map<string, ContainerStatus>;
  unmanaged: ContainerStatus[];
}> {
  const containers = await ctx.runtime.list();
  const rows = ctx.registry.components.list();
  const { byKey, unmanaged } = matchContainers(containers, rows);
  const changed: ComponentRow[] = [];
  ctx.registry.transaction(() => {
    for (const row of rows) {
      const container = byKey.get(componentKey(row.service, row.name));
      const observed = container ? container.state : REMOVED;
      const startedAt = container?.startedAt ? container.startedAt.toISOString() : null;
      if (observed === row.observedState && (container?.id ?? "") === row.containerId) continue;
      ctx.registry.components.setObserved(row.service, row.name, {
        state: observed,
        containerId: container?.id ?? "",
        startedAt,
      });
      if (observed !== row.observedState) {
        ctx.registry.events.add({
          service: row.service,
          component: row.name,
          kind: "state",
          prevState: row.observedState,
          newState: observed,
        });
      }
      changed.push(row);
    }
  });
  const components = changed.length > 0 ? ctx.registry.components.list() : rows;
  return { components, byKey, unmanaged };
}
