/**
 * Certificates made in-process with `selfsigned` (WebCrypto underneath): no
 * child process, no network, ~tens of ms. A CA, and server certificates it
 * signs: the agent's gRPC certificate (src/agent/server/tls.ts) and, with
 * `[certs] issuer = "local"`, route certificates (issue 8), each from its
 * own CA. Keys are EC P-256 unless an existing RSA CA is reused (selfsigned
 * signs with the leaf's key type).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { generate as Generate } from "selfsigned";
import { McpError } from "../util/errors.js";

/**
 * selfsigned (and the X.509 libraries behind it) is only needed when a
 * certificate is made (`mcp-agent init`, a route's first certificate):
 * loaded on demand so a serving agent does not carry it (about 12 MB of
 * resident memory and 80 ms of start-up).
 */
async function loadGenerate(): Promise<typeof Generate> {
  return (await import("selfsigned")).generate;
}

/** PEM certificate and its PEM private key. */
export interface CertPair {
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;
// Backdate a little so a node whose clock runs slightly behind still accepts it.
const notBefore = () => new Date(Date.now() - 5 * 60_000);
const after = (days: number) => new Date(Date.now() + days * DAY_MS);

/** Creates a self-signed CA (10 years by default): the agent's, or the one for route certificates. */
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
