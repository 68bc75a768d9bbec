/**
 * One read of what the state gauges show (samples.ts AgentState), at scrape
 * time, from the same sources `mcp ps` / `mcp status` answer from: the
 * observed refresh (the in-memory view, so no podman call while it agrees
 * with the registry), the port book, the proxy's rows and live maps, and its
 * certificates.
 */
import { errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { listCerts, listRoutes } from "../edge/listing.js";
import { refreshObserved } from "../observed/refresh.js";
import type { AgentState } from "./samples.js";

export async function readAgentState(ctx: AgentContext): Promise<AgentState> {
  const { registry, edge, logger } = ctx;
  const rows = registry.proxyRoutes.list();
  const [components, routes, certificates] = await Promise.all([
    observedComponents(ctx),
    edge ? listRoutes(edge, rows, logger) : [],
    edge ? listCerts(edge, rows) : [],
  ]);
  return { components, ports: ctx.allocator.stats(), routes, certificates };
}

/**
 * The components as a refresh finds them; mid-operation a service's rows are
 * left as they are (`skipBusy`, as the monitor does: a missing container is
 * a step then, not a fact). When podman cannot answer (the view not current
 * and the list failing), the registry's rows as they are: counters and the
 * rest of the scrape still get out, and the log says why.
 */
async function observedComponents(ctx: AgentContext): Promise<AgentState["components"]> {
  try {
    return (await refreshObserved(ctx, { skipBusy: true })).components;
  } catch (err) {
    ctx.logger.warn(
      { err: errorMessage(err) },
      "metrics: observed state could not be refreshed; the registry's rows are shown",
    );
    return ctx.registry.components.list();
  }
}
