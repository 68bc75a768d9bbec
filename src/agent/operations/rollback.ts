/**
 * Rollback: deploy the specs of an earlier revision again (`mcp rollback
 * <service>[/<component>] [--to REV]`).
 *
 * Which spec each component goes back to is a pure function of the
 * service's revisions (selectRollback, unit-tested):
 *
 * - a component's "current" revision is its newest one with outcome ok
 *   (failed and rolled-back attempts never count: what they tried does not
 *   run);
 * - by default it goes back to the newest ok revision before its current one
 *   whose spec differs from the current spec (a redeploy of the same spec is
 *   no version to go back to);
 * - with `--to REV`, to its spec at REV: its newest ok row at or before REV
 *   (a component REV did not touch ran the spec of an earlier revision then).
 *
 * A service-wide rollback leaves out components with nothing earlier to go
 * back to (and says so in an `info` progress line); it fails only when no
 * component has one. A named component without one, an unknown revision and
 * an unknown component are errors that name them.
 *
 * Then it is an ordinary deploy (deploy(): policy, steps, health gating,
 * progress) of the service with those components' specs, all in one new
 * revision whose rows say `rollback` and the revision they went back to.
 * The operator's definition file is not touched: `mcp status` says when
 * what runs differs from it.
 */
import {
  ComponentSpec,
  type ComponentResult,
  type RollbackRequest,
  type ServiceSpec,
} from "../../gen/mcp/v1/mcp.js";
import type { RevisionRow } from "../../registry/index.js";
import { quote } from "../../util/checker.js";
import { McpError } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { deploy } from "./deploy.js";
import type { ProgressSink } from "./progress.js";

export interface RollbackTarget {
  component: string;
  /** The revision whose spec this component goes back to. */
  revision: number;
  spec: ComponentSpec;
}

export interface RollbackSelection {
  targets: RollbackTarget[];
  /** Components of a service-wide rollback left as they are, and why. */
  skipped: { component: string; reason: string }[];
}

export interface RollbackQuery {
  service: string;
  /** The components in question, in the order they are deployed. */
  components: readonly string[];
  /** A component was named (`svc/web`): having nothing to go back to is an error. */
  named: boolean;
  /** 0: each component's previous good revision. */
  toRevision: number;
}

/** Two specs say the same (compared as their proto JSON). */
export function sameSpec(a: ComponentSpec, b: ComponentSpec): boolean {
  return JSON.stringify(ComponentSpec.toJSON(a)) === JSON.stringify(ComponentSpec.toJSON(b));
}

/** The component's ok rows, newest first. */
function goodRows(rows: readonly RevisionRow[], component: string): RevisionRow[] {
  return rows
    .filter((r) => r.component === component && r.outcome === "ok")
    .sort((a, b) => b.revision - a.revision);
}

/**
 * The spec of the component's newest ok revision (what it last deployed
 * successfully), or undefined when it has none. Recovery recreates from it.
 */
export function lastGoodSpec(
  rows: readonly RevisionRow[],
  component: string,
): RevisionRow | undefined {
  return goodRows(rows, component)[0];
}

/** What each component goes back to (see the file comment). Pure; throws McpError. */
export function selectRollback(
  rows: readonly RevisionRow[],
  query: RollbackQuery,
): RollbackSelection {
  const { service, toRevision } = query;
  const label = (c: string) => `${service}/${c}`;
  if (toRevision < 0) {
    throw new McpError("invalid_argument", `--to: expected a revision number, got ${toRevision}`);
  }
  if (toRevision > 0 && !rows.some((r) => r.revision === toRevision)) {
    const kept = [...new Set(rows.map((r) => r.revision))].sort((a, b) => a - b);
    throw new McpError(
      "not_found",
      `service ${service} has no revision ${toRevision} (${kept.length > 0 ? `the agent keeps ${describeRevisions(kept)}` : "it has no revisions"}; see mcp history ${service})`,
    );
  }
  const targets: RollbackTarget[] = [];
  const skipped: RollbackSelection["skipped"] = [];
  for (const component of query.components) {
    const good = goodRows(rows, component);
    let target: RevisionRow | undefined;
    let reason: string;
    if (toRevision > 0) {
      target = good.find((r) => r.revision <= toRevision);
      reason = `no successful revision at or before ${toRevision}`;
    } else {
      const [current, ...earlier] = good;
      target = current && earlier.find((r) => !sameSpec(r.spec, current.spec));
      reason = current
        ? `no good revision with another spec before ${current.revision} (its current one)`
        : "no successful revision";
    }
    if (target) {
      targets.push({ component, revision: target.revision, spec: target.spec });
    } else {
      skipped.push({ component, reason });
    }
  }
  // --to means every component, as it was then: one that cannot be is an error.
  if (query.named || toRevision > 0 || targets.length === 0) {
    const [first, ...more] = skipped;
    if (first) {
      // not_found: nothing to go back to (the CLI exits 2, as for a bad target).
      throw new McpError(
        "not_found",
        [first, ...more].map((s) => `${label(s.component)} has ${s.reason}`).join("; ") +
          (toRevision > 0 && !query.named && targets.length > 0
            ? ` (roll back the others one by one: mcp rollback ${service}/<component> --to ${toRevision})`
            : ""),
      );
    }
  }
  return { targets, skipped };
}

