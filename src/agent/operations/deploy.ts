/**
 * Deploy, one component at a time, in named steps (each a crash point, see
 * crash-points.ts): record (the new spec and a pending operation holding the
 * registry state to go back to) → pull (only when missing or mutable) →
 * prepare volumes → remove old container → allocate ports (keeping recorded
 * ones when still free) → run (another port when podman reports the address
 * in use) → commit (observed state, an event, nothing pending).
 *
 * The old container is removed before allocation so the OS probe sees the
 * route's own port as free again: that keeps ports stable across redeploys
 * without trusting the registry over the kernel. Start and restart, when a
 * port was taken, keep the old container instead ("set aside old container"
 * before run, "remove old container" after commit).
 *
 * A failure names its step, removes any container it created, and leaves the
 * registry saying what really runs (a component that never ran before is
 * dropped again). An agent killed mid-way finds the pending operation at its
 * next start and finishes or undoes it (interrupted.ts).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { ComponentResult, ComponentSpec, type DeployRequest } from "../../gen/mcp/v1/mcp.js";
import type { PendingOperation } from "../../registry/index.js";
import {
  containerName,
  ifContainerExists,
  isAddressInUse,
  isNoSuchImage,
  isPullFailure,
  setAsideName,
} from "../../runtime/args.js";
import { DEFAULT_HISTORY_KEEP } from "../../config/agent.js";
import { validateServiceSpec } from "../../servicedef/spec.js";
import type { DesiredState, ServiceDefOptions } from "../../servicedef/types.js";
import { quote } from "../../util/checker.js";
import { McpError, StepError, errorMessage } from "../../util/errors.js";
import { containerSpecFor, routeKey } from "./container-spec.js";
import type { AgentContext } from "../context.js";
import { mergeProblems } from "../policy/rules.js";
import {
  enforcePortClaims,
  enforceStoredComponent,
  policyError,
  requestPolicyProblems,
} from "../policy/guard.js";
import { routeStatuses } from "../messages.js";
import { ignoreProgress, type ProgressSink } from "./progress.js";
import { revisionOutcome, type RevisionOptions } from "./revision-note.js";

/** How often `run` may hit "address already in use" before the deploy fails. */
const RUN_ATTEMPTS = 3;

/** What every received spec is validated with: this agent's `:latest` policy and limits. */
export function specOptions(ctx: AgentContext): ServiceDefOptions {
  const opts: ServiceDefOptions = { allowLatest: ctx.settings.allowLatest };
  if (ctx.settings.limits) opts.limits = ctx.settings.limits;
  return opts;
}

