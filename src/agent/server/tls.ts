/**
 * The agent's gRPC TLS: the names its server certificate needs, and server
 * credentials that accept TLS 1.3 only. The certificates themselves are
 * made by src/certs/x509.ts.
 */
import { isIP } from "node:net";
import { hostname } from "node:os";
import type { SecureServerOptions } from "node:http2";
import { ServerCredentials } from "@grpc/grpc-js";
import type { CertPair } from "../../certs/x509.js";
import { DEFAULT_TRANSPORT_LIMITS } from "../../protocol/limits.js";
import { McpError } from "../../util/errors.js";
import { isUnspecifiedHost, parseHostPort } from "../../config/address.js";

const DNS_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/**
 * The SANs a node's certificate needs: the listen host, `localhost` and
 * `127.0.0.1` (the CLI dials loopback agents by the name localhost), the node
 * name, and any extras. A wildcard listen address (0.0.0.0, ::) is not a name
 * anyone dials, so the machine's host name stands in for it. Lower-cased,
 * deduplicated, order kept.
 */
export function serverSans(listen: string, node: string, extra: readonly string[] = []): string[] {
  const { host } = parseHostPort(listen);
  const out: string[] = [];
  const add = (raw: string, strict: boolean) => {
    const name = isIP(raw) ? raw : raw.toLowerCase();
    if (!isIP(name) && !DNS_NAME.test(name)) {
      if (!strict) return;
      throw new McpError(
        "invalid_argument",
        `bad certificate name ${JSON.stringify(raw)}: not an IP address or DNS name`,
      );
    }
    if (!out.includes(name)) out.push(name);
  };
  if (isUnspecifiedHost(host)) add(hostname(), false);
  else add(host, true);
  for (const name of ["localhost", "127.0.0.1", node, ...extra]) add(name, true);
  return out;
}

/**
 * gRPC server credentials that only speak TLS 1.3 and ask for no client
 * certificate.
 *
 * grpc-js's `ServerCredentials.createSsl` has no protocol-version option, but
 * the server builds its `http2.createSecureServer` options by spreading the
 * credentials' constructor options and secure-context options
 * (grpc-js 1.14 server.js `createHttp2Server`). Subclassing ServerCredentials
 * (its constructor is public API) lets us put `minVersion: "TLSv1.3"` there, so
 * Node's TLS stack refuses anything older during the handshake, before any
 * HTTP/2 or gRPC byte. This is per server: no process-wide
 * `tls.DEFAULT_MIN_VERSION` change. The TLS handshake timeout goes there too.
 */
class Tls13ServerCredentials extends ServerCredentials {
  constructor(cert: string, key: string, handshakeTimeoutMs: number) {
    const serverOptions: SecureServerOptions = {
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      requestCert: false,
      // Node's default is 120 s for a client that connects and never finishes TLS.
      handshakeTimeout: handshakeTimeoutMs,
    };
    super(serverOptions, { cert, key, minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
  }
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

export function tls13ServerCredentials(
  pair: CertPair,
  opts: { handshakeTimeoutMs?: number } = {},
): ServerCredentials {
  return new Tls13ServerCredentials(
    pair.cert,
    pair.key,
    opts.handshakeTimeoutMs ?? DEFAULT_TRANSPORT_LIMITS.firstRequestTimeoutMs,
  );
}
