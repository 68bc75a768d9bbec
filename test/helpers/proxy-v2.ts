/**
 * What a container behind a `proxy_protocol` route sees first: a PROXY
 * protocol v2 header (HAProxy's proxy-protocol spec: the 12-byte signature,
 * version/command, family/transport, the length of what follows, then the
 * addresses and optional TLVs). A small reader for tests, and a TCP server
 * standing in for such a container: it reads the header (or finds there is
 * none) and hands the rest of the stream on untouched.
 */
import net from "node:net";

export const PROXY_V2_SIGNATURE = Buffer.from("\r\n\r\n\0\r\nQUIT\n", "latin1");

export interface ProxyAddress {
  address: string;
  port: number;
}

export interface ProxyV2Header {
  /** 0x21: version 2, PROXY (0x20 would be LOCAL: a health check of the proxy's own). */
  versionCommand: number;
  family: "unspec" | "inet" | "inet6" | "unix";
  transport: "unspec" | "stream" | "dgram";
  source?: ProxyAddress;
  destination?: ProxyAddress;
  /** Bytes of the whole header, TLVs included: the stream's own data starts after them. */
  length: number;
}

const FAMILIES = ["unspec", "inet", "inet6", "unix"] as const;
const TRANSPORTS = ["unspec", "stream", "dgram"] as const;

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(":");
}

/**
 * The header at the start of `buf`; `undefined` when the stream does not
 * start with the signature (no header); "incomplete" when more bytes are
 * needed to tell. Throws on a signature followed by something that is not
 * version 2.
 */
export function parseProxyV2(buf: Buffer): ProxyV2Header | "incomplete" | undefined {
  const head = buf.subarray(0, PROXY_V2_SIGNATURE.length);
  if (!PROXY_V2_SIGNATURE.subarray(0, head.length).equals(head)) return undefined;
  if (buf.length < 16) return "incomplete";
  const versionCommand = buf[12] ?? 0;
  if (versionCommand >> 4 !== 2) {
    throw new Error(`PROXY header version ${versionCommand >> 4}, not 2`);
  }
  const length = 16 + buf.readUInt16BE(14);
  if (buf.length < length) return "incomplete";
  const famByte = buf[13] ?? 0;
  const family = FAMILIES[famByte >> 4] ?? "unspec";
  const transport = TRANSPORTS[famByte & 0xf] ?? "unspec";
  const header: ProxyV2Header = { versionCommand, family, transport, length };
  const a = buf.subarray(16, length);
  if (family === "inet" && a.length >= 12) {
    const ip = (o: number) => [...a.subarray(o, o + 4)].join(".");
    header.source = { address: ip(0), port: a.readUInt16BE(8) };
    header.destination = { address: ip(4), port: a.readUInt16BE(10) };
  } else if (family === "inet6" && a.length >= 36) {
    header.source = { address: ipv6(a.subarray(0, 16)), port: a.readUInt16BE(32) };
    header.destination = { address: ipv6(a.subarray(16, 32)), port: a.readUInt16BE(34) };
  }
  return header;
}

/**
 * The server name (SNI) in a TLS ClientHello record at the start of `buf`,
 * read the way a passthrough proxy reads it (RFC 8446 §4.1.2, RFC 6066 §3);
 * undefined when it has none or is not a whole ClientHello.
 */
export function clientHelloSni(buf: Buffer): string | undefined {
  // Record: type 22 (handshake), version, length; handshake: type 1 (ClientHello), length.
  if (buf[0] !== 0x16 || buf.length < 9 || buf[5] !== 0x01) return undefined;
  if (buf.length < 5 + buf.readUInt16BE(3)) return undefined;
  let o = 9 + 2 + 32; // client version, random
  o += 1 + (buf[o] ?? 0); // session id
  o += 2 + buf.readUInt16BE(o); // cipher suites
  o += 1 + (buf[o] ?? 0); // compression methods
  const end = o + 2 + buf.readUInt16BE(o);
  o += 2;
  while (o + 4 <= end) {
    const type = buf.readUInt16BE(o);
    const size = buf.readUInt16BE(o + 2);
    if (type === 0) {
      // server_name_list: list length, then name type 0 (host_name), name length, name.
      const nameLength = buf.readUInt16BE(o + 4 + 3);
      return buf.subarray(o + 4 + 5, o + 4 + 5 + nameLength).toString("latin1");
    }
    o += 4 + size;
  }
  return undefined;
}

/** Whole when it holds one complete TLS record (a ClientHello) or the end of HTTP headers. */
export function firstMessageComplete(rest: Buffer): boolean {
  if (rest[0] === 0x16) return rest.length >= 5 && rest.length >= 5 + rest.readUInt16BE(3);
  return rest.includes("\r\n\r\n");
}

/**
 * A TCP server that reads a connection's PROXY v2 header, if any, and the
 * first message after it (see firstMessageComplete), then calls `handle`
 * with the socket paused and those bytes put back in front of the stream:
 * whatever reads the socket next sees it as if nothing had been read.
 */
export function proxyAwareServer(
  handle: (socket: net.Socket, header: ProxyV2Header | undefined, first: Buffer) => void,
): net.Server {
  return net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let header: ProxyV2Header | "incomplete" | undefined;
      try {
        header = parseProxyV2(buf);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      if (header === "incomplete") return;
      const first = buf.subarray(header?.length ?? 0);
      if (!firstMessageComplete(first)) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(first);
      handle(socket, header, first);
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
}
