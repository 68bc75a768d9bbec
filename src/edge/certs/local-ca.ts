/**
 * `[certs] issuer = "local"` (issue 8): a CA of the agent's own for route
 * certificates, kept under `[proxy] dir` and separate from the CA of its
 * gRPC server, so no route certificate can ever impersonate the agent. It
 * issues 90-day leaves; HAProxy gets them as full chain then key.
 */
import { X509Certificate } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createCa, issueServerCert, type CertPair } from "../../certs/x509.js";
import type { CertIssuer, RouteCert } from "../types.js";

export const ROUTE_CERT_DAYS = 90;

export function routeCaFiles(dir: string) {
  return { cert: path.join(dir, "route-ca.crt"), key: path.join(dir, "route-ca.key") };
}

/** The route CA under `dir`, made on first use (key 0600). */
export async function loadOrCreateRouteCa(dir: string, node: string): Promise<CertPair> {
  const files = routeCaFiles(dir);
  try {
    return { cert: await readFile(files.cert, "utf8"), key: await readFile(files.key, "utf8") };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa(`mcp route CA (${node})`);
  await writeFile(files.key, ca.key, { mode: 0o600, flag: "wx" });
  await writeFile(files.cert, ca.cert, { mode: 0o644, flag: "wx" });
  return ca;
}

/** A 90-day leaf for `hostname`, signed by the route CA. */
export function issueRouteCert(ca: CertPair, hostname: string): Promise<CertPair> {
  return issueServerCert(ca, { commonName: hostname, sans: [hostname], days: ROUTE_CERT_DAYS });
}

/** What HAProxy loads for a route: the leaf, the chain up to the CA, then the key. */
export function routePem(leaf: CertPair, ca: CertPair): string {
  return `${leaf.cert.trim()}\n${ca.cert.trim()}\n${leaf.key.trim()}\n`;
}

/** Whether a certificate has `renewBeforeMs` or less left at `now` (pure). */
export function needsRenewal(certPem: string, renewBeforeMs: number, now = new Date()): boolean {
  const validTo = new Date(new X509Certificate(certPem).validTo);
  return validTo.getTime() - now.getTime() <= renewBeforeMs;
}

/** What `mcp cert list` shows of a route certificate's PEM (leaf first). */
export function describeCert(
  hostname: string,
  pem: string,
  issuer: "local" | "acme",
): Omit<RouteCert, "pem"> {
  const leaf = new X509Certificate(pem);
  return { hostname, issuer, notAfter: new Date(leaf.validTo), serial: leaf.serialNumber };
}

/** Whether the leaf at the start of `pem` was signed by the route CA `caPem`. */
export function signedBy(pem: string, caPem: string): boolean {
  try {
    return new X509Certificate(pem).checkIssued(new X509Certificate(caPem));
  } catch {
    return false;
  }
}

/** `[certs] issuer = "local"`: the route CA signs every L7 route's certificate. */
export class LocalIssuer implements CertIssuer {
  readonly kind = "local";

  constructor(private readonly ca: CertPair) {}

  async issue(hostname: string): Promise<RouteCert> {
    const pem = routePem(await issueRouteCert(this.ca, hostname), this.ca);
    return { ...describeCert(hostname, pem, "local"), pem };
  }
}