export async function deploy(
  ctx: AgentContext,
  req: DeployRequest,
  opts: { progress?: ProgressSink; revision?: RevisionOptions } = {},
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
  return ctx.serviceLocks.runExclusive(spec.name, async () => {
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
    for (const component of selected) {
      const ord = spec.components.indexOf(component);
      const result = active
        ? await runComponent(ctx, spec.name, component, {
            kind: "deploy",
            record: { ord, desiredState: "running" },
            progress: opts.progress,
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
    return results;
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

/**
 * The steps of a deploy of one component, in order: each is a crash point
 * `deploy:<step>` (crash-points.ts). The crash tests kill the agent at each.
 */
export const DEPLOY_STEPS = [
  "policy",
  "record",
  "pull",
  "prepare volumes",
  "remove old container",
  "allocate ports",
  "run",
  "commit",
] as const;

export interface RunOptions {
  /** deploy, start, restart, recover: names the events and the crash points. */
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
  /**
   * Keep the old container until the new one runs: it is renamed aside, and
   * put back if the new one fails (start/restart when a port was taken: the
   * old container is stopped, so its ports are free; a failure must never
   * remove a container this operation did not create).
   */
  keepOld?: boolean;
  /** Told of each step as it starts and ends (the streaming deploy RPC). */
  progress?: ProgressSink | undefined;
}

/** What one run of runComponent has done so far, for its undo. */
interface Progress {
  pending: PendingOperation;
  /** The old container has been removed (or set aside): the component no longer runs. */
  replacing: boolean;
  /** The old container was renamed to its set-aside name. */
  setAside: boolean;
}

/**
 * (Re)creates one component's container, step by step (see the file
 * comment): used by deploy, and by start/restart/recover when the container
 * is gone or must move. Each step is a crash point; the pending operation
 * recorded first lets the next agent start finish or undo it.
 */
export async function runComponent(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  opts: RunOptions,
): Promise<ComponentResult> {
  const name = containerName(service, component.name);
  const log = ctx.logger.child({ service, component: component.name });
  const step = <T>(stepName: string, fn: () => Promise<T>) =>
    runStep(ctx, `${opts.kind}:${stepName}`, component.name, stepName, fn, opts.progress);
  let progress: Progress | undefined;
  try {
    await step("policy", () => enforceStoredComponent(ctx, service, component, opts.record?.ord));
    const pending = await step("record", () =>
      Promise.resolve(recordPending(ctx, service, component, opts)),
    );
    progress = { pending, replacing: false, setAside: false };
    if (opts.pull === false) await step("image", () => requireLocalImage(ctx, component.image));
    else await step("pull", () => ctx.images.ensure(component.image));
    await step("prepare volumes", () => prepareVolumes(ctx, service, component));
    if (!opts.keepOld) {
      await step("remove old container", () =>
        ctx.runtime.remove(name, { force: true, timeoutSeconds: ctx.settings.stopTimeoutSeconds }),
      );
      // Only now: if `rm` failed, the old container may still run and hold its
      // ports, so the rollback must neither release them nor record "removed".
      progress.replacing = true;
    }
    const current = progress;
    const { id, hostPorts } = await allocateAndRun(ctx, service, component, step, async () => {
      if (!opts.keepOld || current.setAside) return;
      await step("set aside old container", () => setAside(ctx, name));
      current.setAside = true;
      current.replacing = true;
    });
    await step("commit", () => {
      commit(ctx, service, component, { id, hostPorts, kind: opts.kind, note: opts.note });
      return Promise.resolve();
    });
    if (progress.setAside) {
      // Committed: the new container is the component now. A set-aside one
      // that will not go is only a leftover (the next agent start sweeps it),
      // never a reason to undo the operation.
      await step("remove old container", () => removeSetAside(ctx, name)).catch((err: unknown) =>
        log.warn({ err: errorMessage(err) }, "could not remove the set-aside old container"),
      );
    }
    log.info({ image: component.image, ports: Object.fromEntries(hostPorts) }, "deployed");
    return ComponentResult.fromPartial({
      name: component.name,
      success: true,
      error: "",
      container: name,
      routes: routeStatuses(ctx.registry.routes.list({ service, component: component.name })),
      outcome: "ok",
    });
  } catch (err) {
    const message = errorMessage(err);
    log.warn({ err: message }, `${opts.kind} failed`);
    if (progress) await rollback(ctx, service, component.name, progress, message, opts.kind);
    else if (ctx.registry.components.get(service, component.name)) {
      // Refused before anything was recorded or touched: only say so.
      ctx.registry.events.add({
        service,
        component: component.name,
        kind: `${opts.kind}_failed`,
        message,
      });
    }
    return ComponentResult.fromPartial({
      name: component.name,
      success: false,
      error: message,
      container: name,
      routes: [],
    });
  }
}

async function runStep<T>(
  ctx: AgentContext,
  point: string,
  component: string,
  stepName: string,
  fn: () => Promise<T>,
  progress: ProgressSink = ignoreProgress,
): Promise<T> {
  await ctx.crashPoint?.(point, component);
  const started = Date.now();
  progress({ component, step: stepName, phase: "start", elapsedMs: 0, detail: "" });
  try {
    const value = await fn();
    progress({
      component,
      step: stepName,
      phase: "ok",
      elapsedMs: Date.now() - started,
      detail: "",
    });
    return value;
  } catch (err) {
    const detail = errorMessage(err);
    progress({
      component,
      step: stepName,
      phase: "failed",
      elapsedMs: Date.now() - started,
      detail,
    });
    if (err instanceof StepError) throw err;
    throw new StepError(stepName, detail, { cause: err });
  }
}

/**
 * Records the operation as pending, with the registry state to go back to,
 * and (deploy) the component's new spec, in one transaction.
 */
function recordPending(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  opts: RunOptions,
): PendingOperation {
  const { registry } = ctx;
  return registry.transaction(() => {
    const row = registry.components.get(service, component.name);
    const pending: PendingOperation = {
      kind: opts.kind,
      startedAt: new Date().toISOString(),
      previous: row
        ? {
            spec: row.spec,
            desiredState: row.desiredState,
            deployedAt: row.deployedAt,
            containerId: row.containerId,
            routes: registry.routes
              .list({ service, component: component.name })
              .map((r) => ({ name: r.name, hostPort: r.hostPort })),
          }
        : null,
    };
    if (opts.record) {
      registry.components.upsert({
        service,
        name: component.name,
        spec: component,
        desiredState: opts.record.desiredState,
        ord: opts.record.ord,
      });
    } else if (!row) {
      throw new McpError("not_found", `component ${service}/${component.name} is not registered`);
    }
    registry.components.setPending(service, component.name, pending);
    return pending;
  });
}

/** The new container runs: observed state, deployed_at, an event; nothing pending. */
function commit(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  done: { id: string; hostPorts: Map<string, number>; kind: string; note?: string | undefined },
): void {
  ctx.registry.transaction(() => {
    const startedAt = new Date().toISOString();
    ctx.registry.components.setObserved(service, component.name, {
      state: "running",
      containerId: done.id,
      startedAt,
    });
    ctx.registry.components.setDeployed(service, component.name, startedAt);
    ctx.registry.components.setPending(service, component.name, null);
    ctx.registry.events.add({
      service,
      component: component.name,
      kind: done.kind,
      newState: "running",
      message: `${done.note ? `${done.note}: ` : ""}${done.kind === "deploy" ? "deployed" : "recreated"} ${component.image}${describePorts(done.hostPorts)}`,
    });
  });
}

/** Renames the old container aside (a missing one is fine: nothing to keep). */
async function setAside(ctx: AgentContext, name: string): Promise<void> {
  const aside = setAsideName(name);
  // A leftover from an earlier interrupted run would block the rename.
  await ctx.runtime.remove(aside, { force: true, timeoutSeconds: 0 });
  if (await ctx.runtime.inspect(name)) await ctx.runtime.rename(name, aside);
}

async function removeSetAside(ctx: AgentContext, name: string): Promise<void> {
  await ctx.runtime.remove(setAsideName(name), {
    force: true,
    timeoutSeconds: ctx.settings.stopTimeoutSeconds,
  });
}

/** For runs that must not pull: the image has to be in local storage already. */
async function requireLocalImage(ctx: AgentContext, image: string): Promise<void> {
  if (!(await ctx.runtime.imageExists(image))) {
    throw new McpError(
      "failed_precondition",
      `${image} is not in local storage and this operation does not pull (mcp deploy pulls it)`,
    );
  }
}

async function allocateAndRun(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  step: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  beforeRun: () => Promise<void>,
): Promise<{ id: string; hostPorts: Map<string, number> }> {
  const avoid: number[] = [];
  for (let attempt = 1; ; attempt++) {
    const hostPorts = await step("allocate ports", () =>
      allocateRoutePorts(ctx, service, component, avoid),
    );
    await beforeRun();
    const container = containerSpecFor(
      {
        node: ctx.settings.node,
        service,
        bindAddress: ctx.settings.bindAddress,
        logMaxSize: ctx.settings.logMaxSize,
      },
      component,
      hostPorts,
    );
    try {
      const id = await step("run", () => ctx.runtime.run(container));
      return { id, hostPorts };
    } catch (err) {
      const cause = err instanceof StepError ? err.cause : err;
      if (isAddressInUse(cause) && attempt < RUN_ATTEMPTS) {
        // Something took a port between our probe and podman's bind: pick others.
        avoid.push(...hostPorts.values());
        ctx.logger.warn(
          { service, component: component.name, ports: [...hostPorts.values()] },
          "address in use, retrying with other ports",
        );
        continue;
      }
      if (isNoSuchImage(cause) || isPullFailure(cause)) ctx.images.forget(component.image);
      throw err;
    }
  }
}

/**
 * Allocates one host port per route, preferring the recorded ones, and
 * records them in the registry inside the allocator's critical section.
 */
export async function allocateRoutePorts(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  avoid: number[] = [],
): Promise<Map<string, number>> {
  const rows = ctx.registry.routes.list({ service, component: component.name });
  // Explicit mappings take no allocation but must pass the claim check, which
  // only the allocator's critical section makes race-free.
  if (rows.length === 0 && component.ports.length === 0) return new Map();
  const assigned = await ctx.allocator.allocate(
    rows.map((row) => ({
      key: routeKey(service, component.name, row.name),
      protocol: row.protocol === "udp" ? "udp" : "tcp",
      ...(row.hostPort ? { preferred: row.hostPort } : {}),
      avoid,
    })),
    (ports) => {
      ctx.registry.transaction(() => {
        for (const row of rows) {
          const port = ports.get(routeKey(service, component.name, row.name));
          if (port !== undefined)
            ctx.registry.routes.setHostPort(service, component.name, row.name, port);
        }
      });
    },
    () => enforcePortClaims(ctx, service, component),
  );
  const byRoute = new Map<string, number>();
  for (const row of rows) {
    const port = assigned.get(routeKey(service, component.name, row.name));
    if (port !== undefined) byRoute.set(row.name, port);
  }
  return byRoute;
}

/** Creates bind-mount sources that live inside the service's own data directory. */
async function prepareVolumes(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
): Promise<void> {
  const dataDir = path.join(ctx.settings.dataRoot, service);
  for (const volume of component.volumes) {
    const hostPath = volume.split(":")[0] ?? "";
    const resolved = path.resolve(hostPath);
    if (resolved === dataDir || resolved.startsWith(dataDir + path.sep)) {
      await mkdir(resolved, { recursive: true, mode: 0o750 });
    }
  }
}

/**
 * Undoes a failed component operation. Before the old container was removed
 * nothing changed on the node, so the registry describes it again (a
 * brand-new component's rows go); after it, the half-created container goes
 * and either the set-aside old one comes back, or the ports are released.
 */
async function rollback(
  ctx: AgentContext,
  service: string,
  component: string,
  progress: Progress,
  reason: string,
  kind: string,
): Promise<void> {
  const name = containerName(service, component);
  const previous = progress.pending.previous;
  const logFailure = (what: string) => (err: unknown) =>
    ctx.logger.error({ err: errorMessage(err), container: name }, `rollback: ${what} failed`);
  if (progress.replacing) {
    await ctx.runtime.remove(name, { force: true, timeoutSeconds: 0 }).catch(logFailure("remove"));
  }
  let restored = false;
  if (progress.setAside) {
    restored = await ctx.runtime.rename(setAsideName(name), name).then(
      () => true,
      (err: unknown) => {
        logFailure("restore old container")(err);
        return false;
      },
    );
  }
  const { registry } = ctx;
  registry.transaction(() => {
    if (!previous) {
      // The caller (deploy) drops the service too if it ends up empty.
      registry.components.delete(service, component);
    } else if (!progress.replacing || restored) {
      // The old container is there again: the registry describes it again.
      restorePrevious(ctx, service, component, previous);
      registry.components.setPending(service, component, null);
    } else {
      registry.routes.clearHostPorts(service, component);
      registry.components.setObserved(service, component, {
        state: "removed",
        containerId: "",
        startedAt: null,
      });
      registry.components.setPending(service, component, null);
    }
    registry.events.add({ service, component, kind: `${kind}_failed`, message: reason });
  });
}

/** Puts a component's spec, desired state and route host ports back as they were. */
export function restorePrevious(
  ctx: AgentContext,
  service: string,
  component: string,
  previous: NonNullable<PendingOperation["previous"]>,
): void {
  const { registry } = ctx;
  registry.components.upsert({
    service,
    name: component,
    spec: previous.spec,
    desiredState: previous.desiredState,
  });
  registry.components.setDeployed(service, component, previous.deployedAt);
  for (const route of previous.routes) {
    const now = registry.routes.list({ service, component }).find((r) => r.name === route.name);
    if (!now || now.hostPort === route.hostPort) continue;
    try {
      registry.routes.setHostPort(service, component, route.name, route.hostPort);
    } catch (err) {
      // Taken meanwhile: the next start allocates another one.
      if (!(err instanceof McpError)) throw err;
      registry.routes.setHostPort(service, component, route.name, 0);
    }
  }
}

function describePorts(hostPorts: Map<string, number>): string {
  if (hostPorts.size === 0) return "";
  const parts = [...hostPorts].map(([route, port]) => `${route || "PORT"}=${port}`);
  return ` (${parts.join(", ")})`;
}
