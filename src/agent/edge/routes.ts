/**
 * A component's routes on the node's proxy (docs/ARCHITECTURE.md "Edge"):
 * which proxy entries a component's routes make, and how they are put on
 * the proxy and taken off it. The registry's `proxy_routes` rows are
 * written first (what an agent restart re-applies), then the proxy. UDP
 * routes never go on the proxy: they keep their host port only.
 */
import type { ComponentSpec, RouteSpec } from "../../gen/mcp/v1/mcp.js";
import { routeHostname, type ProxiedRoute } from "../../edge/hostnames.js";
import { toProxyRoute, type Edge, type ProxyEntry } from "../../edge/edge.js";
import type { ProxyRouteRow, Registry } from "../../registry/index.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { namesInZone, retireNames, unusedNames } from "./dns.js";

/** Whether a route goes on the proxy (pure). */
export function isProxied(route: Pick<RouteSpec, "protocol" | "port">): boolean {
  return route.protocol !== "udp" && route.port > 0;
}

/** The proxy rows a component's routes make, on `hostPorts` (route name → host port); pure. */
export function componentEntries(
  domain: string,
  service: string,
  component: Pick<ComponentSpec, "name" | "routes">,
  hostPorts: ReadonlyMap<string, number>,
): ProxyRouteRow[] {
  const rows: ProxyRouteRow[] = [];
  for (const route of component.routes) {
    const backendPort = hostPorts.get(route.name) ?? 0;
    if (!isProxied(route) || backendPort === 0) continue;
    rows.push({
      listener: route.port,
      hostname: routeHostname({ service, hostname: route.hostname }, domain),
      mode: route.mode === "l7" ? "l7" : "l4",
      backendHost: "127.0.0.1",
      backendPort,
      proxyProtocol: route.proxyProtocol,
      service,
      component: component.name,
      route: route.name,
    });
  }
  return rows;
}

export function entryOf(row: ProxyRouteRow): ProxyEntry {
  return {
    listener: row.listener,
    hostname: row.hostname,
    mode: row.mode,
    backendPort: row.backendPort,
    proxyProtocol: row.proxyProtocol,
  };
}

const key = (r: Pick<ProxyRouteRow, "listener" | "hostname">) => `${r.listener} ${r.hostname}`;

/**
 * Every route of the node as the hostname clash check sees them: the
 * services' routes (from their recorded routes) and the manual ones.
 */
export function routesOnNode(registry: Registry): ProxiedRoute[] {
  const routes: ProxiedRoute[] = registry.routes.list().map((r) => ({
    service: r.service,
    component: r.component,
    route: r.name,
    port: r.port,
    hostname: r.hostname,
    protocol: r.protocol,
  }));
  for (const row of registry.proxyRoutes.owned("")) {
    routes.push({
      service: "a route added with mcp route add",
      component: "",
      route: "",
      port: row.listener,
      hostname: row.hostname,
      protocol: "tcp",
    });
  }
  return routes;
}

/**
 * Makes the proxy serve exactly `rows` for the component: rows are written,
 * the proxy listens where they need, L7 names get `certs` (hostname → PEM)
 * when new ones were issued, and entries the component no longer has go.
 * Returns the rows it had before, for `restoreComponentRoutes`.
 */
export async function publishComponentRoutes(
  ctx: AgentContext,
  edge: Edge,
  service: string,
  component: string,
  rows: readonly ProxyRouteRow[],
  certs: ReadonlyMap<string, string> = new Map(),
): Promise<ProxyRouteRow[]> {
  const { registry } = ctx;
  const before = registry.proxyRoutes.owned(service, component);
  setRows(registry, before, rows);
  await edge.listenFor(registry.proxyRoutes.list().map(entryOf));
  for (const row of rows) await edge.apply(entryOf(row), certs.get(row.hostname));
  const kept = new Set(rows.map(key));
  for (const row of before) if (!kept.has(key(row))) await edge.remove(entryOf(row));
  return before;
}

/** Puts the component's rows and proxy entries back as `before` had them (an undo). */
export async function restoreComponentRoutes(
  ctx: AgentContext,
  edge: Edge,
  service: string,
  component: string,
  before: readonly ProxyRouteRow[],
): Promise<void> {
  const now = ctx.registry.proxyRoutes.owned(service, component);
  setRows(ctx.registry, now, before);
  const back = new Set(before.map(key));
  for (const row of now) if (!back.has(key(row))) await edge.remove(entryOf(row));
  for (const row of before) await edge.apply(entryOf(row));
  await edge.listenFor(ctx.registry.proxyRoutes.list().map(entryOf));
}

