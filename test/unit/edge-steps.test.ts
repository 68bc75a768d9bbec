/**
 * The agent's edge steps with an in-memory proxy (test/helpers/fake-edge.ts)
 * and the fake runtime: routes go on the proxy only after the new version
 * passed its check; the swap behind the proxy moves the route to the new
 * version before the old one stops and keeps the host ports within their
 * pair; a never-healthy new version never gets a request; certificates are
 * reused; stop takes routes off the proxy before the container stops; a
 * clash of names is refused; an agent killed at any step of a swap leaves,
 * after the next start, the proxy pointing at the one container that runs.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deploy } from "../../src/agent/operations/deploy.js";
import { stopService, undeployService } from "../../src/agent/operations/lifecycle.js";
import { purge } from "../../src/agent/operations/purge.js";
import { recoverAtStart } from "../../src/agent/operations/recover.js";
import { planSteps } from "../../src/agent/operations/steps/plan.js";
import { syncProxy } from "../../src/agent/edge/routes.js";
import type { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import { containerName, isSideContainer } from "../../src/runtime/names.js";
import { IMAGE, IMAGE_V2, agent, example, withImage } from "../helpers/fake-agent.js";
import { hangAt } from "../helpers/crash.js";
import { FakeDns, fakeEdge } from "../helpers/fake-edge.js";

const HOST = "hello.svc.mcp.test";

const request = (service: ServiceSpec) => ({ service, component: "" });

async function edgeAgent(opts: Parameters<typeof agent>[0] = {}) {
  const { edge, proxy } = await fakeEdge();
  return { ...agent({ ...opts, edge }), edge, proxy };
}

/** The live and standby port of hello/web's route. */
function ports(a: ReturnType<typeof agent>): { live: number; standby: number } {
  const [row] = a.registry.routes.list({ service: "hello", component: "web" });
  return { live: row?.hostPort ?? 0, standby: row?.standbyPort ?? 0 };
}

describe("routes on the proxy", () => {
  test("a first deploy: route and certificate after the health check, then commit", async () => {
    const a = await edgeAgent();
    const [result] = await deploy(a.ctx, request(example("hello")));
    assert.ok(result?.success, result?.error);
    const { live } = ports(a);
    assert.equal(a.proxy.backend(443, HOST), live);
    assert.match(a.proxy.certs.get(HOST) ?? "", /BEGIN CERTIFICATE[\s\S]*BEGIN CERTIFICATE/);
    assert.deepEqual(
      a.registry.proxyRoutes.list().map((r) => [r.listener, r.hostname, r.service, r.component]),
      [[443, HOST, "hello", "web"]],
    );
  });

  test("a new version that fails its first check gets no route and leaves nothing", async () => {
    const a = await edgeAgent();
    a.health.failing.set("hello-web", "connect ECONNREFUSED");
    const [result] = await deploy(a.ctx, request(example("hello")));
    assert.equal(result?.failedStep, "health");
    assert.equal(a.proxy.live.size, 0);
    assert.deepEqual(a.registry.proxyRoutes.list(), []);
    assert.deepEqual(a.proxy.calls, []);
  });
});

describe("the swap behind the proxy (start-first, every route proxied)", () => {
  test("the route moves to the new version before the old one stops; ports stay in their pair", async () => {
    const a = await edgeAgent();
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    const first = ports(a);
    const certBefore = a.proxy.certs.get(HOST);
    // What ran when the proxy moved: the old container must still be serving.
    const stateAtSwitch: string[] = [];
    const setRoute = a.proxy.setRoute.bind(a.proxy);
    a.proxy.setRoute = async (route) => {
      stateAtSwitch.push(a.runtime.containers.get("hello-web")?.state ?? "gone");
      return setRoute(route);
    };

    const [v2] = await deploy(a.ctx, request(withImage(example("hello"), IMAGE_V2)));
    assert.ok(v2?.success, v2?.error);
    assert.equal(v2?.downtimeMs, 0);
    assert.deepEqual(stateAtSwitch, ["running"], "the old version served while the proxy moved");
    const second = ports(a);
    assert.equal(second.live, first.standby || second.live, "v2 on the standby port");
    assert.notEqual(second.live, first.live);
    assert.equal(second.standby, first.live, "the old live port is the standby now");
    assert.equal(a.proxy.backend(443, HOST), second.live);
    assert.equal(a.runtime.containers.get("hello-web")?.spec?.image, IMAGE_V2);
    assert.deepEqual([...a.runtime.containers.keys()].filter(isSideContainer), []);
    assert.equal(a.proxy.certs.get(HOST), certBefore, "the certificate was reused");

    const [v3] = await deploy(a.ctx, request(example("hello")));
    assert.ok(v3?.success, v3?.error);
    assert.deepEqual(ports(a), { live: first.live, standby: second.live }, "back within the pair");
  });

  test("a never-healthy new version is removed; the proxy never pointed at it", async () => {
    const a = await edgeAgent();
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    const old = a.runtime.containers.get("hello-web");
    const before = ports(a);
    a.proxy.calls.length = 0;
    a.health.failing.set("hello-web.next", "connect ECONNREFUSED");
    const [result] = await deploy(a.ctx, request(withImage(example("hello"), IMAGE_V2)));
    assert.equal(result?.success, false);
    assert.equal(result?.failedStep, "new version health");
    assert.equal(result?.outcome, "failed");
    assert.equal(result?.downtimeMs, 0);
    assert.deepEqual(a.proxy.calls, [], "the proxy was never touched");
    assert.equal(a.runtime.containers.get("hello-web")?.id, old?.id);
    assert.equal(a.runtime.containers.get("hello-web")?.state, "running");
    assert.deepEqual(a.runtime.callsOf("stop"), []);
    assert.deepEqual([...a.runtime.containers.keys()].filter(isSideContainer), []);
    assert.equal(ports(a).live, before.live);
    assert.equal(a.proxy.backend(443, HOST), before.live);
  });

  test("the plan is the swap only when every route is on the proxy", () => {
    const swap = planSteps({
      strategy: "start-first",
      old: "running",
      gated: true,
      pull: true,
      proxied: true,
      swappable: true,
    });
    assert.ok(swap.indexOf("routes") < swap.indexOf("set aside old container"));
  });
});

