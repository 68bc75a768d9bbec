/**
 * DeployStream and Rollback over real gRPC (TLS, tokens) on loopback, with
 * the agent's handlers over a fake runtime: progress per step, then the
 * result and revision; errors as statuses with the same trailer as the
 * unary Deploy; a client that goes away does not stop the deploy; the guard
 * covers them. And the CLI's side: progress lines, --quiet, --json, the
 * unary fallback for older agents, Ctrl-C (exit 130, the agent goes on).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { createSecureContext } from "node:tls";
import { createHandlers } from "../../src/agent/server/handlers.js";
import { dialAgent, type AgentClient } from "../../src/cli/client.js";
import { deployCommand } from "../../src/cli/commands/deploy.js";
import { rollbackCommand } from "../../src/cli/commands/rollback.js";
import { CliContext, type CliIO } from "../../src/cli/context.js";
import type { InterruptSource } from "../../src/cli/operation-stream.js";
import { runCli } from "../../src/cli/program.js";
import {
  McpAgentServiceClient,
  type DeployEvent,
  type DeployRequest,
} from "../../src/gen/mcp/v1/mcp.js";
import { ERROR_CODE_KEY } from "../../src/protocol/wire.js";
import { containerName } from "../../src/runtime/names.js";
import { memoryLogger, startTestAgent, type TestAgent } from "../helpers/agent.js";
import { FRESH_DEPLOY_STEPS, inOrder } from "../helpers/deploy-steps.js";
import { IMAGE, IMAGE_V2, NODE, agent as fakeAgent, example } from "../helpers/fake-agent.js";

function capture(): CliIO & { stdout: () => string; stderr: () => string } {
  let out = "";
  let err = "";
  return {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    // A stop-first redeploy's downtime line depends on timing (cli-progress tests cover it).
    stdout: () => out.replace(/^ {4}downtime .*\n/gm, ""),
    stderr: () => err,
  };
}

/** An interrupt the test fires by hand (Ctrl-C). */
function manualInterrupt(): { source: InterruptSource; fire: () => void } {
  let stop: (() => void) | undefined;
  return {
    source: (s) => {
      stop = s;
      return () => (stop = undefined);
    },
    fire: () => stop?.(),
  };
}

const DEF = (image: string) =>
  [
    'name = "st-hello"',
    `node = "${NODE}"`,
    "[[components]]",
    'name = "web"',
    `image = "${image}"`,
    "[[components.routes]]",
    "port = 443",
    "",
  ].join("\n");

