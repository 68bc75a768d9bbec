/**
 * A real Knot DNS server for a test (shared notes "edge-stack", DNS): one
 * `knotd` in the foreground on 127.0.0.1:<free port>, everything (config,
 * zone file, journal, control socket) in a temp dir, serving the zone
 * `svc.mcp.test` and taking updates and transfers signed with one
 * hmac-sha256 key. Missing knotd or dig is a thrown error, never a skip.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { runCommand } from "../../src/util/exec.js";
import { freePort, tempDir } from "./agent.js";

export interface TestKnot {
  /** `127.0.0.1:<port>`, as `[dns] server` takes it. */
  server: string;
  host: string;
  port: number;
  zone: string;
  keyName: string;
  /** The key Knot trusts, in tsig-keygen's format. */
  keyFile: string;
  /** A key of the same name and algorithm with another secret: Knot answers BADSIG. */
  wrongKeyFile: string;
  dir: string;
  /** What knotd printed so far (its log goes to stderr). */
  log(): string;
  stop(): Promise<void>;
}

const ZONE = "svc.mcp.test";
const KEY_NAME = "mcp-test-key";

/** Byte for byte what `tsig-keygen -a hmac-sha256 <name>` prints (checked against BIND 9.18's). */
export function bindKeyFile(name: string, secret: string): string {
  return `key "${name}" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`;
}

const newSecret = () => randomBytes(32).toString("base64");

/** A port free for both TCP (freePort) and UDP, which Knot binds too. */
async function freeDnsPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error("no port free for both TCP and UDP");
}

async function requireProgram(argv: string[], pkg: string): Promise<void> {
  try {
    await runCommand(argv, { timeoutMs: 5000 });
  } catch (err) {
    throw new Error(
      `${argv[0]} is needed by the DNS tests and did not run (Debian package ${pkg}; ` +
        `scripts/setup.sh install installs it): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export async function startKnot(): Promise<TestKnot> {
  await requireProgram(["knotd", "-V"], "knot");
  await requireProgram(["dig", "-v"], "bind9-dnsutils");
  const dir = await tempDir("mcp-dns-knot-");
  const port = await freeDnsPort();
  const secret = newSecret();
  const keyFile = path.join(dir, "mcp.key");
  const wrongKeyFile = path.join(dir, "wrong.key");
  await writeFile(keyFile, bindKeyFile(KEY_NAME, secret), { mode: 0o600 });
  await writeFile(wrongKeyFile, bindKeyFile(KEY_NAME, newSecret()), { mode: 0o600 });
  await mkdir(path.join(dir, "run"));
  await mkdir(path.join(dir, "db"));
  // The NS is outside the zone, so the zone has no address record of its
  // own and list() shows only what a test made.
  await writeFile(
    path.join(dir, `${ZONE}.zone`),
    [
      `$ORIGIN ${ZONE}.`,
      "$TTL 60",
      `@ IN SOA ns.mcp.test. hostmaster.mcp.test. 1 3600 600 86400 60`,
      `@ IN NS ns.mcp.test.`,
      "",
    ].join("\n"),
  );
  const q = (s: string) => JSON.stringify(s);
  await writeFile(
    path.join(dir, "knot.conf"),
    [
      "server:",
      `    rundir: ${q(path.join(dir, "run"))}`,
      `    listen: 127.0.0.1@${port}`,
      "log:",
      "  - target: stderr",
      "    any: info",
      "database:",
      `    storage: ${q(path.join(dir, "db"))}`,
      // Not Debian's /run/knot/knot.sock, which a knot service may hold.
      "control:",
      `    listen: ${q(path.join(dir, "run", "knot.sock"))}`,
      "key:",
      `  - id: ${KEY_NAME}`,
      "    algorithm: hmac-sha256",
      `    secret: ${secret}`,
      "acl:",
      "  - id: mcp-update",
      `    key: ${KEY_NAME}`,
      "    action: [update, transfer]",
      "zone:",
      `  - domain: ${ZONE}`,
      `    storage: ${q(dir)}`,
      `    file: ${q(`${ZONE}.zone`)}`,
      "    acl: mcp-update",
      "",
    ].join("\n"),
  );

  let log = "";
  let exited: string | undefined;
  const child: ChildProcess = spawn("knotd", ["-c", path.join(dir, "knot.conf")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (b: Buffer) => (log += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (log += b.toString()));
  const gone = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `knotd exited (${code ?? signal})`;
      resolve();
    });
    child.once("error", (err) => {
      exited = `knotd did not start: ${err.message}`;
      resolve();
    });
  });

  const stop = async () => {
    if (exited === undefined) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  // Ready when it answers the zone's SOA.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new Error(`${exited} before answering:\n${log}`);
    }
    const r = await runCommand(
      ["dig", "@127.0.0.1", "-p", String(port), ZONE, "SOA", "+short", "+time=1", "+tries=1"],
      { timeoutMs: 3000 },
    ).catch(() => undefined);
    if (r && /\bhostmaster\.mcp\.test\./.test(r.stdout)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`knotd did not answer on 127.0.0.1:${port} within 10 s:\n${log}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }

  return {
    server: `127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    zone: ZONE,
    keyName: KEY_NAME,
    keyFile,
    wrongKeyFile,
    dir,
    log: () => log,
    stop,
  };
}
