/**
 * A client's view of the agent's proxy for the edge tests: curl with
 * `--resolve` (the names need not exist in any resolver), the chain
 * `openssl s_client -showcerts` is served, and `dig` at a test DNS server.
 */
import { X509Certificate } from "node:crypto";
import { pemCertificates } from "../../src/edge/certs/acme.js";
import { CommandError, runCommand, type RunOptions } from "../../src/util/exec.js";

/** The command's output whatever its exit status (curl, openssl and dig say enough). */
export async function output(argv: string[], opts: RunOptions = {}): Promise<string> {
  try {
    return (await runCommand(argv, opts)).stdout;
  } catch (err) {
    if (err instanceof CommandError && err.exitCode !== null) return err.stdout;
    throw err;
  }
}

export interface CurlAnswer {
  /** 0 when no HTTP answer came (refused, TLS failed). */
  status: number;
  body: string;
}

/** `curl --cacert <ca> --resolve host:port:127.0.0.1 https://host:port/`; no ca: --insecure. */
export async function curl(
  host: string,
  port: number,
  opts: { ca?: string; path?: string } = {},
): Promise<CurlAnswer> {
  const trust = opts.ca ? ["--cacert", opts.ca] : ["--insecure"];
  const stdout = await output([
    "curl",
    "--silent",
    "--show-error",
    "--max-time",
    "5",
    ...trust,
    "--resolve",
    `${host}:${port}:127.0.0.1`,
    "--write-out",
    "\n%{http_code}",
    `https://${host}:${port}${opts.path ?? "/"}`,
  ]);
  const lines = stdout.split("\n");
  return { status: Number(lines.pop()), body: lines.join("\n") };
}

/** What `openssl s_client -showcerts` printed, and the certificates it showed (leaf first). */
export async function servedChain(
  port: number,
  servername: string,
  caFile: string,
): Promise<{ text: string; chain: X509Certificate[] }> {
  const text = await output(
    [
      "openssl",
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      servername,
      "-showcerts",
      "-CAfile",
      caFile,
    ],
    { input: "", timeoutMs: 10_000 },
  );
  return { text, chain: pemCertificates(text).map((p) => new X509Certificate(p)) };
}

/** `dig @127.0.0.1 -p <port> <name> A +short`: the addresses, one a line. */
export async function digA(port: number, name: string): Promise<string[]> {
  const stdout = await output([
    "dig",
    "@127.0.0.1",
    "-p",
    String(port),
    name,
    "A",
    "+short",
    "+time=2",
    "+tries=1",
  ]);
  return stdout.split("\n").filter(Boolean);
}
