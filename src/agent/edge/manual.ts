/**
 * Routes on the node's proxy to backends MCP does not run (`mcp route add`
 * / `mcp route remove`): a `proxy_routes` row with no service
 * (src/registry/proxy-routes.ts), so an agent restart serves it again
 * (serve.ts syncs the proxy from the rows). A manual route never takes a
 * name a service's route answers to on the same listener, published or not
 * (a stopped service gets its name back when it starts).
 */
import type { AddRouteRequest, ProxyRouteInfo } from "../../gen/mcp/v1/mcp.js";
import { hostnameClashes, routeHostname, type ProxiedRoute } from "../../edge/hostnames.js";
import {
  checkListener,
  checkRouteHostname,
  checkRouteMode,
  formatBackend,
  parseBackend,
} from "../../protocol/route-args.js";
import type { ProxyRouteRow } from "../../registry/index.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { edgeOf, routeInfo } from "./listing.js";
import { entryOf, ownerOf, routesOnNode } from "./routes.js";

/** Manual routes change one at a time; no service is named "" (servicedef), so the key is free. */
const MANUAL_LOCK = "";

/** What a new manual route is checked against. */
export interface ManualRouteState {
  /** `[proxy] http_port` (0 = none): HAProxy's plain listener, never a route listener. */
  httpPort: number;
  /** `[proxy] domain`, for the default names of services' routes. */
  domain: string;
  /** Every proxy row of the node. */
  rows: readonly ProxyRouteRow[];
  /** Every route of the node's services (routesOnNode), whether on the proxy now or not. */
  routes: readonly ProxiedRoute[];
}

/** A checked manual route, and the manual row it replaces (same backend, other mode or flag). */
export interface ManualRoutePlan {
  row: ProxyRouteRow;
  replaces: ProxyRouteRow | undefined;
}

/**
 * Checks AddRoute's arguments against the node (pure): the argument rules
 * of src/protocol/route-args.ts, the plain HTTP port, services' routes and
 * other manual routes. Throws an McpError saying why; returns the row.
 */
export function checkManualRoute(req: AddRouteRequest, state: ManualRouteState): ManualRoutePlan {
  const listener = checkListener(req.listener);
  const hostname = checkRouteHostname(req.hostname);
  const mode = checkRouteMode(req.mode);
  const backend = parseBackend(req.backend);
  if (state.httpPort > 0 && listener === state.httpPort) {
    throw new McpError(
      "invalid_argument",
      `listener: port ${listener} is the proxy's plain HTTP port ([proxy] http_port); choose another listener port`,
    );
  }
  const row: ProxyRouteRow = {
    listener,
    hostname,
    mode,
    backendHost: backend.host,
    backendPort: backend.port,
    proxyProtocol: req.proxyProtocol,
    service: "",
    component: "",
    route: "",
  };
  const held = state.rows.find((r) => r.listener === listener && r.hostname === hostname);
  if (held?.service) {
    throw new McpError(
      "failed_precondition",
      `${hostname} on port ${listener} is already a route of ${ownerOf(held)}: it goes with mcp stop/undeploy of that service`,
    );
  }
  if (held && (held.backendPort !== row.backendPort || held.backendHost !== row.backendHost)) {
    throw new McpError(
      "failed_precondition",
      `${hostname} on port ${listener} is already a manual route to ${formatBackend(held.backendHost, held.backendPort)}: remove it first (mcp route remove ${listener} ${hostname})`,
    );
  }
  // Services' routes as recorded, so a stopped service's name stays its own.
  const services = state.routes.filter((r) => r.component !== "");
  const candidate: ProxiedRoute = {
    service: "",
    component: "",
    route: "",
    port: listener,
    hostname,
    protocol: "tcp",
  };
  if (hostnameClashes([candidate], services, state.domain).length > 0) {
    const owner = services.find(
      (r) => r.port === listener && routeHostname(r, state.domain) === hostname,
    );
    const name = owner ? ownerOf(owner) : "a service";
    throw new McpError(
      "failed_precondition",
      `${hostname} on port ${listener} is the name of route ${name} (it answers to it whenever the service runs): choose another hostname or listener`,
    );
  }
  return { row, replaces: held };
}

