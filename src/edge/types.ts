/**
 * What the agent asks of the edge (issue 8; docs/ARCHITECTURE.md "Edge"):
 * a proxy serving routes, certificates for L7 route hostnames, and DNS
 * records for route hostnames.
 * Each has one implementation per `[certs] issuer` / `[dns]` backend; the
 * agent only sees these interfaces, unit tests script them.
 */

/** A route certificate as HAProxy loads it, with what `mcp cert list` shows. */
export interface RouteCert {
  hostname: string;
  /** Leaf, then the chain up to (not always including) the root, then the key. */
  pem: string;
  issuer: "local" | "acme";
  notAfter: Date;
  /** Hex, upper-case, as openssl prints it. */
  serial: string;
}

export interface CertIssuer {
  readonly kind: "local" | "acme";
  /** A new certificate for `hostname`; a failure is an McpError carrying the issuer's own words. */
  issue(hostname: string): Promise<RouteCert>;
}

export interface DnsRecord {
  name: string;
  type: "A" | "AAAA";
  address: string;
  ttl: number;
}

export interface DnsPublisher {
  /** The zone the publisher may change; names outside it are never touched. */
  readonly zone: string;
  /** Makes `name` point at the node's address (A, or AAAA for IPv6), replacing what it had. */
  upsert(name: string): Promise<void>;
  /** Removes the node's record for `name` (nothing to remove is not an error). */
  remove(name: string): Promise<void>;
  /** The A and AAAA records of the zone. */
  list(): Promise<DnsRecord[]>;
}

export interface ProxyRoute {
  listener: number;
  hostname: string;
  mode: "l4" | "l7";
  hostPort: number;
  /** L7: the certificate (full chain, then key) HAProxy terminates TLS with. */
  certPem?: string;
  /** The container gets a PROXY v2 header first (the route's `proxy_protocol`): the l4pp/l7pp maps. */
  proxyProtocol?: boolean;
}

/** An entry HAProxy has loaded in one of a listener's maps (what `show map` says). */
export interface LiveRoute {
  listener: number;
  hostname: string;
  mode: "l4" | "l7";
  proxyProtocol: boolean;
  hostPort: number;
}

/**
 * What the edge needs of a proxy (HaproxyDriver in src/edge/haproxy is the
 * one there is; unit tests use an in-memory one).
 */
export interface ProxyDriver {
  /** Listen on exactly these listener ports. */
  setListeners(listeners: readonly number[]): Promise<void>;
  /** Add or repoint one route (L7: with its certificate when `certPem`). */
  setRoute(route: ProxyRoute): Promise<void>;
  removeRoute(listener: number, hostname: string, mode: "l4" | "l7"): Promise<void>;
  /** Serve exactly `routes`; how many live entries had to change. */
  sync(routes: readonly ProxyRoute[]): Promise<number>;
  /** The certificate (full chain, then key) served for `hostname`, if any. */
  certificate(hostname: string): Promise<string | undefined>;
  /** What the running proxy serves now (its live maps, not the files). */
  liveRoutes(): Promise<LiveRoute[]>;
  /** The plain-HTTP port (ACME HTTP-01, redirect to https); 0 = none. */
  readonly httpPort: number;
}
