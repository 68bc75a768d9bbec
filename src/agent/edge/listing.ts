/**
 * What the edge listings answer (`mcp route list`, `cert list`, `cert ca`,
 * `dns list`) and whether each route `mcp status` shows is on the proxy now.
 * "Served" is the running HAProxy's word (its live maps), not the files:
 * a route the proxy lost shows as not served until the monitor puts it back.
 */
import type { CertInfo, DnsRecordInfo, ProxyRouteInfo } from "../../gen/mcp/v1/mcp.js";
import type { Edge } from "../../edge/edge.js";
import type { LiveRoute } from "../../edge/types.js";
import { formatBackend } from "../../protocol/route-args.js";
import type { ProxyRouteRow, RouteRow } from "../../registry/index.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { Logger } from "../../util/log.js";
import type { AgentContext } from "../context.js";
import { isProxied } from "./routes.js";

/** The parts of the Edge the listings read (unit tests pass a fake). */
export interface EdgeView {
  readonly routeCaPem: string;
  readonly dns: Pick<NonNullable<Edge["dns"]>, "zone" | "list"> | undefined;
  currentCert: Edge["currentCert"];
  readonly driver: { liveRoutes(): Promise<LiveRoute[]> };
}

/** The node's edge, or the error every edge RPC gives on a node without `[proxy]`. */
export function edgeOf(ctx: Pick<AgentContext, "edge">): Edge {
  if (!ctx.edge) {
    throw new McpError("failed_precondition", "this node has no [proxy] configured");
  }
  return ctx.edge;
}

const liveKey = (r: Pick<LiveRoute, "listener" | "hostname" | "mode" | "proxyProtocol">) =>
  `${r.listener} ${r.hostname} ${r.mode} ${r.proxyProtocol}`;

/**
 * Whether a row is on the running proxy: `live` has its name on its
 * listener in the map of its mode and PROXY-protocol flag, to its port.
 */
export function servedBy(live: readonly LiveRoute[]): (row: ProxyRouteRow) => boolean {
  const ports = new Map(live.map((r) => [liveKey(r), r.hostPort]));
  return (row) => ports.get(liveKey(row)) === row.backendPort;
}

/**
 * The proxy's live entries; a proxy that does not answer serves nothing
 * (logged), so a listing still shows the registry's rows.
 */
async function liveRoutes(edge: EdgeView, logger: Logger): Promise<LiveRoute[]> {
  try {
    return await edge.driver.liveRoutes();
  } catch (err) {
    logger.warn({ err: errorMessage(err) }, "could not read the proxy's live routes");
    return [];
  }
}

/** ListRoutes: every proxy row, with its certificate's expiry (L7) and whether it is served. */
export async function listRoutes(
  edge: EdgeView,
  rows: readonly ProxyRouteRow[],
  logger: Logger,
): Promise<ProxyRouteInfo[]> {
  const served = servedBy(await liveRoutes(edge, logger));
  const infos: ProxyRouteInfo[] = [];
  for (const row of rows) {
    const cert = row.mode === "l7" ? await edge.currentCert(row.hostname) : undefined;
    infos.push({ ...routeInfo(row, cert?.notAfter), served: served(row) });
  }
  return infos;
}

/** A proxy row as the edge RPCs answer it (not yet looked up on the live proxy). */
export function routeInfo(row: ProxyRouteRow, certNotAfter?: Date): ProxyRouteInfo {
  return {
    listener: row.listener,
    hostname: row.hostname,
    mode: row.mode,
    backend: formatBackend(row.backendHost, row.backendPort),
    service: row.service,
    component: row.component,
    route: row.route,
    proxyProtocol: row.proxyProtocol,
    certNotAfter,
    served: false,
  };
}

/** ListCerts: the certificate the proxy has for each L7 name of its rows, by hostname. */
export async function listCerts(
  edge: EdgeView,
  rows: readonly ProxyRouteRow[],
): Promise<CertInfo[]> {
  const names = [...new Set(rows.filter((r) => r.mode === "l7").map((r) => r.hostname))].sort();
  const certs: CertInfo[] = [];
  for (const hostname of names) {
    const cert = await edge.currentCert(hostname);
    if (!cert) continue;
    certs.push({ hostname, issuer: cert.issuer, notAfter: cert.notAfter, serial: cert.serial });
  }
  return certs;
}

/** ListDnsRecords: the zone's A and AAAA records, by name. */
export async function listDnsRecords(
  edge: EdgeView | undefined,
): Promise<{ zone: string; records: DnsRecordInfo[] }> {
  const dns = edge?.dns;
  if (!dns) throw new McpError("failed_precondition", "this node has no [dns] configured");
  const records = (await dns.list())
    .map((r) => ({ name: r.name, type: r.type, address: r.address, ttl: r.ttl }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
  return { zone: dns.zone, records };
}

/**
 * For GetServiceStatus: each recorded route's `served` — whether the proxy
 * serves its row now; undefined for a route that never goes on the proxy
 * (udp, no listener). No function on a node without a proxy.
 */
export async function routeServing(
  edge: EdgeView | undefined,
  rows: readonly ProxyRouteRow[],
  logger: Logger,
): Promise<((route: RouteRow) => boolean | undefined) | undefined> {
  if (!edge) return undefined;
  const served = servedBy(await liveRoutes(edge, logger));
  const owned = new Map(rows.map((r) => [`${r.service}/${r.component}/${r.route}`, r]));
  return (route) => {
    if (!isProxied(route)) return undefined;
    const row = owned.get(`${route.service}/${route.component}/${route.name}`);
    return row ? served(row) : false;
  };
}
