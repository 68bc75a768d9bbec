/**
 * The in-memory view of podman's containers fed by its events
 * (src/agent/observed/view.ts) over a scripted event stream, and how its
 * readers use it: refreshObserved confirming a disagreement with podman
 * before writing, the monitor's light pass on a change (or once the
 * service's operation ends) and its reconciliation after the stream dropped.
 * test/integration/observed-events.test.ts covers the same on real podman.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";

import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { observedStateOf, refreshObserved } from "../../src/agent/observed/refresh.js";
import {
  ObservedView,
  changesStatus,
  reconnectDelayMs,
  type ContainerChange,
} from "../../src/agent/observed/view.js";
import { defaultPolicy } from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { Monitor } from "../../src/monitor/monitor.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import type { ContainerEvent, EventWatch } from "../../src/runtime/libpod/events.js";
import type { ContainerStatus } from "../../src/runtime/types.js";
import { parseServiceDef, toServiceSpec } from "../../src/servicedef/index.js";
import { memoryLogger } from "../helpers/agent.js";
import { FakeRuntime } from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "../../examples");
const IMAGE = "localhost/mcp-httpenv:v1";

const dir = mkdtempSync(join(tmpdir(), "mcp-observed-view-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

const tick = () => new Promise((r) => setImmediate(r));

function container(id: string, name: string, state = "running"): ContainerStatus {
  return {
    id,
    name,
    image: IMAGE,
    state,
    startedAt: new Date("2026-12-01T10:00:00Z"),
    labels: { "mcp.service": "hello", "mcp.component": "web", "mcp.node": "local" },
    ports: [],
  };
}

function event(action: string, id: string, name: string): ContainerEvent {
  return { action, id, name, labels: {}, time: new Date() };
}

/** A scripted event stream: each watch() is one stream the test opens, feeds and drops. */
class ScriptedStreams {
  readonly streams: {
    onEvent: (e: ContainerEvent) => void;
    open(): void;
    fail(err: Error): void;
    drop(): void;
  }[] = [];

  watch = (onEvent: (e: ContainerEvent) => void): EventWatch => {
    let open!: () => void;
    let failOpen!: (err: Error) => void;
    let end!: () => void;
    const opened = new Promise<void>((res, rej) => {
      open = res;
      failOpen = rej;
    });
    const ended = new Promise<void>((res) => (end = res));
    this.streams.push({
      onEvent,
      open,
      fail: (err) => {
        failOpen(err);
        end();
      },
      drop: end,
    });
    return { opened, ended, stop: end };
  };

  get last() {
    const s = this.streams.at(-1);
    assert.ok(s, "no stream opened");
    return s;
  }
}

/** A view over a podman held in a map, with every inspect and sleep recorded. */
function scriptedView(initial: ContainerStatus[] = []) {
  const podman = new Map(initial.map((c) => [c.id, c]));
  const streams = new ScriptedStreams();
  const inspects: string[] = [];
  const sleeps: number[] = [];
  const changes: ContainerChange[] = [];
  const resyncs: number[] = [];
  let clock = 1000;
  let lists = 0;
  let holdInspect: Promise<void> | undefined;
  const view = new ObservedView({
    node: "local",
    list: () => {
      lists++;
      return Promise.resolve([...podman.values()]);
    },
    inspect: async (id) => {
      inspects.push(id);
      if (holdInspect) await holdInspect;
      return podman.get(id);
    },
    watch: streams.watch,
    logger: memoryLogger().logger,
    onChange: (c) => changes.push(c),
    onResync: (ms) => resyncs.push(ms),
    sleep: (ms) => {
      sleeps.push(ms);
      clock += ms;
      return Promise.resolve();
    },
    now: () => clock,
  });
  return {
    view,
    podman,
    streams,
    inspects,
    sleeps,
    changes,
    resyncs,
    lists: () => lists,
    advance: (ms: number) => (clock += ms),
    hold: (p: Promise<void> | undefined) => {
      holdInspect = p;
    },
  };
}

describe("ObservedView (pure parts)", () => {
  test("changesStatus: lifecycle actions yes, exec and the like no", () => {
    for (const a of ["create", "start", "died", "remove", "rename", "pause", "restart"]) {
      assert.equal(changesStatus(a), true, a);
    }
    for (const a of ["exec", "exec_died", "attach", "mount", "kill", "health_status"]) {
      assert.equal(changesStatus(a), false, a);
    }
  });

  test("reconnectDelayMs doubles from 50 ms and stops at 2 s", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 20].map(reconnectDelayMs),
      [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000],
    );
  });
});

