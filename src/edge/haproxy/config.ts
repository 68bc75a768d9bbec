/**
 * HAProxy's configuration for the routes of one node (issue 8; the layout
 * measured in the project's edge notes, summarised in docs/ARCHITECTURE.md
 * "Edge"): one TCP frontend per listener port reads the TLS ClientHello's
 * SNI; a name in the listener's L4 map goes, still encrypted, to
 * 127.0.0.1:<host port> from the map; anything else goes over an abstract
 * socket (PROXY v2, so client addresses survive) to the listener's L7
 * frontend, which terminates TLS (crt-list, a default certificate for
 * names it has none for), answers 421 to an unknown Host and sends plain
 * HTTP with X-Forwarded-For/-Proto to the host port from the L7 map.
 * Routes with `proxy_protocol` sit in a second pair of maps (l4pp, l7pp)
 * whose backends' server sends a PROXY v2 header first, so the container
 * learns the client's address: a map, not per-route config, because route
 * changes must not need a reload. The PROXY-protocol maps are looked up
 * first, so a route moving from one map to the other (added to the new one,
 * then deleted from the old) is never unknown in between.
 *
 * Routes live in the map files, not here: the runtime API changes them
 * without a reload, and this text changes only when the set of listener
 * ports does. Pure: the driver writes what these functions return.
 */
import path from "node:path";
import { CHALLENGE_PREFIX } from "../certs/http01.js";

export interface ProxyLayout {
  /** `[proxy] dir`: config, maps, certificates, sockets. */
  dir: string;
  /** Address the listeners bind (`[proxy] bind`). */
  bind: string;
  /** Listener ports (route `port`s), each served for L4 and L7 names alike. */
  listeners: readonly number[];
  /** `[proxy] http_port`: plain HTTP for ACME HTTP-01, everything else redirected to https; 0 = none. */
  httpPort?: number;
}

/** Where the files of `listener` live under `dir`. */
export function listenerFiles(dir: string, listener: number) {
  return {
    l4Map: path.join(dir, `l4-${listener}.map`),
    l7Map: path.join(dir, `l7-${listener}.map`),
    /** Routes whose container gets a PROXY v2 header first. */
    l4ppMap: path.join(dir, `l4pp-${listener}.map`),
    l7ppMap: path.join(dir, `l7pp-${listener}.map`),
    crtList: path.join(dir, `certs-${listener}.crtlist`),
  };
}

/** The certificate (full chain, then key) HAProxy serves for `hostname`. */
export function certFile(dir: string, hostname: string): string {
  return path.join(dir, "certs", `${hostname.toLowerCase()}.pem`);
}

export function proxyFiles(dir: string) {
  return {
    config: path.join(dir, "haproxy.cfg"),
    adminSocket: path.join(dir, "admin.sock"),
    masterSocket: path.join(dir, "master.sock"),
    /** The master's pid (`-p`): how a restarted agent finds the HAProxy it left running. */
    pidFile: path.join(dir, "haproxy.pid"),
    /** HAProxy's own output (start, reload, alerts). */
    logFile: path.join(dir, "haproxy.log"),
    /** Served to names without a certificate of their own (HAProxy needs one per TLS bind). */
    defaultCert: path.join(dir, "default.pem"),
    /** The HTTP-01 responder (src/edge/certs/http01.ts) the plain listener sends challenges to. */
    acmeSocket: path.join(dir, "acme.sock"),
  };
}

/** `host port` lines, sorted, one per route: the map files' format. */
export function renderMap(entries: ReadonlyMap<string, number>): string {
  return [...entries]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, port]) => `${host.toLowerCase()} ${port}\n`)
    .join("");
}

function bindAddress(bind: string): string {
  return bind.includes(":") ? `[${bind}]` : bind;
}

