/**
 * PurgeComponent: remove stale registry entries (reference §5.5).
 *
 * A component is purged only when both:
 * - it is gone: no container, or a container that died on its own; and
 * - it is unwanted: its `service/component` key is not in
 *   `defined_components` (computed by the CLI from the local definitions).
 *
 * How podman's states map to the reference's words. The reference calls
 * `removed`, `unknown` and `exited` gone, yet refuses "stopped" components.
 * Podman reports a container stopped with `podman stop` as `exited` too, so
 * the state alone cannot tell them apart; the desired state can:
 * - no container (observed `removed`/`unknown`): gone;
 * - `exited` (or podman's transient `stopped`) while desired is running or
 *   ignore: it died on its own: gone;
 * - `exited`/`stopped` while desired is stopped: the operator parked it with
 *   `mcp stop` and may start it again: refused as "stopped" (run `mcp
 *   undeploy` first, which removes the container);
 * - any other state (running, paused, created, restarting, stopping, …):
 *   refused.
 * Observed state is read from podman at the time of the purge (not the
 * registry's last record, which may be stale), without writing it: a dry run
 * writes nothing at all.
 *
 * Purge deletes registry rows only (the component, its routes — releasing
 * their host ports — and, when the service's last component goes, the
 * service row) and records an event; it never touches a container. An exited
 * container of a purged component is left in place and becomes unmanaged.
 *
 * Results: one per examined component (`purged` = purged, or would be in a
 * dry run), plus one with component "" when the service row goes too.
 */
import type { PurgeRequest, PurgeResult } from "../../gen/mcp/v1/mcp.js";
import type { ComponentRow } from "../../registry/index.js";
import { McpError } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { REMOVED, componentKey, matchContainers } from "../observed/refresh.js";
import { syncProxy } from "../edge/routes.js";

export type PurgeVerdict =
  { purge: true; reason: string } | { purge: false; reason: string; refused: boolean };

/** Whether a component may go, from its desired state, its live state and the local definitions. Pure. */
export function purgeVerdict(
  row: Pick<ComponentRow, "service" | "name" | "desiredState">,
  liveState: string,
  defined: ReadonlySet<string>,
): PurgeVerdict {
  const key = componentKey(row.service, row.name);
  if (defined.has(key)) {
    return { purge: false, refused: false, reason: "still defined locally" };
  }
  if (liveState === REMOVED || liveState === "unknown" || liveState === "") {
    return { purge: true, reason: "gone (no container) and not defined" };
  }
  if (liveState === "exited" || liveState === "stopped") {
    if (row.desiredState === "stopped") {
      return {
        purge: false,
        refused: true,
        reason: "container is stopped (mcp undeploy removes it first)",
      };
    }
    return { purge: true, reason: `gone (container ${liveState}, left in place) and not defined` };
  }
  return { purge: false, refused: true, reason: `container is ${liveState}` };
}

export async function purge(ctx: AgentContext, req: PurgeRequest): Promise<PurgeResult[]> {
  if (req.component && !req.service) {
    throw new McpError("invalid_argument", "purge: a component needs its service");
  }
  const { registry } = ctx;
  const services = req.service ? [req.service] : registry.services.list().map((s) => s.name);
  if (req.service && !registry.services.get(req.service)) {
    throw new McpError(
      "not_found",
      `unknown service "${req.service}" on node ${ctx.settings.node}`,
    );
  }
  if (req.component && !registry.components.get(req.service, req.component)) {
    throw new McpError(
      "not_found",
      `unknown component "${req.service}/${req.component}" on node ${ctx.settings.node}`,
    );
  }
  const defined = new Set(req.definedComponents);
  const containers = await ctx.runtime.list();
  const results: PurgeResult[] = [];
  for (const service of services) {
    const part = await ctx.serviceLocks.runExclusive(service, () =>
      purgeService(ctx, service, req, defined, containers),
    );
    results.push(...part);
  }
  // Purged components took their proxy rows along: the proxy follows now,
  // not at the next monitor pass.
  if (!req.dryRun && results.some((r) => r.purged)) await syncProxy(ctx);
  return results;
}

function purgeService(
  ctx: AgentContext,
  service: string,
  req: PurgeRequest,
  defined: ReadonlySet<string>,
  containers: Awaited<ReturnType<AgentContext["runtime"]["list"]>>,
): PurgeResult[] {
  const { registry } = ctx;
  if (!registry.services.get(service)) return []; // purged meanwhile
  const all = registry.components.list(service);
  const rows = req.component ? all.filter((c) => c.name === req.component) : all;
  const { byKey } = matchContainers(containers, registry.components.list());
  const results: PurgeResult[] = [];
  const doomed: ComponentRow[] = [];
  for (const row of rows) {
    const live = byKey.get(componentKey(service, row.name))?.state ?? REMOVED;
    const v = purgeVerdict(row, live, defined);
    if (v.purge) doomed.push(row);
    results.push({
      service,
      component: row.name,
      purged: v.purge,
      reason: v.reason,
    });
  }
  // A service row without components (left over) goes too, unless defined.
  const emptied = all.length === doomed.length;
  const serviceDefined = [...defined].some((k) => k.startsWith(`${service}/`));
  const dropService = emptied && !(all.length === 0 && serviceDefined);
  if (all.length === 0 && dropService) {
    results.push({
      service,
      component: "",
      purged: true,
      reason: "service has no components",
    });
  } else if (dropService) {
    results.push({
      service,
      component: "",
      purged: true,
      reason: "its last component goes",
    });
  }
  if (req.dryRun || (doomed.length === 0 && !dropService)) return results;
  registry.transaction(() => {
    for (const row of doomed) {
      registry.components.delete(service, row.name);
      registry.events.add({
        service,
        component: row.name,
        kind: "purge",
        prevState: row.observedState,
        message: `purged ${service}/${row.name} (${row.image})`,
      });
    }
    if (dropService) {
      registry.services.delete(service);
      registry.events.add({ service, kind: "purge", message: `purged service ${service}` });
    }
  });
  ctx.logger.info(
    { service, components: doomed.map((r) => r.name), serviceRemoved: dropService },
    "purged",
  );
  return results;
}
