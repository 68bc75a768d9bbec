/**
 * Consistency when an operation is cut short: a component operation killed
 * at any of its steps (an injected crash point that never returns, as the
 * SIGKILL in test/integration/crash.test.ts never does) is finished or
 * undone at the next start, and a failed start never removes a container it
 * did not create. Real registry file, real allocator, fake runtime.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deploy } from "../../src/agent/operations/deploy.js";
import { planSteps, type StepName } from "../../src/agent/operations/steps/plan.js";
import { settle } from "../../src/agent/operations/interrupted.js";
import { startService, stopService } from "../../src/agent/operations/lifecycle.js";
import { recoverAtStart } from "../../src/agent/operations/recover.js";
import type { ComponentResult } from "../../src/gen/mcp/v1/mcp.js";
import type { Registry } from "../../src/registry/index.js";
import { containerName, isSideContainer } from "../../src/runtime/names.js";
import { hangAt } from "../helpers/crash.js";
import { IMAGE, IMAGE_V2, agent, example, withImage } from "../helpers/fake-agent.js";
import { type FakeRuntime, apiError, runFailed } from "../helpers/fake-runtime.js";

/** Registry and runtime agree: what the next agent must always leave behind. */
function assertConsistent(registry: Registry, runtime: FakeRuntime, what: string): void {
  const rows = registry.components.list();
  for (const row of rows) {
    assert.equal(row.pending, null, `${what}: ${row.service}/${row.name} still pending`);
    const container = runtime.containers.get(containerName(row.service, row.name));
    if (row.desiredState === "running") {
      assert.ok(row.deployedAt, `${what}: ${row.name} desired running but never run`);
      assert.equal(container?.state, "running", `${what}: ${row.name} not running`);
    }
    if (container) {
      assert.equal(
        container.spec?.image,
        row.spec.image,
        `${what}: ${row.name} runs ${container.spec?.image}, registry says ${row.spec.image}`,
      );
      assert.deepEqual(
        container.spec?.env.filter((e) => !e.startsWith("PORT")),
        row.spec.env,
        `${what}: ${row.name} env`,
      );
    }
  }
  const aside = [...runtime.containers.keys()].filter(isSideContainer);
  assert.deepEqual(aside, [], `${what}: set-aside or trial containers left`);
  const names = new Set(rows.map((r) => containerName(r.service, r.name)));
  for (const name of runtime.containers.keys()) {
    assert.ok(names.has(name), `${what}: container ${name} belongs to no component`);
  }
  for (const s of registry.services.list()) {
    assert.ok(registry.components.list(s.name).length > 0, `${what}: empty service ${s.name}`);
  }
}

/** The steps of a first deploy (nothing runs yet) and of a redeploy of a running start-first component. */
const FIRST_DEPLOY: StepName[] = planSteps({
  strategy: "start-first",
  old: "none",
  gated: true,
  pull: true,
});
const REDEPLOY: StepName[] = planSteps({
  strategy: "start-first",
  old: "running",
  gated: true,
  pull: true,
});

