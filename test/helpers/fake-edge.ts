/**
 * An in-memory proxy for unit tests of the agent's edge steps: it keeps
 * the routes and certificates a real HAProxy would serve (ProxyDriver,
 * src/edge/types.ts), so a test can ask what a client would reach. The
 * certificates are real ones from a route CA (certFor parses them).
 */
import { createCa, type CertPair } from "../../src/certs/x509.js";
import { Edge } from "../../src/edge/edge.js";
import { LocalIssuer } from "../../src/edge/certs/local-ca.js";
import type {
  DnsPublisher,
  DnsRecord,
  LiveRoute,
  ProxyDriver,
  ProxyRoute,
} from "../../src/edge/types.js";

export class FakeProxy implements ProxyDriver {
  readonly httpPort = 0;
  listeners: number[] = [];
  /** `listener hostname` → where the proxy sends it now. */
  readonly live = new Map<string, ProxyRoute>();
  readonly certs = new Map<string, string>();
  /** `set <listener> <hostname> <port>`, `remove …`, `listeners …`, in order. */
  readonly calls: string[] = [];

  setListeners(listeners: readonly number[]): Promise<void> {
    const wanted = [...new Set(listeners)].sort((a, b) => a - b);
    if (wanted.join(",") !== this.listeners.join(","))
      this.calls.push(`listeners ${wanted.join(",")}`);
    this.listeners = wanted;
    return Promise.resolve();
  }

  setRoute(route: ProxyRoute): Promise<void> {
    if (!this.listeners.includes(route.listener)) {
      return Promise.reject(new Error(`the proxy does not listen on ${route.listener}`));
    }
    if (route.certPem) this.certs.set(route.hostname, route.certPem);
    const { certPem: _pem, ...kept } = route;
    this.live.set(`${route.listener} ${route.hostname}`, kept);
    this.calls.push(`set ${route.listener} ${route.hostname} ${route.hostPort}`);
    return Promise.resolve();
  }

  removeRoute(listener: number, hostname: string): Promise<void> {
    if (this.live.delete(`${listener} ${hostname}`))
      this.calls.push(`remove ${listener} ${hostname}`);
    return Promise.resolve();
  }

  sync(routes: readonly ProxyRoute[]): Promise<number> {
    let changed = 0;
    const wanted = new Map(routes.map((r) => [`${r.listener} ${r.hostname}`, r]));
    for (const key of [...this.live.keys()]) {
      if (wanted.has(key)) continue;
      this.live.delete(key);
      changed++;
    }
    for (const [key, r] of wanted) {
      if (this.live.get(key)?.hostPort !== r.hostPort) changed++;
      this.live.set(key, r);
    }
    return Promise.resolve(changed);
  }

  certificate(hostname: string): Promise<string | undefined> {
    return Promise.resolve(this.certs.get(hostname));
  }

  liveRoutes(): Promise<LiveRoute[]> {
    return Promise.resolve(
      [...this.live.values()].map((r) => ({
        listener: r.listener,
        hostname: r.hostname,
        mode: r.mode,
        proxyProtocol: r.proxyProtocol ?? false,
        hostPort: r.hostPort,
      })),
    );
  }

  /** The host port a client asking for `hostname` on `listener` reaches, if any. */
  backend(listener: number, hostname: string): number | undefined {
    return this.live.get(`${listener} ${hostname}`)?.hostPort;
  }
}

let ca: Promise<CertPair> | undefined;

/** An Edge over a FakeProxy, certificates from one route CA per test process. */
export async function fakeEdge(
  opts: { drainMs?: number; dns?: DnsPublisher } = {},
): Promise<{ edge: Edge; proxy: FakeProxy }> {
  ca ??= createCa("fake route CA");
  const routeCa = await ca;
  const proxy = new FakeProxy();
  const edge = new Edge({
    driver: proxy,
    issuer: new LocalIssuer(routeCa),
    domain: "svc.mcp.test",
    drainMs: opts.drainMs ?? 0,
    renewBeforeMs: 30 * 86_400_000,
    routeCaPem: routeCa.cert,
    dns: opts.dns,
  });
  return { edge, proxy };
}

/** An in-memory DNS zone; `refuse` makes every update fail as a wrong TSIG key would. */
export class FakeDns implements DnsPublisher {
  readonly zone = "svc.mcp.test";
  readonly records = new Map<string, string>();
  refuse = false;

  upsert(name: string): Promise<void> {
    if (this.refuse) return Promise.reject(new Error(`DNS update of ${name} refused: NOTAUTH`));
    this.records.set(name, "192.0.2.10");
    return Promise.resolve();
  }

  remove(name: string): Promise<void> {
    if (this.refuse) return Promise.reject(new Error(`DNS update of ${name} refused: NOTAUTH`));
    this.records.delete(name);
    return Promise.resolve();
  }

  list(): Promise<DnsRecord[]> {
    return Promise.resolve(
      [...this.records].map(([name, address]) => ({ name, type: "A" as const, address, ttl: 60 })),
    );
  }
}
