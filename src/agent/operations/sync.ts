/**
 * SyncDesiredState: record the intent of every pushed definition, additively
 * (reference §5.4, §8.7).
 *
 * - Services and components in the request are created or updated: the
 *   stored spec becomes the pushed one and each component's desired state
 *   follows `active` (true → running, false → stopped).
 * - Nothing is ever deleted: a component or service missing from the request
 *   stays as it is (purge removes what is gone and no longer defined).
 * - Nothing is deployed, started or stopped. Sync records intent only; a
 *   difference from what runs is then drift, which `mcp status` and the
 *   monitor report, and the operator runs deploy/stop/start. (The reference
 *   has a conflict here, §8.7 / Appendix A 15; we follow its recommendation:
 *   a sync that also stopped containers would make a routine "push all
 *   definitions" an outage.)
 * - Unmanaged containers are NOT recorded with desired `ignore` (the
 *   reference's inferred "reconcile unmanaged containers" step): taking a
 *   container into the registry is what `mcp adopt` does, explicitly.
 * - Host ports: a component whose routes change keeps the recorded host port
 *   of every route that keeps its name (registry.components.upsert →
 *   routes.replaceForComponent never touches host_port of a kept route), so a
 *   later deploy reuses it while it is free; a route that disappears from the
 *   spec loses its row and its port is released. This matches deploy, so
 *   `sync` followed by `deploy` gives the same ports as `deploy` alone.
 * - `dry_run` computes exactly the same diff and writes nothing.
 *
 * The diff is a pure function of the registry rows and the spec
 * (diffService), unit-tested on its output.
 */
import type { ServiceSpec, ServiceSyncResult } from "../../gen/mcp/v1/mcp.js";
import type { ComponentRow, ServiceRow } from "../../registry/index.js";
import { deployChanges, diffComponentSpec } from "../../servicedef/diff.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { serviceLabel, validateServiceSpec } from "../../servicedef/spec.js";
import type { DesiredState } from "../../servicedef/types.js";
import { quote } from "../../util/checker.js";
import { McpError, formatProblem } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { specOptions } from "./deploy.js";
import { mergeProblems } from "../policy/rules.js";
import { requestPolicyProblems } from "../policy/guard.js";

/** What the registry holds for one service right now. */
export interface CurrentService {
  service?: Pick<ServiceRow, "name" | "active" | "comment"> | undefined;
  components: Pick<ComponentRow, "name" | "spec" | "desiredState">[];
}

export interface ServiceDiff {
  name: string;
  /** The service is not in the registry yet. */
  added: boolean;
  /** The service row itself (active, comment) changes. */
  serviceChanged: boolean;
  /** Components whose spec or desired state changes (added ones included), in spec order. */
  components: string[];
  /**
   * One line per change, e.g. `web: image localhost/a:v1 → localhost/a:v2`,
   * `+ api: added (localhost/a:v1, desired running)`, `web: desired stopped → running`.
   */
  changes: string[];
}

// The field-by-field diff lives in src/servicedef/diff.ts: `mcp status` shows it too.
export { diffComponentSpec };

export function desiredFromActive(active: boolean | undefined): DesiredState {
  return (active ?? true) ? "running" : "stopped";
}

/**
 * What syncing `spec` would change given what the registry holds. Pure.
 * Components the registry has but the spec lacks are not changes (sync is
 * additive).
 */
export function diffService(current: CurrentService, spec: ServiceSpec): ServiceDiff {
  const active = spec.active ?? true;
  const desired = desiredFromActive(spec.active);
  const diff: ServiceDiff = {
    name: spec.name,
    added: current.service === undefined,
    serviceChanged: false,
    components: [],
    changes: [],
  };
  if (!current.service) {
    diff.serviceChanged = true;
    diff.changes.push(`service added (active = ${active})`);
  } else {
    if (current.service.active !== active) {
      diff.serviceChanged = true;
      diff.changes.push(`active ${current.service.active} → ${active}`);
    }
    if (current.service.comment !== spec.comment) {
      diff.serviceChanged = true;
      diff.changes.push(
        `comment ${JSON.stringify(current.service.comment)} → ${JSON.stringify(spec.comment)}`,
      );
    }
  }
  const rows = new Map(current.components.map((c) => [c.name, c]));
  for (const component of spec.components) {
    const row = rows.get(component.name);
    if (!row) {
      diff.components.push(component.name);
      diff.changes.push(`+ ${component.name}: added (${component.image}, desired ${desired})`);
      continue;
    }
    // Health and strategy count too: a definition that only changes its check must be recorded.
    const lines = [
      ...diffComponentSpec(row.spec, component),
      ...deployChanges(row.spec, component),
    ];
    if (row.desiredState !== desired) lines.push(`desired ${row.desiredState} → ${desired}`);
    if (lines.length > 0) {
      diff.components.push(component.name);
      diff.changes.push(...lines.map((l) => `${component.name}: ${l}`));
    }
  }
  return diff;
}

