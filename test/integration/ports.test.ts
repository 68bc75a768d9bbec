/**
 * The allocator against the real kernel and real concurrency: ports other
 * processes listen on are never handed out, and 20 deploys run in parallel
 * through the CLI get 20 distinct ports that all answer.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { after, before, describe, test } from "node:test";
import { LiveAgent, httpGet, oneRouteDefinition, parseEnvPage } from "../helpers/live-agent.js";

interface ListJson {
  services: { name: string; components: { routes: { hostPort: number }[] }[] }[];
}

async function routePorts(agent: LiveAgent): Promise<Map<string, number>> {
  const run = await agent.cli(["list", "--json"]);
  assert.equal(run.code, 0, run.stderr);
  const ports = new Map<string, number>();
  for (const s of (JSON.parse(run.stdout) as ListJson[]).flatMap((n) => n.services)) {
    const p = s.components[0]?.routes[0]?.hostPort;
    if (p) ports.set(s.name, p);
  }
  return ports;
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

describe("ports held by other processes are never handed out", { timeout: 120_000 }, () => {
  const RANGE_MIN = 21000;
  const RANGE_MAX = 21008; // [21000, 21008): 8 ports
  let agent: LiveAgent;
  const squatters: Server[] = [];

  before(async () => {
    agent = await LiveAgent.start({
      node: "e2e-squat",
      config: { ports: { range: [RANGE_MIN, RANGE_MAX] } },
    });
    // Another process (this test) listens on 5 of the 8 ports.
    for (let p = RANGE_MIN; p < RANGE_MIN + 5; p++) squatters.push(await listen(p));
  });

  after(async () => {
    for (const s of squatters) s.close();
    await agent?.cleanup();
  });

  test("three deploys get the three free ports, and a fourth fails naming the range", async () => {
    for (const name of ["sq1", "sq2", "sq3"]) {
      await agent.addDefinition(name, oneRouteDefinition(name, agent.node));
      const run = await agent.cli(["deploy", name]);
      assert.equal(run.code, 0, run.stdout + run.stderr);
    }
    const ports = [...(await routePorts(agent)).values()].sort();
    assert.deepEqual(ports, [RANGE_MIN + 5, RANGE_MIN + 6, RANGE_MIN + 7]);
    for (const p of ports) assert.equal(parseEnvPage(await httpGet(p)).PORT, String(p));

    await agent.addDefinition("sq4", oneRouteDefinition("sq4", agent.node));
    const full = await agent.cli(["deploy", "sq4"]);
    assert.equal(full.code, 1);
    assert.match(
      full.stdout,
      /web: failed: allocate ports: no free tcp port for sq4\/web\/ in 21000-21007/,
    );
    assert.equal((await routePorts(agent)).has("sq4"), false);
  });
});

describe("20 services deployed in parallel through the CLI", { timeout: 180_000 }, () => {
  let agent: LiveAgent;
  const names = Array.from({ length: 20 }, (_, i) => `par${String(i + 1).padStart(2, "0")}`);

  before(async () => {
    agent = await LiveAgent.start({ node: "e2e-parallel" });
    for (const name of names) await agent.addDefinition(name, oneRouteDefinition(name, agent.node));
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("get 20 distinct ports and all answer", async () => {
    const runs = await Promise.all(names.map((name) => agent.cli(["deploy", name])));
    runs.forEach((run, i) => assert.equal(run.code, 0, `${names[i]}: ${run.stdout}${run.stderr}`));
    const ports = await routePorts(agent);
    assert.equal(ports.size, 20);
    assert.equal(new Set(ports.values()).size, 20, "distinct ports");
    await Promise.all(
      [...ports].map(async ([name, port]) => {
        const env = parseEnvPage(await httpGet(port, "/", 30_000));
        assert.equal(env.PORT, String(port), name);
      }),
    );
  });
});
