/**
 * Which name each proxied route answers to, and which routes would collide
 * on the proxy (issue 8): a route's `hostname`, else `<service>.<domain>`;
 * two routes on the same listener port with the same name, in one service
 * or across services, cannot both be served. UDP routes never go on the
 * proxy. Pure: deploy refuses what `hostnameClashes` returns.
 */

export interface ProxiedRoute {
  service: string;
  component: string;
  /** The route's name ("" for the unnamed one). */
  route: string;
  /** The listener port clients connect to. */
  port: number;
  hostname: string;
  protocol: string;
}

/** The name a route answers to on the proxy. */
export function routeHostname(
  r: Pick<ProxiedRoute, "service" | "hostname">,
  domain: string,
): string {
  return (r.hostname || `${r.service}.${domain}`).toLowerCase();
}

function describe(r: ProxiedRoute): string {
  if (!r.component) return r.service;
  return `${r.service}/${r.component}${r.route ? `/${r.route}` : ""}`;
}

/**
 * Problems for the routes of `incoming` (one service being deployed) that
 * share a listener port and a name with another route, among themselves or
 * with `existing` (every other service's routes on the node). A clash names
 * both routes and says how to part them.
 */
export function hostnameClashes(
  incoming: readonly ProxiedRoute[],
  existing: readonly ProxiedRoute[],
  domain: string,
): { route: ProxiedRoute; message: string }[] {
  const taken = new Map<string, ProxiedRoute>();
  const key = (r: ProxiedRoute) => `${r.port} ${routeHostname(r, domain)}`;
  const service = incoming[0]?.service;
  for (const r of existing) {
    if (r.protocol !== "udp" && r.service !== service) taken.set(key(r), r);
  }
  const problems: { route: ProxiedRoute; message: string }[] = [];
  for (const r of incoming) {
    if (r.protocol === "udp") continue;
    const other = taken.get(key(r));
    if (other) {
      problems.push({
        route: r,
        message: `route ${describe(r)} and route ${describe(other)} both answer to ${routeHostname(r, domain)} on port ${r.port}: give one of them another hostname`,
      });
    } else {
      taken.set(key(r), r);
    }
  }
  return problems;
}
