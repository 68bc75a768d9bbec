/**
 * The swap behind the proxy (docs/ARCHITECTURE.md "Strategies"): for a
 * start-first component whose every route is on the node's proxy, the new
 * version starts as `<name>.next` on the routes' standby host ports, must
 * pass its check there, gets the proxy's traffic (steps/edge.ts `routes`),
 * the old one drains for `[proxy] drain` and is set aside, and the new one
 * takes the component's name. Nothing stops serving at any point: a new
 * version that fails is removed before the proxy ever sent it a request.
 */
import { trialName } from "../../../runtime/names.js";
import { routeProtocol } from "../../../servicedef/publish.js";
import { routeKey, standbyRoute } from "../container-spec.js";
import { enforcePortClaims } from "../../policy/guard.js";
import { proveHealthy, runContainer, type ComponentOp } from "./component.js";
import type { SwapStepName } from "./plan.js";
import type { Step } from "./runner.js";

type OpStep = Step<ComponentOp>;

/**
 * One standby port per route, the recorded one when it is still free,
 * recorded beside the live port inside the allocator's critical section.
 */
async function allocateStandbyPorts(op: ComponentOp, avoid: number[] = []): Promise<void> {
  const { ctx, service } = op;
  const component = op.component.name;
  const rows = ctx.registry.routes.list({ service, component });
  const key = (route: string) => routeKey(service, component, standbyRoute(route));
  const assigned = await ctx.allocator.allocate(
    rows.map((row) => ({
      key: key(row.name),
      protocol: routeProtocol(row),
      ...(row.standbyPort ? { preferred: row.standbyPort } : {}),
      // Never the live port of the pair: the old version is on it.
      avoid: [...avoid, ...(row.hostPort ? [row.hostPort] : [])],
    })),
    (ports) => {
      ctx.registry.transaction(() => {
        for (const row of rows) {
          const port = ports.get(key(row.name));
          if (port === undefined) continue;
          ctx.registry.routes.setPorts(service, component, row.name, {
            hostPort: row.hostPort,
            standbyPort: port,
          });
        }
      });
    },
    () => enforcePortClaims(ctx, service, op.component),
  );
  op.hostPorts = new Map(rows.map((row) => [row.name, assigned.get(key(row.name)) ?? 0]));
}

const allocateStandby: OpStep = {
  name: "allocate standby ports",
  run: (op) => allocateStandbyPorts(op),
};

const startNew: OpStep = {
  name: "start new version",
  run: async (op) => {
    op.containerId = await runContainer(
      op,
      trialName(op.name),
      () => op.hostPorts ?? new Map<string, number>(),
      async (avoid) => {
        await allocateStandbyPorts(op, avoid);
        return op.hostPorts ?? new Map<string, number>();
      },
    );
  },
  undo: (op) => op.ctx.runtime.remove(trialName(op.name), { force: true, timeoutSeconds: 0 }),
};

const newHealth: OpStep = {
  name: "new version health",
  run: (op) =>
    proveHealthy(op, trialName(op.name), op.hostPorts ?? new Map(), "new version health"),
};

/** Requests the old version already has finish before it stops (`[proxy] drain`). */
const drain: OpStep = {
  name: "drain",
  run: async (op) => {
    const ms = op.ctx.edge?.drainMs ?? 0;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  },
};

/** The new version takes the component's name (the old one was set aside). */
const promote: OpStep = {
  name: "promote new version",
  run: (op) => op.ctx.runtime.rename(trialName(op.name), op.name),
  undo: async (op) => {
    // Gives the name back for the set-aside old container's undo.
    if (await op.ctx.runtime.inspect(op.name)) {
      await op.ctx.runtime.rename(op.name, trialName(op.name));
    }
  },
};

export const SWAP_STEPS: Record<SwapStepName, OpStep> = {
  "allocate standby ports": allocateStandby,
  "start new version": startNew,
  "new version health": newHealth,
  drain,
  "promote new version": promote,
};
