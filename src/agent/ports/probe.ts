import dgram from "node:dgram";
import net from "node:net";

/**
 * Asks the OS whether a host port is really free, by binding it and closing
 * again. The allocator's books only know MCP's own ports; this catches
 * everything else (other daemons, containers started by hand, conmon of a
 * container whose registry row was lost).
 */

export type PortProtocol = "tcp" | "udp";

const WILDCARD_V4 = "0.0.0.0";
const WILDCARD_V6 = "::";

/** Bind errors that mean "this host has no IPv6", not "the port is taken". */
const NO_IPV6 = new Set(["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"]);

/**
 * True only if `port` can be bound for `protocol` on every address in
 * `addresses`, on 0.0.0.0, and on :: when the host has IPv6.
 *
 * The wildcard binds matter: a listener on any specific address (rootful
 * conmon holds 127.0.0.1:H for a published port) makes the wildcard bind fail
 * with EADDRINUSE, so a port in use anywhere on the host probes as taken.
 */
export async function probePort(
  port: number,
  protocol: PortProtocol,
  addresses: string[],
): Promise<boolean> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false;
  const bind = protocol === "tcp" ? bindTcp : bindUdp;
  const hosts = [...new Set([...addresses.map(stripBrackets), WILDCARD_V4])];
  // One bind at a time, each closed before the next: our own wildcard socket
  // would otherwise make the specific-address bind fail.
  for (const host of hosts) {
    if ((await bind(host, port)) !== undefined) return false;
  }
  if (hosts.includes(WILDCARD_V6)) return true;
  const v6 = await bind(WILDCARD_V6, port);
  return v6 === undefined || NO_IPV6.has(v6);
}

/** Resolves undefined when host:port could be bound (and was closed again), else the error code. */
type BindAttempt = (host: string, port: number) => Promise<string | undefined>;

const bindTcp: BindAttempt = (host, port) =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "EUNKNOWN"));
    // exclusive: never share a handle through the cluster primary, which would
    // make the bind "succeed" against a port our own process already holds.
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolve(undefined));
    });
  });

const bindUdp: BindAttempt = (host, port) =>
  new Promise((resolve) => {
    // reuseAddr stays off (the default), so an existing UDP socket on the
    // port makes our bind fail instead of silently sharing it.
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? "udp6" : "udp4" });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      closeQuietly(socket);
      resolve(err.code ?? "EUNKNOWN");
    });
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.close(() => resolve(undefined));
    });
  });

function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // Already closed after a failed bind: nothing to release.
  }
}

/** Accepts "[::1]" as well as "::1" in configured bind addresses. */
function stripBrackets(address: string): string {
  return address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
}