describe("DeployStream and Rollback", () => {
  const fake = fakeAgent();
  let server: TestAgent;
  let client: AgentClient;
  let defFile: string;
  const ctx = (io = capture()) => ({ io, ctx: new CliContext(server.init.cliConfig, io) });

  before(async () => {
    server = await startTestAgent({ impl: createHandlers(fake.ctx), node: NODE });
    client = dialAgent({
      address: server.address,
      caCertPem: server.caCertPem,
      token: server.token,
      name: NODE,
    });
    defFile = join(server.init.servicesDir, "st-hello.toml");
    await writeFile(defFile, DEF(IMAGE));
  });
  after(async () => {
    client.close();
    await server.close();
  });

  const request = (): DeployRequest => ({ service: example("hello"), component: "" });

  test("a start and an end per step, in order, then the result with the revision", async () => {
    const events: DeployEvent[] = [];
    for await (const e of client.stream("deployStream", request())) events.push(e);
    const last = events.pop();
    assert.equal(last?.revision, 1);
    assert.deepEqual(
      last?.result?.results.map((r) => [r.name, r.success]),
      [["web", true]],
    );
    // Each step starts, then ends ok, before the next one starts.
    const steps = events.map((e) => e.progress?.step ?? "");
    events.forEach((e, i) => {
      assert.equal(e.progress?.phase, i % 2 === 0 ? "start" : "ok", JSON.stringify(e));
      if (i % 2 === 1) assert.equal(e.progress?.step, steps[i - 1]);
    });
    assert.ok(inOrder(steps, FRESH_DEPLOY_STEPS), steps.join(", "));
    assert.ok(events.every((e) => e.progress?.component === "web" && e.result === undefined));
    assert.equal(fake.registry.revisions.list("hello")[0]?.revision, 1);
  });

  test("bad input: the same status and error-code trailer as the unary Deploy", async () => {
    const bad: DeployRequest = {
      service: { ...example("hello"), node: "elsewhere" },
      component: "",
    };
    const unary = await client.call("deploy", bad).then(
      () => assert.fail("deploy accepted"),
      (err: unknown) => err,
    );
    const streamed = await (async () => {
      for await (const e of client.stream("deployStream", bad))
        assert.fail(`an event: ${JSON.stringify(e)}`);
    })().then(
      () => assert.fail("stream accepted"),
      (err: unknown) => err,
    );
    for (const err of [unary, streamed]) {
      const cause = (err as { cause: ServiceError }).cause;
      assert.equal(cause.code, status.INVALID_ARGUMENT);
      assert.deepEqual(cause.metadata.get(ERROR_CODE_KEY), ["invalid_argument"]);
      assert.match((err as Error).message, /defined for node "elsewhere"/);
    }
  });

  test("no token: UNAUTHENTICATED, nothing deployed", async () => {
    const raw = new McpAgentServiceClient(
      `localhost:${server.port}`,
      credentials.createFromSecureContext(createSecureContext({ ca: server.caCertPem })),
    );
    for (const call of [
      raw.deployStream(request()),
      raw.rollback({ service: "hello", component: "", toRevision: 0 }),
    ]) {
      const err = await new Promise<ServiceError>((resolve) => {
        call.on("data", () => assert.fail("an event without a token"));
        call.on("error", resolve);
      });
      assert.equal(err.code, status.UNAUTHENTICATED);
    }
    raw.close();
  });

  test("a client that goes away mid-deploy: the deploy runs to its end and is recorded", async () => {
    const release = fake.runtime.hold("start", containerName("st-hello", "web"));
    const io = capture();
    const interrupt = manualInterrupt();
    const { ctx: cli } = { ctx: new CliContext(server.init.cliConfig, io) };
    const running = deployCommand(cli, "st-hello", {}, interrupt.source);
    // Wait until the agent is at `start container` (it holds there), then Ctrl-C.
    while (!io.stdout().includes("web: allocate ports ✓")) await sleep(10);
    interrupt.fire();
    assert.equal(await running, 130);
    assert.equal(
      io.stderr(),
      `mcp: interrupted: the agent on node ${NODE} goes on and finishes or rolls back the deploy; see mcp history st-hello / mcp status st-hello\n`,
    );
    assert.equal(fake.registry.revisions.list("st-hello").length, 0, "still running");
    release();
    for (let i = 0; i < 200 && fake.registry.revisions.list("st-hello").length === 0; i++) {
      await sleep(10);
    }
    const [rev] = fake.registry.revisions.list("st-hello");
    assert.deepEqual([rev?.revision, rev?.outcome], [1, "ok"]);
    assert.equal(fake.registry.components.get("st-hello", "web")?.observedState, "running");
  });

  test("a cancelled call: the agent stops writing, finishes the deploy and records it", async () => {
    const { logger, lines } = memoryLogger();
    const own = fakeAgent();
    own.ctx.logger = logger;
    const agentServer = await startTestAgent({ impl: createHandlers(own.ctx), node: NODE });
    const own2 = dialAgent({
      address: agentServer.address,
      caCertPem: agentServer.caCertPem,
      token: agentServer.token,
      name: NODE,
    });
    try {
      const release = own.runtime.hold("start", containerName("hello", "web"));
      const call = own2.raw.deployStream(request());
      const cancelled = new Promise<ServiceError>((resolve) => call.on("error", resolve));
      await new Promise<void>((resolve) =>
        call.on("data", (e: DeployEvent) => {
          if (e.progress?.step === "start container") resolve();
        }),
      );
      call.cancel();
      assert.equal((await cancelled).code, status.CANCELLED);
      // The client says CANCELLED at once; the agent learns it from the RST_STREAM.
      await sleep(100);
      release();
      for (let i = 0; i < 200 && own.registry.revisions.list("hello").length === 0; i++) {
        await sleep(10);
      }
      assert.equal(own.registry.revisions.list("hello")[0]?.outcome, "ok");
      assert.equal(own.runtime.containers.get(containerName("hello", "web"))?.state, "running");
      await sleep(50);
      assert.ok(
        lines().some((l) => l.msg === "finished after the client went away" && l.revision === 1),
        JSON.stringify(lines()),
      );
    } finally {
      own2.close();
      await agentServer.close();
    }
  });

  test("mcp deploy prints a line per finished step, then the summary", async () => {
    const { io, ctx: cli } = ctx();
    assert.equal(await deployCommand(cli, "st-hello", {}), 0);
    const lines = io.stdout().trimEnd().split("\n");
    const port = fake.registry.routes.list({ service: "st-hello" })[0]?.hostPort;
    assert.equal(lines.pop(), `  web: ok  PORT=${port}`);
    const steps = lines.map((l) => /^web: (.+) ✓ \d+\.\ds$/.exec(l)?.[1] ?? `unexpected: ${l}`);
    assert.ok(inOrder(steps, FRESH_DEPLOY_STEPS), io.stdout());
    assert.equal(new Set(steps).size, steps.length, "one line per step");
  });

  test("--quiet: only the result; --json: the result and revision as JSON", async () => {
    const quiet = ctx();
    assert.equal(await deployCommand(quiet.ctx, "st-hello", { quiet: true }), 0);
    assert.match(quiet.io.stdout(), /^ {2}web: ok {2}PORT=\d+\n$/);
    const json = ctx();
    assert.equal(await deployCommand(json.ctx, "st-hello", { json: true }), 0);
    const parsed = JSON.parse(json.io.stdout()) as {
      node: string;
      service: string;
      revision: number;
      results: { name: string; success: boolean; outcome: string }[];
    };
    assert.equal(parsed.node, NODE);
    assert.equal(parsed.service, "st-hello");
    assert.equal(parsed.revision, fake.registry.revisions.list("st-hello")[0]?.revision);
    assert.deepEqual(
      parsed.results.map((r) => [r.name, r.success, r.outcome]),
      [["web", true, "ok"]],
    );
  });

  test("mcp rollback: progress, summary, and history says rollback", async () => {
    await writeFile(defFile, DEF(IMAGE_V2));
    assert.equal(await deployCommand(ctx().ctx, "st-hello", { quiet: true }), 0);
    const { io, ctx: cli } = ctx();
    assert.equal(await rollbackCommand(cli, "st-hello", {}), 0, io.stderr());
    const text = io.stdout();
    assert.match(text, /^web: rollback to revision \d+ \(localhost\/mcp-httpenv:v1\)\n/);
    assert.match(text, /\nweb: start container ✓ \d+\.\ds\n/);
    assert.match(text, /\n {2}web: ok {2}PORT=\d+\n$/);
    assert.equal(fake.registry.components.get("st-hello", "web")?.spec.image, IMAGE);
    const history = capture();
    assert.equal(
      await runCli(
        ["node", "mcp", "--config", server.init.cliConfig, "history", "st-hello"],
        history,
      ),
      0,
    );
    assert.match(
      history.stdout(),
      /\n\d+\s+web\s+localhost\/mcp-httpenv:v1\s+\S+ \S+Z\s+ok \(rollback to \d+\)\n/,
    );
    // The file still says v2: status says what runs differs from it.
    const status = capture();
    assert.equal(
      await runCli(
        ["node", "mcp", "--config", server.init.cliConfig, "status", "st-hello"],
        status,
      ),
      0,
      status.stderr(),
    );
    assert.ok(
      status
        .stdout()
        .includes(
          `\nweb: runs a different spec than ${defFile} (running → file: image ${IMAGE} → ${IMAGE_V2})\n(mcp deploy st-hello runs the file's spec; mcp history st-hello shows what ran)\n`,
        ),
      status.stdout(),
    );
    // Deploying the file again: no difference left.
    assert.equal(await deployCommand(ctx().ctx, "st-hello", { quiet: true }), 0);
    const again = capture();
    await runCli(["node", "mcp", "--config", server.init.cliConfig, "status", "st-hello"], again);
    assert.doesNotMatch(again.stdout(), /different spec/);
  });

  test("exit codes: 2 for a bad target, an unknown revision or usage; 1 for a failed deploy", async () => {
    const cli = async (...args: string[]) => {
      const io = capture();
      const code = await runCli(["node", "mcp", "--config", server.init.cliConfig, ...args], io);
      return { code, stderr: io.stderr(), stdout: io.stdout() };
    };
    const unknown = await cli("rollback", "st-hello", "--to", "99");
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(
      unknown.stderr,
      /^mcp: node local: service st-hello has no revision 99 \(the agent keeps revisions 1-\d+/,
    );
    const noComponent = await cli("deploy", "st-hello/db");
    assert.equal(noComponent.code, 2);
    const badTo = await cli("rollback", "st-hello", "--to", "x");
    assert.equal(badTo.code, 2);
    assert.match(badTo.stderr, /--to: expected a revision number/);
    const usage = await cli("rollback");
    assert.equal(usage.code, 2);
    const nodef = await cli("deploy", "st-nope");
    assert.equal(nodef.code, 2);

    fake.runtime.failNext("run", new Error("podman run exited 126: boom"));
    const failed = await cli("deploy", "st-hello");
    assert.equal(failed.code, 1, failed.stderr);
    // The step that runs the new container (start trial: st-hello is start-first)
    // fails, is undone, and the summary names it.
    assert.match(failed.stdout, /\nweb: ([a-z ]+) ✗ \d+\.\ds podman run exited 126: boom\n/);
    const step = /\nweb: ([a-z ]+) ✗/.exec(failed.stdout)?.[1];
    assert.match(failed.stdout, /\nweb: undo /);
    assert.ok(
      failed.stdout.includes(
        `\n  web: failed: ${step}: podman run exited 126: boom\n    failed step: ${step}\n`,
      ),
      failed.stdout,
    );
  });
});

describe("an agent without the streaming RPC", () => {
  test("mcp deploy falls back to the unary Deploy; mcp rollback says the agent is too old", async () => {
    const fake = fakeAgent();
    const { deploy } = createHandlers(fake.ctx);
    const server = await startTestAgent({ impl: { deploy }, node: NODE });
    try {
      await writeFile(join(server.init.servicesDir, "st-hello.toml"), DEF(IMAGE));
      const io = capture();
      assert.equal(
        await deployCommand(new CliContext(server.init.cliConfig, io), "st-hello", {}),
        0,
      );
      // No progress (the unary Deploy has none), the summary as ever.
      assert.match(io.stdout(), /^ {2}web: ok {2}PORT=\d+\n$/);
      const json = capture();
      await deployCommand(new CliContext(server.init.cliConfig, json), "st-hello", { json: true });
      assert.equal((JSON.parse(json.stdout()) as { revision?: number }).revision, undefined);
      await assert.rejects(
        rollbackCommand(new CliContext(server.init.cliConfig, capture()), "st-hello", {}),
        { message: /^agent on node local does not know Rollback; this needs 0\.2\.0 or later$/ },
      );
    } finally {
      await server.close();
    }
  });
});
