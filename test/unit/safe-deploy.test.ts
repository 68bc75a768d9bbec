/**
 * Health-gated deploys over the fake runtime with scripted health checks
 * (steps/plan.ts, steps/component.ts): which steps each strategy takes, and
 * that a new version that fails never leaves the old one down, leaks no
 * container or port, and says why.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deploy } from "../../src/agent/operations/deploy.js";
import { planSteps } from "../../src/agent/operations/steps/plan.js";
import { portHolders } from "../../src/agent/ports/book.js";
import type { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import type { Registry } from "../../src/registry/index.js";
import { IMAGE, IMAGE_V2, agent, example, withImage } from "../helpers/fake-agent.js";
import { type FakeRuntime, apiError, imageNotKnown } from "../helpers/fake-runtime.js";

function hello(strategy: "" | "start-first" | "stop-first", image = IMAGE): ServiceSpec {
  const spec = withImage(example("hello"), image);
  spec.components[0]!.strategy = strategy;
  return spec;
}

const request = (service: ServiceSpec) => ({ service, component: "" });

/** Nothing but the component's own container, and only its route's port held. */
function assertNoLeak(registry: Registry, runtime: FakeRuntime): void {
  assert.deepEqual([...runtime.containers.keys()], ["hello-web"], "one container, no trial/aside");
  assert.deepEqual(
    portHolders(registry).map((h) => `${h.component}/${h.route ?? ""}`),
    ["web/"],
    "only the route's own port is held",
  );
  assert.equal(registry.components.get("hello", "web")?.pending, null);
}

/** Start or recovery of a component whose container is gone: no gate, no pull. */
const RECREATE = [
  "policy",
  "record",
  "image",
  "prepare volumes",
  "allocate ports",
  "create container",
  "start container",
];

describe("plan: the steps of each strategy", () => {
  test("start-first beside a running version: trial, then the stable ports", () => {
    assert.deepEqual(
      planSteps({ strategy: "start-first", old: "running", gated: true, pull: true }),
      [
        "policy",
        "record",
        "pull",
        "prepare volumes",
        "allocate trial ports",
        "start trial",
        "trial health",
        "remove trial",
        "set aside old container",
        "allocate ports",
        "create container",
        "stop old container",
        "start container",
        "health",
        "commit",
        "remove old container",
      ],
    );
  });

  test("stop-first, or nothing running to protect: no trial", () => {
    const stopFirst = planSteps({
      strategy: "stop-first",
      old: "running",
      gated: true,
      pull: true,
    });
    assert.deepEqual(stopFirst, [
      "policy",
      "record",
      "pull",
      "prepare volumes",
      "set aside old container",
      "allocate ports",
      "create container",
      "stop old container",
      "start container",
      "health",
      "commit",
      "remove old container",
    ]);
    // A stopped old container has nothing to wait for.
    assert.deepEqual(
      planSteps({ strategy: "start-first", old: "stopped", gated: true, pull: true }),
      stopFirst.filter((s) => s !== "stop old container"),
    );
  });

  test("first deploy: nothing to set aside; recovery and start: no gate, no pull", () => {
    assert.deepEqual(planSteps({ strategy: "start-first", old: "none", gated: true, pull: true }), [
      "policy",
      "record",
      "pull",
      "prepare volumes",
      "allocate ports",
      "create container",
      "start container",
      "health",
      "commit",
    ]);
    assert.deepEqual(
      planSteps({ strategy: "stop-first", old: "none", gated: false, pull: false }),
      [...RECREATE, "commit"],
    );
  });
});

