/**
 * Deploy, per component: validate → record desired state → pull (only when
 * missing or mutable) → remove the old container → allocate ports (keeping
 * recorded ones when still free) → run (another port when podman reports the
 * address in use) → record observed state and an event.
 *
 * The old container is removed before allocation so the OS probe sees the
 * route's own port as free again: that keeps ports stable across redeploys
 * without trusting the registry over the kernel.
 *
 * A failure names its step, releases the component's ports, removes any
 * container it created, and leaves the registry saying what really runs (a
 * component that never ran before is dropped again).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type {
  ComponentResult,
  ComponentSpec,
  DeployRequest,
  ServiceSpec,
} from "../gen/mcp/v1/mcp.js";
import type { ComponentRow, RouteRow } from "../registry/index.js";
import {
  containerName,
  ifContainerExists,
  isAddressInUse,
  isNoSuchImage,
  isPullFailure,
} from "../runtime/args.js";
import { validateServiceSpec } from "../servicedef/spec.js";
import type { ServiceDefOptions } from "../servicedef/types.js";
import { ECHO_MAX, quote } from "../util/checker.js";
import { McpError, StepError, errorMessage, formatProblem } from "../util/errors.js";
import { containerSpecFor, routeKey } from "./container-spec.js";
import type { AgentContext } from "./context.js";
import { routeStatuses } from "./status.js";

/** How often `run` may hit "address already in use" before the deploy fails. */
const RUN_ATTEMPTS = 3;

/** What every received spec is validated with: this agent's `:latest` policy and limits. */
export function specOptions(ctx: AgentContext): ServiceDefOptions {
  const opts: ServiceDefOptions = { allowLatest: ctx.settings.allowLatest };
  if (ctx.settings.limits) opts.limits = ctx.settings.limits;
  return opts;
}

const PLAIN_NAME = new RegExp(`^[\\x21-\\x7e]{1,${ECHO_MAX}}$`);

/**
 * `service web` for problem lines. The name has not been validated yet, so
 * one that is long or not plain printable ASCII is quoted and cut short.
 */
export function serviceLabel(name: string): string {
  if (!name) return "service";
  return PLAIN_NAME.test(name) ? `service ${name}` : `service ${quote(name)}`;
}

export async function deploy(ctx: AgentContext, req: DeployRequest): Promise<ComponentResult[]> {
  const spec = req.service;
  if (!spec) throw new McpError("invalid_argument", "deploy: no service spec in the request");
  const problems = validateServiceSpec(spec, specOptions(ctx));
  if (problems.length > 0) {
    const file = serviceLabel(spec.name);
    throw new McpError("invalid_argument", problems.map((p) => formatProblem(file, p)).join("\n"));
  }
  if (spec.node && spec.node !== ctx.settings.node) {
    throw new McpError(
      "invalid_argument",
      `service ${spec.name} is defined for node "${spec.node}", this agent is node "${ctx.settings.node}"`,
    );
  }
  const selected = req.component
    ? spec.components.filter((c) => c.name === req.component)
    : spec.components;
  if (selected.length === 0) {
    throw new McpError(
      "not_found",
      `service ${spec.name} has no component ${quote(req.component)} (it has: ${spec.components.map((c) => c.name).join(", ")})`,
    );
  }
  return ctx.serviceLocks.runExclusive(spec.name, async () => {
    const previous = recordDesired(ctx, spec, selected);
    const results: ComponentResult[] = [];
    for (const component of selected) {
      if (spec.active === false) {
        results.push(await recordInactive(ctx, spec.name, component.name));
        continue;
      }
      results.push(
        await runComponent(ctx, spec.name, component, {
          existed: previous.has(component.name),
          previous: previous.get(component.name),
          kind: "deploy",
        }),
      );
    }
    return results;
  });
}

/** A component's registry rows before a deploy, to restore if it fails early. */
export interface PreviousComponent {
  row: ComponentRow;
  routes: RouteRow[];
}

/**
 * Upserts the service and the selected components (the registry keeps each
 * component's routes in step with its spec, host ports of kept routes
 * included); returns what the components that existed before looked like.
 */
function recordDesired(
  ctx: AgentContext,
  spec: ServiceSpec,
  components: ComponentSpec[],
): Map<string, PreviousComponent> {
  const { registry } = ctx;
  const active = spec.active ?? true;
  const previous = new Map<string, PreviousComponent>();
  registry.transaction(() => {
    registry.services.upsert({ name: spec.name, active, comment: spec.comment });
    for (const component of components) {
      const ord = spec.components.indexOf(component);
      const row = registry.components.get(spec.name, component.name);
      if (row) {
        const routes = registry.routes.list({ service: spec.name, component: component.name });
        previous.set(component.name, { row, routes });
      }
      registry.components.upsert({
        service: spec.name,
        name: component.name,
        spec: component,
        desiredState: active ? "running" : "stopped",
        ord,
      });
    }
  });
  return previous;
}

/**
 * An inactive service is recorded (desired stopped) but not started; a
 * container it still has is stopped, as `mcp stop` would, so there is no drift.
 */
async function recordInactive(
  ctx: AgentContext,
  service: string,
  component: string,
): Promise<ComponentResult> {
  const container = containerName(service, component);
  try {
    const existed = await ifContainerExists(
      ctx.runtime.stop(container, ctx.settings.stopTimeoutSeconds),
    );
    if (existed) ctx.registry.components.setObserved(service, component, { state: "exited" });
    return { name: component, success: true, error: "", container, routes: [] };
  } catch (err) {
    return {
      name: component,
      success: false,
      error: `stop: ${errorMessage(err)}`,
      container,
      routes: [],
    };
  }
}

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError(name, errorMessage(err), { cause: err });
  }
}

