import { isIP } from "node:net";

/** A `host:port` pair; IPv6 hosts are written `[::1]:9444` and stored without brackets. */
export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** Parses `host:port` / `[v6]:port`; throws an Error saying what is wrong. */
export function parseHostPort(text: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m?.[1] || m[2] === undefined) {
    throw new Error(
      `invalid address ${JSON.stringify(text)}: expected host:port (IPv6 as [::1]:9444)`,
    );
  }
  const host = m[1];
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`invalid address ${JSON.stringify(text)}: port out of range`);
  if (isIP(host) === 0 && !HOSTNAME.test(host)) {
    throw new Error(`invalid address ${JSON.stringify(text)}: bad host name`);
  }
  if (text.startsWith("[") && isIP(host) !== 6) {
    throw new Error(`invalid address ${JSON.stringify(text)}: brackets are for IPv6 addresses`);
  }
  return { host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for addresses that only reach this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** True for wildcard listen addresses, which are not names a client can dial. */
export function isUnspecifiedHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}