describe("plan: behind the proxy", () => {
  const base = { gated: true, pull: true, proxied: true } as const;

  test("start-first with every route on the proxy: the swap, nothing stops before the proxy moved", () => {
    assert.deepEqual(
      planSteps({ ...base, strategy: "start-first", old: "running", swappable: true, dns: true }),
      [
        "policy",
        "record",
        "pull",
        "prepare volumes",
        "allocate standby ports",
        "start new version",
        "new version health",
        "dns",
        "certificates",
        "routes",
        "drain",
        "set aside old container",
        "stop old container",
        "promote new version",
        "commit",
        "retire old names",
        "remove old container",
      ],
    );
  });

  test("stop-first, a first deploy, or a route off the proxy: in place, the routes after the check", () => {
    const inPlace = [
      "policy",
      "record",
      "pull",
      "prepare volumes",
      "set aside old container",
      "allocate ports",
      "create container",
      "stop old container",
      "start container",
      "health",
      "certificates",
      "routes",
      "commit",
      "remove old container",
    ];
    assert.deepEqual(
      planSteps({ ...base, strategy: "stop-first", old: "running", swappable: true }),
      inPlace,
    );
    const aside = new Set([
      "set aside old container",
      "stop old container",
      "remove old container",
    ]);
    assert.deepEqual(
      planSteps({ ...base, strategy: "start-first", old: "none", swappable: true }),
      inPlace.filter((s) => !aside.has(s)),
    );
    // A udp route keeps the trial on temporary ports (it cannot move behind the proxy).
    const mixed = planSteps({ ...base, strategy: "start-first", old: "running", swappable: false });
    assert.ok(mixed.includes("start trial") && !mixed.includes("start new version"));
    assert.ok(mixed.indexOf("routes") > mixed.indexOf("health"));
  });

  test("start and recovery behind the proxy: no gate, the routes still follow the container", () => {
    assert.deepEqual(
      planSteps({
        strategy: "start-first",
        old: "none",
        gated: false,
        pull: false,
        proxied: true,
        swappable: true,
      }),
      [...RECREATE, "certificates", "routes", "commit"],
    );
  });
});

describe("a new version that fails its health check", () => {
  test("start-first: the trial fails, the old version is never touched", async () => {
    const { ctx, runtime, registry, health } = agent();
    assert.ok((await deploy(ctx, request(hello(""))))[0]?.success);
    const old = runtime.containers.get("hello-web");
    const port = registry.routes.heldHostPorts()[0]?.port;
    health.failing.set("hello-web.next", "connect ECONNREFUSED 127.0.0.1:20001");
    const [result] = await deploy(ctx, request(hello("", IMAGE_V2)));
    assert.equal(result?.success, false);
    assert.equal(result?.failedStep, "trial health");
    assert.equal(result?.outcome, "failed");
    assert.equal(result?.healthOutput, "connect ECONNREFUSED 127.0.0.1:20001");
    assert.equal(result?.downtimeMs, 0);
    assert.match(result?.error ?? "", /^trial health: not healthy after 1 check\(s\)/);
    const now = runtime.containers.get("hello-web");
    assert.equal(now?.id, old?.id, "the same container");
    assert.equal(now?.state, "running");
    assert.deepEqual(runtime.callsOf("stop"), [], "never stopped");
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port);
    assert.equal(registry.components.get("hello", "web")?.spec.image, IMAGE, "v1 recorded again");
    assertNoLeak(registry, runtime);
    const revisions = registry.revisions.list("hello");
    assert.deepEqual(
      revisions.map((r) => [r.revision, r.outcome]),
      [
        [2, "failed"],
        [1, "ok"],
      ],
    );
    const failed = registry.events.list({ service: "hello" })[0];
    assert.equal(failed?.kind, "deploy_failed");
    assert.match(failed?.message ?? "", /^trial health: /);
  });

  test("start-first: proven beside, failing on the stable ports: the old one runs again", async () => {
    const { ctx, runtime, registry, health } = agent();
    assert.ok((await deploy(ctx, request(hello(""))))[0]?.success);
    const old = runtime.containers.get("hello-web");
    const port = registry.routes.heldHostPorts()[0]?.port;
    health.failing.set("hello-web", "HTTP 503: starting");
    const [result] = await deploy(ctx, request(hello("", IMAGE_V2)));
    assert.equal(result?.failedStep, "health");
    assert.equal(result?.outcome, "rolled back");
    assert.equal(runtime.containers.get("hello-web")?.id, old?.id);
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port);
    assertNoLeak(registry, runtime);
    assert.equal(registry.revisions.list("hello")[0]?.outcome, "rolled back");
    assert.match(registry.events.list({ service: "hello" })[0]?.message ?? "", /runs again/);
  });

  test("stop-first: removed, and the old container started again on its ports", async () => {
    const { ctx, runtime, registry, health } = agent();
    assert.ok((await deploy(ctx, request(hello("stop-first"))))[0]?.success);
    const old = runtime.containers.get("hello-web");
    const port = registry.routes.heldHostPorts()[0]?.port;
    health.failing.set("hello-web", "container exited with code 1");
    const [result] = await deploy(ctx, request(hello("stop-first", IMAGE_V2)));
    assert.equal(result?.failedStep, "health");
    assert.equal(result?.outcome, "rolled back");
    assert.ok((result?.downtimeMs ?? -1) >= 0);
    assert.deepEqual(
      runtime.runs.map((c) => c.name),
      ["hello-web", "hello-web"],
      "no trial",
    );
    assert.equal(runtime.containers.get("hello-web")?.id, old?.id);
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port);
    assertNoLeak(registry, runtime);
  });

  test("a first deploy that never turns healthy leaves nothing behind", async () => {
    const { ctx, runtime, registry, health } = agent();
    health.failing.set("hello-web", "connect ECONNREFUSED");
    const [result] = await deploy(ctx, request(hello("")));
    assert.equal(result?.success, false);
    assert.equal(result?.outcome, "failed");
    assert.equal(runtime.containers.size, 0);
    assert.deepEqual(portHolders(registry), []);
    assert.equal(registry.services.get("hello"), undefined);
  });
});

