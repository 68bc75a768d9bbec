/**
 * What the real `mcp` process (dist/mcp.mjs) says when the agent is not
 * the one it expects, over real gRPC and TLS 1.3 with the bearer token:
 *
 * - nobody listens at the node's address: `node N (ADDR) is not answering:
 *   is mcp-agent running?` and a `hint:` line on how to start it, for a
 *   command that asks one node and in a fan-out's "did not answer" lines;
 *   a TLS, token or connect-timeout problem is said differently;
 * - the agent is older than the call (UNIMPLEMENTED): the CLI asks its
 *   version and says `agent on node N is version V; this needs W or later`,
 *   exit 1; DeployStream can fall back to Deploy (isUnimplemented);
 * - Ctrl-C (SIGINT) during a command: `mcp: interrupted`, exit 130.
 *
 * The agents are in-process grpc-js servers built like the real one
 * (startAgentServer: TLS, token guard, stubs answering UNIMPLEMENTED) with
 * only the handlers each test needs; no podman.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "smol-toml";
import type { ServerWritableStream } from "@grpc/grpc-js";
import {
  AgentVersionError,
  dialAgent,
  isUnimplemented,
  type AgentClient,
} from "../../src/cli/client.js";
import {
  DeployResponse,
  LiveCheckResponse,
  LogsResponse,
  NodeStatusResponse,
  RollbackRequest,
  type LogsRequest,
  type McpAgentServiceServer,
} from "../../src/gen/mcp/v1/mcp.js";
import { freePort, startTestAgent, tempDir, type TestAgent } from "../helpers/agent.js";
import { notAnsweringLine } from "../helpers/cli-messages.js";
import { MCP_BIN, runMcp, type CliRun } from "../helpers/live-agent.js";

const SERVICE = "ce-svc";

/** An agent that knows only NodeStatus (`version`) and LiveCheck, like one from before ListRevisions. */
function oldAgentImpl(node: string, version: string): Partial<McpAgentServiceServer> {
  return {
    nodeStatus: (_call, cb) =>
      cb(null, NodeStatusResponse.fromPartial({ nodeName: node, agentVersion: version })),
    liveCheck: (_call, cb) => cb(null, LiveCheckResponse.fromPartial({ node })),
    deploy: (_call, cb) => cb(null, DeployResponse.fromPartial({ results: [] })),
  };
}

