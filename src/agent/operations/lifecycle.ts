/**
 * Stop, start, restart and undeploy of a whole service.
 *
 * - stop: containers stopped (kept, with their ports), desired = stopped.
 * - start: containers started (recreated from the stored spec, on their
 *   recorded ports, if gone; on other ports if one was taken while they were
 *   stopped), desired = running.
 * - restart: in place (recreated the same way when needed); desired state unchanged.
 * - undeploy: containers removed, ports released, desired = stopped; the
 *   registry rows stay (purge removes them), so a second undeploy is a no-op.
 */
import { ComponentResult } from "../../gen/mcp/v1/mcp.js";
import type { ComponentRow } from "../../registry/index.js";
import { containerName } from "../../runtime/names.js";
import { ifContainerExists, isAddressInUse } from "../../runtime/errors.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { runComponent } from "./deploy.js";
import { republishRecordedRoutes, withdrawRoutes } from "../edge/routes.js";
import { routeStatuses } from "../messages.js";

type ComponentAction = (row: ComponentRow) => Promise<void | ComponentResult>;

/** Runs `action` on every component of `service` under the service's lock. */
async function forEachComponent(
  ctx: AgentContext,
  service: string,
  verb: string,
  action: ComponentAction,
): Promise<ComponentResult[]> {
  if (!service) throw new McpError("invalid_argument", `${verb}: no service name given`);
  return ctx.serviceLocks.runExclusive(service, async () => {
    if (!ctx.registry.services.get(service)) {
      throw new McpError(
        "not_found",
        `unknown service "${service}" on node ${ctx.settings.node} (deploy it first)`,
      );
    }
    const results: ComponentResult[] = [];
    for (const row of ctx.registry.components.list(service)) {
      const container = containerName(service, row.name);
      try {
        const result = await action(row);
        results.push(
          result ??
            ComponentResult.fromPartial({
              name: row.name,
              success: true,
              error: "",
              container,
              routes: routeStatuses(ctx.registry.routes.list({ service, component: row.name })),
            }),
        );
      } catch (err) {
        const message = `${verb}: ${errorMessage(err)}`;
        ctx.logger.warn({ service, component: row.name, err: message }, `${verb} failed`);
        ctx.registry.events.add({ service, component: row.name, kind: `${verb}_failed`, message });
        results.push(
          ComponentResult.fromPartial({
            name: row.name,
            success: false,
            error: message,
            container,
            routes: [],
          }),
        );
      }
    }
    return results;
  });
}

export function stopService(ctx: AgentContext, service: string): Promise<ComponentResult[]> {
  return forEachComponent(ctx, service, "stop", async (row) => {
    // Off the proxy first: clients are refused there, not sent to a container going away.
    await withdrawRoutes(ctx, service, row.name);
    const name = containerName(service, row.name);
    const existed = await ifContainerExists(
      ctx.runtime.stop(name, ctx.settings.stopTimeoutSeconds),
    );
    const observed = existed ? "exited" : "removed";
    ctx.registry.transaction(() => {
      ctx.registry.services.setActive(service, false);
      ctx.registry.components.setDesired(service, row.name, "stopped");
      ctx.registry.components.setObserved(service, row.name, { state: observed });
      ctx.registry.events.add({
        service,
        component: row.name,
        kind: "stop",
        prevState: row.observedState,
        newState: observed,
      });
    });
  });
}

export function startService(ctx: AgentContext, service: string): Promise<ComponentResult[]> {
  return forEachComponent(ctx, service, "start", async (row) => {
    ctx.registry.transaction(() => {
      ctx.registry.services.setActive(service, true);
      ctx.registry.components.setDesired(service, row.name, "running");
    });
    const name = containerName(service, row.name);
    const current = await ctx.runtime.inspect(name);
    if (!current) {
      // Gone (removed by hand or undeployed): recreate from the stored spec.
      return runComponent(ctx, service, row.spec, { kind: "start" });
    }
    if (current.state !== "running") {
      try {
        await ctx.runtime.start(name);
      } catch (err) {
        if (!isAddressInUse(err)) throw err;
        return recreateOnNewPorts(ctx, service, row, "start");
      }
    }
    await republishRecordedRoutes(ctx, service, row.spec);
    recordRunning(ctx, service, row, "start");
  });
}

export function restartService(ctx: AgentContext, service: string): Promise<ComponentResult[]> {
  return forEachComponent(ctx, service, "restart", async (row) => {
    const name = containerName(service, row.name);
    let restarted: boolean;
    try {
      restarted = await ifContainerExists(
        ctx.runtime.restart(name, ctx.settings.stopTimeoutSeconds),
      );
    } catch (err) {
      if (!isAddressInUse(err)) throw err;
      return recreateOnNewPorts(ctx, service, row, "restart");
    }
    if (!restarted) return runComponent(ctx, service, row.spec, { kind: "restart" });
    recordRunning(ctx, service, row, "restart");
  });
}

export function undeployService(ctx: AgentContext, service: string): Promise<ComponentResult[]> {
  return forEachComponent(ctx, service, "undeploy", async (row) => {
    await withdrawRoutes(ctx, service, row.name);
    const name = containerName(service, row.name);
    await ctx.runtime.remove(name, {
      force: true,
      timeoutSeconds: ctx.settings.stopTimeoutSeconds,
    });
    ctx.registry.transaction(() => {
      ctx.registry.services.setActive(service, false);
      ctx.registry.components.setDesired(service, row.name, "stopped");
      const released = ctx.registry.routes.clearHostPorts(service, row.name);
      ctx.registry.components.setDeployed(service, row.name, null);
      ctx.registry.components.setObserved(service, row.name, {
        state: "removed",
        containerId: "",
        startedAt: null,
      });
      if (row.observedState !== "removed" || released > 0) {
        ctx.registry.events.add({
          service,
          component: row.name,
          kind: "undeploy",
          prevState: row.observedState,
          newState: "removed",
          message: released > 0 ? `released ${released} port(s)` : "",
        });
      }
    });
  });
}

/**
 * A stopped container binds its ports again on start; if something took one
 * meanwhile, podman refuses ("address already in use") and the container
 * stays stopped. Recreate it instead, on the recorded ports where they are
 * still free, so only the taken route moves (DESIGN.md "Port allocation").
 * The old container is only set aside until the new one runs (steps/plan.ts):
 * if no port can be had, or the new one fails, the stopped container is left
 * as it was.
 */
function recreateOnNewPorts(
  ctx: AgentContext,
  service: string,
  row: ComponentRow,
  kind: string,
): Promise<ComponentResult> {
  ctx.logger.warn(
    { service, component: row.name },
    `${kind}: a published port is taken, recreating on free ports`,
  );
  return runComponent(ctx, service, row.spec, { kind });
}

function recordRunning(ctx: AgentContext, service: string, row: ComponentRow, kind: string): void {
  ctx.registry.transaction(() => {
    ctx.registry.components.setObserved(service, row.name, {
      state: "running",
      startedAt: new Date().toISOString(),
    });
    ctx.registry.events.add({
      service,
      component: row.name,
      kind,
      prevState: row.observedState,
      newState: "running",
    });
  });
}
