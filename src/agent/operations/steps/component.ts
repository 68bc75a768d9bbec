/**
 * The step units of a component operation (plan.ts orders them, runner.ts
 * runs them): each does one thing to the registry, the allocator or podman,
 * and says how to put it back. The state they share is a ComponentOp.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { ComponentSpec } from "../../../gen/mcp/v1/mcp.js";
import { healthPlan } from "../../../health/plan.js";
import type { WaitResult } from "../../../health/probe.js";
import type { PendingOperation, ProxyRouteRow } from "../../../registry/index.js";
import { setAsideName, trialName } from "../../../runtime/names.js";
import type { ContainerSpec } from "../../../runtime/types.js";
import {
  isAddressInUse,
  isNameInUse,
  isNoSuchImage,
  isPullFailure,
} from "../../../runtime/errors.js";
import type { DesiredState } from "../../../servicedef/types.js";
import { McpError } from "../../../util/errors.js";
import type { AgentContext } from "../../context.js";
import { enforcePortClaims, enforceStoredComponent } from "../../policy/guard.js";
import { routeProtocol } from "../../../servicedef/publish.js";
import { containerSpecFor, routeKey, trialRoute } from "../container-spec.js";
import type { ProgressSink } from "../progress.js";
import { lastLogLines } from "./logs-tail.js";
import type { EdgeStepName, OldContainer, StepName, SwapStepName } from "./plan.js";
import type { Step } from "./runner.js";

/** How often a start may hit "address already in use" before the step fails. */
const RUN_ATTEMPTS = 3;
/** Log lines of a failed new version shown to the operator. */
const FAILED_LOG_LINES = 20;
/** At most one health progress line per this many ms while waiting. */
const HEALTH_REPORT_MS = 1000;

/** What the edge steps add to a component operation. */
export interface EdgeState {
  /** New certificates for L7 names (hostname → PEM), given to the proxy by `routes`. */
  certs?: Map<string, string>;
  /** The component's proxy rows before `routes` ran (its undo puts them back). */
  routesBefore?: ProxyRouteRow[];
  /** DNS names the `dns` step created (its undo removes those nobody uses). */
  dnsAdded?: string[];
}

/** What one component operation knows and has done so far. */
export interface ComponentOp {
  ctx: AgentContext;
  service: string;
  component: ComponentSpec;
  /** The component's canonical container name. */
  name: string;
  kind: string;
  /** Record `component` as the new spec (deploy, rollback); absent: run the recorded one. */
  record?: { ord: number; desiredState: DesiredState } | undefined;
  note?: string | undefined;
  gated: boolean;
  old: OldContainer;
  /** The host ports the old container publishes (podman's view before the operation). */
  oldHostPorts?: ReadonlySet<number>;
  /**
   * The swap behind the proxy (steps/swap.ts): the new version runs on the
   * standby ports and the proxy moves to it before the old one stops, so
   * nothing stops serving; `hostPorts` are the standby ports.
   */
  swap?: boolean;
  progress: ProgressSink;
  // ---- filled in by the steps
  edge: EdgeState;
  pending?: PendingOperation;
  trialPorts?: Map<string, number>;
  hostPorts?: Map<string, number>;
  containerId?: string;
  /**
   * The set-aside old container's stop, under way while the new one is
   * created: settles with the stop's error, or undefined (it never rejects).
   */
  oldStop?: Promise<Error | undefined>;
  /** When the old version stopped serving (set aside while running). */
  stoppedAt?: number;
  /** How long nothing served, once the new or the old version is back. */
  downtimeMs?: number;
  /** The set-aside old container could not be put back. */
  oldLost?: boolean;
  /** The old container was put back (and started, if it ran) after a failure. */
  restored?: boolean;
  health?: WaitResult;
  /** What the operator needs to see when the new version failed. */
  failure?: { healthOutput: string; logLines: string[] };
}

type OpStep = Step<ComponentOp>;

const policy: OpStep = {
  name: "policy",
  run: (op) => enforceStoredComponent(op.ctx, op.service, op.component, op.record?.ord),
};

/**
 * Records the operation as pending, with the registry state to go back to,
 * and (deploy) the component's new spec, in one transaction. Its undo puts
 * the registry back: the previous rows (a new component's go), or, when the
 * old container could not be restored, "removed" with its ports released.
 */
