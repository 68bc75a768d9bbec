/**
 * The CLI's time limits end to end: the real `mcp` against a real agent and
 * podman. A state change whose deadline passes exits 3 and says it may still
 * be running, and it then does finish on the agent; a connection that never
 * comes up (an agent stopped with SIGSTOP) fails within the connect timeout
 * (`--timeout`, `[client] connect_timeout`) with exit 1, because nothing was
 * sent.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import {
  LiveAgent,
  ok,
  oneRouteDefinition,
  type CliRun,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "tr-cli";
const SERVICE = "tr-dl";

describe("CLI deadlines and connect timeouts against a real agent", () => {
  let agent: LiveAgent;
  let defFile: string;
  const address = () => `127\\.0\\.0\\.1:${agent.port}`;

  /** The observed state of SERVICE/web, polled until `want` or 15 s. */
  async function waitObserved(want: string): Promise<string> {
    const deadline = Date.now() + 15_000;
    let seen = "";
    while (Date.now() < deadline) {
      const run = await agent.cli(["list", "--json"]);
      if (run.code === 0) {
        const nodes = JSON.parse(run.stdout) as NodeServicesJson[];
        const svc = nodes.flatMap((n) => n.services).find((s) => s.name === SERVICE);
        seen = svc?.components[0]?.observedState ?? "absent";
        if (seen === want) return seen;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return seen;
  }

  async function timed(args: string[]): Promise<CliRun & { ms: number }> {
    const start = Date.now();
    const run = await agent.cli(args);
    return { ...run, ms: Date.now() - start };
  }

  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
    defFile = await agent.addDefinition(SERVICE, oneRouteDefinition(SERVICE, NODE));
  });
  after(async () => {
    await agent.cleanup();
  });

  test("a deploy whose deadline passes exits 3, says it may still be running, and it is", async () => {
    const run = await agent.cli(["deploy", SERVICE, "--deadline", "100ms"]);
    assert.equal(run.code, 3, `${run.stdout}${run.stderr}`);
    // At most the progress lines of the steps done before the deadline; no result.
    assert.match(run.stdout, /^(web: .+\n)*$/);
    assert.match(
      run.stderr,
      new RegExp(
        `^mcp: deploy ${SERVICE}: node ${NODE} \\(${address()}\\) did not answer within 100 ms; ` +
          `the deploy may still be running on the agent: check with "mcp status ${SERVICE}"\\n$`,
      ),
    );
    // The message told the truth: the agent carried on and the deploy finished.
    assert.equal(await waitObserved("running"), "running");
    const status = ok(await agent.cli(["status", SERVICE]), "status");
    assert.match(status.stdout, new RegExp(`${SERVICE}`));
  });

  test("a stop whose deadline passes exits 3; the file says active = false and the stop happens", async () => {
    const run = await agent.cli(["stop", SERVICE, "--deadline", "100ms"]);
    assert.equal(run.code, 3, `${run.stdout}${run.stderr}`);
    assert.match(
      run.stderr,
      new RegExp(
        `^mcp: ${defFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} now says active = false; stop ${SERVICE}: ` +
          `node ${NODE} \\(${address()}\\) did not answer within 100 ms; the stop may still be running`,
      ),
    );
    assert.match(await readFile(defFile, "utf8"), /^active = false$/m);
    assert.notEqual(await waitObserved("exited"), "running");
    // Within its (default) deadline the same command succeeds: exit 0.
    ok(await agent.cli(["start", SERVICE]), "start");
  });

  test("an agent that accepts TCP but never finishes TLS: exit 1 within --timeout, nothing sent", async () => {
    const pid = agent.pid;
    assert.ok(pid);
    const cliText = await readFile(agent.cliConfig, "utf8");
    process.kill(pid, "SIGSTOP");
    try {
      const deploy = await timed(["--timeout", "500ms", "deploy", SERVICE]);
      assert.equal(deploy.code, 1, deploy.stderr);
      assert.equal(
        deploy.stderr,
        `mcp: node ${NODE} (127.0.0.1:${agent.port}) did not answer within 500 ms\n`,
      );
      assert.ok(deploy.ms < 5000, `deploy took ${deploy.ms} ms`);

      // A fan-out command names the node; [client] connect_timeout sets the limit.
      await writeFile(agent.cliConfig, `${cliText}\n[client]\nconnect_timeout = "700ms"\n`);
      const ps = await timed(["ps"]);
      assert.equal(ps.code, 1);
      assert.equal(ps.stderr, `mcp: node ${NODE}: did not answer within 700 ms\n`);
      assert.ok(ps.ms < 5000, `ps took ${ps.ms} ms`);
      // --timeout wins over the config.
      const status = await timed(["status", "--timeout", "300ms"]);
      assert.equal(status.stderr, `mcp: node ${NODE}: did not answer within 300 ms\n`);
    } finally {
      process.kill(pid, "SIGCONT");
      await writeFile(agent.cliConfig, cliText);
    }
    ok(await agent.cli(["ps"]), "ps after SIGCONT");
    ok(await agent.cli(["undeploy", SERVICE]), "undeploy");
  });
});