describe("an agent killed during a deploy: the next start finishes or undoes it", () => {
  test("a first deploy passes exactly the crash points its plan lists, in order", async () => {
    const reached: string[] = [];
    const { ctx } = agent({
      crashPoint: (point, component) => {
        reached.push(`${point}@${component}`);
        return Promise.resolve();
      },
    });
    const results = await deploy(ctx, { service: example("multi"), component: "" });
    assert.ok(results.every((r) => r.success));
    assert.deepEqual(
      reached,
      ["api", "web"].flatMap((c) => FIRST_DEPLOY.map((step) => `deploy:${step}@${c}`)),
    );
  });

  for (const component of ["api", "web"]) {
    for (const step of FIRST_DEPLOY) {
      const at = `deploy:${step}@${component}`;

      test(`first deploy, killed at ${at}`, async () => {
        const { crashPoint, reached } = hangAt(at);
        const first = agent({ crashPoint });
        void deploy(first.ctx, { service: example("multi"), component: "" });
        await reached;
        const next = agent({ runtime: first.runtime, dbPath: first.dbPath });
        await recoverAtStart(next.ctx);
        assertConsistent(next.registry, next.runtime, at);
        // What committed stays; the rest is undone (a deploy's new version
        // never proved itself), so nothing is left "desired running" that
        // never ran.
        const kept = next.registry.components.list("multi").map((c) => c.name);
        assert.deepEqual(kept, component === "api" ? [] : ["api"], at);
      });
    }
  }

  // api has a volume (stop-first), web has none (start-first: a trial first).
  const redeploySteps = {
    api: planSteps({ strategy: "stop-first", old: "running", gated: true, pull: true }),
    web: REDEPLOY,
  };
  for (const component of ["api", "web"] as const) {
    for (const step of redeploySteps[component]) {
      const at = `deploy:${step}@${component}`;

      test(`redeploy with a new image, killed at ${at}`, async () => {
        const first = agent();
        const v1 = await deploy(first.ctx, { service: example("multi"), component: "" });
        assert.ok(v1.every((r) => r.success));
        const ports = first.registry.routes.heldHostPorts().map((h) => h.port);
        const { crashPoint, reached } = hangAt(at);
        const second = agent({ runtime: first.runtime, dbPath: first.dbPath, crashPoint });
        void deploy(second.ctx, { service: withImage(example("multi"), IMAGE_V2), component: "" });
        await reached;
        const next = agent({ runtime: first.runtime, dbPath: first.dbPath });
        await recoverAtStart(next.ctx);
        assertConsistent(next.registry, next.runtime, at);
        const images = Object.fromEntries(
          next.registry.components.list("multi").map((c) => [c.name, c.spec.image]),
        );
        // api before web: a crash in web's deploy leaves api on v2; only a
        // crash after "commit" keeps the killed component's new version.
        const after = step === "remove old container";
        const done = (c: string) =>
          component === "web" ? c === "api" || after : c === "api" && after;
        assert.equal(images.api, done("api") ? IMAGE_V2 : IMAGE, `${at}: api`);
        assert.equal(images.web, done("web") ? IMAGE_V2 : IMAGE, `${at}: web`);
        // Stable ports survive the crash and the recovery.
        assert.deepEqual(
          next.registry.routes
            .heldHostPorts()
            .map((h) => h.port)
            .sort(),
          [...ports].sort(),
          `${at}: host ports`,
        );
      });
    }
  }

  test("a deploy killed after run, before commit, is undone: its version never proved itself", async () => {
    const { crashPoint, reached } = hangAt("deploy:commit@web");
    const first = agent({ crashPoint });
    void deploy(first.ctx, { service: example("hello"), component: "" });
    await reached;
    assert.equal(first.runtime.containers.get("hello-web")?.state, "running");
    const next = agent({ runtime: first.runtime, dbPath: first.dbPath });
    const report = await recoverAtStart(next.ctx);
    assert.deepEqual(report.recovered, [], "nothing to recreate");
    assert.equal(next.runtime.containers.has("hello-web"), false, "the new container is gone");
    assert.equal(next.registry.services.get("hello"), undefined, "and so is the service");
  });

  test("a start killed after run, before commit: the new container is kept and committed", async () => {
    const { ctx, runtime, dbPath } = agent();
    assert.ok((await deploy(ctx, { service: example("hello"), component: "" }))[0]?.success);
    await runtime.remove("hello-web");
    const { crashPoint, reached } = hangAt("start:commit@web");
    const second = agent({ runtime, dbPath, crashPoint });
    void startService(second.ctx, "hello");
    await reached;
    const id = runtime.containers.get("hello-web")?.id;
    const next = agent({ runtime, dbPath });
    const report = await recoverAtStart(next.ctx);
    assert.deepEqual(report.recovered, [], "nothing to recreate");
    assert.equal(runtime.containers.get("hello-web")?.id, id, "the same container");
    const row = next.registry.components.get("hello", "web");
    assert.equal(row?.observedState, "running");
    assert.equal(row?.containerId, id);
    assert.ok(next.registry.events.list({ service: "hello" }).some((e) => e.kind === "start"));
  });

  test("settle: finish only for a new, running container of an operation that is not gated", () => {
    const op = {
      kind: "deploy",
      startedAt: "",
      previous: null,
    };
    const c = (id: string, state: string) => ({
      id,
      name: "x",
      image: IMAGE,
      state,
      startedAt: null,
      labels: {},
      ports: [],
    });
    assert.equal(settle(op, undefined), "undo");
    assert.equal(settle(op, c("new", "created")), "undo");
    assert.equal(settle(op, c("new", "running")), "finish");
    const redeploy = {
      ...op,
      previous: {
        spec: example("hello").components[0]!,
        desiredState: "running" as const,
        deployedAt: "",
        containerId: "old",
        routes: [],
      },
    };
    assert.equal(settle(redeploy, c("old", "running")), "undo", "the old one still runs");
    assert.equal(settle(redeploy, c("new", "running")), "finish");
    assert.equal(settle({ ...redeploy, gated: true }, undefined), "undo", "gated, nothing runs");
    assert.equal(settle({ ...redeploy, gated: true }, c("new", "running")), "undo");
  });
});