/** `1-5`, `3, 5-7`: the revision numbers the agent still keeps. */
function describeRevisions(sorted: number[]): string {
  const parts: string[] = [];
  let start = sorted[0];
  let prev = start;
  for (const n of [...sorted.slice(1), undefined]) {
    if (n !== undefined && prev !== undefined && n === prev + 1) {
      prev = n;
      continue;
    }
    if (start !== undefined) parts.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = n;
    prev = n;
  }
  return `revision${sorted.length === 1 ? "" : "s"} ${parts.join(", ")}`;
}

/** The service spec to deploy: what the registry holds, with the targets' specs swapped in. */
export function rollbackSpec(
  ctx: AgentContext,
  service: string,
  targets: readonly RollbackTarget[],
): ServiceSpec {
  const row = ctx.registry.services.get(service);
  const byName = new Map(targets.map((t) => [t.component, t.spec]));
  const components = ctx.registry.components.list(service).map((c) => byName.get(c.name) ?? c.spec);
  // A component purged since keeps its place at the end.
  for (const t of targets) {
    if (!components.some((c) => c.name === t.component)) components.push(t.spec);
  }
  return {
    name: service,
    ...(row ? { active: row.active } : {}),
    components,
    comment: row?.comment ?? "",
    node: ctx.settings.node,
  };
}

/**
 * The Rollback RPC's work: selects, reports what it chose (info lines), and
 * deploys. Errors before anything is deployed are thrown (the RPC's status).
 */
export async function rollback(
  ctx: AgentContext,
  req: RollbackRequest,
  opts: {
    progress?: ProgressSink;
    taken?: (revision: number) => void;
    /** As deploy()'s: the results before the old containers are removed. */
    answer?: (results: ComponentResult[]) => void;
  } = {},
) {
  const service = req.service;
  if (!service) throw new McpError("invalid_argument", "rollback: no service given");
  const node = ctx.settings.node;
  const rows = ctx.registry.revisions.list(service);
  const registered = ctx.registry.components.list(service).map((c) => c.name);
  if (rows.length === 0 && !ctx.registry.services.get(service)) {
    throw new McpError("not_found", `unknown service "${service}" on node ${node}`);
  }
  const inHistory = [...new Set(rows.map((r) => r.component))].sort();
  let components: string[];
  if (req.component) {
    if (!registered.includes(req.component) && !inHistory.includes(req.component)) {
      const known = [...new Set([...registered, ...inHistory])];
      throw new McpError(
        "not_found",
        `service ${service} has no component ${quote(req.component)} on node ${node} (it has: ${known.join(", ") || "none"})`,
      );
    }
    components = [req.component];
  } else {
    components = registered.length > 0 ? registered : inHistory;
  }
  const { targets, skipped } = selectRollback(rows, {
    service,
    components,
    named: req.component !== "",
    toRevision: req.toRevision,
  });
  const progress = opts.progress ?? (() => undefined);
  for (const s of skipped) {
    progress({
      component: s.component,
      step: "rollback",
      phase: "info",
      elapsedMs: 0,
      detail: `left as it is (${s.reason})`,
    });
  }
  for (const t of targets) {
    progress({
      component: t.component,
      step: "rollback",
      phase: "info",
      elapsedMs: 0,
      detail: `to revision ${t.revision} (${t.spec.image})`,
    });
  }
  const rollbackTo = new Map(
    targets.map((t) => [t.component, req.toRevision > 0 ? req.toRevision : t.revision]),
  );
  ctx.logger.info(
    { service, targets: Object.fromEntries(targets.map((t) => [t.component, t.revision])) },
    "rolling back",
  );
  return deploy(
    ctx,
    { service: rollbackSpec(ctx, service, targets), component: "" },
    {
      ...(opts.progress ? { progress: opts.progress } : {}),
      ...(opts.answer ? { answer: opts.answer } : {}),
      revision: {
        components: targets.map((t) => t.component),
        kind: "rollback",
        note: (component) => ({ kind: "rollback", rollbackTo: rollbackTo.get(component) ?? 0 }),
        ...(opts.taken ? { taken: opts.taken } : {}),
      },
    },
  );
}