describe("a good new version", () => {
  test("start-first: the trial's ports are held while it runs, then released; stable port kept", async () => {
    const { ctx, runtime, registry } = agent();
    assert.ok((await deploy(ctx, request(hello(""))))[0]?.success);
    const port = registry.routes.heldHostPorts()[0]?.port;
    const release = runtime.hold("run", "hello-web.next");
    const deploying = deploy(ctx, request(hello("", IMAGE_V2)));
    while (!runtime.callsOf("run").some((c) => c.arg === "hello-web.next")) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const held = portHolders(registry).map((h) => `${h.component}/${h.route ?? ""}`);
    assert.deepEqual(held.sort(), ["web/", "web/#trial"]);
    release();
    const [result] = await deploying;
    assert.equal(result?.success, true);
    assert.equal(result?.outcome, "ok");
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port, "the same stable port");
    assert.equal(runtime.containers.get("hello-web")?.image, IMAGE_V2);
    assertNoLeak(registry, runtime);
  });

  test("the trial runs with $PORT set to its temporary port", async () => {
    const { ctx, runtime, registry } = agent();
    assert.ok((await deploy(ctx, request(hello(""))))[0]?.success);
    const port = registry.routes.heldHostPorts()[0]?.port ?? 0;
    assert.ok((await deploy(ctx, request(hello("", IMAGE_V2))))[0]?.success);
    const trial = runtime.runs.find((r) => r.name === "hello-web.next");
    const trialPort = Number(trial?.env.find((e) => e.startsWith("PORT="))?.slice(5));
    assert.ok(trialPort > 0 && trialPort !== port, `trial on ${trialPort}, stable ${port}`);
    assert.ok(trial?.ports.some((p) => p.endsWith(`:${trialPort}:${trialPort}`)));
    const final = runtime.runs.at(-1);
    assert.equal(final?.name, "hello-web");
    assert.ok(final?.env.includes(`PORT=${port}`));
  });
});