/** `added (2 components)`, `3 changes`, `unchanged`. */
export function summarize(diff: ServiceDiff): string {
  if (diff.added) {
    const n = diff.components.length;
    return `added (${n} component${n === 1 ? "" : "s"})`;
  }
  const n = diff.changes.length;
  return n === 0 ? "unchanged" : `${n} change${n === 1 ? "" : "s"}`;
}

/**
 * Checks every spec (validation and the agent's policy) before anything is
 * written: one bad service fails the whole request.
 */
function checkRequest(ctx: AgentContext, specs: ServiceSpec[]): void {
  const problems: string[] = [];
  const seen = new Set<string>();
  const claimed = new Map<number, { service: string; where: string }>();
  for (const spec of specs) {
    const label = serviceLabel(spec.name);
    // The policy too: a spec recorded here can be started later, and its
    // explicit ports would be held (and kept from routes) from now on.
    const found = mergeProblems(
      validateServiceSpec(spec, specOptions(ctx)),
      requestPolicyProblems(ctx, spec),
    );
    for (const p of found) problems.push(formatProblem(label, p));
    if (spec.node && spec.node !== ctx.settings.node) {
      problems.push(
        `${label} is defined for node ${quote(spec.node)}, this agent is node "${ctx.settings.node}"`,
      );
    }
    if (seen.has(spec.name)) problems.push(`${label} appears twice in the request`);
    seen.add(spec.name);
    // The registry check above cannot see a port two definitions of this request claim.
    spec.components.forEach((c, i) =>
      c.ports.forEach((mapping, j) => {
        const port = parsePortMapping(mapping)?.hostPort;
        if (port === undefined) return;
        const first = claimed.get(port);
        if (first === undefined)
          claimed.set(port, {
            service: spec.name,
            where: `${label}: components[${i}].ports[${j}]`,
          });
        else if (first.service !== spec.name) {
          problems.push(
            `${label}: components[${i}].ports[${j}]: port ${port} is also claimed by ${first.where}`,
          );
        }
      }),
    );
  }
  if (problems.length > 0) throw new McpError("invalid_argument", problems.join("\n"));
}

function applyDiff(ctx: AgentContext, spec: ServiceSpec, diff: ServiceDiff): void {
  const { registry } = ctx;
  const desired = desiredFromActive(spec.active);
  registry.transaction(() => {
    if (diff.serviceChanged) {
      registry.services.upsert({
        name: spec.name,
        active: spec.active ?? true,
        comment: spec.comment,
      });
    }
    for (const name of diff.components) {
      const ord = spec.components.findIndex((c) => c.name === name);
      const component = spec.components[ord];
      if (!component) continue;
      // Keeps observed state and the host ports of routes that keep their name.
      registry.components.upsert({
        service: spec.name,
        name,
        spec: component,
        desiredState: desired,
        ord,
      });
    }
    registry.events.add({
      service: spec.name,
      kind: "sync",
      message: diff.changes.join("; "),
    });
  });
}

export async function syncDesiredState(
  ctx: AgentContext,
  req: { services: ServiceSpec[]; dryRun: boolean },
): Promise<ServiceSyncResult[]> {
  checkRequest(ctx, req.services);
  const results: ServiceSyncResult[] = [];
  for (const spec of req.services) {
    // Under the service's lock, so a concurrent deploy never interleaves.
    const diff = await ctx.serviceLocks.runExclusive(spec.name, () => {
      const current: CurrentService = {
        service: ctx.registry.services.get(spec.name),
        components: ctx.registry.components.list(spec.name),
      };
      const d = diffService(current, spec);
      if (!req.dryRun && d.changes.length > 0) applyDiff(ctx, spec, d);
      return d;
    });
    if (!req.dryRun && diff.changes.length > 0) {
      ctx.logger.info({ service: spec.name, changes: diff.changes }, "synced");
    }
    results.push({
      name: spec.name,
      changed: diff.changes.length > 0,
      summary: summarize(diff),
      changes: diff.changes,
    });
  }
  return results;
}