/** The mcp process, for tests that signal it while it runs. */
class Running {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MCP_BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (c: Buffer) => (this.stdout += c.toString()));
    this.child.stderr?.on("data", (c: Buffer) => (this.stderr += c.toString()));
    this.exit = new Promise((resolve) =>
      this.child.once("exit", (code, signal) => resolve({ code, signal })),
    );
  }
  async exited(ms = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        reject(new Error(`mcp still running after ${ms} ms:\n${this.stdout}${this.stderr}`));
      }, ms);
    });
    try {
      return await Promise.race([this.exit, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Resolves the next time `fn` is called (a handler that was reached). */
function signal(): { reached: Promise<void>; reach: () => void } {
  let reach = () => {};
  const reached = new Promise<void>((resolve) => (reach = resolve));
  return { reached, reach };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe("the CLI and agents that are missing, old or slow", () => {
  let dir: string;
  let config: string;
  let old: TestAgent; // 0.1.0 without ListRevisions, DeployStream
  let ancient: TestAgent; // 0.0.9: older than any RPC
  let mute: TestAgent; // not even NodeStatus
  let hang: TestAgent; // answers nothing it is asked
  let deadPort: number;
  let silent: Server; // accepts TCP, never speaks TLS
  const silentSockets = new Set<Socket>();
  let silentPort: number;
  const hangReached = { listRevisions: signal(), restartService: signal() };
  let logsCancelled = signal();
  let logsStarted = signal();

  const mcp = (args: string[], cfg = config): Promise<CliRun> => runMcp(["--config", cfg, ...args]);

  before(async () => {
    for (const bin of [MCP_BIN]) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run build"`);
    }
    dir = await tempDir("mcp-ce-");
    old = await startTestAgent({ node: "ce-old", impl: oldAgentImpl("ce-old", "0.1.0") });
    ancient = await startTestAgent({
      node: "ce-ancient",
      impl: { nodeStatus: oldAgentImpl("ce-ancient", "0.0.9").nodeStatus! },
    });
    mute = await startTestAgent({ node: "ce-mute", impl: {} });
    hang = await startTestAgent({
      node: "ce-hang",
      impl: {
        // Never answer: the CLI waits until it is interrupted.
        listRevisions: () => hangReached.listRevisions.reach(),
        restartService: () => hangReached.restartService.reach(),
        logs: (call: ServerWritableStream<LogsRequest, LogsResponse>) => {
          let n = 0;
          const tick = setInterval(() => {
            call.write(LogsResponse.fromPartial({ data: Buffer.from(`line ${n++}\n`) }));
          }, 50);
          logsStarted.reach();
          call.on("cancelled", () => {
            clearInterval(tick);
            logsCancelled.reach();
          });
        },
      },
    });
    deadPort = await freePort();
    silent = createServer((socket) => {
      silentSockets.add(socket);
      socket.on("close", () => silentSockets.delete(socket));
    });
    silentPort = await new Promise<number>((resolve) =>
      silent.listen(0, "127.0.0.1", () => resolve((silent.address() as { port: number }).port)),
    );
    const node = (name: string, agent: TestAgent) => ({
      name,
      address: agent.address,
      ca_cert: agent.init.caCert,
      token_path: agent.init.tokenFile,
    });
    const services = path.join(dir, "services");
    await mkdir(services, { recursive: true });
    await writeFile(path.join(dir, "token-wrong"), "not-the-token\n");
    config = path.join(dir, "mcp.toml");
    await writeFile(
      config,
      stringify({
        services: { dir: services },
        nodes: [
          node("ce-old", old),
          node("ce-ancient", ancient),
          node("ce-mute", mute),
          node("ce-hang", hang),
          // Nobody listens here.
          { ...node("ce-dead", old), address: `127.0.0.1:${deadPort}` },
          // The TCP is accepted, TLS never starts.
          { ...node("ce-silent", old), address: `127.0.0.1:${silentPort}` },
          // An agent signed by another CA than the one pinned.
          { ...node("ce-othertls", old), ca_cert: ancient.init.caCert },
          { ...node("ce-badtoken", old), token_path: path.join(dir, "token-wrong") },
        ],
      }),
    );
    for (const [svc, nodeName] of [
      [SERVICE, "ce-dead"],
      ["ce-hung", "ce-hang"],
      ["ce-anc", "ce-ancient"],
    ] as const) {
      await writeFile(
        path.join(services, `${svc}.toml`),
        `name = "${svc}"\nnode = "${nodeName}"\n\n[[components]]\nname = "web"\nimage = "localhost/mcp-httpenv:v1"\n`,
      );
    }
  });

  after(async () => {
    for (const s of silentSockets) s.destroy();
    silent?.close();
    await Promise.all([old, ancient, mute, hang].map((a) => a?.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // ------------------------------------------------------------ not answering

  test("a node nobody listens on: the one line and how to start the agent, exit 1", async () => {
    const address = `127.0.0.1:${deadPort}`;
    for (const args of [
      ["history", "x", "--node", "ce-dead"],
      ["deploy", SERVICE],
      ["restart", SERVICE],
      ["undeploy", SERVICE],
      ["logs", SERVICE],
    ]) {
      const run = await mcp(args);
      assert.equal(run.code, 1, `${args.join(" ")}: ${run.stdout}${run.stderr}`);
      assert.equal(run.stdout, "", args.join(" "));
      assert.equal(
        run.stderr,
        `mcp: node ce-dead (${address}) is not answering: is mcp-agent running?\n` +
          "hint: connection refused; start it on the node: mcp-agent serve --config /srv/mcp/mcp-agent.toml\n",
        args.join(" "),
      );
    }
    // stop edits the definition first, then says the agent did not act on it.
    const stop = await mcp(["stop", SERVICE]);
    assert.equal(stop.code, 1, stop.stderr);
    assert.match(
      stop.stderr,
      new RegExp(
        `^mcp: \\S+/${SERVICE}\\.toml now says active = false, but node ce-dead did not stop it: ` +
          `${notAnsweringLine("ce-dead", address)}\\nhint: connection refused; `,
      ),
    );
  });

  test("fan-out: the missing node is named with the same line; the others are shown", async () => {
    // 1 s to connect: ce-silent never finishes TLS.
    const run = await mcp(["--timeout", "1s", "ps"]);
    assert.equal(run.code, 1);
    const lines = run.stderr.split("\n").filter(Boolean);
    assert.ok(
      lines.includes(
        `mcp: node ce-dead (127.0.0.1:${deadPort}) is not answering: is mcp-agent running?`,
      ),
      run.stderr,
    );
    // One hint however many nodes need it.
    assert.equal(lines.filter((l) => l.startsWith("hint: ")).length, 1, run.stderr);
    assert.equal(
      lines.at(-1),
      `hint: connection refused; start it on the node: mcp-agent serve --config /srv/mcp/mcp-agent.toml`,
    );
    // The old agent answered LiveCheck.
    assert.match(run.stdout, /^SERVICE\s+COMPONENT\s+NODE/);
    assert.ok(!lines.some((l) => l.includes("ce-old")), run.stderr);
    // The one that is too old for LiveCheck says so, in the version's words.
    assert.ok(
      lines.includes("mcp: agent on node ce-ancient is version 0.0.9; this needs 0.1.0 or later"),
      run.stderr,
    );

    const nodes = await mcp(["--timeout", "1s", "node", "list"]);
    assert.equal(nodes.code, 1);
    assert.match(
      nodes.stdout,
      new RegExp(
        `^ce-dead\\s+127\\.0\\.0\\.1:${deadPort}\\s+-\\s+unreachable: connection refused$`,
        "m",
      ),
    );
    assert.match(nodes.stdout, /^ce-old\s+\S+\s+0\.1\.0\s+ok$/m);
    assert.match(nodes.stderr, new RegExp(`^mcp: ${notAnsweringLine("ce-dead")}\\n`, "m"));
  });

  test("TLS, token and connect timeout are not 'not answering'", async () => {
    const tls = await mcp(["history", "x", "--node", "ce-othertls"]);
    assert.equal(tls.code, 1);
    assert.match(tls.stderr, /^mcp: node ce-othertls \([^)]+\): TLS verification failed /);
    assert.doesNotMatch(tls.stderr, /not answering|hint:/);

    const token = await mcp(["history", "x", "--node", "ce-badtoken"]);
    assert.equal(token.code, 1);
    assert.match(
      token.stderr,
      /^mcp: node ce-badtoken rejected the token \(.*\): check token_path/,
    );
    assert.doesNotMatch(token.stderr, /not answering|hint:/);

    const slow = await mcp(["--timeout", "300ms", "history", "x", "--node", "ce-silent"]);
    assert.equal(slow.code, 1);
    assert.equal(
      slow.stderr,
      `mcp: node ce-silent (127.0.0.1:${silentPort}) did not answer within 300 ms\n`,
    );
  });

  // ------------------------------------------------------------ version gate

  test("an agent older than the call: its version and the one needed, exit 1", async () => {
    const ancientRun = await mcp(["history", "x", "--node", "ce-ancient"]);
    assert.equal(ancientRun.code, 1);
    assert.equal(ancientRun.stdout, "");
    assert.equal(
      ancientRun.stderr,
      "mcp: agent on node ce-ancient is version 0.0.9; this needs 0.1.0 or later\n",
    );
    // A state change too, with the exit code of a failure (nothing was done).
    const restart = await mcp(["restart", "ce-anc"]);
    assert.equal(restart.code, 1);
    assert.equal(
      restart.stderr,
      "mcp: agent on node ce-ancient is version 0.0.9; this needs 0.1.0 or later\n",
    );
    // An agent whose version has the RPC but lacks it says both.
    const oldRun = await mcp(["history", "x", "--node", "ce-old"]);
    assert.equal(oldRun.code, 1);
    assert.equal(
      oldRun.stderr,
      "mcp: agent on node ce-old is version 0.1.0 but does not implement ListRevisions (this needs 0.1.0 or later)\n",
    );
    // No NodeStatus either: the RPC it does not know.
    const muteRun = await mcp(["history", "x", "--node", "ce-mute"]);
    assert.equal(muteRun.code, 1);
    assert.equal(
      muteRun.stderr,
      "mcp: agent on node ce-mute does not know ListRevisions; this needs 0.1.0 or later\n",
    );
  });

  test("DeployStream against a 0.1.0 agent: the typed error, and the fallback to Deploy", async () => {
    const client: AgentClient = dialAgent({
      address: old.address,
      caCertPem: old.caCertPem,
      token: old.token,
      name: "ce-old",
    });
    try {
      const req = { service: undefined, component: "" };
      const streamed = async () => {
        for await (const ev of client.stream("deployStream", req)) void ev;
      };
      await assert.rejects(streamed(), (err: unknown) => {
        assert.ok(err instanceof AgentVersionError);
        assert.equal(
          err.message,
          "agent on node ce-old is version 0.1.0; this needs 0.2.0 or later",
        );
        assert.equal(err.code, "failed_precondition");
        assert.equal(err.agentVersion, "0.1.0");
        assert.ok(isUnimplemented(err, "deployStream"));
        assert.ok(!isUnimplemented(err, "rollback"));
        return true;
      });
      // What deploy does with it: the unary Deploy instead.
      let res;
      try {
        await streamed();
      } catch (err) {
        if (!isUnimplemented(err, "deployStream")) throw err;
        res = await client.call("deploy", req);
      }
      assert.deepEqual(res, DeployResponse.fromPartial({ results: [] }));
      // A unary call on a raw stream (logs-style): explain() gives the same error.
      const raw = client.raw.rollback(RollbackRequest.fromPartial({ service: SERVICE }));
      const rawErr = await new Promise<unknown>((resolve) => raw.on("error", resolve));
      const explained = await client.explain(rawErr, "rollback");
      assert.equal(
        explained.message,
        "agent on node ce-old is version 0.1.0; this needs 0.2.0 or later",
      );
      assert.ok(isUnimplemented(rawErr, "rollback") && isUnimplemented(explained, "rollback"));
    } finally {
      client.close();
    }
  });

  // ------------------------------------------------------------ Ctrl-C

  test("Ctrl-C while waiting for an answer: mcp: interrupted, exit 130", async () => {
    const run = new Running(["--config", config, "history", "x", "--node", "ce-hang"]);
    await within(hangReached.listRevisions.reached, 10_000, "ListRevisions reached");
    run.child.kill("SIGINT");
    const { code, signal: sig } = await run.exited();
    assert.equal(sig, null, "handled, not killed by the signal");
    assert.equal(code, 130, run.stderr);
    assert.equal(run.stderr, "mcp: interrupted\n");
    assert.equal(run.stdout, "");
  });

  test("Ctrl-C during a state change (restart): interrupted, exit 130", async () => {
    const run = new Running(["--config", config, "restart", "ce-hung"]);
    await within(hangReached.restartService.reached, 10_000, "RestartService reached");
    run.child.kill("SIGINT");
    const { code } = await run.exited();
    assert.equal(code, 130, run.stderr);
    assert.equal(run.stderr, "mcp: interrupted\n");
  });

  test("Ctrl-C during logs -f: the stream is cancelled on the agent, exit 130", async () => {
    logsStarted = signal();
    logsCancelled = signal();
    const run = new Running(["--config", config, "logs", "-f", "ce-hung"]);
    await within(logsStarted.reached, 10_000, "Logs reached");
    const deadline = Date.now() + 10_000;
    while (!run.stdout.includes("line 2\n")) {
      assert.ok(Date.now() < deadline, `no lines: ${run.stdout}${run.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    run.child.kill("SIGINT");
    const { code } = await run.exited();
    assert.equal(code, 130, run.stderr);
    assert.equal(run.stderr, "mcp: interrupted\n");
    assert.match(run.stdout, /^line 0\nline 1\nline 2\n/);
    await within(logsCancelled.reached, 5000, "the agent saw the cancel");
  });

  test("usage and bad input of a state change exit 2; of other commands, 1", async () => {
    const missing = await mcp(["restart"]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /missing required argument 'service'/);
    const badDeadline = await mcp(["stop", SERVICE, "--deadline", "soon"]);
    assert.equal(badDeadline.code, 2, badDeadline.stderr);
    const noDef = await mcp(["deploy", "ce-nope"]);
    assert.equal(noDef.code, 2, noDef.stderr);
    assert.match(noDef.stderr, /^mcp: no definition for service "ce-nope": /);
    // history is not a state change: its usage errors stay 1.
    assert.equal((await mcp(["history"])).code, 1);
  });
});