/**
 * (Re)creates one component's container from its spec: used by deploy, and
 * by start/restart when the container is gone. `existed` says whether the
 * component was in the registry before this operation (rollback drops it if not).
 */
export async function runComponent(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  opts: {
    existed: boolean;
    previous?: PreviousComponent | undefined;
    kind: string;
    /** false: never pull, fail the "image" step if the image is not local (recovery). */
    pull?: boolean;
    /** Put before the event's message, e.g. why the container is recreated. */
    note?: string;
  },
): Promise<ComponentResult> {
  const existed = opts.existed;
  const name = containerName(service, component.name);
  const log = ctx.logger.child({ service, component: component.name });
  // Set once the old container is gone: from then on a failure must clean up.
  let replacing = false;
  try {
    if (opts.pull === false) await step("image", () => requireLocalImage(ctx, component.image));
    else await step("pull", () => ctx.images.ensure(component.image));
    await step("prepare volumes", () => prepareVolumes(ctx, service, component));
    await step("remove old container", () =>
      ctx.runtime.remove(name, { force: true, timeoutSeconds: ctx.settings.stopTimeoutSeconds }),
    );
    // Only now: if `rm` failed, the old container may still run and hold its
    // ports, so the rollback must neither release them nor record "removed".
    replacing = true;
    const { id, hostPorts } = await allocateAndRun(ctx, service, component);
    ctx.registry.transaction(() => {
      const startedAt = new Date().toISOString();
      ctx.registry.components.setObserved(service, component.name, {
        state: "running",
        containerId: id,
        startedAt,
      });
      ctx.registry.components.setDeployed(service, component.name, startedAt);
      ctx.registry.events.add({
        service,
        component: component.name,
        kind: opts.kind,
        newState: "running",
        message: `${opts.note ? `${opts.note}: ` : ""}${opts.kind === "deploy" ? "deployed" : "recreated"} ${component.image}${describePorts(hostPorts)}`,
      });
    });
    log.info({ image: component.image, ports: Object.fromEntries(hostPorts) }, "deployed");
    return {
      name: component.name,
      success: true,
      error: "",
      container: name,
      routes: routeStatuses(ctx.registry.routes.list({ service, component: component.name })),
    };
  } catch (err) {
    const message = errorMessage(err);
    log.warn({ err: message }, `${opts.kind} failed`);
    await rollback(ctx, service, component.name, {
      existed,
      previous: opts.previous,
      replacing,
      reason: message,
      kind: opts.kind,
    });
    return { name: component.name, success: false, error: message, container: name, routes: [] };
  }
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
): Promise<{ id: string; hostPorts: Map<string, number> }> {
  const avoid: number[] = [];
  for (let attempt = 1; ; attempt++) {
    const hostPorts = await step("allocate ports", () =>
      allocateRoutePorts(ctx, service, component, avoid),
    );
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
      const id = await ctx.runtime.run(container);
      return { id, hostPorts };
    } catch (err) {
      if (isAddressInUse(err) && attempt < RUN_ATTEMPTS) {
        // Something took a port between our probe and podman's bind: pick others.
        avoid.push(...hostPorts.values());
        ctx.logger.warn(
          { service, component: component.name, ports: [...hostPorts.values()] },
          "address in use, retrying with other ports",
        );
        continue;
      }
      if (isNoSuchImage(err) || isPullFailure(err)) ctx.images.forget(component.image);
      throw new StepError("run", errorMessage(err), { cause: err });
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
  if (rows.length === 0) return new Map();
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
 * Undoes a failed component deploy. Before the old container was removed
 * nothing changed on the node, so only a brand-new component's rows go; after
 * it, any half-created container goes and the ports are released.
 */
async function rollback(
  ctx: AgentContext,
  service: string,
  component: string,
  outcome: {
    existed: boolean;
    previous?: PreviousComponent | undefined;
    replacing: boolean;
    reason: string;
    kind: string;
  },
): Promise<void> {
  const name = containerName(service, component);
  if (outcome.replacing) {
    await ctx.runtime
      .remove(name, { force: true, timeoutSeconds: 0 })
      .catch((err: unknown) =>
        ctx.logger.error({ err: errorMessage(err), container: name }, "rollback: remove failed"),
      );
  }
  const { registry } = ctx;
  registry.transaction(() => {
    if (!outcome.existed) {
      registry.components.delete(service, component);
      if (registry.components.list(service).length === 0) registry.services.delete(service);
    } else if (!outcome.replacing && outcome.previous) {
      // The old container still runs: the registry describes it again.
      restorePrevious(ctx, service, outcome.previous);
    } else if (outcome.replacing) {
      registry.routes.clearHostPorts(service, component);
      registry.components.setObserved(service, component, {
        state: "removed",
        containerId: "",
        startedAt: null,
      });
    }
    registry.events.add({
      service,
      component,
      kind: `${outcome.kind}_failed`,
      message: outcome.reason,
    });
  });
}

function restorePrevious(ctx: AgentContext, service: string, previous: PreviousComponent): void {
  const { row, routes } = previous;
  ctx.registry.components.upsert({
    service,
    name: row.name,
    spec: row.spec,
    desiredState: row.desiredState,
  });
  for (const route of routes) {
    if (route.hostPort > 0) {
      ctx.registry.routes.setHostPort(service, row.name, route.name, route.hostPort);
    }
  }
}

function describePorts(hostPorts: Map<string, number>): string {
  if (hostPorts.size === 0) return "";
  const parts = [...hostPorts].map(([route, port]) => `${route || "PORT"}=${port}`);
  return ` (${parts.join(", ")})`;
}
