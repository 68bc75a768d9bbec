/**
 * Zero-downtime swaps behind the agent's HAProxy (issue 8, "Done means"),
 * on real Podman through the CLI, under a steady stream of HTTPS requests
 * through the proxy (one every 25 ms, 40 a second): a start-first redeploy
 * of a good version fails no request and moves the route within its pair
 * of host ports; a never-healthy version exits non-zero and fails no
 * request either; a stop-first redeploy has its single-start gap, during
 * which the proxy holds new requests (its retries) or answers 503, never
 * refusing a connection.
 */
import assert from "node:assert/strict";
import https from "node:https";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { freePort } from "../helpers/agent.js";
import {
  LiveAgent,
  ok,
  parseEnvPage,
  l7Definition,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "swap-node";
const DOMAIN = "svc.mcp.test";

function definition(
  name: string,
  listener: number,
  release: string,
  opts: { strategy?: string; broken?: boolean } = {},
): string {
  const lines = [
    `env = ["RELEASE=${release}"]`,
    `strategy = "${opts.strategy ?? "start-first"}"`,
    ...(opts.broken
      ? [`cmd = ["sh", "-c", "echo ${release} never listens; exec sleep 3600"]`]
      : []),
  ];
  return l7Definition(name, NODE, listener, { lines, deadline: "3s" });
}

interface PollResult {
  requests: number;
  /** Requests that got no answer at all (refused, reset, timed out). */
  errors: number;
  /** What those were, for the failure message. */
  errorMessages: string[];
  /** Answers by status code. */
  statuses: Map<number, number>;
  releases: string[];
}

/** GETs `/` through the proxy every 25 ms on keep-alive connections until stopped. */
function poll(listener: number, host: string, ca: string): { stop: () => Promise<PollResult> } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const result: PollResult = {
    requests: 0,
    errors: 0,
    errorMessages: [],
    statuses: new Map(),
    releases: [],
  };
  let running = true;
  const once = () =>
    new Promise<void>((resolve) => {
      const req = https.get(
        { host: "127.0.0.1", port: listener, servername: host, headers: { host }, ca, agent },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => {
            const code = res.statusCode ?? 0;
            result.statuses.set(code, (result.statuses.get(code) ?? 0) + 1);
            const release = code === 200 ? (parseEnvPage(body).RELEASE ?? "") : "";
            if (release && result.releases.at(-1) !== release) result.releases.push(release);
            resolve();
          });
        },
      );
      // HAProxy retries a refused backend connection about once a second before
      // its 503: on a loaded machine that outlasts a short client timeout.
      req.setTimeout(10_000, () => req.destroy(new Error("timed out")));
      req.on("error", (err) => {
        result.errors++;
        result.errorMessages.push(err.message);
        resolve();
      });
    });
  const loop = (async () => {
    while (running) {
      result.requests++;
      await once();
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      agent.destroy();
      return result;
    },
  };
}

const failed = (r: PollResult) =>
  r.errors + [...r.statuses].filter(([code]) => code !== 200).reduce((n, [, c]) => n + c, 0);

describe("swaps behind the proxy under load", { concurrency: false }, () => {
  let agent: LiveAgent;
  let routeCa: string;

  const routeOf = async (service: string) => {
    const list = ok(await agent.cli(["list", "--json"]), "list");
    const nodes = JSON.parse(list.stdout) as NodeServicesJson[];
    const svc = nodes.flatMap((n) => n.services).find((s) => s.name === service);
    const route = svc?.components[0]?.routes[0];
    assert.ok(route && route.hostPort > 0, `${service} has a host port`);
    return route;
  };

  before(async () => {
    agent = await LiveAgent.start({
      node: NODE,
      init: { proxy: true },
      config: { proxy: { http_port: 0, drain: "500ms" } },
    });
    routeCa = await readFile(path.join(agent.dir, "proxy", "route-ca.crt"), "utf8");
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("start-first: a good version, then a never-healthy one, fail no request", async () => {
    const listener = await freePort();
    const host = `swap-web.${DOMAIN}`;
    await agent.addDefinition("swap-web", definition("swap-web", listener, "v1"));
    ok(await agent.cli(["deploy", "swap-web"]), "deploy v1");
    const first = (await routeOf("swap-web")).hostPort;

    const load = poll(listener, host, routeCa);
    await new Promise((r) => setTimeout(r, 300));
    await agent.addDefinition("swap-web", definition("swap-web", listener, "v2"));
    ok(await agent.cli(["deploy", "swap-web"]), "deploy v2");
    await new Promise((r) => setTimeout(r, 300));
    await agent.addDefinition("swap-web", definition("swap-web", listener, "v3", { broken: true }));
    const bad = await agent.cli(["deploy", "swap-web"]);
    await new Promise((r) => setTimeout(r, 300));
    await agent.addDefinition("swap-web", definition("swap-web", listener, "v4"));
    ok(await agent.cli(["deploy", "swap-web"]), "deploy v4");
    await new Promise((r) => setTimeout(r, 300));
    const result = await load.stop();

    assert.notEqual(bad.code, 0, "the never-healthy deploy exits non-zero");
    assert.match(bad.stdout + bad.stderr, /new version health/);
    assert.equal(
      failed(result),
      0,
      `failed requests: ${JSON.stringify([...result.statuses])}, errors: ${result.errorMessages.join("; ")}`,
    );
    assert.ok(result.requests >= 40, `a steady stream (${result.requests} requests)`);
    assert.deepEqual(result.releases, ["v1", "v2", "v4"], "v3 never answered");
    // The route moved within its pair: v2 on the standby port, v4 back on the first one.
    const last = await routeOf("swap-web");
    assert.equal(last.hostPort, first);
    const containers = ok(await agent.cli(["ps", "--json"]), "ps").stdout;
    assert.ok(!containers.includes(".next") && !containers.includes(".prev"), "nothing left aside");
  });

  test("stop-first: the single-start gap is held or answered 503, never refused", async () => {
    const listener = await freePort();
    const host = `swap-db.${DOMAIN}`;
    const def = (r: string) => definition("swap-db", listener, r, { strategy: "stop-first" });
    await agent.addDefinition("swap-db", def("v1"));
    ok(await agent.cli(["deploy", "swap-db"]), "deploy v1");
    const load = poll(listener, host, routeCa);
    await new Promise((r) => setTimeout(r, 300));
    await agent.addDefinition("swap-db", def("v2"));
    ok(await agent.cli(["deploy", "swap-db"]), "deploy v2");
    await new Promise((r) => setTimeout(r, 300));
    const result = await load.stop();
    // A request in flight when the old container stops may be cut (a reset, or
    // 502); a new one is held by HAProxy's retries or answered 503, never refused.
    assert.deepEqual(
      result.errorMessages.filter((m) => /ECONNREFUSED/.test(m)),
      [],
      "never a refused connection",
    );
    assert.deepEqual(
      [...result.statuses.keys()].filter((c) => ![200, 502, 503].includes(c)),
      [],
      "only 200, or 502/503 in the gap",
    );
    assert.deepEqual(result.releases, ["v1", "v2"]);
  });
});