describe("a stop-first redeploy killed while the old container stops", () => {
  // Killed between `set aside old container` (the stop begun) and `start
  // container`: the podman call of the dead agent never returns, and podman
  // shows the old container "stopping".
  for (const step of ["allocate ports", "create container", "stop old container"] as const) {
    const at = `deploy:${step}@web`;
    test(`killed at ${at}: the stop ends first, then the old one gets its name back and runs`, async () => {
      const first = agent();
      const v1 = withImage(example("hello"), IMAGE);
      v1.components[0]!.strategy = "stop-first";
      assert.ok((await deploy(first.ctx, { service: v1, component: "" }))[0]?.success);
      const { runtime, dbPath } = first;
      const oldId = runtime.containers.get("hello-web")?.id;
      const port = first.registry.routes.heldHostPorts()[0]?.port;
      runtime.hold("stop", "hello-web.prev"); // never released: the agent is dead
      const { crashPoint, reached } = hangAt(at);
      const second = agent({ runtime, dbPath, crashPoint });
      void deploy(second.ctx, { service: withImage(v1, IMAGE_V2), component: "" });
      await reached;
      assert.equal(runtime.containers.get("hello-web.prev")?.state, "stopping");
      const created = step !== "allocate ports" && step !== "create container";
      assert.equal(runtime.containers.get("hello-web")?.state, created ? "created" : undefined);
      runtime.clearCalls();
      const next = agent({ runtime, dbPath });
      await recoverAtStart(next.ctx);
      assertConsistent(next.registry, runtime, at);
      const ops = runtime.ops();
      const stop = ops.indexOf("stop hello-web.prev");
      const rename = ops.indexOf("rename hello-web.prev>hello-web");
      assert.ok(stop >= 0 && stop < rename, `stopped before it is renamed back: ${ops.join(", ")}`);
      assert.ok(rename < ops.indexOf("start hello-web"), ops.join(", "));
      assert.equal(runtime.containers.get("hello-web")?.id, oldId, "the old container");
      assert.equal(runtime.containers.get("hello-web")?.state, "running");
      assert.equal(next.registry.components.get("hello", "web")?.spec.image, IMAGE);
      assert.equal(next.registry.routes.heldHostPorts()[0]?.port, port, "its port");
    });
  }
});

describe("a failed start never removes a container it did not create", () => {
  test("port taken while stopped and no other port free: the stopped container stays", async () => {
    const { ctx, runtime, registry } = agent({ pool: [{ from: 20000, to: 20000 }] });
    assert.ok((await deploy(ctx, { service: example("hello"), component: "" }))[0]?.success);
    await stopService(ctx, "hello");
    const before = runtime.containers.get("hello-web");
    runtime.hostBusy.add(20000);
    const [result] = await startService(ctx, "hello");
    assert.equal(result?.success, false);
    assert.match(result?.error ?? "", /^allocate ports: /);
    const after = runtime.containers.get("hello-web");
    assert.equal(after?.id, before?.id, "the same container");
    assert.equal(after?.state, "exited");
    assert.equal(registry.routes.heldHostPorts()[0]?.port, 20000, "its port is still recorded");
    assert.equal(registry.components.get("hello", "web")?.pending, null);
    // Once the port is free again, start works on the same container.
    runtime.hostBusy.delete(20000);
    assert.ok((await startService(ctx, "hello"))[0]?.success);
    assert.equal(runtime.containers.get("hello-web")?.id, before?.id);
  });

  test("port taken while stopped and the new container fails: the old one comes back", async () => {
    const { ctx, runtime, registry } = agent();
    assert.ok((await deploy(ctx, { service: example("hello"), component: "" }))[0]?.success);
    await stopService(ctx, "hello");
    const before = runtime.containers.get("hello-web");
    const port = registry.routes.heldHostPorts()[0]?.port ?? 0;
    runtime.hostBusy.add(port);
    // The stopped container's start finds its port taken; the new one's start fails otherwise.
    runtime.failNext("start", runtime.portTakenAtStart).failNext("start", runFailed());
    const [result] = await startService(ctx, "hello");
    assert.equal(result?.success, false);
    assert.match(result?.error ?? "", /^start container: /);
    assert.equal(runtime.containers.get("hello-web")?.id, before?.id, "the old container is back");
    assert.equal(runtime.containers.get("hello-web")?.state, "exited");
    assert.deepEqual([...runtime.containers.keys()], ["hello-web"]);
    assert.equal(registry.routes.heldHostPorts()[0]?.port, port, "the old port is recorded again");
  });
});

