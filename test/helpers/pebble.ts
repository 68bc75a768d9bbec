/**
 * A real Pebble (Let's Encrypt's ACME test server, Debian's `pebble`) for a
 * test, on loopback and free ports: its own TLS CA and 127.0.0.1 leaf
 * (Debian ships none), no validation sleep, no refused nonces, no reused
 * authorizations. For real HTTP-01 a `pebble-challtestsrv` answers A
 * 127.0.0.1 for every name, and Pebble asks it instead of the system
 * resolver; or, with `dnsServer`, a real DNS server (Knot, test/helpers/
 * knot.ts), so only a name published there validates. Not installed: the test fails (tests never skip silently);
 * scripts/setup.sh installs it.
 */
import type { ChildProcess } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { createCa, issueServerCert } from "../../src/certs/x509.js";
import { spawnCommand } from "../../src/util/exec.js";
import { freePort, tempDir } from "./agent.js";

export interface PebbleOptions {
  /** The port Pebble fetches HTTP-01 answers from (`http://<name>:<httpPort>/…`). */
  httpPort?: number;
  /** PEBBLE_VA_ALWAYS_VALID=1: every challenge passes without being fetched (no DNS needed). */
  alwaysValid?: boolean;
  /**
   * `host:port` of the DNS server Pebble resolves names with (`-dnsserver`)
   * instead of a challtestsrv answering 127.0.0.1 for every name.
   */
  dnsServer?: string;
}

export interface Pebble {
  directoryUrl: string;
  /** Pebble's own TLS CA (to trust its directory), as a file. */
  caFile: string;
  caPem: string;
  /** The root that signs issued certificates (new at every start of Pebble). */
  rootPem(): Promise<string>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

function start(argv: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawnCommand(argv, { env });
  let tail = "";
  const keep = (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-4000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => {
    child.once("error", (err) => {
      tail += `\n${(err as NodeJS.ErrnoException).code === "ENOENT" ? `${argv[0]} is not installed (scripts/setup.sh installs the pebble package)` : err.message}`;
      resolve();
    });
    child.once("exit", () => resolve());
  });
  return { child, output: () => tail.trim(), exited };
}

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null || p.child.pid === undefined) return;
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 3000);
  await p.exited;
  clearTimeout(timer);
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject);
  });
}

export async function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  const dir = await tempDir("mcp-acme-pebble-");
  const procs: Proc[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await stopProc(p);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ca = await createCa("pebble TLS test CA");
    const leaf = await issueServerCert(ca, {
      commonName: "127.0.0.1",
      sans: ["127.0.0.1", "localhost"],
    });
    const files = {
      caFile: path.join(dir, "tls-ca.pem"),
      cert: path.join(dir, "tls.pem"),
      key: path.join(dir, "tls.key"),
      config: path.join(dir, "pebble.json"),
    };
    await writeFile(files.caFile, ca.cert);
    await writeFile(files.cert, leaf.cert);
    await writeFile(files.key, leaf.key, { mode: 0o600 });
    const [listen, management, tlsPort] = [await freePort(), await freePort(), await freePort()];
    const httpPort = opts.httpPort ?? (await freePort());
    await writeFile(
      files.config,
      JSON.stringify({
        pebble: {
          listenAddress: `127.0.0.1:${listen}`,
          managementListenAddress: `127.0.0.1:${management}`,
          certificate: files.cert,
          privateKey: files.key,
          httpPort,
          tlsPort,
          ocspResponderURL: "",
          externalAccountBindingRequired: false,
        },
      }),
    );
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // Otherwise it sleeps 0–15 s before each validation and refuses 5% of nonces.
      PEBBLE_VA_NOSLEEP: "1",
      PEBBLE_WFE_NONCEREJECT: "0",
      // Otherwise half the orders reuse an earlier valid authorization and fetch no challenge.
      PEBBLE_AUTHZREUSE: "0",
      ...(opts.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: "1" } : {}),
    };
    const argv = ["pebble", "-config", files.config];
    if (opts.dnsServer) {
      argv.push("-dnsserver", opts.dnsServer);
    } else if (!opts.alwaysValid) {
      const dns = await freePort();
      // Every name is 127.0.0.1 (AAAA empty: the listeners are IPv4); its other servers are off.
      const challtest = start(
        [
          "pebble-challtestsrv",
          "-defaultIPv4",
          "127.0.0.1",
          "-defaultIPv6",
          "",
          "-http01",
          "",
          "-https01",
          "",
          "-tlsalpn01",
          "",
          "-dns01",
          `127.0.0.1:${dns}`,
          "-management",
          `127.0.0.1:${await freePort()}`,
        ],
        env,
      );
      procs.push(challtest);
      argv.push("-dnsserver", `127.0.0.1:${dns}`);
    }
    const pebble = start(argv, env);
    procs.push(pebble);

    const directoryUrl = `https://127.0.0.1:${listen}/dir`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = "";
    for (;;) {
      const dead = procs.find((p) => p.child.exitCode !== null || p.child.pid === undefined);
      if (dead) {
        await dead.exited;
        throw new Error(`pebble did not start: ${dead.output() || "exited"}`);
      }
      const answer = await httpsGet(directoryUrl, ca.cert).catch((err: Error) => err);
      if (!(answer instanceof Error) && answer.status === 200) break;
      last = answer instanceof Error ? answer.message : `HTTP ${answer.status}`;
      if (Date.now() > deadline) {
        throw new Error(
          `pebble did not answer within ${READY_TIMEOUT_MS} ms: ${last}\n${pebble.output()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      directoryUrl,
      caFile: files.caFile,
      caPem: ca.cert,
      rootPem: async () => {
        const root = await httpsGet(`https://127.0.0.1:${management}/roots/0`, ca.cert);
        if (root.status !== 200) throw new Error(`pebble /roots/0: HTTP ${root.status}`);
        return root.body;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
