/**
 * Podman `-p` mappings: the old-style explicit `ports` of a component, and the
 * mappings the agent builds for routes.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { RouteProtocol } from "./types.js";

export interface PortMapping {
  /** Without brackets for IPv6 (`::1`). Absent when the mapping binds every address. */
  hostIp?: string;
  /** Absent when podman would pick the host port (`8080`, `ip::8080`). */
  hostPort?: number;
  containerPort: number;
  protocol: RouteProtocol;
}

const PORT_RE = /^[1-9][0-9]{0,4}$/;

function portNumber(s: string): number | undefined {
  if (!PORT_RE.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

/**
 * Parses `[ip:][hostPort:]containerPort[/tcp|/udp]` (IPv6 as `[::1]:8080:80`).
 * Returns undefined for anything else, including port ranges, so callers
 * never guess at a mapping they do not understand.
 */
export function parsePortMapping(s: string): PortMapping | undefined {
  let rest = s;
  let protocol: RouteProtocol = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const proto = rest.slice(slash + 1);
    if (proto !== "tcp" && proto !== "udp") return undefined;
    protocol = proto;
    rest = rest.slice(0, slash);
  }

  let hostIp: string | undefined;
  if (rest.startsWith("[")) {
    // Bracketed IPv6 host address: the only form where the address has colons.
    const close = rest.indexOf("]:");
    if (close < 0) return undefined;
    hostIp = rest.slice(1, close);
    if (!isIPv6(hostIp)) return undefined;
    rest = rest.slice(close + 2);
  }

  const parts = rest.split(":");
  if (hostIp === undefined && parts.length === 3) {
    hostIp = parts.shift();
    if (hostIp === undefined || !isIPv4(hostIp)) return undefined;
  }
  // With a host address, the host port may be empty (`ip::80`: podman picks).
  const [first, second] = parts;
  let hostPort: number | undefined;
  let containerPort: number | undefined;
  if (parts.length === 1 && hostIp === undefined) {
    containerPort = portNumber(first ?? "");
  } else if (parts.length === 2 && second !== undefined) {
    if (first !== "" || hostIp === undefined) {
      hostPort = portNumber(first ?? "");
      if (hostPort === undefined) return undefined;
    }
    containerPort = portNumber(second);
  }
  if (containerPort === undefined) return undefined;

  const mapping: PortMapping = { containerPort, protocol };
  if (hostIp !== undefined) mapping.hostIp = hostIp;
  if (hostPort !== undefined) mapping.hostPort = hostPort;
  return mapping;
}

/**
 * The `-p` value for a route with host port H: `<bind>:H:H` (container port =
 * host port = $PORT, reference §7.3), `/udp` for UDP routes. An IPv6 bind
 * address is bracketed; an empty one binds every address.
 */
export function formatRouteMapping(
  bind: string,
  hostPort: number,
  protocol: RouteProtocol,
): string {
  const host = bind === "" ? "" : isIPv6(bind) ? `[${bind}]:` : `${bind}:`;
  return `${host}${hostPort}:${hostPort}${protocol === "udp" ? "/udp" : ""}`;
}
