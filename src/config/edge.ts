/**
 * The agent config's edge tables (issue 8; README "The agent"): `[proxy]`
 * (the agent's HAProxy), `[certs]` (who issues route certificates) and
 * `[dns]` (RFC 2136 updates). Each is optional: absent, that part of the
 * edge is off. Checked like the rest of the config, every problem with its
 * field path.
 */
import { isIP } from "node:net";
import { TableChecker, isTable, type Parse, type Table } from "../util/checker.js";
import { parseHostPort } from "./address.js";
import { formatDuration, parseDuration } from "./duration.js";
import { resolvePath } from "./files.js";

export interface ProxyConfig {
  driver: "haproxy";
  /** Config, maps, certificates, sockets. */
  dir: string;
  /** Address the route listeners bind. */
  bind: string;
  /** Plain listener for ACME HTTP-01 and the redirect to HTTPS; 0 = none. */
  httpPort: number;
  /** Default hostnames: `<service>.<domain>`. */
  domain: string;
  drainMs: number;
}

export interface CertsConfig {
  issuer: "local" | "acme";
  acmeDirectory: string;
  /** PEM to trust the ACME server's own TLS; "" = the system's roots. */
  acmeCaFile: string;
  acmeEmail: string;
  renewBeforeMs: number;
}

export interface DnsConfig {
  /** `host:port` of the DNS server taking updates. */
  server: string;
  zone: string;
  tsigKeyFile: string;
  /** The A (or AAAA) record's value. */
  address: string;
  ttl: number;
}

export interface EdgeConfig {
  proxy?: ProxyConfig;
  certs?: CertsConfig;
  dns?: DnsConfig;
}

export const EDGE_KEYS = {
  proxy: ["driver", "dir", "bind", "http_port", "domain", "drain"],
  certs: ["issuer", "acme_directory", "acme_ca_file", "acme_email", "renew_before"],
  dns: ["server", "zone", "tsig_key_file", "address", "ttl"],
};

const DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const DOMAIN_EXPECTED = "a lower-case domain name with at least one dot";

/** The edge tables of the parsed config `root` (a table already checked for unknown sections). */
export function edgeConfigFrom(
  c: TableChecker,
  root: Table | undefined,
  baseDir: string,
): EdgeConfig {
  const section = (key: keyof typeof EDGE_KEYS) => c.section(root, "", key, EDGE_KEYS[key]);
  const present = (key: string) => root !== undefined && isTable(root[key]);
  const path: Parse<string> = (v, p) => {
    const s = c.nonEmpty(v, p);
    return s === undefined ? undefined : resolvePath(baseDir, s);
  };
  const duration: Parse<number> = (v, p) =>
    c.parsing(parseDuration, 'a duration such as "2s"')(v, p);
  const ip: Parse<string> = (v, p) =>
    typeof v === "string" && isIP(v) !== 0 ? v : c.expected(p, "an IP address", v);
  const out: EdgeConfig = {};

  if (present("proxy")) {
    const proxy = section("proxy");
    out.proxy = {
      driver: proxy("driver", c.oneOf(["haproxy"] as const)) ?? "haproxy",
      dir: proxy("dir", path) ?? resolvePath(baseDir, "proxy"),
      bind: proxy("bind", ip) ?? "127.0.0.1",
      httpPort: proxy("http_port", c.integer(0, 65535)) ?? 80,
      domain: proxy("domain", c.matching(DOMAIN, DOMAIN_EXPECTED)) ?? "svc.mcp.test",
      drainMs: proxy("drain", duration) ?? parseDuration("2s"),
    };
  }
  if (present("certs")) {
    const certs = section("certs");
    const issuer = certs("issuer", c.oneOf(["local", "acme"] as const)) ?? "local";
    const https: Parse<string> = (v, p) =>
      typeof v === "string" && /^https:\/\/\S+$/.test(v) ? v : c.expected(p, "an https:// URL", v);
    out.certs = {
      issuer,
      // An ACME issuer needs to know where its server is.
      acmeDirectory: certs("acme_directory", https, issuer === "acme") ?? "",
      acmeCaFile: certs("acme_ca_file", (v, p) => (v === "" ? "" : path(v, p))) ?? "",
      acmeEmail: certs("acme_email", c.nonEmpty) ?? "",
      renewBeforeMs: certs("renew_before", duration) ?? parseDuration("720h"),
    };
  }
  if (present("dns")) {
    const dns = section("dns");
    out.dns = {
      server:
        dns(
          "server",
          c.parsing((text: string) => {
            parseHostPort(text);
            return text;
          }, '"host:port"'),
          true,
        ) ?? "",
      zone: dns("zone", c.matching(DOMAIN, DOMAIN_EXPECTED), true) ?? "",
      tsigKeyFile: dns("tsig_key_file", path, true) ?? "",
      address: dns("address", ip, true) ?? "",
      ttl: dns("ttl", c.integer(1, 86400)) ?? 60,
    };
  }
  return out;
}

/** The edge tables as TOML-ready objects (snake_case keys), for writing a config back. */
export function edgeConfigToTables(cfg: EdgeConfig): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  if (cfg.proxy) {
    out.proxy = {
      driver: cfg.proxy.driver,
      dir: cfg.proxy.dir,
      bind: cfg.proxy.bind,
      http_port: cfg.proxy.httpPort,
      domain: cfg.proxy.domain,
      drain: formatDuration(cfg.proxy.drainMs),
    };
  }
  if (cfg.certs) {
    out.certs = {
      issuer: cfg.certs.issuer,
      ...(cfg.certs.acmeDirectory ? { acme_directory: cfg.certs.acmeDirectory } : {}),
      acme_ca_file: cfg.certs.acmeCaFile,
      ...(cfg.certs.acmeEmail ? { acme_email: cfg.certs.acmeEmail } : {}),
      renew_before: formatDuration(cfg.certs.renewBeforeMs),
    };
  }
  if (cfg.dns) {
    out.dns = {
      server: cfg.dns.server,
      zone: cfg.dns.zone,
      tsig_key_file: cfg.dns.tsigKeyFile,
      address: cfg.dns.address,
      ttl: cfg.dns.ttl,
    };
  }
  return out;
}
