/**
 * The CLI's time limits: `--timeout` / `[client] connect_timeout`, the
 * per-command deadlines of state changes, exit 3 with "may still be running"
 * when one passes, and the one-line messages for deadlines and message sizes.
 * The command runs go through runCli against a real in-process gRPC server
 * (TLS, token) whose handlers answer late on purpose.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Metadata, status, type sendUnaryData, type ServiceError } from "@grpc/grpc-js";
import { toServiceError } from "../../src/agent/server/rpc.js";
import { messageSizeReason, toMcpError } from "../../src/cli/client.js";
import { CliContext, type CliIO } from "../../src/cli/context.js";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  STATE_CHANGE_DEADLINE_MS,
  fanOutLimits,
  formatLimit,
} from "../../src/cli/limits.js";
import {
  EXIT,
  OutcomeUnknownError,
  asOutcome,
  exitCodeFor,
  lookCommand,
} from "../../src/cli/outcome.js";
import { parseDurationOption, runCli } from "../../src/cli/program.js";
import {
  ComponentResult,
  DeployResponse,
  PurgeResponse,
  RestartServiceResponse,
  StopServiceResponse,
  SyncDesiredStateResponse,
} from "../../src/gen/mcp/v1/mcp.js";
import { ERROR_CODE_KEY } from "../../src/protocol/wire.js";
import { McpError } from "../../src/util/errors.js";
import { startTestAgent, type TestAgent } from "../helpers/agent.js";

function capture(): CliIO & { stdout: () => string; stderr: () => string } {
  let out = "";
  let err = "";
  return {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    stdout: () => out,
    stderr: () => err,
  };
}

function grpcError(code: status, details: string, trailer?: string): ServiceError {
  const metadata = new Metadata();
  if (trailer) metadata.set(ERROR_CODE_KEY, trailer);
  return Object.assign(new Error(details), { code, details, metadata });
}

describe("limits and messages", () => {
  test("defaults: 15 s to connect, fan-out nodes get twice that in all", () => {
    assert.equal(DEFAULT_CONNECT_TIMEOUT_MS, 15_000);
    assert.deepEqual(fanOutLimits(15_000), { connectMs: 15_000, totalMs: 30_000 });
    assert.deepEqual(fanOutLimits(500), { connectMs: 500, totalMs: 1000 });
    // Every state change has a finite deadline of at least two minutes.
    for (const [verb, ms] of Object.entries(STATE_CHANGE_DEADLINE_MS)) {
      assert.ok(ms >= 120_000 && Number.isFinite(ms), verb);
    }
    assert.equal(STATE_CHANGE_DEADLINE_MS.deploy, 15 * 60_000);
  });

  test("formatLimit reads minutes for long limits", () => {
    assert.equal(formatLimit(15 * 60_000), "15 min");
    assert.equal(formatLimit(120_000), "2 min");
    assert.equal(formatLimit(90_000), "90 s");
    assert.equal(formatLimit(15_000), "15 s");
    assert.equal(formatLimit(300), "300 ms");
  });

  test("--timeout / --deadline values: durations above zero", () => {
    assert.equal(parseDurationOption("15s"), 15_000);
    assert.equal(parseDurationOption("1m30s"), 90_000);
    assert.equal(parseDurationOption("250ms"), 250);
    assert.throws(() => parseDurationOption("0s"), /above zero/);
    assert.throws(() => parseDurationOption("15"), /invalid duration "15"/);
  });

  test("a passed deadline is timed_out, naming the limit; the agent's timed_out code survives the wire", () => {
    const e = toMcpError(
      grpcError(status.DEADLINE_EXCEEDED, "Deadline exceeded after 0.201s,remote_addr=x"),
      "n1",
      "127.0.0.1:9444",
      200,
    );
    assert.equal(e.code, "timed_out");
    assert.equal(e.message, "node n1 (127.0.0.1:9444) did not answer within 200 ms");
    const sent = toServiceError(new McpError("timed_out", "podman did not answer"));
    assert.equal(sent.code, status.DEADLINE_EXCEEDED);
    const back = toMcpError(
      grpcError(status.DEADLINE_EXCEEDED, "podman did not answer", "timed_out"),
      "n1",
      "a:1",
    );
    assert.equal(back.code, "timed_out");
    assert.equal(back.message, "node n1: podman did not answer");
  });

  test("message-size failures name the limit", () => {
    assert.equal(
      messageSizeReason("Sent message larger than max (70000000 vs. 67108864)"),
      "the agent's answer, 66.8 MiB (70000000 bytes), is over its 64.0 MiB gRPC message limit",
    );
    assert.equal(
      messageSizeReason("Received message larger than max (2097152 vs 1048576)"),
      "a message of 2.0 MiB (2097152 bytes) is over the 1.0 MiB gRPC message limit",
    );
    assert.equal(
      messageSizeReason("Attempted to send message with a size larger than 1024"),
      "the request is over the CLI's 1.0 KiB gRPC message limit",
    );
    assert.equal(messageSizeReason("no free tcp port"), undefined);
    const e = toMcpError(
      grpcError(status.RESOURCE_EXHAUSTED, "Received message larger than max (2097152 vs 1048576)"),
      "n1",
      "a:1",
    );
    assert.equal(
      e.message,
      "node n1: a message of 2.0 MiB (2097152 bytes) is over the 1.0 MiB gRPC message limit",
    );
    // The agent's own RESOURCE_EXHAUSTED (ports) keeps its code and text.
    const ports = toMcpError(
      grpcError(status.RESOURCE_EXHAUSTED, "no free tcp port", "ports_exhausted"),
      "n1",
      "a:1",
    );
    assert.equal(ports.code, "ports_exhausted");
  });

  test("an unknown outcome: message says how to look, exit 3; other errors exit 1", () => {
    const reason = "node n1 (a:1) did not answer within 15 min";
    const deploy = new OutcomeUnknownError({ verb: "deploy", target: "web/api" }, reason);
    assert.equal(deploy.code, "timed_out");
    assert.equal(
      deploy.message,
      'deploy web/api: node n1 (a:1) did not answer within 15 min; the deploy may still be running on the agent: check with "mcp status web"',
    );
    assert.equal(exitCodeFor(deploy), EXIT.unknown);
    assert.equal(EXIT.unknown, 3);
    assert.equal(exitCodeFor(new McpError("timed_out", reason)), 1, "a read that timed out failed");
    assert.equal(exitCodeFor(new McpError("unavailable", "refused")), 1);
    assert.equal(lookCommand({ verb: "sync" }), "mcp sync --dry-run");
    assert.equal(lookCommand({ verb: "purge" }), "mcp list");
    assert.equal(lookCommand({ verb: "purge", target: "a/b" }), "mcp purge --dry-run a/b");
    assert.equal(lookCommand({ verb: "stop", target: "a" }), "mcp status a");
    // Only a passed deadline is turned into an unknown outcome.
    const timed = asOutcome(new McpError("timed_out", reason), { verb: "stop", target: "a" });
    assert.ok(timed instanceof OutcomeUnknownError);
    const refused = new McpError("unavailable", "connect ECONNREFUSED");
    assert.equal(asOutcome(refused, { verb: "stop", target: "a" }), refused);
  });
});

describe("CLI against a slow agent", () => {
  let agent: TestAgent;
  let slowMs = 0;
  const later =
    <T>(value: T) =>
    (_call: unknown, cb: sendUnaryData<T>) =>
      setTimeout(() => cb(null, value), slowMs);
  const DEF = [
    'name = "tr-slow"',
    'node = "tr-unit"',
    "[[components]]",
    'name = "web"',
    'image = "localhost/mcp-httpenv:v1"',
    "",
  ].join("\n");
  let defFile: string;
  const cli = async (...args: string[]) => {
    const io = capture();
    const code = await runCli(["node", "mcp", "--config", agent.init.cliConfig, ...args], io);
    return { code, stdout: io.stdout(), stderr: io.stderr() };
  };

  before(async () => {
    const results = [ComponentResult.fromPartial({ name: "web", success: true })];
    agent = await startTestAgent({
      node: "tr-unit",
      impl: {
        deploy: later(DeployResponse.fromPartial({ results })),
        stopService: later(StopServiceResponse.fromPartial({ results })),
        restartService: later(RestartServiceResponse.fromPartial({ results })),
        syncDesiredState: later(SyncDesiredStateResponse.fromPartial({ results: [] })),
        purgeComponent: later(PurgeResponse.fromPartial({ results: [] })),
      },
    });
    defFile = join(agent.init.servicesDir, "tr-slow.toml");
    await writeFile(defFile, DEF);
  });
  after(async () => {
    await agent.close();
  });

  test("deploy past its --deadline: exit 3, 'may still be running', how to look", async () => {
    slowMs = 1500;
    const start = Date.now();
    const run = await cli("deploy", "tr-slow", "--deadline", "200ms");
    assert.ok(Date.now() - start < 1400, `took ${Date.now() - start} ms`);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, "");
    assert.equal(
      run.stderr,
      `mcp: deploy tr-slow: node tr-unit (${agent.address}) did not answer within 200 ms; the deploy may still be running on the agent: check with "mcp status tr-slow"\n`,
    );
    // In time, the same deploy succeeds.
    slowMs = 0;
    const ok = await cli("deploy", "tr-slow", "--deadline", "5s");
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "  web: ok\n");
  });

  test("stop past its deadline: the file says active = false, exit 3; restart too", async () => {
    slowMs = 1500;
    const stop = await cli("stop", "tr-slow", "--deadline", "200ms");
    assert.equal(stop.code, 3, stop.stderr);
    assert.equal(
      stop.stderr,
      `mcp: ${defFile} now says active = false; stop tr-slow: node tr-unit (${agent.address}) did not answer within 200 ms; the stop may still be running on the agent: check with "mcp status tr-slow"\n`,
    );
    assert.match(await readFile(defFile, "utf8"), /^active = false$/m);
    const restart = await cli("restart", "tr-slow", "--deadline", "200ms");
    assert.equal(restart.code, 3);
    assert.match(restart.stderr, /^mcp: restart tr-slow: .* the restart may still be running/);
    slowMs = 0;
  });

  test("sync and purge past their deadlines exit 3; their dry runs are plain failures", async () => {
    slowMs = 1500;
    const sync = await cli("sync", "--deadline", "200ms");
    assert.equal(sync.code, 3, sync.stderr);
    assert.equal(
      sync.stderr,
      `mcp: sync: node tr-unit (${agent.address}) did not answer within 200 ms; the sync may still be running on the agent: check with "mcp sync --dry-run"\n`,
    );
    const dry = await cli("sync", "--dry-run", "--deadline", "200ms");
    assert.equal(dry.code, 2, "a dry run that timed out is an error");
    assert.match(dry.stderr, /^mcp: node tr-unit \(.*\) did not answer within 200 ms\n$/);
    const purge = await cli("purge", "--deadline", "200ms");
    assert.equal(purge.code, 3, purge.stderr);
    assert.match(
      purge.stderr,
      /^mcp: purge: .* within 200 ms; the purge may still be running on the agent: check with "mcp list"\n$/,
    );
    const purgeDry = await cli("purge", "--dry-run", "--deadline", "200ms");
    assert.equal(purgeDry.code, 1);
    slowMs = 0;
  });

  test("connect timeout: --timeout, else [client] connect_timeout, else 15 s", async () => {
    const ctx = (flag?: number) =>
      new CliContext(agent.init.cliConfig, capture(), { connectTimeoutMs: flag });
    assert.equal(await ctx().connectTimeoutMs(), 15_000);
    const text = await readFile(agent.init.cliConfig, "utf8");
    try {
      await writeFile(agent.init.cliConfig, `${text}\n[client]\nconnect_timeout = "40s"\n`);
      assert.equal(await ctx().connectTimeoutMs(), 40_000);
      assert.equal(await ctx(1500).connectTimeoutMs(), 1500);
      // Wired through: a bad --timeout is a usage error, after the subcommand too.
      const bad = await cli("ps", "--timeout", "soon");
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /option '--timeout <duration>' argument 'soon' is invalid/);
    } finally {
      await writeFile(agent.init.cliConfig, text);
    }
  });
});