/** AddRoute: checks, gets an L7 certificate, writes the row, then puts it on the proxy. */
export async function addManualRoute(
  ctx: AgentContext,
  req: AddRouteRequest,
): Promise<ProxyRouteInfo> {
  const edge = edgeOf(ctx);
  const { registry } = ctx;
  return ctx.serviceLocks.runExclusive(MANUAL_LOCK, async () => {
    const { row, replaces } = checkManualRoute(req, {
      httpPort: edge.driver.httpPort,
      domain: edge.domain,
      rows: registry.proxyRoutes.list(),
      routes: routesOnNode(registry),
    });
    // Before anything is written: a certificate that cannot be had leaves no row behind.
    const cert = row.mode === "l7" ? await edge.certFor(row.hostname) : undefined;
    registry.transaction(() => {
      // A deploy may have taken the name since the check: never take a row from its owner.
      const holder = registry.proxyRoutes.get(row.listener, row.hostname);
      if (holder?.service) {
        throw new McpError(
          "failed_precondition",
          `${row.hostname} on port ${row.listener} is already a route of ${ownerOf(holder)}`,
        );
      }
      registry.proxyRoutes.put(row);
    });
    try {
      await edge.listenFor(registry.proxyRoutes.list().map(entryOf));
      await edge.apply(entryOf(row), cert?.fresh ? cert.cert.pem : undefined);
      // Another mode's map would keep answering first (L4 is looked up before L7).
      if (replaces && replaces.mode !== row.mode) await edge.remove(entryOf(replaces));
    } catch (err) {
      await undoAdd(ctx, row, replaces);
      throw err instanceof McpError
        ? err
        : new McpError("internal", `the proxy refused the route: ${errorMessage(err)}`, {
            cause: err,
          });
    }
    ctx.logger.info(
      { listener: row.listener, hostname: row.hostname, mode: row.mode, backend: req.backend },
      "manual route added",
    );
    return routeInfo(row, cert?.cert.notAfter);
  });
}

/** Puts the rows and the proxy back as they were before a failed AddRoute (best effort). */
async function undoAdd(
  ctx: AgentContext,
  row: ProxyRouteRow,
  replaces: ProxyRouteRow | undefined,
): Promise<void> {
  const edge = edgeOf(ctx);
  const { registry } = ctx;
  if (replaces) registry.proxyRoutes.put(replaces);
  else registry.proxyRoutes.delete(row.listener, row.hostname);
  try {
    if (!replaces) await edge.remove(entryOf(row));
    else await edge.apply(entryOf(replaces));
    await edge.listenFor(registry.proxyRoutes.list().map(entryOf));
  } catch (err) {
    // The rows are right again; the monitor's sync brings the proxy in line with them.
    ctx.logger.warn({ err: errorMessage(err) }, "could not undo a manual route on the proxy");
  }
}

/** RemoveRoute: only a manual route; the row goes, then the proxy entry and an unused listener. */
export async function removeManualRoute(
  ctx: AgentContext,
  listenerPort: number,
  hostnameArg: string,
): Promise<ProxyRouteInfo> {
  const edge = edgeOf(ctx);
  const listener = checkListener(listenerPort);
  const hostname = checkRouteHostname(hostnameArg);
  const { registry } = ctx;
  return ctx.serviceLocks.runExclusive(MANUAL_LOCK, async () => {
    const row = registry.proxyRoutes.get(listener, hostname);
    if (!row) {
      throw new McpError(
        "not_found",
        `no route for ${hostname} on port ${listener} on node ${ctx.settings.node} (see mcp route list)`,
      );
    }
    if (row.service) {
      throw new McpError(
        "failed_precondition",
        `${hostname} on port ${listener} is owned by ${ownerOf(row)}: it goes with mcp stop/undeploy`,
      );
    }
    registry.proxyRoutes.delete(listener, hostname);
    await edge.remove(entryOf(row));
    await edge.listenFor(registry.proxyRoutes.list().map(entryOf));
    ctx.logger.info({ listener, hostname }, "manual route removed");
    return routeInfo(row);
  });
}