describe("ObservedView", () => {
  test("not ready until the stream is open and the first list is in", async () => {
    const s = scriptedView([container("a", "hello-web")]);
    const started = s.view.start(60_000);
    await tick();
    assert.equal(s.view.containers(), undefined, "stream not open yet");
    assert.equal(s.lists(), 0, "lists only once events cannot be missed");
    s.streams.last.open();
    await started;
    assert.deepEqual(
      s.view.containers()?.map((c) => c.name),
      ["hello-web"],
    );
    await s.view.stop();
    assert.equal(s.view.containers(), undefined, "stopped: readers list");
  });

  test("an event makes it inspect that container; remove drops it; each change is reported", async () => {
    const s = scriptedView();
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    s.podman.set("b", container("b", "hello-web"));
    s.streams.last.onEvent(event("start", "b", "hello-web"));
    await tick();
    assert.deepEqual(s.inspects, ["b"]);
    assert.equal(s.view.containers()?.[0]?.state, "running");

    s.streams.last.onEvent(event("exec", "b", "hello-web"));
    await tick();
    assert.deepEqual(s.inspects, ["b"], "exec changes nothing: no inspect");

    s.podman.set("b", container("b", "hello-web", "exited"));
    s.streams.last.onEvent(event("died", "b", "hello-web"));
    await tick();
    assert.equal(s.view.containers()?.[0]?.state, "exited");

    s.podman.delete("b");
    s.streams.last.onEvent(event("remove", "b", "hello-web"));
    assert.deepEqual(s.view.containers(), []);
    assert.deepEqual(
      s.changes.map((c) => c.name),
      ["hello-web", "hello-web", "hello-web"],
    );
    assert.equal(s.changes[0]?.labels["mcp.service"], "hello", "the container's labels");
    await s.view.stop();
  });

  test("events during an inspection fold into one more inspection", async () => {
    const s = scriptedView();
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    let release!: () => void;
    s.hold(
      new Promise<void>((r) => {
        release = r;
      }),
    );
    s.podman.set("c", container("c", "hello-web"));
    for (const a of ["create", "init", "start"]) s.streams.last.onEvent(event(a, "c", "hello-web"));
    await tick();
    assert.deepEqual(s.inspects, ["c"]);
    s.hold(undefined);
    release();
    await tick();
    await tick();
    assert.deepEqual(s.inspects, ["c", "c"], "one more, not two");
    await s.view.stop();
  });

  test("a rename reports the old name and the new one", async () => {
    const s = scriptedView([container("d", "hello-web")]);
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    s.podman.set("d", container("d", "hello-web.prev"));
    s.streams.last.onEvent(event("rename", "d", "hello-web.prev"));
    await tick();
    assert.deepEqual(
      s.changes.map((c) => c.name),
      ["hello-web", "hello-web.prev"],
    );
    await s.view.stop();
  });

  test("events that arrive while the first list runs are applied after it", async () => {
    const streams = new ScriptedStreams();
    let finishList!: (cs: ContainerStatus[]) => void;
    const inspected: string[] = [];
    const view = new ObservedView({
      node: "local",
      list: () => new Promise((r) => (finishList = r)),
      inspect: (id) => {
        inspected.push(id);
        return Promise.resolve(container(id, "hello-web", "exited"));
      },
      watch: streams.watch,
      logger: memoryLogger().logger,
    });
    const started = view.start(60_000);
    streams.last.open();
    await tick();
    streams.last.onEvent(event("died", "e", "hello-web"));
    finishList([container("e", "hello-web", "running")]);
    await started;
    await tick();
    assert.deepEqual(inspected, ["e"]);
    assert.equal(view.containers()?.[0]?.state, "exited", "the event after the list wins");
    await view.stop();
  });

  test("the stream drops: not ready, opened again with a backoff, re-listed, deaf time reported", async () => {
    const s = scriptedView([container("f", "hello-web")]);
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    s.streams.last.drop();
    await tick();
    assert.equal(s.view.containers(), undefined, "deaf: readers list");
    s.podman.delete("f"); // removed while nobody listened
    s.streams.last.fail(new Error("connect ECONNREFUSED"));
    await tick();
    await tick();
    s.advance(500);
    s.streams.last.open();
    await tick();
    await tick();
    assert.deepEqual(s.view.containers(), []);
    assert.equal(s.lists(), 2);
    assert.deepEqual(s.sleeps, [50, 100], "backoff between tries");
    assert.deepEqual(s.resyncs, [650], "how long the view was deaf");
    await s.view.stop();
  });

  test("containers another node's agent labelled are left out, their events ignored", async () => {
    const other = { ...container("o", "x-web"), labels: { "mcp.node": "elsewhere" } };
    const byHand = { ...container("u", "by-hand"), labels: {} };
    const s = scriptedView([container("m", "hello-web"), other, byHand]);
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    assert.deepEqual(
      s.view.containers()?.map((c) => c.id),
      ["m", "u"],
    );
    s.streams.last.onEvent({
      ...event("start", "o2", "y-web"),
      labels: { "mcp.node": "elsewhere" },
    });
    await tick();
    assert.deepEqual(s.inspects, [], "not inspected");
    await s.view.stop();
  });

  test("learn: what a reader found out replaces what the view held under that name", async () => {
    const s = scriptedView([container("g", "hello-web")]);
    const started = s.view.start(60_000);
    s.streams.last.open();
    await started;
    s.view.learn("hello-web", container("h", "hello-web"));
    assert.deepEqual(
      s.view.containers()?.map((c) => c.id),
      ["h"],
    );
    s.view.learn("hello-web", undefined);
    assert.deepEqual(s.view.containers(), []);
    await s.view.stop();
  });
});

