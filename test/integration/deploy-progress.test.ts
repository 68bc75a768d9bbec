/**
 * `mcp deploy` against a real agent on real podman, through the real CLI
 * process: a line per step as it ends, --quiet, --json, and Ctrl-C in the
 * middle of a deploy (exit 130, the agent finishes and records it).
 *
 * To be in the middle of a deploy for a while, the second component's image
 * lives on a "registry" that accepts connections and answers nothing for a
 * few seconds: its pull step hangs, then fails. So the interrupted deploy
 * ends with web deployed and slow failed at pull, recorded after the CLI
 * has gone.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FRESH_DEPLOY_STEPS, inOrder } from "../helpers/deploy-steps.js";
import {
  LiveAgent,
  MCP_BIN,
  httpGet,
  ok,
  oneRouteDefinition,
  parseEnvPage,
} from "../helpers/live-agent.js";

const NODE = "st-prog-node";
const SERVICE = "st-prog";
const SLOW = "st-prog-slow";

describe("mcp deploy progress", { timeout: 180_000 }, () => {
  let agent: LiveAgent;
  let registry: Server;
  let registryPort = 0;
  const held: Socket[] = [];

  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
    registry = createServer((socket) => {
      socket.on("error", () => undefined);
      held.push(socket);
      // Say nothing for 3 s, then hang up: podman's pull waits, then fails.
      setTimeout(() => socket.destroy(), 3000).unref();
    });
    await new Promise<void>((resolve) => registry.listen(0, "127.0.0.1", resolve));
    registryPort = (registry.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of held) s.destroy();
    registry.close();
    await agent.cleanup();
  });

  test("a line per step as it ends, then the summary; --quiet and --json", async () => {
    await agent.addDefinition(SERVICE, oneRouteDefinition(SERVICE, NODE));
    const run = ok(await agent.cli(["deploy", SERVICE]), "deploy");
    const lines = run.stdout.trimEnd().split("\n");
    const port = Number(/PORT=(\d+)/.exec(lines.at(-1) ?? "")?.[1]);
    assert.ok(port > 0, run.stdout);
    // One line per step as it ended: at least these, in this order (health
    // and others may come between them).
    const steps = lines
      .slice(0, -1)
      .map((l) => /^web: (.+) ✓ \d+\.\ds$/.exec(l)?.[1] ?? `unexpected: ${l}`);
    assert.ok(inOrder(steps, FRESH_DEPLOY_STEPS), run.stdout);
    assert.ok(!steps.some((s) => s.startsWith("unexpected")), run.stdout);
    assert.equal(lines.at(-1), `  web: ok  PORT=${port}`);
    assert.equal(parseEnvPage(await httpGet(port)).PORT, String(port));

    const quiet = ok(await agent.cli(["deploy", SERVICE, "--quiet"]), "--quiet");
    // A redeploy: stop-first (a route) says how long nothing served.
    assert.match(
      quiet.stdout,
      new RegExp(`^  web: ok  PORT=${port}\\n(    downtime (<0\\.1|\\d+\\.\\d)s\\n)?$`),
    );

    const json = ok(await agent.cli(["deploy", SERVICE, "--json"]), "--json");
    const parsed = JSON.parse(json.stdout) as {
      node: string;
      service: string;
      revision: number;
      results: {
        name: string;
        success: boolean;
        outcome: string;
        routes: { hostPort: number }[];
      }[];
    };
    assert.deepEqual([parsed.node, parsed.service, parsed.revision], [NODE, SERVICE, 3]);
    assert.deepEqual(
      parsed.results.map((r) => [r.name, r.success, r.outcome, r.routes[0]?.hostPort]),
      [["web", true, "ok", port]],
    );
  });

  test("Ctrl-C mid-deploy: exit 130, the agent goes on and records the deploy", async () => {
    const slowImage = `127.0.0.1:${registryPort}/st/slow:v1`;
    await agent.addDefinition(
      SLOW,
      oneRouteDefinition(SLOW, NODE) + `\n[[components]]\nname = "slow"\nimage = "${slowImage}"\n`,
    );
    const child = spawn(process.execPath, [MCP_BIN, "--config", agent.cliConfig, "deploy", SLOW], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    // web is done and slow is pulling (its pull hangs on the silent registry).
    for (let i = 0; i < 300 && !stdout.includes("slow: record ✓"); i++) await sleep(50);
    assert.match(stdout, /web: commit ✓/);
    assert.match(stdout, /slow: record ✓/);
    assert.doesNotMatch(stdout, /slow: pull/);
    child.kill("SIGINT");
    assert.equal(await exited, 130, stdout + stderr);
    assert.equal(
      stderr,
      `mcp: interrupted: the agent on node ${NODE} goes on and finishes or rolls back the deploy; see mcp history ${SLOW} / mcp status ${SLOW}\n`,
    );
    assert.doesNotMatch(stdout, /^ {2}web: ok/m, "no summary after Ctrl-C");

    // The agent carried on: the revision is recorded once the pull gives up.
    let history: {
      revisions: { revision: number; component: string; outcome: string; message: string }[];
    } = {
      revisions: [],
    };
    for (let i = 0; i < 120; i++) {
      history = JSON.parse(
        ok(await agent.cli(["history", SLOW, "--json"]), "history").stdout,
      ) as typeof history;
      if (history.revisions.some((r) => r.component === "slow")) break;
      await sleep(500);
    }
    assert.deepEqual(
      history.revisions.map((r) => [r.revision, r.component, r.outcome]),
      [
        [1, "slow", "failed"],
        [1, "web", "ok"],
      ],
    );
    assert.match(history.revisions[0]?.message ?? "", /^pull: /);
    const status = ok(await agent.cli(["status", SLOW]), "status").stdout;
    assert.match(status, new RegExp(`${SLOW}\\s+web\\s+${NODE}\\s+running\\s+running`));
  });
});