describe("stop, undeploy and clashes", () => {
  test("stop takes the route off the proxy before the container stops", async () => {
    const a = await edgeAgent();
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    const stateAtRemove: string[] = [];
    const remove = a.proxy.removeRoute.bind(a.proxy);
    a.proxy.removeRoute = async (listener: number, hostname: string) => {
      stateAtRemove.push(a.runtime.containers.get("hello-web")?.state ?? "gone");
      return remove(listener, hostname);
    };
    await stopService(a.ctx, "hello");
    assert.deepEqual(stateAtRemove, ["running"]);
    assert.equal(a.proxy.live.size, 0);
    assert.deepEqual(a.proxy.listeners, [], "no route left on 443: nothing listens there");
    assert.deepEqual(a.registry.proxyRoutes.list(), []);
    await undeployService(a.ctx, "hello");
    assert.equal(a.proxy.live.size, 0);
  });

  test("with [dns]: the name is published before the route, and removed before the container stops", async () => {
    const dns = new FakeDns();
    const { edge, proxy } = await fakeEdge({ dns });
    const a = agent({ edge });
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    assert.deepEqual([...dns.records.keys()], [HOST]);
    // A DNS server refusing: the stop fails at dns, nothing changed, the route keeps serving.
    dns.refuse = true;
    const [refused] = await stopService(a.ctx, "hello");
    assert.equal(refused?.success, false);
    assert.match(refused?.error ?? "", /dns: DNS update of hello\.svc\.mcp\.test refused/);
    assert.equal(a.runtime.containers.get("hello-web")?.state, "running");
    assert.equal(proxy.backend(443, HOST), ports(a).live);
    assert.equal(a.registry.proxyRoutes.list().length, 1);
    dns.refuse = false;
    assert.ok((await stopService(a.ctx, "hello"))[0]?.success);
    assert.deepEqual([...dns.records.keys()], []);
    assert.equal(proxy.live.size, 0);
  });

  test("purge of a component whose container is gone takes its route off the proxy at once", async () => {
    const a = await edgeAgent();
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    await a.runtime.remove("hello-web");
    const results = await purge(a.ctx, {
      service: "hello",
      component: "",
      dryRun: false,
      definedComponents: [],
    });
    assert.ok(results.some((r) => r.purged && r.component === "web"));
    assert.equal(a.proxy.backend(443, HOST), undefined);
    assert.deepEqual(a.registry.proxyRoutes.list(), []);
  });

  test("another service answering to the same name on the same listener is refused", async () => {
    const a = await edgeAgent();
    assert.ok((await deploy(a.ctx, request(example("hello"))))[0]?.success);
    const clash = example("hello");
    clash.name = "other";
    const web = clash.components[0];
    assert.ok(web?.routes[0]);
    web.routes[0].hostname = HOST;
    await assert.rejects(
      deploy(a.ctx, request(clash)),
      /components\[0\]\.routes\[0\]\.hostname: route other\/web and route hello\/web both answer to hello\.svc\.mcp\.test on port 443/,
    );
    assert.equal(a.proxy.backend(443, HOST), ports(a).live);
  });
});

describe("an agent killed during a swap: after the next start the proxy points at what runs", () => {
  const steps = planSteps({
    strategy: "start-first",
    old: "running",
    gated: true,
    pull: true,
    proxied: true,
    swappable: true,
  });
  for (const step of steps) {
    const at = `deploy:${step}@web`;
    test(`killed at ${at}`, async () => {
      const { edge, proxy } = await fakeEdge();
      const first = agent({ edge });
      assert.ok((await deploy(first.ctx, request(example("hello"))))[0]?.success);
      const { crashPoint, reached } = hangAt(at);
      const second = agent({ runtime: first.runtime, dbPath: first.dbPath, crashPoint, edge });
      void deploy(second.ctx, request(withImage(example("hello"), IMAGE_V2)));
      await reached;
      // The next agent: settles the operation, then renders the proxy from the rows.
      const next = agent({ runtime: first.runtime, dbPath: first.dbPath, edge });
      await recoverAtStart(next.ctx);
      await syncProxy(next.ctx);
      const row = next.registry.components.get("hello", "web");
      assert.equal(row?.pending, null, at);
      const running = next.runtime.containers.get(containerName("hello", "web"));
      assert.equal(running?.state, "running", at);
      assert.deepEqual([...next.runtime.containers.keys()].filter(isSideContainer), [], at);
      // Only a crash after the commit keeps the new version.
      const committed = steps.indexOf(step) > steps.indexOf("commit");
      assert.equal(running?.spec?.image, committed ? IMAGE_V2 : IMAGE, at);
      assert.equal(row?.spec.image, running?.spec?.image, at);
      const [route] = next.registry.routes.list({ service: "hello", component: "web" });
      const portEnv = running?.spec?.env.find((e) => e.startsWith("PORT="));
      assert.equal(
        portEnv,
        `PORT=${route?.hostPort}`,
        `${at}: the registry's live port is the container's`,
      );
      assert.equal(
        proxy.backend(443, HOST),
        route?.hostPort,
        `${at}: the proxy sends clients there`,
      );
    });
  }
});