// ------------------------------------------------------------------ readers

let harnessCount = 0;

/** An agent context over a FakeRuntime whose view is a plain list the test sets. */
function harness() {
  const n = ++harnessCount;
  const registry = openRegistry(join(dir, `registry-${n}.db`));
  registries.push(registry);
  const runtime = new FakeRuntime({ images: [IMAGE] });
  const ctx: AgentContext = createAgentContext({
    health: new ScriptedProber(),
    settings: {
      node: "local",
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot: join(dir, `data-${n}`),
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      policy: defaultPolicy(["127.0.0.1"]),
    },
    registry,
    runtime,
    allocator: new PortAllocator({
      pool: [{ from: 22000, to: 22099 }],
      bindAddresses: ["127.0.0.1"],
      book: new RegistryPortBook(registry),
      probe: runtime.probe,
    }),
    logger: memoryLogger().logger,
  });
  const view = {
    held: undefined as ContainerStatus[] | undefined,
    learnt: [] as string[],
    containers() {
      return this.held;
    },
    learn(name: string, status: ContainerStatus | undefined) {
      this.learnt.push(name);
      this.held = [
        ...(this.held ?? []).filter((c) => c.name !== name),
        ...(status ? [status] : []),
      ];
    },
  };
  ctx.observed = view;
  return { ctx, runtime, registry, view };
}

async function deployHello(ctx: AgentContext): Promise<void> {
  const file = join(EXAMPLES, "hello.toml");
  const spec = toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file));
  for (const r of await deploy(ctx, { service: spec, component: "" })) {
    assert.equal(r.success, true, r.error);
  }
}

const stateEvents = (registry: Registry) =>
  registry.events.list({ service: "hello" }).filter((e) => e.kind === "state");

describe("refreshObserved over the view", () => {
  test("observedStateOf: podman's brief `stopped` is `exited`; no container is `removed`", () => {
    assert.equal(observedStateOf(container("a", "x", "stopped")), "exited");
    assert.equal(observedStateOf(container("a", "x", "exited")), "exited");
    assert.equal(observedStateOf(container("a", "x", "paused")), "paused");
    assert.equal(observedStateOf(undefined), "removed");
  });

  test("a view that agrees costs no podman call", async () => {
    const { ctx, runtime, view } = harness();
    await deployHello(ctx);
    view.held = await runtime.list();
    runtime.clearCalls();
    await refreshObserved(ctx);
    assert.deepEqual(runtime.ops(), []);
  });

  test("a view lagging behind a deploy is confirmed with podman: nothing written", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    view.held = []; // the new container's events have not arrived yet
    runtime.clearCalls();
    await refreshObserved(ctx);
    assert.deepEqual(runtime.ops(), ["inspect hello-web"]);
    assert.deepEqual(stateEvents(registry), []);
    assert.equal(registry.components.get("hello", "web")?.observedState, "running");
    assert.deepEqual(view.learnt, ["hello-web"], "the view keeps what podman said");
  });

  test("a change the view shows and podman confirms is written, with the note", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    runtime.containers.delete("hello-web");
    view.held = [];
    await refreshObserved(ctx, { note: "seen on re-listing" });
    const [state] = stateEvents(registry);
    assert.equal(state?.newState, "removed");
    assert.equal(state?.message, "seen on re-listing");
  });

  test("a container that exited: its exit code in the state event", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    runtime.setState("hello-web", "exited", 137);
    view.held = await runtime.list();
    await refreshObserved(ctx);
    const [state] = stateEvents(registry);
    assert.equal(state?.newState, "exited");
    assert.equal(state?.message, "exit code 137");
  });

  test("a view that is not ready: a podman list, as before", async () => {
    const { ctx, runtime, view } = harness();
    await deployHello(ctx);
    view.held = undefined;
    runtime.clearCalls();
    await refreshObserved(ctx);
    assert.deepEqual(runtime.ops(), ["list "]);
  });
});

