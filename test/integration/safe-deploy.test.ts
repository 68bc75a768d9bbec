/**
 * Health-gated deploys on real Podman through the CLI (issue 7, "Done
 * means"): a v2 that never listens fails within its deadline while v1
 * answers on its unchanged port every 50 ms without one failed request;
 * stop-first replaces with a single container start, and a bad stop-first
 * version is removed and the old one runs again on its ports; a good v3
 * keeps the host port.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import {
  LiveAgent,
  httpGet,
  ok,
  parseEnvPage,
  webDefinition,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "sd-node";

function definition(
  name: string,
  release: string,
  opts: { strategy?: string; broken?: boolean } = {},
): string {
  return webDefinition(name, NODE, [
    `env = ["RELEASE=${release}"]`,
    ...(opts.strategy ? [`strategy = "${opts.strategy}"`] : []),
    // A version that never listens, and says so in its log.
    ...(opts.broken ? [`cmd = ["sh", "-c", "echo ${release} is broken; exec sleep 3600"]`] : []),
    "",
    "[[components.routes]]",
    "port = 443",
    "",
    "[components.health]",
    'type = "http"',
    'path = "/health"',
    'deadline = "4s"',
  ]);
}

/** GETs `/` every 50 ms until stopped; counts failures and what answered. */
function poll(port: number): { stop: () => Promise<{ failed: number; releases: Set<string> }> } {
  let running = true;
  let failed = 0;
  const releases = new Set<string>();
  const loop = (async () => {
    while (running) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) releases.add(parseEnvPage(await res.text()).RELEASE ?? "");
        else failed++;
      } catch {
        failed++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { failed, releases };
    },
  };
}

async function hostPortOf(agent: LiveAgent, service: string): Promise<number> {
  const list = ok(await agent.cli(["list", "--json"]), "list");
  const nodes = JSON.parse(list.stdout) as NodeServicesJson[];
  const svc = nodes.flatMap((n) => n.services).find((s) => s.name === service);
  const port = svc?.components[0]?.routes[0]?.hostPort ?? 0;
  assert.ok(port > 0, `${service} has a host port`);
  return port;
}

/** `name state` of every container labelled for `service` (trials and set-aside ones too). */
async function containersOf(service: string): Promise<string[]> {
  const out = await runCommand([
    "podman",
    "ps",
    "-a",
    "--format",
    "{{.Names}}",
    "--filter",
    `label=mcp.service=${service}`,
  ]);
  const names = out.stdout.trim().split("\n").filter(Boolean).sort();
  const states = await Promise.all(
    names.map(async (name) => {
      const inspect = await runCommand([
        "podman",
        "inspect",
        name,
        "--format",
        "{{.State.Status}}",
      ]);
      return `${name} ${inspect.stdout.trim()}`;
    }),
  );
  return states;
}

describe("health-gated deploys on real podman", { concurrency: false }, () => {
  let agent: LiveAgent;
  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
  });
  after(async () => {
    await agent.cleanup();
  });

  test("start-first: a v2 that never listens fails, v1 answers throughout on its port", async () => {
    const svc = "sd-start";
    await agent.addDefinition(svc, definition(svc, "v1"));
    ok(await agent.cli(["deploy", svc]), "deploy v1");
    const port = await hostPortOf(agent, svc);
    await httpGet(port, "/health");
    const poller = poll(port);
    await agent.addDefinition(svc, definition(svc, "v2", { broken: true }));
    const started = Date.now();
    const run = await agent.cli(["deploy", svc]);
    const took = Date.now() - started;
    const seen = await poller.stop();
    assert.equal(run.code, 1, `deploy fails: ${run.stdout}${run.stderr}`);
    assert.ok(took < 20_000, `within its deadline (took ${took} ms)`);
    const output = run.stdout + run.stderr;
    assert.match(output, /trial health/, "names the step");
    assert.match(output, /ECONNREFUSED|connect/, "the health check's output");
    assert.match(output, /v2 is broken/, "the failed container's log lines");
    assert.equal(seen.failed, 0, "not one failed request");
    assert.deepEqual([...seen.releases], ["v1"]);
    assert.equal(await hostPortOf(agent, svc), port, "the port did not change");
    assert.deepEqual(await containersOf(svc), [`${svc}-web running`], "no trial left");
    const ps = ok(await agent.cli(["ps", "--json"]), "ps");
    assert.match(ps.stdout, new RegExp(`"service": "${svc}"`));
    const history = ok(await agent.cli(["history", svc, "--json"]), "history");
    const { revisions } = JSON.parse(history.stdout) as {
      revisions: { revision: number; outcome: string }[];
    };
    assert.deepEqual(
      revisions.map((r) => [r.revision, r.outcome]),
      [
        [2, "failed"],
        [1, "ok"],
      ],
    );

    // A good v3: same host port, v3 answers.
    await agent.addDefinition(svc, definition(svc, "v3"));
    ok(await agent.cli(["deploy", svc]), "deploy v3");
    assert.equal(await hostPortOf(agent, svc), port);
    assert.equal(parseEnvPage(await httpGet(port)).RELEASE, "v3");
    assert.deepEqual(await containersOf(svc), [`${svc}-web running`]);
  });

  test("stop-first: a good version with one container start; a bad one and the old runs again", async () => {
    const svc = "sd-stop";
    await agent.addDefinition(svc, definition(svc, "v1", { strategy: "stop-first" }));
    ok(await agent.cli(["deploy", svc]), "deploy v1");
    const port = await hostPortOf(agent, svc);

    await agent.addDefinition(svc, definition(svc, "v2", { strategy: "stop-first" }));
    ok(await agent.cli(["deploy", svc]), "deploy v2");
    assert.equal(await hostPortOf(agent, svc), port);
    assert.equal(parseEnvPage(await httpGet(port)).RELEASE, "v2");
    const events = ok(await agent.cli(["status", svc, "--json"]), "status").stdout;
    assert.doesNotMatch(events, /\.next/, "no trial container for stop-first");

    await agent.addDefinition(svc, definition(svc, "v3", { strategy: "stop-first", broken: true }));
    const run = await agent.cli(["deploy", svc]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /health/);
    assert.match(run.stdout + run.stderr, /v3 is broken/);
    assert.equal(parseEnvPage(await httpGet(port)).RELEASE, "v2", "the old one serves again");
    assert.equal(await hostPortOf(agent, svc), port);
    assert.deepEqual(await containersOf(svc), [`${svc}-web running`]);
    const { revisions } = JSON.parse(
      ok(await agent.cli(["history", svc, "--json"]), "history").stdout,
    ) as { revisions: { outcome: string }[] };
    assert.equal(revisions[0]?.outcome, "rolled back");
  });
});
