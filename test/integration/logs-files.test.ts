/**
 * `mcp logs` and `mcp push` / `mcp pull` end to end: the real CLI (dist/mcp.mjs)
 * talks gRPC over TLS to a real `mcp-agent serve` (data_root in its temp dir)
 * which runs real containers on podman.
 *
 * Services: lf-tick (one component writing `tick N` every 0.2 s) and lf-pair
 * (components a and b). Containers stop fast: their shells trap SIGTERM.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import {
  chmod,
  link,
  lstat,
  mkdir,
  readFile,
  readdir,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { createSecureContext } from "node:tls";
import { parse, stringify } from "smol-toml";
import { MAX_FILE_BYTES } from "../../src/protocol/file-paths.js";
import { dialAgent } from "../../src/cli/client.js";
import { McpAgentServiceClient, type LogsResponse } from "../../src/gen/mcp/v1/mcp.js";
import { McpError } from "../../src/util/errors.js";
import { runCommand } from "../../src/util/exec.js";
import { tempDir } from "../helpers/agent.js";
import { notAnsweringStderr } from "../helpers/cli-messages.js";
import { LiveAgent, MCP_BIN, TEST_IMAGE, runMcp, type CliRun, ok } from "../helpers/live-agent.js";

const NODE = "lf-node";
const CONTAINERS = ["lf-tick", "lf-pair-a", "lf-pair-b"];

const TICK = [
  'name = "lf-tick"',
  `node = "${NODE}"`,
  "",
  "[[components]]",
  'name = "tick"',
  `image = "${TEST_IMAGE}"`,
  `cmd = ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]`,
  "",
].join("\n");

const PAIR = [
  'name = "lf-pair"',
  `node = "${NODE}"`,
  ...["a", "b"].flatMap((c) => [
    "",
    "[[components]]",
    `name = "${c}"`,
    `image = "${TEST_IMAGE}"`,
    `cmd = ["sh", "-c", "trap 'exit 0' TERM; echo started ${c}; while true; do sleep 0.2; done"]`,
  ]),
  "",
].join("\n");

/** A failure: non-zero exit, nothing on stdout, exactly one `mcp: …` line on stderr matching `re`. */
function fails(run: CliRun, re: RegExp, what: string): void {
  assert.notEqual(run.code, 0, `${what} should fail:\n${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, "", what);
  assert.match(run.stderr, /^mcp: [^\n]+\n$/, `${what}: one line expected, got:\n${run.stderr}`);
  assert.match(run.stderr, re, what);
}

/** A command against lf-down (nobody listens on 127.0.0.1:1): the not-answering line and its hint. */
function notAnswering(run: CliRun, what: string): void {
  assert.equal(run.code, 1, `${what}:\n${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, "", what);
  assert.match(run.stderr, notAnsweringStderr("lf-down", "127.0.0.1:1"), what);
}

/** `mcp` in a given working directory (pull's default destination). */
function mcpIn(cwd: string, args: string[]): Promise<CliRun & { stdoutBytes: Buffer }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MCP_BIN, ...args],
      { cwd, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({
          code,
          stdout: stdout.toString(),
          stderr: stderr.toString(),
          stdoutBytes: stdout,
        });
      },
    );
  });
}