const record: OpStep = {
  name: "record",
  run: (op) => {
    op.pending = recordPending(op);
    return Promise.resolve();
  },
  undo: (op) => {
    const { registry } = op.ctx;
    const previous = op.pending?.previous;
    const component = op.component.name;
    registry.transaction(() => {
      if (!previous) {
        // The caller (deploy) drops the service too if it ends up empty.
        registry.components.delete(op.service, component);
        return;
      }
      if (op.oldLost) {
        registry.routes.clearHostPorts(op.service, component);
        registry.components.setObserved(op.service, component, {
          state: "removed",
          containerId: "",
          startedAt: null,
        });
      } else {
        restorePrevious(op.ctx, op.service, component, previous);
      }
      registry.components.setPending(op.service, component, null);
    });
    return Promise.resolve();
  },
};

function recordPending(op: ComponentOp): PendingOperation {
  const { registry } = op.ctx;
  return registry.transaction(() => {
    const row = registry.components.get(op.service, op.component.name);
    const pending: PendingOperation = {
      kind: op.kind,
      startedAt: new Date().toISOString(),
      gated: op.gated,
      wasRunning: op.old === "running",
      previous: row
        ? {
            spec: row.spec,
            desiredState: row.desiredState,
            deployedAt: row.deployedAt,
            containerId: row.containerId,
            routes: registry.routes
              .list({ service: op.service, component: op.component.name })
              .map((r) => ({ name: r.name, hostPort: r.hostPort })),
            proxyRoutes: registry.proxyRoutes.owned(op.service, op.component.name),
          }
        : null,
    };
    if (op.record) {
      registry.components.upsert({
        service: op.service,
        name: op.component.name,
        spec: op.component,
        desiredState: op.record.desiredState,
        ord: op.record.ord,
      });
    } else if (!row) {
      throw new McpError(
        "not_found",
        `component ${op.service}/${op.component.name} is not registered`,
      );
    }
    registry.components.setPending(op.service, op.component.name, pending);
    return pending;
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
  if (previous.proxyRoutes) {
    // The proxy itself follows: the routes step's undo, or the sync at agent start.
    for (const row of registry.proxyRoutes.owned(service, component)) {
      registry.proxyRoutes.delete(row.listener, row.hostname);
    }
    for (const row of previous.proxyRoutes) registry.proxyRoutes.put(row);
  }
  // Read once: each route's own row is all the loop compares, and its writes touch only that row.
  const current = new Map(registry.routes.list({ service, component }).map((r) => [r.name, r]));
  for (const route of previous.routes) {
    const now = current.get(route.name);
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

const pull: OpStep = {
  name: "pull",
  run: async (op) => {
    await op.ctx.images.ensure(op.component.image);
  },
};

/** For runs that must not pull: the image has to be in local storage already. */
const image: OpStep = {
  name: "image",
  run: async (op) => {
    if (!(await op.ctx.runtime.imageExists(op.component.image))) {
      throw new McpError(
        "failed_precondition",
        `${op.component.image} is not in local storage and this operation does not pull (mcp deploy pulls it)`,
      );
    }
  },
};

/** Creates bind-mount sources that live inside the service's own data directory. */
const prepareVolumes: OpStep = {
  name: "prepare volumes",
  run: async (op) => {
    const dataDir = path.join(op.ctx.settings.dataRoot, op.service);
    for (const volume of op.component.volumes) {
      const resolved = path.resolve(volume.split(":")[0] ?? "");
      if (resolved === dataDir || resolved.startsWith(dataDir + path.sep)) {
        await mkdir(resolved, { recursive: true, mode: 0o750 });
      }
    }
  },
};

/** Writes the pending operation's trial ports (held in the registry while the trial lives). */
function setTrialPorts(op: ComponentOp, ports: Map<string, number> | undefined): void {
  if (!op.pending) return;
  const { trial: _old, ...rest } = op.pending;
  op.pending = ports
    ? { ...rest, trial: [...ports].map(([name, hostPort]) => ({ name, hostPort })) }
    : rest;
  op.ctx.registry.components.setPending(op.service, op.component.name, op.pending);
}

/** Temporary host ports for the trial: any free ones, recorded in the pending operation. */
async function allocateTrialPorts(op: ComponentOp, avoid: number[] = []): Promise<void> {
  const routes = op.component.routes;
  const key = (route: string) => routeKey(op.service, op.component.name, trialRoute(route));
  const assigned = await op.ctx.allocator.allocate(
    routes.map((r) => ({ key: key(r.name), protocol: routeProtocol(r), avoid })),
    (ports) => {
      const byRoute = new Map(routes.map((r) => [r.name, ports.get(key(r.name)) ?? 0]));
      setTrialPorts(op, byRoute);
    },
  );
  op.trialPorts = new Map(routes.map((r) => [r.name, assigned.get(key(r.name)) ?? 0]));
}

const allocateTrial: OpStep = {
  name: "allocate trial ports",
  run: (op) => allocateTrialPorts(op),
  undo: (op) => {
    setTrialPorts(op, undefined);
    return Promise.resolve();
  },
};

const startTrial: OpStep = {
  name: "start trial",
  run: async (op) => {
    await runContainer(
      op,
      trialName(op.name),
      () => op.trialPorts ?? new Map<string, number>(),
      async (avoid) => {
        await allocateTrialPorts(op, avoid);
        return op.trialPorts ?? new Map<string, number>();
      },
    );
  },
  undo: (op) => op.ctx.runtime.remove(trialName(op.name), { force: true, timeoutSeconds: 0 }),
};

const trialHealth: OpStep = {
  name: "trial health",
  run: (op) => proveHealthy(op, trialName(op.name), op.trialPorts ?? new Map()),
};

const removeTrial: OpStep = {
  name: "remove trial",
  run: async (op) => {
    await op.ctx.runtime.remove(trialName(op.name), {
      force: true,
      timeoutSeconds: op.ctx.settings.stopTimeoutSeconds,
    });
    setTrialPorts(op, undefined);
  },
};

/**
 * The old container is renamed aside and, if it runs, starts stopping: the
 * new container is created meanwhile (create binds no port), and `stop old
 * container` waits for the stop before `start container` needs its ports.
 * Kept until the new version has committed; the undo waits for the stop,
 * renames it back and starts it again if it ran, and says how long nothing
 * served.
 */
const setAsideOld: OpStep = {
  name: "set aside old container",
  run: async (op) => {
    const { runtime, settings } = op.ctx;
    const aside = setAsideName(op.name);
    // Renamed while it still serves (podman renames running containers), so
    // only the stop falls in the downtime.
    try {
      await runtime.rename(op.name, aside);
    } catch (err) {
      // A leftover of an earlier run holds the name (removed only then: one
      // podman call less on every deploy).
      if (!isNameInUse(err)) throw err;
      await runtime.remove(aside, { force: true, timeoutSeconds: 0 });
      await runtime.rename(op.name, aside);
    }
    if (op.old !== "running") return;
    // Behind the proxy the new version already serves: stopping the old one is no downtime.
    if (!op.swap) op.stoppedAt = Date.now();
    // Not awaited here (`stop old container` does); caught at once, so a
    // failure is never an unhandled rejection.
    op.oldStop = runtime.stop(aside, settings.stopTimeoutSeconds).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  },
  undo: async (op) => {
    const { runtime } = op.ctx;
    try {
      // A stop still under way ends first: starting the old container must not race it.
      if ((await op.oldStop) !== undefined) {
        // A stop that failed may never have taken the old version down:
        // the outcome is `failed`, with no downtime claimed.
        op.stoppedAt = undefined;
      }
      await runtime.remove(op.name, { force: true, timeoutSeconds: 0 });
      if (await runtime.inspect(setAsideName(op.name))) {
        await runtime.rename(setAsideName(op.name), op.name);
      }
      // Also after a failed stop: it may have got half-way.
      if (op.old === "running") await runtime.start(op.name);
      op.restored = true;
    } catch (err) {
      op.oldLost = true;
      throw err;
    } finally {
      if (op.stoppedAt !== undefined) op.downtimeMs = Date.now() - op.stoppedAt;
    }
  },
};

/**
 * Waits for the set-aside old container's stop (begun by `set aside old
 * container`): its ports are free once it returns. Podman must have torn
 * down the old container's network before the new one's is set up: a new
 * container started while the old one's stop is still under way (its
 * process gone, its ports already free) lost its port forwarding in 6 of 10
 * tries here (podman 4.3.1, netavark), so only the stop's end will do.
 * A failed stop is undone by the set-aside's undo.
 */
const stopOld: OpStep = {
  name: "stop old container",
  run: async (op) => {
    const err = await op.oldStop;
    if (err !== undefined) throw err;
  },
};

/**
 * The recorded host ports when still free. Those the old container still
 * publishes while it stops are kept without asking the kernel (it would
 * say busy until the stop ends): the old container is ours.
 */
const allocatePorts: OpStep = {
  name: "allocate ports",
  run: async (op) => {
    const releasing = op.oldStop ? (op.oldHostPorts ?? new Set<number>()) : new Set<number>();
    op.hostPorts = await allocateRoutePorts(op.ctx, op.service, op.component, [], releasing);
  },
};

/** The new container under the component's name on the allocated ports, created, not started. */
const create: OpStep = {
  name: "create container",
  run: async (op) => {
    op.containerId = await createContainer(op, op.name, op.hostPorts ?? new Map());
  },
  undo: (op) => op.ctx.runtime.remove(op.name, { force: true, timeoutSeconds: 0 }),
};

/**
 * Starts the created container. When podman reports an address in use
 * (something took a port between our probe and its bind), the container is
 * created again on other ports and started, as `runContainer` does; the
 * create's undo removes whichever is left.
 */
const start: OpStep = {
  name: "start container",
  run: async (op) => {
    const { ctx } = op;
    const avoid: number[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        await ctx.runtime.start(op.name);
        return;
      } catch (err) {
        if (!isAddressInUse(err) || attempt >= RUN_ATTEMPTS) throw err;
        const ports = op.hostPorts ?? new Map<string, number>();
        avoid.push(...ports.values());
        warnAddressInUse(op, ports);
        await ctx.runtime.remove(op.name, { force: true, timeoutSeconds: 0 });
        op.hostPorts = await allocateRoutePorts(ctx, op.service, op.component, avoid);
        op.containerId = await createContainer(op, op.name, op.hostPorts);
      }
    }
  },
};

const health: OpStep = {
  name: "health",
  run: (op) => proveHealthy(op, op.name, op.hostPorts ?? new Map()),
};

/** The new container runs (and passed its check): observed state, deployed_at, an event; nothing pending. */
const commit: OpStep = {
  name: "commit",
  run: (op) => {
    const { registry } = op.ctx;
    const hostPorts = op.hostPorts ?? new Map<string, number>();
    if (op.stoppedAt !== undefined) op.downtimeMs = Date.now() - op.stoppedAt;
    registry.transaction(() => {
      const startedAt = new Date().toISOString();
      const name = op.component.name;
      registry.components.setObserved(op.service, name, {
        state: "running",
        containerId: op.containerId ?? "",
        startedAt,
      });
      registry.components.setDeployed(op.service, name, startedAt);
      registry.components.setPending(op.service, name, null);
      if (op.swap) swapPorts(op, hostPorts);
      const verb = op.record ? "deployed" : "recreated";
      registry.events.add({
        service: op.service,
        component: name,
        kind: op.kind,
        newState: "running",
        message: `${op.note ? `${op.note}: ` : ""}${verb} ${op.component.image}${describePorts(hostPorts)}`,
      });
    });
    return Promise.resolve();
  },
};

/**
 * After a swap the standby ports are live and the old live ports become the
 * standby ones: the route keeps its pair (docs/ARCHITECTURE.md "Edge").
 */
function swapPorts(op: ComponentOp, live: ReadonlyMap<string, number>): void {
  const { registry } = op.ctx;
  for (const row of registry.routes.list({ service: op.service, component: op.component.name })) {
    const port = live.get(row.name);
    if (port === undefined) continue;
    registry.routes.setPorts(op.service, row.component, row.name, {
      hostPort: port,
      standbyPort: row.hostPort === port ? 0 : row.hostPort,
    });
  }
}

/**
 * The set-aside old container goes once the new one has committed. The
 * deploy answers before it (0.1–0.4 s of podman's clean-up the operator need
 * not wait for) but keeps the service's lock until it is gone, or the next
 * deploy's rename to `.prev` would race it (docs/ARCHITECTURE.md "Strategies").
 */
const removeOld: OpStep = {
  name: "remove old container",
  afterCommit: true,
  afterReply: true,
  run: (op) =>
    op.ctx.runtime.remove(setAsideName(op.name), {
      force: true,
      timeoutSeconds: op.ctx.settings.stopTimeoutSeconds,
    }),
};

/** The container and registry units (the edge ones are in edge.ts; units.ts has them all). */
export const CONTAINER_STEPS: Record<Exclude<StepName, EdgeStepName | SwapStepName>, OpStep> = {
  policy,
  record,
  pull,
  image,
  "prepare volumes": prepareVolumes,
  "allocate trial ports": allocateTrial,
  "start trial": startTrial,
  "trial health": trialHealth,
  "remove trial": removeTrial,
  "set aside old container": setAsideOld,
  "allocate ports": allocatePorts,
  "create container": create,
  "stop old container": stopOld,
  "start container": start,
  health,
  commit,
  "remove old container": removeOld,
};

/** The component's ContainerSpec as `name` on `hostPorts`. */
function containerFor(
  op: ComponentOp,
  name: string,
  hostPorts: ReadonlyMap<string, number>,
): ContainerSpec {
  const { settings } = op.ctx;
  const spec = containerSpecFor(
    {
      node: settings.node,
      service: op.service,
      bindAddress: settings.bindAddress,
      logMaxSize: settings.logMaxSize,
    },
    op.component,
    hostPorts,
  );
  return { ...spec, name };
}

/** A missing image found by podman: the cache must not vouch for it any more. */
function forgetMissingImage(op: ComponentOp, err: unknown): void {
  if (isNoSuchImage(err) || isPullFailure(err)) op.ctx.images.forget(op.component.image);
}

function warnAddressInUse(op: ComponentOp, hostPorts: ReadonlyMap<string, number>): void {
  op.ctx.logger.warn(
    { service: op.service, component: op.component.name, ports: [...hostPorts.values()] },
    "address in use, retrying with other ports",
  );
}

/** Creates the component's container as `name` on `hostPorts`; returns its id. */
async function createContainer(
  op: ComponentOp,
  name: string,
  hostPorts: ReadonlyMap<string, number>,
): Promise<string> {
  try {
    return await op.ctx.runtime.create(containerFor(op, name, hostPorts));
  } catch (err) {
    forgetMissingImage(op, err);
    throw err;
  }
}

/**
 * Runs the component's container as `name` on the ports `ports()` gives;
 * when podman reports an address in use (something took a port between our
 * probe and its bind), asks `reallocate` for others and tries again.
 */
export async function runContainer(
  op: ComponentOp,
  name: string,
  ports: () => Map<string, number>,
  reallocate: (avoid: number[]) => Promise<Map<string, number>>,
): Promise<string> {
  const { ctx } = op;
  const avoid: number[] = [];
  let hostPorts = ports();
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.runtime.run(containerFor(op, name, hostPorts));
    } catch (err) {
      if (isNameInUse(err) && name !== op.name && attempt < RUN_ATTEMPTS) {
        // A trial container left by an earlier run that could not remove it.
        await ctx.runtime.remove(name, { force: true, timeoutSeconds: 0 });
        continue;
      }
      if (isAddressInUse(err) && attempt < RUN_ATTEMPTS) {
        avoid.push(...hostPorts.values());
        warnAddressInUse(op, hostPorts);
        hostPorts = await reallocate(avoid);
        continue;
      }
      forgetMissingImage(op, err);
      throw err;
    }
  }
}

/**
 * Waits for the first passing check of `container` (on `hostPorts`) until
 * the deadline, reporting attempts now and then. A failure keeps the last
 * output and the container's last log lines for the operator.
 */
export async function proveHealthy(
  op: ComponentOp,
  container: string,
  hostPorts: ReadonlyMap<string, number>,
  step = container === op.name ? "health" : "trial health",
): Promise<void> {
  const { ctx } = op;
  const plan = healthPlan(op.component, hostPorts, ctx.settings.bindAddress);
  let reported = Date.now();
  const started = reported;
  const result = await ctx.health.waitHealthy(plan, container, {
    onAttempt: (attempt, last) => {
      if (Date.now() - reported < HEALTH_REPORT_MS) return;
      reported = Date.now();
      op.progress({
        component: op.component.name,
        step,
        phase: "info",
        elapsedMs: reported - started,
        detail: `attempt ${attempt}: ${last.output}`,
      });
    },
  });
  op.health = result;
  if (result.healthy) return;
  op.failure = {
    healthOutput: result.output,
    logLines: await lastLogLines(ctx.runtime, container, FAILED_LOG_LINES),
  };
  const seconds = (result.elapsedMs / 1000).toFixed(1);
  throw new McpError(
    "failed_precondition",
    `not healthy after ${result.attempts} check(s) in ${seconds}s: ${result.output}`,
  );
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
  releasing: ReadonlySet<number> = new Set(),
): Promise<Map<string, number>> {
  const rows = ctx.registry.routes.list({ service, component: component.name });
  // Explicit mappings take no allocation but must pass the claim check, which
  // only the allocator's critical section makes race-free.
  if (rows.length === 0 && component.ports.length === 0) return new Map();
  const assigned = await ctx.allocator.allocate(
    rows.map((row) => ({
      key: routeKey(service, component.name, row.name),
      protocol: row.protocol === "udp" ? "udp" : "tcp",
      ...(row.hostPort
        ? { preferred: row.hostPort, preferredReleasing: releasing.has(row.hostPort) }
        : {}),
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

function describePorts(hostPorts: Map<string, number>): string {
  if (hostPorts.size === 0) return "";
  const parts = [...hostPorts].map(([route, port]) => `${route || "PORT"}=${port}`);
  return ` (${parts.join(", ")})`;
}
