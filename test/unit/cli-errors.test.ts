/**
 * The CLI's words for agents that are not there or too old, its exit codes
 * for state changes, and the Ctrl-C hook: the RPC version table, how gRPC's
 * reasons are sorted (not answering / TLS / other), changeExitCodeFor, the
 * interrupt handler stack, and deploy/start/stop/restart/undeploy through
 * runCli against a real in-process gRPC server (TLS, token).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import {
  AgentVersionError,
  NodeNotAnsweringError,
  hintLine,
  isUnimplemented,
  notAnsweringWhy,
  toMcpError,
} from "../../src/cli/client.js";
import { CliContext, type CliIO } from "../../src/cli/context.js";
import { INTERRUPTED_MESSAGE, interruptLine, onInterrupt } from "../../src/cli/interrupt.js";
import {
  EXIT,
  OutcomeUnknownError,
  changeExitCodeFor,
  exitCodeFor,
} from "../../src/cli/outcome.js";
import { runCli } from "../../src/cli/program.js";
import {
  ComponentResult,
  McpAgentServiceService,
  RestartServiceResponse,
  StartServiceResponse,
} from "../../src/gen/mcp/v1/mcp.js";
import {
  RPC_SINCE,
  compareVersions,
  rpcName,
  type RpcMethod,
} from "../../src/protocol/rpc-versions.js";
import { ERROR_CODE_KEY } from "../../src/protocol/wire.js";
import { McpError, StepError } from "../../src/util/errors.js";
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

describe("RPC versions", () => {
  test("every RPC has the version that introduced it, and its proto name", () => {
    const methods = Object.keys(McpAgentServiceService) as RpcMethod[];
    assert.deepEqual(Object.keys(RPC_SINCE).sort(), [...methods].sort());
    for (const m of methods) {
      assert.equal(`/mcp.v1.McpAgentService/${rpcName(m)}`, McpAgentServiceService[m].path);
      assert.match(RPC_SINCE[m], /^\d+\.\d+\.\d+$/, m);
    }
    assert.equal(RPC_SINCE.deployStream, "0.2.0");
    assert.equal(RPC_SINCE.rollback, "0.2.0");
    assert.equal(RPC_SINCE.listRevisions, "0.1.0");
  });

  test("compareVersions: numeric parts, pre-releases before their release", () => {
    assert.ok(compareVersions("0.1.0", "0.2.0") < 0);
    assert.ok(compareVersions("0.10.0", "0.9.3") > 0);
    assert.equal(compareVersions("1.2.3", "v1.2.3"), 0);
    assert.ok(compareVersions("0.2.0-rc.1", "0.2.0") < 0);
    assert.ok(compareVersions("0.2.0", "0.2.0-rc.1") > 0);
    assert.ok(compareVersions("0.2.0-rc.1", "0.2.0-rc.2") < 0);
    assert.ok(compareVersions("0.0.0-test", "0.1.0") < 0);
    assert.ok(compareVersions("garbage", "0.1.0") < 0);
  });

  test("AgentVersionError: older, not older, unknown; isUnimplemented", () => {
    const older = new AgentVersionError("n1", "deployStream", "0.2.0", "0.1.0");
    assert.equal(older.message, "agent on node n1 is version 0.1.0; this needs 0.2.0 or later");
    assert.equal(older.code, "failed_precondition");
    assert.equal(
      new AgentVersionError("n1", "deployStream", "0.2.0", "0.2.1").message,
      "agent on node n1 is version 0.2.1 but does not implement DeployStream (this needs 0.2.0 or later)",
    );
    assert.equal(
      new AgentVersionError("n1", "rollback", "0.2.0", undefined).message,
      "agent on node n1 does not know Rollback; this needs 0.2.0 or later",
    );
    assert.ok(isUnimplemented(older));
    assert.ok(isUnimplemented(older, "deployStream"));
    assert.ok(!isUnimplemented(older, "rollback"));
    assert.ok(isUnimplemented(grpcError(status.UNIMPLEMENTED, "nope")));
    // An McpError the agent sent is not "unimplemented", whatever status carried it.
    assert.ok(!isUnimplemented(grpcError(status.UNIMPLEMENTED, "x", "invalid_argument")));
    assert.ok(!isUnimplemented(new McpError("failed_precondition", "x")));
    assert.ok(!isUnimplemented(grpcError(status.UNAVAILABLE, "x")));
  });
});

describe("not answering vs other connection failures", () => {
  const addr = "10.0.0.2:9444";
  test("refused, no route, no network, no such name: not answering, with a hint", () => {
    for (const [details, why] of [
      [
        "No connection established. Last error: connect ECONNREFUSED 10.0.0.2:9444",
        "connection refused",
      ],
      [
        "No connection established. Last error: Error: connect EHOSTUNREACH 10.0.0.2:9444",
        "no route to host",
      ],
      ["connect ENETUNREACH 10.0.0.2:9444", "network unreachable"],
      ["Name resolution failed for target dns:10.0.0.2:9444", "10.0.0.2 does not resolve"],
      ["getaddrinfo ENOTFOUND lab2.example", "10.0.0.2 does not resolve"],
    ] as const) {
      assert.equal(notAnsweringWhy(details, addr), why, details);
      const err = toMcpError(grpcError(status.UNAVAILABLE, details), "n2", addr);
      assert.ok(err instanceof NodeNotAnsweringError, details);
      assert.equal(err.code, "unavailable");
      assert.equal(err.message, "node n2 (10.0.0.2:9444) is not answering: is mcp-agent running?");
      assert.equal(exitCodeFor(err), EXIT.failed);
      assert.equal(changeExitCodeFor(err), EXIT.failed);
      assert.match(hintLine(err), new RegExp(`^hint: ${why}; .*mcp-agent serve --config \\S+\\n$`));
    }
    const refused = toMcpError(grpcError(status.UNAVAILABLE, "connect ECONNREFUSED x"), "n", addr);
    assert.equal(
      hintLine(refused),
      "hint: connection refused; start it on the node: mcp-agent serve --config /srv/mcp/mcp-agent.toml\n",
    );
  });

  test("TLS, a reset, the token: said as before, no hint", () => {
    const tls = toMcpError(
      grpcError(status.UNAVAILABLE, "unable to verify the first certificate"),
      "n2",
      addr,
    );
    assert.ok(!(tls instanceof NodeNotAnsweringError));
    assert.match(tls.message, /^node n2 \(10\.0\.0\.2:9444\): TLS verification failed/);
    const reset = toMcpError(grpcError(status.UNAVAILABLE, "read ECONNRESET"), "n2", addr);
    assert.equal(reset.message, "node n2 (10.0.0.2:9444) unreachable: read ECONNRESET");
    const token = toMcpError(grpcError(status.UNAUTHENTICATED, "unknown token"), "n2", addr);
    assert.match(token.message, /rejected the token/);
    for (const e of [tls, reset, token]) assert.equal(hintLine(e), "");
    // A name that is only a word in the agent's own message is not a connection failure.
    const sent = toMcpError(
      grpcError(status.UNAVAILABLE, "podman: connect ECONNREFUSED", "runtime"),
      "n2",
      addr,
    );
    assert.ok(!(sent instanceof NodeNotAnsweringError));
  });

  test("fan-out: the node's own line, hints once", () => {
    const io = capture();
    const ctx = new CliContext("/nonexistent/mcp.toml", io);
    const node = (name: string, address: string) => ({
      name,
      address,
      caCert: "",
      tokenPath: "",
    });
    const gone = (name: string, address: string) =>
      toMcpError(grpcError(status.UNAVAILABLE, "connect ECONNREFUSED"), name, address);
    const count = ctx.reportMissing([
      { node: node("a", "h:1"), error: "connection refused", failure: gone("a", "h:1") },
      { node: node("b", "h:2"), error: "did not answer within 1 s" },
      { node: node("c", "h:3"), error: "connection refused", failure: gone("c", "h:3") },
      { node: node("d", "h:4"), result: 1 },
    ]);
    assert.equal(count, 3);
    assert.equal(
      io.stderr(),
      [
        "mcp: node a (h:1) is not answering: is mcp-agent running?",
        "mcp: node b: did not answer within 1 s",
        "mcp: node c (h:3) is not answering: is mcp-agent running?",
        "hint: connection refused; start it on the node: mcp-agent serve --config /srv/mcp/mcp-agent.toml",
        "",
      ].join("\n"),
    );
  });
});

describe("exit codes of deploy, rollback, start, stop, restart, undeploy", () => {
  test("changeExitCodeFor: 2 bad input, 3 outcome unknown, else 1", () => {
    for (const code of ["invalid_argument", "invalid_definition", "invalid_config", "not_found"]) {
      assert.equal(changeExitCodeFor(new McpError(code as never, "x")), EXIT.usage, code);
      assert.equal(exitCodeFor(new McpError(code as never, "x")), EXIT.failed, code);
    }
    for (const code of ["failed_precondition", "step_failed", "runtime", "unavailable"]) {
      assert.equal(changeExitCodeFor(new McpError(code as never, "x")), EXIT.failed, code);
    }
    assert.equal(changeExitCodeFor(new StepError("run", "boom")), EXIT.failed);
    assert.equal(
      changeExitCodeFor(new OutcomeUnknownError({ verb: "deploy", target: "a" }, "late")),
      EXIT.unknown,
    );
    assert.equal(changeExitCodeFor(new Error("?")), EXIT.failed);
    assert.deepEqual(EXIT, { ok: 0, failed: 1, usage: 2, unknown: 3, interrupted: 130 });
  });

  describe("through runCli against a real gRPC server", () => {
    let agent: TestAgent;
    let answer: "ok" | "failed" | "unknown" | "step" = "ok";
    const results = () => [
      ComponentResult.fromPartial({
        name: "web",
        success: answer === "ok",
        ...(answer === "failed" ? { error: "run: podman run exited 125" } : {}),
      }),
    ];
    const reply =
      <T>(make: (r: { results: ComponentResult[] }) => T) =>
      (_call: unknown, cb: (err: unknown, value?: T) => void) => {
        // Thrown, the server turns McpErrors into statuses with the code trailer, as the agent's do.
        if (answer === "unknown")
          throw new McpError("not_found", "service eu-svc is not registered");
        if (answer === "step") throw new StepError("run", "podman run exited 125");
        cb(null, make({ results: results() }));
      };
    const cli = async (...args: string[]) => {
      const io = capture();
      const code = await runCli(["node", "mcp", "--config", agent.init.cliConfig, ...args], io);
      return { code, stdout: io.stdout(), stderr: io.stderr() };
    };

    before(async () => {
      agent = await startTestAgent({
        node: "eu-node",
        impl: {
          restartService: reply((r) => RestartServiceResponse.fromPartial(r)) as never,
          startService: reply((r) => StartServiceResponse.fromPartial(r)) as never,
        },
      });
      await writeFile(
        join(agent.init.servicesDir, "eu-svc.toml"),
        'name = "eu-svc"\nnode = "eu-node"\n[[components]]\nname = "web"\nimage = "localhost/mcp-httpenv:v1"\n',
      );
      await writeFile(join(agent.init.servicesDir, "eu-bad.toml"), 'name = "eu-bad"\nnode = 3\n');
    });
    after(async () => {
      await agent?.close();
    });

    test("0 done, 1 a component failed or a step failed, 2 unknown to the agent", async () => {
      for (const verb of ["restart", "start"]) {
        answer = "ok";
        assert.equal((await cli(verb, "eu-svc")).code, EXIT.ok, verb);
        answer = "failed";
        const failed = await cli(verb, "eu-svc");
        assert.equal(failed.code, EXIT.failed, verb);
        assert.match(failed.stdout, /web: failed: run: podman run exited 125/);
        answer = "step";
        assert.equal((await cli(verb, "eu-svc")).code, EXIT.failed, verb);
        answer = "unknown";
        const unknown = await cli(verb, "eu-svc");
        assert.equal(unknown.code, EXIT.usage, `${verb}: ${unknown.stderr}`);
        assert.match(unknown.stderr, /node eu-node: service eu-svc is not registered\n$/);
      }
    });

    test("2: usage errors and bad definitions, before anything is sent", async () => {
      for (const args of [
        ["restart"],
        ["stop", "a", "b"],
        ["undeploy", "--bogus", "x"],
        ["deploy", "eu-svc", "--deadline", "0s"],
        ["start", "eu-nope"],
        ["deploy", "eu-bad"],
        ["deploy", "eu-svc/nope"],
        ["deploy", "a/b/c"],
      ]) {
        const run = await cli(...args);
        assert.equal(run.code, EXIT.usage, `${args.join(" ")}: ${run.stderr}`);
        assert.notEqual(run.stderr, "", args.join(" "));
      }
      // --help is still 0, and the other commands keep 1 for usage errors.
      assert.equal((await cli("restart", "--help")).code, 0);
      assert.equal((await cli("ps", "--bogus")).code, 1);
      assert.equal((await cli("logs", "a/b/c")).code, 1);
    });
  });
});

describe("Ctrl-C handlers", () => {
  test("the latest registration wins; removing it restores the one before", () => {
    assert.equal(interruptLine(), `mcp: ${INTERRUPTED_MESSAGE}\n`);
    let cancelled = 0;
    const offLogs = onInterrupt(() => {
      cancelled++;
    });
    assert.equal(interruptLine(), "mcp: interrupted\n");
    assert.equal(cancelled, 1);
    const offDeploy = onInterrupt(() => "interrupted; the agent finishes the deploy of web");
    assert.equal(interruptLine(), "mcp: interrupted; the agent finishes the deploy of web\n");
    offDeploy();
    offDeploy(); // twice is harmless
    assert.equal(interruptLine(), "mcp: interrupted\n");
    assert.equal(cancelled, 2);
    offLogs();
    const offBroken = onInterrupt(() => {
      throw new Error("boom");
    });
    assert.equal(interruptLine(), "mcp: interrupted\n", "a failing handler still stops the CLI");
    offBroken();
  });
});