/** A running `mcp logs …` process whose output is collected as it arrives. */
class Follower {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MCP_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.on("data", (c: Buffer) => (this.stdout += c.toString()));
    this.child.stderr?.on("data", (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => resolve({ code, signal })),
    );
  }

  async waitFor(pred: (out: string) => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.stdout)) {
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(
          `${what}: not seen in ${ms} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async exit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        reject(new Error(`mcp logs still running after ${ms} ms:\n${this.stdout}\n${this.stderr}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function ticks(out: string): number[] {
  return [...out.matchAll(/^tick (\d+)\n/gm)].map((m) => Number(m[1]));
}

/** Command lines of the agent's child processes that run `podman logs`. */
/**
 * The agent's connections to its podman API socket (`ss -xp`): a followed log
 * is one streaming request of its own, so the count drops once it is
 * cancelled (the agent spawns no `podman logs`: src/runtime/libpod/).
 */
async function agentApiConnections(agentPid: number): Promise<number> {
  const { stdout } = await runCommand(["ss", "-x", "-p", "-H", "state", "established"]);
  return stdout.split("\n").filter((l) => l.includes(`pid=${agentPid},`)).length;
}

describe("mcp logs / push / pull against a real agent", { timeout: 120_000 }, () => {
  let agent: LiveAgent;
  let work: string;
  let dataDir: string;
  /** A CLI config whose token file holds a wrong token. */
  let badTokenConfig: string;
  /** A CLI config that also knows a node nobody listens on. */
  let downConfig: string;
  let caPath: string;

  before(async () => {
    await runCommand(["podman", "rm", "-f", "--ignore", "-t", "0", ...CONTAINERS]);
    agent = await LiveAgent.start({ node: NODE });
    work = await tempDir("mcp-lf-work-");
    dataDir = path.join(agent.dir, "data", "lf-pair");
    await agent.addDefinition("lf-tick", TICK);
    await agent.addDefinition("lf-pair", PAIR);
    ok(await agent.cli(["deploy", "lf-tick"]), "deploy lf-tick");
    ok(await agent.cli(["deploy", "lf-pair"]), "deploy lf-pair");

    const cli = parse(await readFile(agent.cliConfig, "utf8")) as {
      tls: { ca_cert: string };
      auth: { token_path: string };
      nodes: Record<string, unknown>[];
    };
    caPath = cli.tls.ca_cert;
    const wrongToken = path.join(work, "wrong.token");
    await writeFile(wrongToken, "mcp_thisIsNotTheTokenTheAgentIssuedAtAll000000\n", {
      mode: 0o600,
    });
    badTokenConfig = path.join(work, "bad-token.toml");
    await writeFile(badTokenConfig, stringify({ ...cli, auth: { token_path: wrongToken } }));
    downConfig = path.join(work, "down.toml");
    await writeFile(
      downConfig,
      stringify({ ...cli, nodes: [...cli.nodes, { name: "lf-down", address: "127.0.0.1:1" }] }),
    );
  });

  after(async () => {
    await agent?.cleanup();
    if (work) await runCommand(["rm", "-rf", work]);
  });

  // ---------------------------------------------------------------- logs

  test("-n 2 prints exactly the last 2 lines; -t adds timestamps", async () => {
    const run = ok(await agent.cli(["logs", "lf-tick", "-n", "2"]), "logs -n 2");
    const lines = run.stdout.split("\n").filter(Boolean);
    assert.equal(lines.length, 2, run.stdout);
    const [a, b] = ticks(run.stdout);
    assert.ok(a !== undefined && b === a + 1, run.stdout);
    const stamped = ok(await agent.cli(["logs", "lf-tick/tick", "-n", "1", "-t"]), "logs -t");
    assert.match(stamped.stdout, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\S* tick \d+\n$/);
    const recent = ok(await agent.cli(["logs", "lf-tick", "--since", "2s"]), "logs --since");
    assert.ok(ticks(recent.stdout).length >= 3 && ticks(recent.stdout).length <= 16, recent.stdout);
  });

  test("-f prints lines written after the stream started, and Ctrl-C ends it (exit 130, the stream closed)", async () => {
    const f = new Follower(["--config", agent.cliConfig, "logs", "-f", "lf-tick"]);
    await f.waitFor((out) => ticks(out).length > 0, "first tick");
    const atStart = Math.max(...ticks(f.stdout));
    await f.waitFor((out) => ticks(out).includes(atStart + 3), `tick ${atStart + 3}`);
    const following = await agentApiConnections(agent.pid!);
    assert.ok(following >= 1, "the agent streams the log from its podman socket");
    const seen = ticks(f.stdout);
    assert.deepEqual(
      seen,
      seen.map((_, i) => (seen[0] ?? 0) + i),
      "consecutive lines, nothing lost",
    );
    f.child.kill("SIGINT");
    const { code } = await f.exit(5000);
    assert.equal(code, 130, f.stderr);
    assert.equal(f.stderr, "mcp: interrupted\n");
    const deadline = Date.now() + 5000;
    while ((await agentApiConnections(agent.pid!)) >= following) {
      assert.ok(Date.now() < deadline, "the agent's log stream was not closed after the cancel");
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  test("-f ends cleanly (exit 0) when the container stops", async () => {
    const f = new Follower(["--config", agent.cliConfig, "logs", "lf-pair/b", "--follow"]);
    await f.waitFor((out) => out.includes("started b\n"), "started b");
    const stopped = await runCommand(["podman", "stop", "-t", "5", "lf-pair-b"]);
    assert.match(stopped.stdout, /lf-pair-b/);
    const { code } = await f.exit(10_000);
    assert.equal(code, 0, f.stderr);
    assert.equal(f.stderr, "");
    assert.equal(f.stdout, "started b\n");
    // The stopped container's logs are still there, without -f the call just ends.
    assert.equal(ok(await agent.cli(["logs", "lf-pair/b"]), "logs stopped").stdout, "started b\n");
    await runCommand(["podman", "start", "lf-pair-b"]);
  });

  test("mcp stop while following: the stream ends with the container", async () => {
    const f = new Follower(["--config", agent.cliConfig, "logs", "-f", "-n", "1", "lf-tick"]);
    await f.waitFor((out) => ticks(out).length >= 2, "two ticks");
    ok(await agent.cli(["stop", "lf-tick"]), "mcp stop");
    const { code } = await f.exit(10_000);
    assert.equal(code, 0, f.stderr);
    ok(await agent.cli(["start", "lf-tick"]), "mcp start");
  });

  test("logs errors: one line, non-zero exit", async () => {
    fails(await agent.cli(["logs", "lf-pair"]), /has 2 components \(a, b\): name one/, "two comps");
    fails(await agent.cli(["logs", "lf-pair/zzz"]), /no component "zzz"/, "unknown component");
    // No definition, one node configured: the node is asked, and knows nothing of it.
    fails(
      await agent.cli(["logs", "lf-ghost"]),
      /unknown service "lf-ghost" on node lf-node/,
      "no def",
    );
    fails(
      await agent.cli(["logs", "lf-ghost", "--node", NODE]),
      /unknown service "lf-ghost" on node lf-node/,
      "unknown service",
    );
    fails(await agent.cli(["logs", "lf-tick", "-n", "0"]), /-n\/--tail/, "-n 0");
    fails(await agent.cli(["logs", "lf-tick", "--since", "bogus"]), /--since "bogus"/, "since");
    fails(await agent.cli(["logs", "a/b/c"]), /expected <service>/, "bad target");
    notAnswering(
      await runMcp(["--config", downConfig, "logs", "lf-tick", "--node", "lf-down"]),
      "logs unreachable",
    );
    const help = ok(await agent.cli(["logs", "--help"]), "logs --help");
    assert.match(help.stdout, /--follow/);
  });

  test("no token → refused: the CLI with a wrong token, and a raw stream without metadata", async () => {
    fails(
      await runMcp(["--config", badTokenConfig, "logs", "lf-tick"]),
      /node lf-node rejected the token/,
      "wrong token",
    );
    fails(
      await runMcp(["--config", badTokenConfig, "logs", "-f", "lf-tick"]),
      /rejected the token/,
      "wrong token -f",
    );
    const tls = credentials.createFromSecureContext(
      createSecureContext({ ca: await readFile(caPath, "utf8") }),
    );
    const raw = new McpAgentServiceClient(`localhost:${agent.port}`, tls);
    try {
      const result = await new Promise<{ code?: number; chunks: number }>((resolve) => {
        let chunks = 0;
        const s = raw.logs({
          service: "lf-tick",
          component: "",
          tail: 0,
          follow: true,
          timestamps: false,
          since: "",
        });
        s.on("data", (_m: LogsResponse) => chunks++);
        s.on("error", (err: { code?: number }) => resolve({ code: err.code, chunks }));
        s.on("end", () => resolve({ chunks }));
      });
      assert.equal(result.code, 16 /* UNAUTHENTICATED */);
      assert.equal(result.chunks, 0);
    } finally {
      raw.close();
    }
  });

  // ---------------------------------------------------------------- files

  test("push/pull round-trip bytes and modes (0640, 0755), defaults for path and local", async () => {
    const bin = path.join(work, "app.bin");
    const bytes = Buffer.from([0, 1, 2, 0, 255, 254, 10, 0, 13, 0]);
    await writeFile(bin, bytes);
    await chmod(bin, 0o640);
    const pushed = ok(await agent.cli(["push", bin, "lf-pair", "conf/deep/app.bin"]), "push");
    assert.match(pushed.stdout, /-> lf-node:lf-pair\/conf\/deep\/app\.bin \(10 B, mode 0640\)/);
    const onNode = path.join(dataDir, "conf/deep/app.bin");
    assert.deepEqual(await readFile(onNode), bytes);
    assert.equal((await stat(onNode)).mode & 0o777, 0o640);

    const script = path.join(work, "run.sh");
    await writeFile(script, "#!/bin/sh\necho hi\n");
    await chmod(script, 0o755);
    ok(await agent.cli(["push", script, "lf-pair"]), "push without path");
    assert.equal((await stat(path.join(dataDir, "run.sh"))).mode & 0o777, 0o755);

    const out = await tempDir("mcp-lf-pull-");
    try {
      const pulled = ok(
        await agent.cli(["pull", "lf-pair", "conf/deep/app.bin", path.join(out, "copy.bin")]),
        "pull",
      );
      assert.match(pulled.stdout, /copy\.bin \(10 B, mode 0640\)/);
      assert.deepEqual(await readFile(path.join(out, "copy.bin")), bytes);
      assert.equal((await stat(path.join(out, "copy.bin"))).mode & 0o777, 0o640);

      const inCwd = await mcpIn(out, ["--config", agent.cliConfig, "pull", "lf-pair", "run.sh"]);
      ok(inCwd, "pull without local");
      assert.equal(await readFile(path.join(out, "run.sh"), "utf8"), "#!/bin/sh\necho hi\n");
      assert.equal((await stat(path.join(out, "run.sh"))).mode & 0o777, 0o755);
      assert.deepEqual((await readdir(out)).sort(), ["copy.bin", "run.sh"], "no temp files left");

      const toStdout = await mcpIn(out, [
        "--config",
        agent.cliConfig,
        "pull",
        "lf-pair",
        "conf/deep/app.bin",
        "-",
      ]);
      assert.equal(toStdout.code, 0, toStdout.stderr);
      assert.deepEqual(toStdout.stdoutBytes, bytes);
    } finally {
      await runCommand(["rm", "-rf", out]);
    }
  });

  test("push/pull refuse ../x, /etc/passwd and symlinks leading out of the data directory", async () => {
    const src = path.join(work, "evil.txt");
    await writeFile(src, "evil\n");
    const outside = path.join(agent.dir, "outside");
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, "secret"), "secret\n");
    await mkdir(dataDir, { recursive: true });
    await symlink(outside, path.join(dataDir, "out-dir"));
    await symlink(path.join(outside, "secret"), path.join(dataDir, "out-file"));

    fails(await agent.cli(["push", src, "lf-pair", "../x"]), /"\.\." segments/, "push ../x");
    fails(await agent.cli(["push", src, "lf-pair", "/etc/passwd"]), /absolute paths/, "push abs");
    fails(await agent.cli(["pull", "lf-pair", "../x"]), /"\.\." segments/, "pull ../x");
    fails(await agent.cli(["pull", "lf-pair", "/etc/passwd"]), /absolute paths/, "pull abs");
    for (const p of ["out-file", "out-dir/secret", "out-dir/new.txt"]) {
      fails(
        await agent.cli(["push", src, "lf-pair", p]),
        /is a symlink leading out of the data directory/,
        `push ${p}`,
      );
    }
    for (const p of ["out-file", "out-dir/secret"]) {
      fails(
        await agent.cli(["pull", "lf-pair", p, path.join(work, "stolen")]),
        /is a symlink leading out of the data directory/,
        `pull ${p}`,
      );
    }
    assert.equal(await readFile(path.join(outside, "secret"), "utf8"), "secret\n");
    assert.deepEqual(await readdir(outside), ["secret"]);
    assert.ok((await lstat(path.join(dataDir, "out-file"))).isSymbolicLink());
    await assert.rejects(stat(path.join(work, "stolen")), /ENOENT/);
  });

  test("push/pull refuse a hard link to a file outside the data directory", async () => {
    const src = path.join(work, "evil.txt");
    await writeFile(src, "evil\n");
    const outside = path.join(agent.dir, "outside-hl");
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, "shadow"), "root:secret\n");
    await mkdir(dataDir, { recursive: true });
    await link(path.join(outside, "shadow"), path.join(dataDir, "hl"));
    const refused = /path "hl" has 2 hard links; push\/pull refuse files with more than one link/;
    fails(
      await agent.cli(["pull", "lf-pair", "hl", path.join(work, "stolen-hl")]),
      refused,
      "pull",
    );
    fails(await agent.cli(["push", src, "lf-pair", "hl"]), refused, "push");
    assert.equal(await readFile(path.join(outside, "shadow"), "utf8"), "root:secret\n");
    assert.equal((await lstat(path.join(dataDir, "hl"))).nlink, 2);
    await assert.rejects(stat(path.join(work, "stolen-hl")), /ENOENT/);
  });

  test("too-large files are refused on both sides", async () => {
    const big = path.join(work, "big.bin");
    await writeFile(big, Buffer.alloc(MAX_FILE_BYTES + 1, 7));
    fails(
      await agent.cli(["push", big, "lf-pair"]),
      /big\.bin is 16\.0 MiB \(16777217 bytes\), over the 16\.0 MiB limit/,
      "push too large (CLI)",
    );
    await writeFile(path.join(dataDir, "big.bin"), Buffer.alloc(MAX_FILE_BYTES + 1, 7));
    fails(
      await agent.cli(["pull", "lf-pair", "big.bin", path.join(work, "big-copy")]),
      /"big\.bin" is 16\.0 MiB .*over the 16\.0 MiB limit/,
      "pull too large",
    );
    // The agent checks too, whatever the client does.
    const client = dialAgent({
      address: `127.0.0.1:${agent.port}`,
      caCertPem: await readFile(caPath, "utf8"),
      token: await readFile(path.join(agent.dir, "token"), "utf8"),
      name: NODE,
    });
    try {
      await assert.rejects(
        client.call("pushFile", {
          service: "lf-pair",
          path: "big2.bin",
          content: Buffer.alloc(MAX_FILE_BYTES + 1),
          mode: 0o644,
        }),
        (err: unknown) =>
          err instanceof McpError &&
          err.code === "invalid_argument" &&
          /over the 16\.0 MiB limit/.test(err.message),
      );
    } finally {
      client.close();
    }
    await assert.rejects(stat(path.join(dataDir, "big2.bin")), /ENOENT/);
  });

  test("file errors: unknown service, missing files, unreachable node; one line, non-zero exit", async () => {
    const f = path.join(work, "small.txt");
    await writeFile(f, "x");
    fails(
      await agent.cli(["push", f, "lf-ghost"]),
      /unknown service "lf-ghost" on node lf-node/,
      "no def",
    );
    fails(
      await agent.cli(["push", f, "lf-ghost", "--node", NODE]),
      /unknown service "lf-ghost" on node lf-node/,
      "push unknown service",
    );
    fails(
      await agent.cli(["pull", "lf-ghost", "x", "--node", NODE]),
      /unknown service "lf-ghost"/,
      "pull unknown service",
    );
    fails(await agent.cli(["push", path.join(work, "nope"), "lf-pair"]), /cannot read/, "no local");
    fails(await agent.cli(["push", work, "lf-pair"]), /is not a regular file/, "push a dir");
    fails(await agent.cli(["pull", "lf-pair", "nope.txt"]), /no file "nope\.txt"/, "no remote");
    notAnswering(
      await runMcp(["--config", downConfig, "push", f, "lf-pair", "--node", "lf-down"]),
      "push unreachable",
    );
    notAnswering(
      await runMcp(["--config", downConfig, "pull", "lf-pair", "x", "--node", "lf-down"]),
      "pull unreachable",
    );
    fails(
      await runMcp(["--config", badTokenConfig, "push", f, "lf-pair"]),
      /rejected the token/,
      "push wrong token",
    );
    const usage = await agent.cli(["push", f]);
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /missing required argument 'service'/);
    assert.match(ok(await agent.cli(["push", "--help"]), "push --help").stdout, /data directory/);
    assert.match(ok(await agent.cli(["pull", "--help"]), "pull --help").stdout, /data directory/);
  });
});