describe("Monitor fed by the view", () => {
  const settings = {
    intervalMs: 600_000,
    alertCommand: [],
    cooldownMs: 3_600_000,
    flapThreshold: 3,
    flapWindowMs: 60_000,
    retentionMs: 3_600_000,
  };

  /** Started, its first pass over: what follows is the change's own pass. */
  async function started(monitor: Monitor): Promise<Monitor> {
    monitor.start();
    await new Promise((r) => setTimeout(r, 0)); // the first pass has begun
    await monitor.runOnce(); // and ended
    return monitor;
  }

  async function until(what: string, done: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(done(), what);
  }

  test("a change of one of our containers: a drift event at once, no interval needed", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    const monitor = await started(new Monitor(ctx, settings));
    runtime.containers.delete("hello-web");
    view.held = [];
    monitor.containersChanged({ name: "hello-web", labels: { "mcp.service": "hello" } });
    const drift = () => registry.events.list({ service: "hello" }).some((e) => e.kind === "drift");
    await until("a drift event", drift);
    await monitor.stop();
  });

  test("a light pass reads only the changed service's rows, not every row on the node", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    const monitor = await started(new Monitor(ctx, settings));
    const reads: (string | undefined)[] = [];
    const list = registry.components.list.bind(registry.components);
    registry.components.list = (service?: string) => {
      reads.push(service);
      return list(service);
    };
    runtime.containers.delete("hello-web");
    view.held = [];
    monitor.containersChanged({ name: "hello-web", labels: { "mcp.service": "hello" } });
    const drift = () => registry.events.list({ service: "hello" }).some((e) => e.kind === "drift");
    await until("a drift event", drift);
    assert.ok(reads.length > 0 && reads.every((s) => s === "hello"), JSON.stringify(reads));
    await monitor.stop();
  });

  test("containers of no service of ours start no pass", async () => {
    const { ctx, runtime, view } = harness();
    view.held = [];
    const monitor = await started(new Monitor(ctx, settings));
    runtime.clearCalls();
    let passes = 0;
    const runOnce = monitor.runOnce.bind(monitor);
    monitor.runOnce = (o) => {
      passes++;
      return runOnce(o);
    };
    monitor.containersChanged({ name: "stray", labels: {} });
    monitor.containersChanged({ name: "x", labels: { "mcp.service": "other-node-svc" } });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(passes, 0);
    await monitor.stop();
  });

  test("a change during an operation on the service waits for the operation to end", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    const monitor = await started(new Monitor(ctx, settings));
    let release!: () => void;
    const held = ctx.serviceLocks.runExclusive(
      "hello",
      () => new Promise<void>((r) => (release = r)),
    );
    runtime.containers.delete("hello-web");
    view.held = [];
    monitor.containersChanged({ name: "hello-web", labels: { "mcp.service": "hello" } });
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(stateEvents(registry), [], "mid-operation: not a fact yet");
    release();
    await held;
    await until("the state event after the operation", () => stateEvents(registry).length === 1);
    await monitor.stop();
  });

  test("after the stream was down: a full pass, its findings noted, a podman event", async () => {
    const { ctx, runtime, registry, view } = harness();
    await deployHello(ctx);
    const monitor = await started(new Monitor(ctx, settings));
    runtime.containers.delete("hello-web");
    view.held = [];
    monitor.resynced(2300);
    const podmanEvent = () =>
      registry.events.list({ service: "" }).find((e) => e.kind === "podman");
    await until("the podman event", () => podmanEvent() !== undefined);
    assert.equal(
      podmanEvent()?.message,
      "podman's event stream was down 2.3 s; re-listed: 1 component changed (hello/web)",
    );
    assert.equal(
      stateEvents(registry)[0]?.message,
      "seen on re-listing after podman's event stream was down 2.3 s",
    );
    await monitor.stop();
  });
});
