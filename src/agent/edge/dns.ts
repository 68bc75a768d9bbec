/**
 * DNS names for routes (docs/ARCHITECTURE.md "Edge"): with `[dns]`, every
 * proxied route hostname inside the zone points at the node's address. A
 * name is published before the route's certificate is asked for (an ACME
 * server resolves it) and retired only when no proxy row of the node uses
 * it any more, so two routes sharing a name on different listeners keep it.
 */
import { inZone } from "../../edge/dns/nsupdate.js";
import type { DnsPublisher } from "../../edge/types.js";
import type { ProxyRouteRow, Registry } from "../../registry/index.js";

/** The distinct hostnames of `rows` that lie in `zone` (pure). */
export function namesInZone(
  rows: readonly Pick<ProxyRouteRow, "hostname">[],
  zone: string,
): string[] {
  return [...new Set(rows.map((r) => r.hostname.toLowerCase()))].filter((n) => inZone(n, zone));
}

/**
 * Of `names`, those no proxy row of the node uses now, not counting the
 * rows `leaving` (about to go: a stop); pure over the registry.
 */
export function unusedNames(
  registry: Registry,
  names: readonly string[],
  leaving: readonly Pick<ProxyRouteRow, "listener" | "hostname">[] = [],
): string[] {
  const gone = new Set(leaving.map((r) => `${r.listener} ${r.hostname.toLowerCase()}`));
  const used = new Set(
    registry.proxyRoutes
      .list()
      .filter((r) => !gone.has(`${r.listener} ${r.hostname}`))
      .map((r) => r.hostname.toLowerCase()),
  );
  return names.filter((n) => !used.has(n));
}

export async function publishNames(dns: DnsPublisher, names: readonly string[]): Promise<void> {
  for (const name of names) await dns.upsert(name);
}

export async function retireNames(dns: DnsPublisher, names: readonly string[]): Promise<void> {
  for (const name of names) await dns.remove(name);
}