describe("after commit, the set-aside container is only a leftover", () => {
  test("failing to remove it does not undo the start; the next agent start sweeps it", async () => {
    const { ctx, runtime, registry, dbPath } = agent();
    assert.ok((await deploy(ctx, { service: example("hello"), component: "" }))[0]?.success);
    await stopService(ctx, "hello");
    runtime.hostBusy.add(registry.routes.heldHostPorts()[0]?.port ?? 0);
    const release = runtime.hold("rename", "hello-web>hello-web.prev");
    const started = startService(ctx, "hello");
    while (!runtime.callsOf("rename").length) await new Promise((r) => setTimeout(r, 1));
    // The remove after the commit is the next one.
    runtime.failNext("remove", apiError("remove", 500, "device or resource busy"));
    release();
    const [result] = await started;
    assert.equal(result?.success, true, result?.error);
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.ok(runtime.containers.has("hello-web.prev"), "left behind");
    assert.equal(registry.components.get("hello", "web")?.pending, null);
    const next = agent({ runtime, dbPath });
    await recoverAtStart(next.ctx);
    assert.deepEqual([...runtime.containers.keys()], ["hello-web"]);
  });
});

describe("the answer does not wait for the old container's removal", () => {
  test("a redeploy answers first; the service stays locked until the old container is gone", async () => {
    const { ctx, runtime } = agent();
    assert.ok((await deploy(ctx, { service: example("hello"), component: "" }))[0]?.success);
    const release = runtime.hold("remove", "hello-web.prev");
    let answered: ComponentResult[] | undefined;
    const done = deploy(
      ctx,
      { service: example("hello"), component: "" },
      { answer: (results) => (answered = results) },
    );
    const removing = () => runtime.callsOf("remove").some((c) => c.arg === "hello-web.prev");
    while (!removing()) await new Promise((r) => setTimeout(r, 1));
    assert.equal(answered?.[0]?.success, true, "answered while the removal runs");
    assert.equal(ctx.serviceLocks.isLocked("hello"), true, "the lock waits for it");
    assert.ok(runtime.containers.has("hello-web.prev"));
    release();
    assert.deepEqual(await done, answered);
    assert.equal(ctx.serviceLocks.isLocked("hello"), false);
    assert.deepEqual([...runtime.containers.keys()], ["hello-web"]);
  });
});

describe("a slow deploy does not hold an unrelated one", () => {
  test("while one service's podman start hangs, another service deploys and the first still finishes", async () => {
    const { ctx, runtime } = agent();
    const release = runtime.hold("start", "hello-web");
    const slow = deploy(ctx, { service: example("hello"), component: "" });
    // The slow one is past allocation (its port recorded) and inside `start container`.
    while (!runtime.callsOf("start").some((c) => c.arg === "hello-web")) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const other = await deploy(ctx, { service: example("multi"), component: "" });
    assert.ok(
      other.every((r) => r.success),
      "multi deployed while hello's run hangs",
    );
    assert.equal(runtime.containers.get("hello-web")?.state, "created", "hello is still starting");
    release();
    const [done] = await slow;
    assert.equal(done?.success, true);
    const ports = [...runtime.containers.values()].flatMap((c) => c.ports);
    assert.equal(new Set(ports).size, ports.length, "no port shared");
  });
});
