/**
 * The agent's TLS material: a small CA, the node's server certificate, and
 * gRPC server credentials that accept TLS 1.3 only.
 *
 * Certificates are made in-process with `selfsigned` (WebCrypto underneath):
 * no child process, no network, ~tens of ms. Keys are EC P-256 unless an
 * existing RSA CA is reused (selfsigned signs with the leaf's key type).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { hostname } from "node:os";
import type { SecureServerOptions } from "node:http2";
import type { generate as Generate } from "selfsigned";
import { ServerCredentials } from "@grpc/grpc-js";
import { DEFAULT_TRANSPORT_LIMITS } from "../../protocol/limits.js";
import { McpError } from "../../util/errors.js";
import { isUnspecifiedHost, parseHostPort } from "../../config/address.js";

/** PEM certificate and its PEM private key. */
/**
 * selfsigned (and the X.509 libraries behind it) is only needed by
 * `mcp-agent init`: loaded on demand so a serving agent does not carry it
 * (about 12 MB of resident memory and 80 ms of start-up).
 */
async function loadGenerate(): Promise<typeof Generate> {
  return (await import("selfsigned")).generate;
}

export interface CertPair {
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;
// Backdate a little so a node whose clock runs slightly behind still accepts it.
const notBefore = () => new Date(Date.now() - 5 * 60_000);
const after = (days: number) => new Date(Date.now() + days * DAY_MS);

/** Creates a self-signed CA (10 years by default) for signing agent certificates. */
export async function createCa(commonName: string, days = 3650): Promise<CertPair> {
  const generate = await loadGenerate();
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: notBefore(),
    notAfterDate: after(days),
    extensions: [
      { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
      {
        name: "keyUsage",
        keyCertSign: true,
        cRLSign: true,
        digitalSignature: true,
        critical: true,
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Checks that a CA pair is usable for signing, and returns its key type. */
export function checkCa(ca: CertPair): "ec" | "rsa" {
  let x509: X509Certificate;
  let keyType: string | undefined;
  try {
    x509 = new X509Certificate(ca.cert);
    const key = createPrivateKey(ca.key);
    keyType = key.asymmetricKeyType;
    if (!x509.checkPrivateKey(key)) throw new Error("the CA key does not match the CA certificate");
  } catch (err) {
    throw new McpError("invalid_argument", `unusable CA: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!x509.ca) throw new McpError("invalid_argument", "unusable CA: the certificate is not a CA");
  if (keyType !== "ec" && keyType !== "rsa") {
    throw new McpError("invalid_argument", `unusable CA: unsupported key type ${keyType}`);
  }
  return keyType;
}

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

/** Issues a server certificate (1 year by default) signed by `ca`. */
export async function issueServerCert(
  ca: CertPair,
  opts: { commonName: string; sans: readonly string[]; days?: number },
): Promise<CertPair> {
  const keyType = checkCa(ca);
  const generate = await loadGenerate();
  const pems = await generate([{ name: "commonName", value: opts.commonName }], {
    keyType,
    curve: "P-256",
    keySize: 2048,
    algorithm: "sha256",
    notBeforeDate: notBefore(),
    notAfterDate: after(opts.days ?? 365),
    ca: { cert: ca.cert, key: ca.key },
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      // keyEncipherment only means something for RSA key exchange.
      {
        name: "keyUsage",
        digitalSignature: true,
        keyEncipherment: keyType === "rsa",
        critical: true,
      },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: opts.sans.map((n) =>
          isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n },
        ),
      },
    ],
  });
  // Belt and braces: never write a certificate the CA did not actually sign.
  const leaf = new X509Certificate(pems.cert);
  if (!leaf.verify(new X509Certificate(ca.cert).publicKey)) {
    throw new McpError("internal", "issued certificate does not verify against the CA");
  }
  return { cert: pems.cert, key: pems.private };
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
