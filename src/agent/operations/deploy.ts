/**
 * Deploy of a service: validated and checked against the agent's policy
 * first, then one component at a time through runComponent, which runs the
 * steps steps/plan.ts picks for the component's strategy (health-gated:
 * a new version that fails is removed and the old one serves again), each
 * a crash point (crash-points.ts). Every deploy is one revision of the
 * service (`mcp history`).
 *
 * An agent killed mid-way finds the pending operation at its next start and
 * settles it (interrupted.ts).
 */
import { ComponentResult, ComponentSpec, type DeployRequest } from "../../gen/mcp/v1/mcp.js";
import { containerName } from "../../runtime/names.js";
import { ifContainerExists } from "../../runtime/errors.js";
import { DEFAULT_HISTORY_KEEP } from "../../config/agent.js";
import { defaultStrategy } from "../../servicedef/health.js";
import { validateServiceSpec } from "../../servicedef/spec.js";
import type { DesiredState, ServiceDefOptions, Strategy } from "../../servicedef/types.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { quote } from "../../util/checker.js";
import { McpError, StepError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { mergeProblems } from "../policy/rules.js";
import { policyError, requestPolicyProblems } from "../policy/guard.js";
import { routeStatuses } from "../messages.js";
import { ignoreProgress, type ProgressSink } from "./progress.js";
import type { ComponentOp } from "./steps/component.js";
import { COMPONENT_STEPS } from "./steps/units.js";
import { isProxied } from "../edge/routes.js";
import { isSwap, planSteps, type PlanInput } from "./steps/plan.js";
import { runSteps } from "./steps/runner.js";
import { revisionOutcome, type RevisionOptions } from "./revision-note.js";

/** What every received spec is validated with: this agent's `:latest` policy and limits. */
export function specOptions(ctx: AgentContext): ServiceDefOptions {
  const opts: ServiceDefOptions = { allowLatest: ctx.settings.allowLatest };
  if (ctx.settings.limits) opts.limits = ctx.settings.limits;
  return opts;
}

export async function deploy(
  ctx: AgentContext,
  req: DeployRequest,
  opts: {
    progress?: ProgressSink;
    revision?: RevisionOptions;
    /**
     * Told the results once every component has committed or failed, before
     * the last one's old container is removed: the RPC answers then. The
     * returned promise (and the service's lock) still waits for the removal.
     */
    answer?: (results: ComponentResult[]) => void;
  } = {},
): Promise<ComponentResult[]> {
  const spec = req.service;
  if (!spec) throw new McpError("invalid_argument", "deploy: no service spec in the request");
  const only = opts.revision?.components;
  const selected = only
    ? spec.components.filter((c) => only.includes(c.name))
    : req.component
      ? spec.components.filter((c) => c.name === req.component)
      : spec.components;
  // Validation, then the agent's policy (exposure, volumes, data directory,
  // ports held by others) on the components this deploy records.
  const problems = mergeProblems(
    validateServiceSpec(spec, specOptions(ctx)),
    requestPolicyProblems(ctx, spec, selected),
  );
  if (problems.length > 0) throw policyError(spec.name, problems);
  if (spec.node && spec.node !== ctx.settings.node) {
    throw new McpError(
      "invalid_argument",
      `service ${spec.name} is defined for node "${spec.node}", this agent is node "${ctx.settings.node}"`,
    );
  }
  if (selected.length === 0) {
    throw new McpError(
      "not_found",
      `service ${spec.name} has no component ${quote(req.component)} (it has: ${spec.components.map((c) => c.name).join(", ")})`,
    );
  }
  const kind = opts.revision?.kind ?? "deploy";
  const startedAt = performance.now();
  // Counted for [metrics] once, when the results are known (before the answer).
  let counted = false;
  const ended = (ok: boolean) => {
    if (counted) return;
    counted = true;
    const seconds = (performance.now() - startedAt) / 1000;
    ctx.metrics?.deployEnded({ service: spec.name, kind, ok, seconds });
  };
  const run = ctx.serviceLocks.runExclusive(spec.name, async () => {
    const active = spec.active ?? true;
    ctx.registry.services.upsert({ name: spec.name, active, comment: spec.comment });
    const results: ComponentResult[] = [];
    // This deploy is one revision of the service (`mcp history`).
    const revision = ctx.registry.revisions.next(spec.name);
    opts.revision?.taken?.(revision);
    // One component at a time, each recorded only when it is applied: a
    // crash leaves the earlier ones done, this one pending, the later ones
    // as they were (issue: the registry never describes a container with a
    // spec it does not run).
    // A component's clean-up (removing its old container) ends before the
    // next component starts, so a crash leaves at most one `.prev` behind
    // (interrupted.ts); only the last one's runs after the answer.
    let cleanUp: (() => Promise<void>) | undefined;
    for (const component of selected) {
      await cleanUp?.();
      cleanUp = undefined;
      const ord = spec.components.indexOf(component);
      const result = active
        ? await runComponent(ctx, spec.name, component, {
            kind,
            record: { ord, desiredState: "running" },
            progress: opts.progress,
            later: (rest) => (cleanUp = rest),
          })
        : await recordInactive(ctx, spec.name, component, ord);
      ctx.registry.revisions.record({
        service: spec.name,
        revision,
        component: component.name,
        spec: component,
        outcome: revisionOutcome(result),
        message: result.error,
        ...opts.revision?.note?.(component.name),
      });
      results.push(result);
    }
    ctx.registry.revisions.prune(spec.name, ctx.settings.historyKeep ?? DEFAULT_HISTORY_KEEP);
    // A first deploy whose every component failed leaves nothing behind.
    if (ctx.registry.components.list(spec.name).length === 0) {
      ctx.registry.services.delete(spec.name);
    }
    ended(results.every((r) => r.success));
    opts.answer?.(results);
    await cleanUp?.();
    return results;
  });
  // One that throws before its results (the registry failing) is a failed deploy.
  return run.catch((err: unknown) => {
    ended(false);
    throw err;
  });
}

/**
 * An inactive service is recorded (desired stopped) but not started. A
 * container it still has is stopped, as `mcp stop` would, so there is no
 * drift; if the spec changed, the old container is removed instead, so that
 * `mcp start` creates the new version rather than starting the old one.
 */
async function recordInactive(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  ord: number,
): Promise<ComponentResult> {
  const container = containerName(service, component.name);
  const before = ctx.registry.components.get(service, component.name);
  const changed =
    before !== undefined &&
    JSON.stringify(ComponentSpec.toJSON(before.spec)) !==
      JSON.stringify(ComponentSpec.toJSON(component));
  try {
    ctx.registry.components.upsert({
      service,
      name: component.name,
      spec: component,
      desiredState: "stopped",
      ord,
    });
    if (changed) {
      await ctx.runtime.remove(container, {
        force: true,
        timeoutSeconds: ctx.settings.stopTimeoutSeconds,
      });
      ctx.registry.components.setObserved(service, component.name, {
        state: "removed",
        containerId: "",
        startedAt: null,
      });
      ctx.registry.components.setDeployed(service, component.name, null);
    } else {
      const existed = await ifContainerExists(
        ctx.runtime.stop(container, ctx.settings.stopTimeoutSeconds),
      );
      if (existed)
        ctx.registry.components.setObserved(service, component.name, { state: "exited" });
    }
    return ComponentResult.fromPartial({
      name: component.name,
      success: true,
      error: "",
      container,
      routes: [],
    });
  } catch (err) {
    const verb = changed ? "remove old container" : "stop";
    return ComponentResult.fromPartial({
      name: component.name,
      success: false,
      error: `${verb}: ${errorMessage(err)}`,
      container,
      routes: [],
    });
  }
}

export interface RunOptions {
  /** deploy, rollback, start, restart, recover: names the events and the crash points. */
  kind: string;
  /**
   * Record `component` as the component's new spec (deploy). Absent: run the
   * spec already recorded (start, restart, recover).
   */
  record?: { ord: number; desiredState: DesiredState };
  /** false: never pull, fail the "image" step if the image is not local (recovery). */
  pull?: boolean;
  /** Put before the event's message, e.g. why the container is recreated. */
  note?: string;
  /** Told of each step as it starts and ends (the streaming deploy RPC). */
  progress?: ProgressSink | undefined;
  /**
   * Takes the clean-up after the commit (steps/runner.ts `later`) instead of
   * running it before this returns; the caller runs it under the same lock.
   */
  later?: (rest: () => Promise<void>) => void;
}

/** Operations that prove a new version before it replaces the old one (steps/plan.ts). */
const GATED_KINDS = new Set(["deploy", "rollback"]);

/**
 * (Re)creates one component's container through the steps plan.ts picks for
 * its strategy and what runs now: used by deploy and rollback (health-gated),
 * and by start/restart/recover when the container is gone or must move. A
 * failure has been undone when this returns; the result says which step
 * failed, what the health check and the container said, and whether the old
 * version serves again.
 */
export async function runComponent(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  opts: RunOptions,
): Promise<ComponentResult> {
  const name = containerName(service, component.name);
  const log = ctx.logger.child({ service, component: component.name });
  const progress = opts.progress ?? ignoreProgress;
  const current = await ctx.runtime.inspect(name);
  const op: ComponentOp = {
    ctx,
    service,
    component,
    name,
    kind: opts.kind,
    record: opts.record,
    note: opts.note,
    gated: GATED_KINDS.has(opts.kind),
    old: !current ? "none" : current.state === "running" ? "running" : "stopped",
    oldHostPorts: new Set(
      (current?.ports ?? []).flatMap((p) => parsePortMapping(p)?.hostPort ?? []),
    ),
    progress,
    edge: {},
  };
  const plan: PlanInput = {
    strategy: (component.strategy as Strategy) || defaultStrategy(component),
    old: op.old,
    gated: op.gated,
    pull: opts.pull !== false,
    proxied: ctx.edge !== undefined && component.routes.some(isProxied),
    dns: ctx.edge?.dns !== undefined,
    swappable:
      component.routes.length > 0 &&
      component.routes.every(isProxied) &&
      component.ports.length === 0,
  };
  op.swap = isSwap(plan);
  const steps = planSteps(plan);
  try {
    await runSteps(
      steps.map((s) => COMPONENT_STEPS[s]),
      op,
      {
        kind: opts.kind,
        component: component.name,
        progress,
        logger: log,
        crashPoint: ctx.crashPoint,
        later: opts.later,
      },
    );
    log.info(
      { image: component.image, ports: Object.fromEntries(op.hostPorts ?? []) },
      `${opts.kind} done`,
    );
    return ComponentResult.fromPartial({
      name: component.name,
      success: true,
      container: name,
      routes: routeStatuses(ctx.registry.routes.list({ service, component: component.name })),
      outcome: "ok",
      downtimeMs: op.downtimeMs ?? 0,
    });
  } catch (err) {
    const message = errorMessage(err);
    log.warn({ err: message }, `${opts.kind} failed`);
    const rolledBack = op.stoppedAt !== undefined && op.restored === true;
    // Refused before anything was recorded (policy) of a component not yet
    // registered: nothing to say in its events.
    if (op.pending || ctx.registry.components.get(service, component.name)) {
      ctx.registry.events.add({
        service,
        component: component.name,
        kind: `${opts.kind}_failed`,
        message: rolledBack
          ? `${message}; the old version runs again (down ${formatMs(op.downtimeMs ?? 0)})`
          : message,
      });
    }
    return ComponentResult.fromPartial({
      name: component.name,
      success: false,
      error: message,
      container: name,
      failedStep: err instanceof StepError ? err.step : "",
      healthOutput: op.failure?.healthOutput ?? "",
      logLines: op.failure?.logLines ?? [],
      outcome: rolledBack ? "rolled back" : "failed",
      downtimeMs: op.downtimeMs ?? 0,
    });
  }
}

function formatMs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