function listenerSection(layout: ProxyLayout, listener: number): string[] {
  const f = listenerFiles(layout.dir, listener);
  const { defaultCert } = proxyFiles(layout.dir);
  const l7Socket = `abns@mcp-l7-${listener}`;
  const host = "req.hdr(host),field(1,:),lower";
  const bind = bindAddress(layout.bind);
  return [
    `frontend listener_${listener}`,
    `  bind ${bind}:${listener}`,
    "  tcp-request inspect-delay 5s",
    "  tcp-request content accept if { req.ssl_hello_type 1 }",
    `  use_backend l4pp_${listener} if { req.ssl_sni,lower,map(${f.l4ppMap}) -m found }`,
    `  use_backend l4_${listener} if { req.ssl_sni,lower,map(${f.l4Map}) -m found }`,
    `  default_backend to_l7_${listener}`,
    "",
    `backend l4_${listener}`,
    "  tcp-request content set-dst ipv4(127.0.0.1)",
    `  tcp-request content set-dst-port req.ssl_sni,lower,map(${f.l4Map})`,
    // 0.0.0.0:0: connect where set-dst says (HAProxy's documented way).
    "  server route 0.0.0.0:0",
    "",
    `backend l4pp_${listener}`,
    "  tcp-request content set-dst ipv4(127.0.0.1)",
    `  tcp-request content set-dst-port req.ssl_sni,lower,map(${f.l4ppMap})`,
    "  server route 0.0.0.0:0 send-proxy-v2",
    "",
    `backend to_l7_${listener}`,
    `  server l7 ${l7Socket} send-proxy-v2`,
    "",
    `frontend l7_${listener}`,
    "  mode http",
    `  bind ${l7Socket} accept-proxy ssl crt ${defaultCert} crt-list ${f.crtList} alpn h2,http/1.1`,
    `  http-request return status 421 unless { ${host},map(${f.l7Map}) -m found } || { ${host},map(${f.l7ppMap}) -m found }`,
    `  use_backend l7pp_routes_${listener} if { ${host},map(${f.l7ppMap}) -m found }`,
    `  default_backend l7_routes_${listener}`,
    "",
    ...l7Backend(`l7_routes_${listener}`, host, f.l7Map, ""),
    // The header carries the client's address from the listener's PROXY v2 (accept-proxy above).
    ...l7Backend(`l7pp_routes_${listener}`, host, f.l7ppMap, " send-proxy-v2"),
  ];
}

function l7Backend(name: string, host: string, map: string, serverOptions: string): string[] {
  return [
    `backend ${name}`,
    "  mode http",
    "  option forwardfor",
    "  http-request set-header X-Forwarded-Proto https",
    "  http-request set-dst ipv4(127.0.0.1)",
    `  http-request set-dst-port ${host},map(${map})`,
    `  server route 0.0.0.0:0${serverOptions}`,
    "",
  ];
}

/**
 * The plain-HTTP listener: an ACME server fetching an HTTP-01 challenge
 * reaches the agent's responder (a unix socket, so the agent opens no port);
 * every other request is redirected to https, the only way routes serve.
 */
function httpSection(layout: ProxyLayout, port: number): string[] {
  const bind = bindAddress(layout.bind);
  return [
    `frontend http_${port}`,
    "  mode http",
    `  bind ${bind}:${port}`,
    // http-request rules run before use_backend: the redirect must leave challenges alone.
    `  http-request redirect scheme https code 301 unless { path_beg ${CHALLENGE_PREFIX} }`,
    `  use_backend acme_http01 if { path_beg ${CHALLENGE_PREFIX} }`,
    "",
    "backend acme_http01",
    "  mode http",
    `  server responder unix@${proxyFiles(layout.dir).acmeSocket}`,
    "",
  ];
}

/** The whole configuration file. */
export function renderHaproxyConfig(layout: ProxyLayout): string {
  const files = proxyFiles(layout.dir);
  const lines = [
    "# written by mcp-agent: routes are in the map files next to it",
    "global",
    `  stats socket ${files.adminSocket} mode 600 level admin expose-fd listeners`,
    "",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "",
    ...[...new Set(layout.listeners)]
      .sort((a, b) => a - b)
      .flatMap((l) => listenerSection(layout, l)),
    ...(layout.httpPort ? httpSection(layout, layout.httpPort) : []),
  ];
  return lines.join("\n");
}