describe("stop-first: the new container is created while the old one stops", () => {
  /** An agent with v1 deployed stop-first and its calls cleared: the old container, its port. */
  async function deployedStopFirst() {
    const fake = agent();
    assert.ok((await deploy(fake.ctx, request(hello("stop-first"))))[0]?.success);
    const port = fake.registry.routes.heldHostPorts()[0]?.port ?? 0;
    const oldId = fake.runtime.containers.get("hello-web")?.id;
    fake.runtime.clearCalls();
    return {
      ...fake,
      port,
      oldId,
      redeploy: () => deploy(fake.ctx, request(hello("stop-first", IMAGE_V2))),
    };
  }

  /** Starts the v2 redeploy with the old container's stop held; returns once the create was asked for. */
  async function redeployWithStopHeld(prepare: (runtime: FakeRuntime) => void = () => {}) {
    const fake = await deployedStopFirst();
    const release = fake.runtime.hold("stop", "hello-web.prev");
    prepare(fake.runtime);
    const deploying = fake.redeploy();
    while (!fake.runtime.callsOf("create").length) await new Promise((r) => setTimeout(r, 1));
    // A few more turns: nothing may go further while the stop is held.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    return { ...fake, release, deploying };
  }

  /** The old container is back under its name, running, and nothing else is left. */
  function assertOldBack(fake: { runtime: FakeRuntime; registry: Registry; oldId?: string }): void {
    assert.equal(fake.runtime.containers.get("hello-web")?.id, fake.oldId);
    assert.equal(fake.runtime.containers.get("hello-web")?.state, "running");
    assertNoLeak(fake.registry, fake.runtime);
  }

  test("rename, stop begun, create on the same port; the start waits for the stop", async () => {
    const { runtime, registry, port, release, deploying } = await redeployWithStopHeld();
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      `imageExists ${IMAGE_V2}`,
      "rename hello-web>hello-web.prev",
      "stop hello-web.prev",
      "create hello-web",
    ]);
    assert.equal(runtime.containers.get("hello-web")?.state, "created");
    assert.equal(runtime.containers.get("hello-web.prev")?.state, "stopping");
    // The old container still publishes the port: it is kept, not probed away.
    assert.ok(runtime.runs.at(-1)?.ports.includes(`127.0.0.1:${port}:${port}`));
    release();
    const [result] = await deploying;
    assert.equal(result?.success, true, result?.error);
    assert.deepEqual(runtime.ops().slice(5), ["start hello-web", "remove hello-web.prev"]);
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port, "the same stable port");
    assert.equal(runtime.containers.get("hello-web")?.image, IMAGE_V2);
    assertNoLeak(registry, runtime);
  });

  test("a failing check: the new container goes, the old one gets its name back and starts", async () => {
    const fake = await redeployWithStopHeld();
    fake.health.failing.set("hello-web", "HTTP 503");
    fake.release();
    const [result] = await fake.deploying;
    assert.equal(result?.failedStep, "health");
    assert.equal(result?.outcome, "rolled back");
    assert.deepEqual(fake.runtime.ops().slice(5), [
      "start hello-web",
      "logs hello-web",
      // create container's undo, then set aside old container's
      "remove hello-web",
      "remove hello-web",
      "inspect hello-web.prev",
      "rename hello-web.prev>hello-web",
      "start hello-web",
    ]);
    assertOldBack(fake);
  });

  test("a create that fails while the old one stops: the undo waits for the stop, then restores", async () => {
    const fake = await redeployWithStopHeld((runtime) =>
      runtime.failNext("create", (_name, spec) => imageNotKnown(spec?.image ?? "")),
    );
    assert.equal(fake.runtime.ops().at(-1), "create hello-web", "the undo waits for the stop");
    fake.release();
    const [result] = await fake.deploying;
    assert.equal(result?.failedStep, "create container");
    assert.equal(result?.outcome, "rolled back");
    assert.deepEqual(fake.runtime.ops().slice(-4), [
      "remove hello-web",
      "inspect hello-web.prev",
      "rename hello-web.prev>hello-web",
      "start hello-web",
    ]);
    assertOldBack(fake);
  });

  test("a stop that fails: nothing started, the old one keeps its name and runs; outcome failed", async () => {
    const fake = await deployedStopFirst();
    fake.runtime.failNext(
      "stop",
      apiError("stop", 500, "container state improper", "container state improper"),
    );
    const [result] = await fake.redeploy();
    assert.equal(result?.failedStep, "stop old container");
    assert.equal(result?.outcome, "failed", "the old version may never have stopped");
    assert.equal(result?.downtimeMs, 0);
    assert.deepEqual(
      fake.runtime.callsOf("start").map((c) => c.arg),
      ["hello-web"],
      "the old one only",
    );
    assertOldBack(fake);
  });

  test("address in use at the start: created again on another port, then started", async () => {
    const { runtime, registry, port, redeploy } = await deployedStopFirst();
    // Something took the port between the old container's stop and the new one's start.
    runtime.failNext("start", runtime.portTakenAtStart);
    const [result] = await redeploy();
    assert.equal(result?.success, true, result?.error);
    assert.deepEqual(runtime.ops().slice(4), [
      "create hello-web",
      "start hello-web",
      "remove hello-web",
      "create hello-web",
      "start hello-web",
      "remove hello-web.prev",
    ]);
    const now = registry.routes.heldHostPorts()[0]?.port;
    assert.ok(now !== undefined && now !== port, `moved off ${port}: ${now}`);
    assert.ok(runtime.runs.at(-1)?.ports.includes(`127.0.0.1:${now}:${now}`));
    assertNoLeak(registry, runtime);
  });
});
