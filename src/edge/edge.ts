/**
 * The node's edge as the agent uses it (docs/ARCHITECTURE.md "Edge"): the
 * proxy driver, the certificate issuer and (optionally) the DNS publisher,
 * behind a few calls that speak in proxy entries. It keeps no state of its
 * own: the agent's registry says which entries exist, the proxy's files and
 * certificates say what HAProxy serves.
 */
import { describeCert, needsRenewal, signedBy } from "./certs/local-ca.js";
import type { CertIssuer, DnsPublisher, ProxyDriver, ProxyRoute, RouteCert } from "./types.js";

/** One name on one listener of the proxy, and where it goes. */
export interface ProxyEntry {
  listener: number;
  hostname: string;
  mode: "l4" | "l7";
  backendPort: number;
  proxyProtocol: boolean;
}

export interface EdgeOptions {
  driver: ProxyDriver;
  issuer: CertIssuer;
  dns?: DnsPublisher | undefined;
  /** `[proxy] domain`: default hostnames are `<service>.<domain>`. */
  domain: string;
  /** `[proxy] drain`: how long an old backend keeps its connections after a swap. */
  drainMs: number;
  /** `[certs] renew_before`. */
  renewBeforeMs: number;
  /** The local route CA's certificate (`mcp cert ca`); it also signs the default certificate. */
  routeCaPem: string;
}

export function toProxyRoute(entry: ProxyEntry, certPem?: string): ProxyRoute {
  return {
    listener: entry.listener,
    hostname: entry.hostname,
    mode: entry.mode,
    hostPort: entry.backendPort,
    proxyProtocol: entry.proxyProtocol,
    ...(certPem ? { certPem } : {}),
  };
}

export class Edge {
  readonly driver: ProxyDriver;
  readonly issuer: CertIssuer;
  readonly dns: DnsPublisher | undefined;
  readonly domain: string;
  readonly drainMs: number;
  readonly renewBeforeMs: number;
  readonly routeCaPem: string;

  constructor(opts: EdgeOptions) {
    this.driver = opts.driver;
    this.issuer = opts.issuer;
    this.dns = opts.dns;
    this.domain = opts.domain;
    this.drainMs = opts.drainMs;
    this.renewBeforeMs = opts.renewBeforeMs;
    this.routeCaPem = opts.routeCaPem;
  }

  /** The certificate HAProxy has for `hostname`, if any. */
  async currentCert(hostname: string): Promise<RouteCert | undefined> {
    const pem = await this.driver.certificate(hostname);
    if (!pem) return undefined;
    const issuer = signedBy(pem, this.routeCaPem) ? "local" : "acme";
    return { ...describeCert(hostname, pem, issuer), pem };
  }

  /**
   * A certificate for `hostname` from the configured issuer: the one the
   * proxy already has while it has more than `renew_before` left, else a
   * new one (not yet given to the proxy: the route step does that).
   */
  async certFor(hostname: string, now = new Date()): Promise<{ cert: RouteCert; fresh: boolean }> {
    const current = await this.currentCert(hostname);
    if (
      current &&
      current.issuer === this.issuer.kind &&
      !needsRenewal(current.pem, this.renewBeforeMs, now)
    ) {
      return { cert: current, fresh: false };
    }
    return { cert: await this.issuer.issue(hostname), fresh: true };
  }

  /** Makes the proxy listen on exactly the listeners `entries` use (a reload only on a change). */
  async listenFor(entries: readonly ProxyEntry[]): Promise<void> {
    await this.driver.setListeners(entries.map((e) => e.listener));
  }

  /** Adds or repoints one entry (L7: with `certPem`, when a new certificate goes with it). */
  apply(entry: ProxyEntry, certPem?: string): Promise<void> {
    return this.driver.setRoute(toProxyRoute(entry, certPem));
  }

  remove(entry: ProxyEntry): Promise<void> {
    return this.driver.removeRoute(entry.listener, entry.hostname, entry.mode);
  }
}
