/**
 * The arguments of a manual route (`mcp route add/remove`, the AddRoute and
 * RemoveRoute RPCs): checked by the CLI before it dials (bad input exits 2)
 * and again by the agent, which trusts no client. Pure; each refusal is an
 * McpError("invalid_argument") saying what was expected.
 */
import { isIP } from "node:net";
import { McpError } from "../util/errors.js";

const DNS_LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
/** What servicedef/validate.ts accepts as a route hostname (compared lower-cased). */
const HOSTNAME_RE = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`);

/**
 * The backend hosts a manual route may name. HAProxy's route maps carry only
 * a port and its backends dial it on loopback (docs/ARCHITECTURE.md "Edge"),
 * so any other host would be silently ignored.
 */
const LOOPBACK_BACKENDS = new Set(["127.0.0.1", "localhost", "::1"]);

export type RouteMode = "l4" | "l7";

function bad(message: string): McpError {
  return new McpError("invalid_argument", message);
}

/** A port 1-65535 written as decimal digits (`what` names it in the message). */
export function parsePort(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text.trim()) || n < 1 || n > 65535) {
    throw bad(`${what}: expected a port 1-65535, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** A listener port as the agent receives it (an int32). */
export function checkListener(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw bad(`listener: expected a port 1-65535, got ${port}`);
  }
  return port;
}

/** The name clients ask for (SNI, Host), lower-cased: a DNS name. */
export function checkRouteHostname(hostname: string): string {
  const name = hostname.trim().toLowerCase();
  if (!HOSTNAME_RE.test(name)) {
    throw bad(
      `hostname: expected a DNS name such as app.example.com, got ${JSON.stringify(hostname)}`,
    );
  }
  return name;
}

/** `l4` (TLS passed through by SNI) or `l7` (the proxy terminates TLS). */
export function checkRouteMode(mode: string): RouteMode {
  if (mode === "l4" || mode === "l7") return mode;
  throw bad(`mode: expected l4 or l7, got ${JSON.stringify(mode)}`);
}

/** `host:port` (IPv6 as `[::1]:port`), the host on loopback. */
export function parseBackend(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m?.[1] || m[2] === undefined) {
    throw bad(
      `backend: expected host:port such as 127.0.0.1:8080, got ${JSON.stringify(text)} (IPv6 as [::1]:8080)`,
    );
  }
  const host = m[1].toLowerCase();
  if (!LOOPBACK_BACKENDS.has(host)) {
    const kind = isIP(host) === 0 ? "host" : "address";
    throw bad(
      `backend: ${kind} ${JSON.stringify(m[1])} is not this node's loopback; the proxy reaches backends on 127.0.0.1 only (its maps carry just a port), so use 127.0.0.1, localhost or ::1`,
    );
  }
  return { host, port: parsePort(m[2], "backend port") };
}

/** `host:port` as a backend reads in listings. */
export function formatBackend(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