/**
 * Makes the proxy serve exactly the registry's rows: at agent start (an
 * adopted or restarted HAProxy, rows undone by a crash recovery), after a
 * purge, and on every monitor pass (a route the proxy lost comes back).
 * Returns how many entries the running proxy had to change.
 */
export async function syncProxy(ctx: AgentContext): Promise<number> {
  const edge = ctx.edge;
  if (!edge) return 0;
  const entries = ctx.registry.proxyRoutes.list().map(entryOf);
  await edge.listenFor(entries);
  return edge.driver.sync(entries.map((e) => toProxyRoute(e)));
}

/** New certificates (hostname → PEM) for the L7 names of `rows` that have none worth keeping. */
export async function neededCerts(
  edge: Edge,
  rows: readonly ProxyRouteRow[],
): Promise<Map<string, string>> {
  const certs = new Map<string, string>();
  for (const row of rows) {
    if (row.mode !== "l7" || certs.has(row.hostname)) continue;
    const { cert, fresh } = await edge.certFor(row.hostname);
    if (fresh) certs.set(row.hostname, cert.pem);
  }
  return certs;
}

/**
 * Puts a component that runs again on its recorded host ports (start of a
 * stopped container) back on the proxy.
 */
export async function republishRecordedRoutes(
  ctx: AgentContext,
  service: string,
  component: Pick<ComponentSpec, "name" | "routes">,
): Promise<void> {
  const edge = ctx.edge;
  if (!edge) return;
  const ports = new Map(
    ctx.registry.routes
      .list({ service, component: component.name })
      .map((r) => [r.name, r.hostPort] as const),
  );
  const rows = componentEntries(edge.domain, service, component, ports);
  await publishComponentRoutes(
    ctx,
    edge,
    service,
    component.name,
    rows,
    await neededCerts(edge, rows),
  );
}

/**
 * Takes a service's (or one component's) names and routes off, before its
 * containers stop: clients are refused by the proxy, not sent to a
 * container that is going away. A DNS server that refuses fails the call
 * with nothing changed (the caller's step fails, the container keeps
 * serving); then the rows go and the proxy follows. A proxy that cannot be
 * reached is only logged: its files were written first, and the next sync
 * renders them from the rows.
 */
export async function withdrawRoutes(
  ctx: AgentContext,
  service: string,
  component?: string,
): Promise<void> {
  const edge = ctx.edge;
  if (!edge) return;
  const rows = ctx.registry.proxyRoutes.owned(service, component);
  if (rows.length === 0) return;
  if (edge.dns) {
    const names = unusedNames(ctx.registry, namesInZone(rows, edge.dns.zone), rows);
    try {
      await retireNames(edge.dns, names);
    } catch (err) {
      throw new McpError("failed_precondition", `dns: ${errorMessage(err)}`, { cause: err });
    }
  }
  ctx.registry.transaction(() => {
    for (const row of rows) ctx.registry.proxyRoutes.delete(row.listener, row.hostname);
  });
  try {
    for (const row of rows) await edge.remove(entryOf(row));
    await edge.listenFor(ctx.registry.proxyRoutes.list().map(entryOf));
  } catch (err) {
    ctx.logger.warn({ service, err: errorMessage(err) }, "could not take routes off the proxy");
  }
}

/** Who a proxy row belongs to, for messages. */
export function ownerOf(row: Pick<ProxyRouteRow, "service" | "component" | "route">): string {
  if (!row.service) return "a route added with mcp route add";
  return `${row.service}/${row.component}${row.route ? `/${row.route}` : ""}`;
}

function setRows(
  registry: Registry,
  now: readonly ProxyRouteRow[],
  wanted: readonly ProxyRouteRow[],
): void {
  registry.transaction(() => {
    const keep = new Set(wanted.map(key));
    for (const row of now) {
      if (!keep.has(key(row))) registry.proxyRoutes.delete(row.listener, row.hostname);
    }
    for (const row of wanted) {
      // The deploy's clash check refuses this first; a row is never taken from its owner.
      const holder = registry.proxyRoutes.get(row.listener, row.hostname);
      if (holder && (holder.service !== row.service || holder.component !== row.component)) {
        throw new McpError(
          "failed_precondition",
          `${row.hostname} on port ${row.listener} is already served for ${ownerOf(holder)}`,
        );
      }
      registry.proxyRoutes.put(row);
    }
  });
}
