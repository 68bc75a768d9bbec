/**
 * The monitor (drift, flap, alerts, cooldown, pruning) and recovery at agent
 * start: the pure decisions on their outputs, then the Monitor and
 * recoverAtStart over a FakeRuntime and a real registry file. The alert
 * runner spawns real processes. test/integration/monitor.test.ts covers the
 * same against podman and a real agent.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import type { ServerUnaryCall, handleUnaryCall } from "@grpc/grpc-js";

import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { createHandlers } from "../../src/agent/server/handlers.js";
import { stopService } from "../../src/agent/operations/lifecycle.js";
import { refreshObserved } from "../../src/agent/observed/refresh.js";
import { defaultPolicy } from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { planRecovery, recoverAtStart } from "../../src/agent/operations/recover.js";
import type { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import { runAlertCommand } from "../../src/monitor/alerter.js";
import {
  alertEnv,
  conditionKey,
  conditionsOf,
  cooledDown,
  emptyMemory,
  evaluate,
  type ComponentObservation,
  type Condition,
  type MonitorMemory,
  type MonitorPolicy,
} from "../../src/monitor/alerts.js";
import { Monitor, type MonitorSettings } from "../../src/monitor/monitor.js";
import {
  NO_HEALTH,
  openRegistry,
  type ComponentRow,
  type Registry,
} from "../../src/registry/index.js";
import type { ContainerStatus } from "../../src/runtime/types.js";
import { parseServiceDef, toServiceSpec } from "../../src/servicedef/index.js";
import type { Logger } from "../../src/util/log.js";
import { memoryLogger } from "../helpers/agent.js";
import { FakeRuntime, apiError } from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "../../examples");
const IMAGE = "localhost/mcp-httpenv:v1";
const NODE = "local";

const dir = mkdtempSync(join(tmpdir(), "mcp-monitor-unit-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ pure: alerts

const POLICY: MonitorPolicy = {
  cooldownMs: 60_000,
  flapThreshold: 3,
  flapWindowMs: 600_000,
  alerting: true,
};

function obs(fields: Partial<ComponentObservation> = {}): ComponentObservation {
  return {
    service: "hello",
    component: "web",
    desired: "running",
    observed: "running",
    transitions: 0,
    health: "",
    healthOutput: "",
    ...fields,
  };
}

/** `kind service/component` of each condition, for compact assertions. */
function names(conditions: Condition[]): string[] {
  return conditions.map((c) => `${c.kind} ${c.service}/${c.component}`);
}

/** Runs passes at the given times over the given observations; returns each pass's result. */
function passes(
  steps: { at: number; rows: ComponentObservation[]; skipped?: string[] }[],
  policy: MonitorPolicy = POLICY,
) {
  let memory: MonitorMemory = emptyMemory();
  return steps.map(({ at, rows, skipped }) => {
    const result = evaluate(rows, new Set(skipped ?? []), memory, at, policy);
    memory = result.memory;
    return { entered: names(result.entered), alerts: names(result.alerts), memory };
  });
}

describe("alerts (pure)", () => {
  test("conditionsOf: drift and flap, ignore never", () => {
    assert.deepEqual(conditionsOf(obs(), POLICY), []);
    const drift = conditionsOf(obs({ observed: "removed" }), POLICY);
    assert.deepEqual(names(drift), ["drift hello/web"]);
    assert.equal(drift[0]?.message, "desired running, observed removed");
    assert.deepEqual(conditionsOf(obs({ desired: "stopped", observed: "exited" }), POLICY), []);
    assert.deepEqual(
      names(conditionsOf(obs({ desired: "stopped", observed: "running" }), POLICY)),
      ["drift hello/web"],
    );
    assert.deepEqual(conditionsOf(obs({ transitions: 2 }), POLICY), [], "below the threshold");
    const flap = conditionsOf(obs({ transitions: 3, observed: "exited" }), POLICY);
    assert.deepEqual(names(flap), ["drift hello/web", "flap hello/web"]);
    assert.equal(
      flap[1]?.message,
      "3 state changes within 10m (threshold 3), now exited",
      "window and threshold in the message",
    );
    assert.deepEqual(
      conditionsOf(obs({ desired: "ignore", observed: "removed", transitions: 9 }), POLICY),
      [],
    );
  });

  test("cooledDown: suppressed while now - last < cooldown", () => {
    assert.equal(cooledDown(undefined, 0, 1000), true);
    assert.equal(cooledDown(1000, 1999, 1000), false);
    assert.equal(cooledDown(1000, 2000, 1000), true);
    assert.equal(cooledDown(1000, 1000, 0), true, "no cooldown");
  });

  test("a drift episode records one event and alerts once, however many passes it lasts", () => {
    const gone = [obs({ observed: "removed" })];
    const r = passes([
      { at: 0, rows: [obs()] },
      { at: 1000, rows: gone },
      { at: 2000, rows: gone },
      { at: 200_000, rows: gone },
    ]);
    assert.deepEqual(
      r.map((p) => [p.entered, p.alerts]),
      [
        [[], []],
        [["drift hello/web"], ["drift hello/web"]],
        [[], []],
        [[], []], // past the cooldown, same episode: no reminder
      ],
    );
  });

  test("a drift of another container run is a new episode, though no pass saw it running", () => {
    const r = passes([
      { at: 0, rows: [obs({ observed: "removed", run: "@" })] },
      // `mcp start` made container b, killed before any pass looked
      { at: 1000, rows: [obs({ observed: "exited", run: "b@2026-12-01T10:00:00Z" })] },
      { at: 2000, rows: [obs({ observed: "exited", run: "b@2026-12-01T10:00:00Z" })] },
    ]);
    assert.deepEqual(
      r.map((p) => p.entered),
      [["drift hello/web"], ["drift hello/web"], []],
    );
  });

  test("cooldown: a new episode within the cooldown is recorded, its alert waits and then goes out once", () => {
    const ok = [obs()];
    const gone = [obs({ observed: "removed" })];
    const r = passes([
      { at: 0, rows: gone },
      { at: 10_000, rows: ok },
      { at: 20_000, rows: gone }, // new episode, 20 s after the alert
      { at: 30_000, rows: gone },
      { at: 60_000, rows: gone }, // cooldown over: the pending alert goes out
      { at: 61_000, rows: gone },
    ]);
    assert.deepEqual(
      r.map((p) => [p.entered.length, p.alerts.length]),
      [
        [1, 1],
        [0, 0],
        [1, 0],
        [0, 0],
        [0, 1],
        [0, 0],
      ],
    );
    assert.equal(r[4]?.memory.lastAlert.get(conditionKey("drift", "hello", "web")), 60_000);
  });

  test("an episode that ended before its cooldown passed is not alerted later", () => {
    const r = passes([
      { at: 0, rows: [obs({ observed: "removed" })] },
      { at: 1000, rows: [obs()] },
      { at: 2000, rows: [obs({ observed: "exited" })] },
      { at: 3000, rows: [obs()] },
      { at: 100_000, rows: [obs()] },
    ]);
    assert.deepEqual(
      r.map((p) => p.alerts.length),
      [1, 0, 0, 0, 0],
    );
    assert.deepEqual(
      r.map((p) => p.entered.length),
      [1, 0, 1, 0, 0],
    );
  });

  test("drift and flap have separate cooldowns; components are independent", () => {
    const r = passes([
      { at: 0, rows: [obs({ observed: "exited", transitions: 1 }), obs({ service: "other" })] },
      {
        at: 1000,
        rows: [
          obs({ observed: "running", transitions: 2 }),
          obs({ service: "other", observed: "removed", transitions: 1 }),
        ],
      },
      { at: 2000, rows: [obs({ observed: "exited", transitions: 3 }), obs({ service: "other" })] },
    ]);
    assert.deepEqual(
      r.map((p) => p.alerts),
      [
        ["drift hello/web"],
        ["drift other/web"],
        // hello/web drifts again within its drift cooldown (pending), but the flap alert goes out
        ["flap hello/web"],
      ],
    );
    assert.deepEqual(r[2]?.entered, ["drift hello/web", "flap hello/web"]);
  });

  test("skipped components keep their conditions; vanished components are forgotten", () => {
    const r = passes([
      { at: 0, rows: [obs({ observed: "removed" })] },
      { at: 1000, rows: [], skipped: ["hello/web"] },
      { at: 2000, rows: [obs({ observed: "removed" })] },
      { at: 3000, rows: [] },
      { at: 4000, rows: [obs({ observed: "removed" })] },
    ]);
    assert.deepEqual(
      r.map((p) => p.entered.length),
      [1, 0, 0, 0, 1],
      "a busy pass does not end the episode; a purged component does",
    );
    assert.deepEqual(
      r.map((p) => p.alerts.length),
      [1, 0, 0, 0, 0],
      "the re-entry at 4 s is within the cooldown",
    );
  });

  test("without an alert command, conditions are recorded and nothing alerts", () => {
    const r = passes([{ at: 0, rows: [obs({ observed: "removed", transitions: 5 })] }], {
      ...POLICY,
      alerting: false,
    });
    assert.deepEqual(r[0]?.entered, ["drift hello/web", "flap hello/web"]);
    assert.deepEqual(r[0]?.alerts, []);
  });

  test("lastAlert entries past their cooldown are dropped (memory stays bounded)", () => {
    const r = passes([
      { at: 0, rows: [obs({ observed: "removed" })] },
      { at: 1000, rows: [obs()] },
      { at: 70_000, rows: [obs()] },
    ]);
    assert.equal(r[1]?.memory.lastAlert.size, 1);
    assert.equal(r[2]?.memory.lastAlert.size, 0);
    assert.equal(r[2]?.memory.active.size, 0);
  });

  test("alertEnv: the documented variables", () => {
    const [drift] = conditionsOf(obs({ observed: "removed" }), POLICY);
    assert.ok(drift);
    assert.deepEqual(alertEnv("lab1", drift), {
      MCP_ALERT_KIND: "drift",
      MCP_NODE: "lab1",
      MCP_SERVICE: "hello",
      MCP_COMPONENT: "web",
      MCP_DESIRED: "running",
      MCP_OBSERVED: "removed",
      MCP_MESSAGE: "hello/web on lab1: drift: desired running, observed removed",
    });
    const flap = conditionsOf(obs({ transitions: 4 }), POLICY)[0];
    assert.ok(flap);
    const env = alertEnv("lab1", flap);
    assert.equal(env.MCP_ALERT_KIND, "flap");
    assert.equal(env.MCP_TRANSITIONS, "4");
    assert.equal(env.MCP_OBSERVED, "running");
    assert.match(
      env.MCP_MESSAGE ?? "",
      /^hello\/web on lab1: flapping: 4 state changes within 10m/,
    );
  });
});

// ------------------------------------------------------------------ alert command (real processes)

describe("runAlertCommand", () => {
  function lines(mem: ReturnType<typeof memoryLogger>, msg: string) {
    return mem.lines().filter((l) => l.msg === msg);
  }

  test("argv is executed as given, never through a shell; env carries the details; output is logged", async () => {
    const mem = memoryLogger();
    const marker = join(dir, "pwned");
    await runAlertCommand(
      ["/bin/echo", "a;b", `$(touch ${marker})`, "|", "x"],
      { MCP_SERVICE: "hello" },
      { logger: mem.logger },
    );
    const [ran] = lines(mem, "alert command ran");
    assert.equal(ran?.stdout, `a;b $(touch ${marker}) | x`);
    assert.throws(() => readFileSync(marker), /ENOENT/, "nothing was interpreted");

    // printenv, not env: the whole environment can exceed the logged output limit.
    const env = memoryLogger();
    process.env.MCP_TRANSITIONS = "stale";
    try {
      const details = { MCP_ALERT_KIND: "drift", MCP_SERVICE: "a b;c" };
      const opts = { logger: env.logger };
      await runAlertCommand(
        ["/usr/bin/printenv", "MCP_ALERT_KIND", "MCP_SERVICE", "PATH"],
        details,
        opts,
      );
      // Exits 1 when the variable is not set.
      await runAlertCommand(["/usr/bin/printenv", "MCP_TRANSITIONS"], details, opts);
    } finally {
      delete process.env.MCP_TRANSITIONS;
    }
    const out = (lines(env, "alert command ran")[0]?.stdout as string | undefined) ?? "";
    const [kind, service, path] = out.split("\n");
    assert.equal(kind, "drift");
    assert.equal(service, "a b;c");
    assert.match(path ?? "", /\/bin/, "the agent's environment is inherited");
    assert.equal(lines(env, "alert command failed").length, 1, "stale alert variables are not");
  });

  test("a failing, missing or hanging command is logged, not thrown", async () => {
    const mem = memoryLogger();
    await runAlertCommand(["/bin/sh", "-c", "echo oops >&2; exit 3"], {}, { logger: mem.logger });
    await runAlertCommand(["/nonexistent/alert"], {}, { logger: mem.logger });
    const started = Date.now();
    await runAlertCommand(["/bin/sleep", "5"], {}, { logger: mem.logger, timeoutMs: 200 });
    assert.ok(Date.now() - started < 3000, "killed after the timeout");
    const failed = lines(mem, "alert command failed");
    assert.equal(failed.length, 3);
    assert.match(String(failed[0]?.err), /exited 3/);
    assert.equal(failed[0]?.stderr, "oops");
    assert.match(String(failed[1]?.err), /cannot run \/nonexistent\/alert: ENOENT/);
    assert.match(String(failed[2]?.err), /timed out/);
    assert.ok(
      failed.every((l) => l.level === 40),
      "warn level",
    );
  });
});

// ------------------------------------------------------------------ harness

interface Harness {
  ctx: AgentContext;
  runtime: FakeRuntime;
  registry: Registry;
  logs: ReturnType<typeof memoryLogger>;
}

let harnessCount = 0;

function harness(opts: { images?: string[]; logger?: Logger } = {}): Harness {
  const n = ++harnessCount;
  const registry = openRegistry(join(dir, `registry-${n}.db`));
  registries.push(registry);
  const runtime = new FakeRuntime({ images: opts.images ?? [IMAGE] });
  const logs = memoryLogger();
  const ctx = createAgentContext({
    health: new ScriptedProber(),
    settings: {
      node: NODE,
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot: join(dir, `data-${n}`),
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      // The multi example mounts /srv/multi; data_root is a temp dir here.
      policy: { ...defaultPolicy(["127.0.0.1"]), volumeRoots: ["/srv/multi"] },
    },
    registry,
    runtime,
    allocator: new PortAllocator({
      pool: [{ from: 21000, to: 21099 }],
      bindAddresses: ["127.0.0.1"],
      book: new RegistryPortBook(registry),
      probe: runtime.probe,
    }),
    logger: logs.logger,
  });
  return { ctx, runtime, registry, logs };
}

function example(name: "hello" | "multi" | "legacy"): ServiceSpec {
  const file = join(EXAMPLES, `${name}.toml`);
  return toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file));
}

async function deployOk(ctx: AgentContext, spec: ServiceSpec): Promise<void> {
  const results = await deploy(ctx, { service: spec, component: "" });
  for (const r of results) assert.equal(r.success, true, `${r.name}: ${r.error}`);
}

const SETTINGS: MonitorSettings = {
  intervalMs: 60_000,
  alertCommand: ["/usr/local/bin/notify"],
  cooldownMs: 3_600_000,
  flapThreshold: 3,
  flapWindowMs: 60_000,
  retentionMs: 720 * 3_600_000,
};

/** A monitor whose alerts are captured instead of run. */
function monitorFor(ctx: AgentContext, settings: Partial<MonitorSettings> = {}) {
  const alerts: { argv: string[]; env: Record<string, string> }[] = [];
  const monitor = new Monitor(
    ctx,
    { ...SETTINGS, ...settings },
    {
      runAlert: (argv, env) => {
        alerts.push({ argv, env });
        return Promise.resolve();
      },
    },
  );
  return { monitor, alerts };
}

function events(registry: Registry, service: string, kind: string) {
  return registry.events.list({ service }).filter((e) => e.kind === kind);
}

/** Moves a fake container's start time forward, as a restart by podman would. */
function restartedBehindOurBack(runtime: FakeRuntime, name: string, secondsLater: number): void {
  const c = runtime.containers.get(name);
  assert.ok(c, `no container ${name}`);
  c.state = "running";
  c.startedAt = new Date(Date.now() + secondsLater * 1000);
}

// ------------------------------------------------------------------ refreshObserved additions

describe("refreshObserved: restarts and busy services", () => {
  test("a restart podman did between refreshes is a state event; a fresh deploy is not", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    await refreshObserved(ctx);
    assert.deepEqual(events(registry, "hello", "state"), [], "deploy's own start is no restart");

    restartedBehindOurBack(runtime, "hello-web", 5);
    await refreshObserved(ctx);
    const [restart] = events(registry, "hello", "state");
    assert.equal(restart?.prevState, "running");
    assert.equal(restart?.newState, "running");
    assert.match(restart?.message ?? "", /^restarted \(started .*Z\)$/);
    await refreshObserved(ctx);
    assert.equal(events(registry, "hello", "state").length, 1, "seen once");
    assert.equal(registry.events.countTransitions("hello", "web", "1970-01-01T00:00:00Z"), 1);
  });

  test("skipBusy leaves a service with an operation in progress alone", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    runtime.containers.delete("hello-web"); // mid-redeploy: the old container is gone
    let release!: () => void;
    const held = ctx.serviceLocks.runExclusive(
      "hello",
      () => new Promise<void>((r) => (release = r)),
    );
    const snapshot = await refreshObserved(ctx, { skipBusy: true });
    assert.deepEqual([...snapshot.skipped], ["hello/web"]);
    assert.equal(registry.components.get("hello", "web")?.observedState, "running");
    release();
    await held;
    const after = await refreshObserved(ctx, { skipBusy: true });
    assert.equal(after.skipped.size, 0);
    assert.equal(registry.components.get("hello", "web")?.observedState, "removed");
  });
});

// ------------------------------------------------------------------ Monitor

describe("Monitor", () => {
  test("drift: one event and one alert with the documented environment; none on later passes", async () => {
    const { ctx, runtime, registry } = harness();
    const { monitor, alerts } = monitorFor(ctx);
    await deployOk(ctx, example("hello"));
    await monitor.runOnce();
    assert.deepEqual(alerts, []);

    runtime.containers.delete("hello-web"); // podman rm -f
    const pass = await monitor.runOnce();
    assert.deepEqual(names(pass.entered), ["drift hello/web"]);
    await monitor.settled();
    assert.deepEqual(alerts, [
      {
        argv: ["/usr/local/bin/notify"],
        env: {
          MCP_ALERT_KIND: "drift",
          MCP_NODE: NODE,
          MCP_SERVICE: "hello",
          MCP_COMPONENT: "web",
          MCP_DESIRED: "running",
          MCP_OBSERVED: "removed",
          MCP_MESSAGE: "hello/web on local: drift: desired running, observed removed",
        },
      },
    ]);
    const [drift] = events(registry, "hello", "drift");
    assert.equal(drift?.component, "web");
    assert.equal(drift?.message, "desired running, observed removed");

    await monitor.runOnce();
    await monitor.runOnce();
    await monitor.settled();
    assert.equal(alerts.length, 1, "no second alert");
    assert.equal(events(registry, "hello", "drift").length, 1, "no second event");

    // Back, and gone again within the cooldown: a new episode is recorded, not alerted.
    await deployOk(ctx, example("hello"));
    await monitor.runOnce();
    runtime.containers.delete("hello-web");
    await monitor.runOnce();
    await monitor.settled();
    assert.equal(events(registry, "hello", "drift").length, 2);
    assert.equal(alerts.length, 1, "cooldown");
  });

  test("flap: restarts under a restart policy are counted; a flap event and a flap alert", async () => {
    const { ctx, runtime, registry } = harness();
    const { monitor, alerts } = monitorFor(ctx);
    await deployOk(ctx, example("hello"));
    await monitor.runOnce();
    runtime.setState("hello-web", "exited", 1); // caught between crash and restart
    await monitor.runOnce();
    restartedBehindOurBack(runtime, "hello-web", 2);
    await monitor.runOnce();
    assert.deepEqual(events(registry, "hello", "flap"), [], "2 transitions: not yet");
    restartedBehindOurBack(runtime, "hello-web", 4); // restarted again, unseen
    const pass = await monitor.runOnce();
    assert.deepEqual(names(pass.entered), ["flap hello/web"]);
    await monitor.settled();
    assert.deepEqual(
      alerts.map((a) => [a.env.MCP_ALERT_KIND, a.env.MCP_OBSERVED, a.env.MCP_TRANSITIONS]),
      [
        ["drift", "exited", undefined],
        ["flap", "running", "3"],
      ],
    );
    const [flap] = events(registry, "hello", "flap");
    assert.match(flap?.message ?? "", /^3 state changes within 1m \(threshold 3\)/);
    restartedBehindOurBack(runtime, "hello-web", 6);
    await monitor.runOnce();
    await monitor.settled();
    assert.equal(events(registry, "hello", "flap").length, 1, "still the same episode");
    assert.equal(alerts.length, 2);
  });

  test("a stopped service is not drift; ignore is never alerted; no alert command, no alerts", async () => {
    const { ctx, runtime, registry } = harness();
    const { monitor, alerts } = monitorFor(ctx, { alertCommand: [] });
    await deployOk(ctx, example("hello"));
    await deployOk(ctx, example("legacy"));
    await stopService(ctx, "hello");
    registry.components.setDesired("legacy", "legacy", "ignore");
    runtime.containers.delete("legacy");
    await monitor.runOnce();
    assert.deepEqual(events(registry, "hello", "drift"), []);
    assert.deepEqual(events(registry, "legacy", "drift"), []);

    runtime.setState("hello-web", "running"); // started by hand while desired stopped
    await monitor.runOnce();
    await monitor.settled();
    assert.equal(
      events(registry, "hello", "drift")[0]?.message,
      "desired stopped, observed running",
    );
    assert.deepEqual(alerts, [], "no alert command configured");
  });

  test("runOnce: passes never overlap; callers during a pass share the next one", async () => {
    const { ctx, runtime } = harness();
    const { monitor } = monitorFor(ctx);
    let inFlight = 0;
    let maxInFlight = 0;
    let lists = 0;
    const list = runtime.list.bind(runtime);
    runtime.list = async () => {
      lists++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      return list();
    };
    const first = monitor.runOnce();
    const second = monitor.runOnce();
    const third = monitor.runOnce();
    assert.equal(second, third, "shared");
    assert.notEqual(first, second);
    await Promise.all([first, second, third]);
    assert.equal(maxInFlight, 1);
    assert.equal(lists, 2);
  });

  test("the loop: a podman failure is logged and the next pass runs; stop() waits for a pass", async () => {
    const { ctx, runtime, logs } = harness();
    await deployOk(ctx, example("hello"));
    const { monitor } = monitorFor(ctx, { intervalMs: 20 });
    runtime.failNext("list", apiError("list", 500, "database is locked"), 2);
    runtime.clearCalls();
    monitor.start();
    const deadline = Date.now() + 5000;
    while (runtime.callsOf("list").length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await monitor.stop();
    const failed = logs.lines().filter((l) => l.msg === "monitor pass failed");
    assert.equal(failed.length, 2);
    assert.match(String(failed[0]?.err), /podman API list HTTP 500: database is locked/);
    assert.ok(runtime.callsOf("list").length >= 4, "the loop went on");
    const calls = runtime.callsOf("list").length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(runtime.callsOf("list").length, calls, "stopped: no more passes");
  });

  test("stop() waits for alert commands still running", async () => {
    const { ctx, runtime } = harness();
    await deployOk(ctx, example("hello"));
    let finished = false;
    const monitor = new Monitor(ctx, SETTINGS, {
      runAlert: async () => {
        await new Promise((r) => setTimeout(r, 50));
        finished = true;
      },
    });
    runtime.containers.delete("hello-web");
    const pass = await monitor.runOnce();
    assert.equal(pass.alerted.length, 1);
    assert.equal(finished, false, "the pass does not wait for the alert");
    await monitor.stop();
    assert.equal(finished, true);
  });

  test("events older than the retention are pruned", async () => {
    const { ctx, registry } = harness();
    await deployOk(ctx, example("hello"));
    const now = Date.parse("2026-06-01T00:00:00Z");
    registry.events.add({ service: "hello", kind: "old", timestamp: "2026-04-01T00:00:00Z" });
    registry.events.add({ service: "hello", kind: "recent", timestamp: "2026-05-31T00:00:00Z" });
    const monitor = new Monitor(
      ctx,
      { ...SETTINGS, retentionMs: 7 * 24 * 3_600_000 },
      { now: () => now, runAlert: () => Promise.resolve() },
    );
    const pass = await monitor.runOnce();
    assert.equal(pass.pruned, 1);
    const kinds = registry.events.list({ service: "hello" }).map((e) => e.kind);
    assert.ok(kinds.includes("recent") && !kinds.includes("old"), kinds.join(","));
  });

  test("GetServiceStatus runs a monitor pass first", async () => {
    const { ctx, runtime, registry } = harness();
    const { monitor, alerts } = monitorFor(ctx);
    ctx.monitor = monitor;
    await deployOk(ctx, example("hello"));
    runtime.containers.delete("hello-web");
    const st = await invoke(createHandlers(ctx).getServiceStatus, { name: "hello", eventLimit: 0 });
    assert.deepEqual(st.drift, [
      { service: "hello", component: "web", desired: "running", observed: "removed" },
    ]);
    assert.deepEqual(
      st.recentEvents.map((e) => e.kind).slice(0, 2),
      ["drift", "state"],
      "the pass's drift event is in the answer",
    );
    await monitor.settled();
    assert.equal(alerts.length, 1);
    assert.equal(events(registry, "hello", "drift").length, 1);
  });
});

function invoke<Req, Res>(handler: handleUnaryCall<Req, Res> | undefined, req: Req): Promise<Res> {
  assert.ok(handler, "no such handler");
  return new Promise((resolve, reject) => {
    const call = { request: req } as unknown as ServerUnaryCall<Req, Res>;
    handler(call, (err, value) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err.details)));
      else resolve(value as Res);
    });
  });
}

// ------------------------------------------------------------------ recovery

function row(fields: Partial<ComponentRow> & Pick<ComponentRow, "service" | "name">): ComponentRow {
  return {
    image: IMAGE,
    version: "v1",
    deployedAt: "2026-11-27T09:00:00.000Z",
    ord: 0,
    pending: null,
    health: NO_HEALTH,
    spec: { name: fields.name, image: IMAGE } as ComponentRow["spec"],
    desiredState: "running",
    observedState: "running",
    containerId: "",
    startedAt: null,
    createdAt: "",
    updatedAt: "",
    ...fields,
  };
}

function container(name: string, fields: Partial<ContainerStatus> = {}): ContainerStatus {
  return {
    id: name,
    name,
    image: IMAGE,
    state: "running",
    startedAt: null,
    labels: {},
    ports: [],
    ...fields,
  };
}

describe("recovery at agent start", () => {
  test("planRecovery: what is recreated, what is left alone, what is reported", () => {
    const rows = [
      row({ service: "gone", name: "web" }),
      row({ service: "exited", name: "web" }),
      row({ service: "up", name: "web" }),
      row({ service: "paused", name: "web" }),
      row({ service: "stopped", name: "web", desiredState: "stopped" }),
      row({ service: "ignored", name: "web", desiredState: "ignore" }),
      // Synced (or adopted) but never started by the agent: intent, not a lost container.
      row({ service: "synced", name: "web", deployedAt: null }),
    ];
    const byKey = new Map([
      ["exited/web", container("exited-web", { state: "exited" })],
      ["up/web", container("up-web")],
      ["paused/web", container("paused-web", { state: "paused" })],
    ]);
    const plan = planRecovery(
      rows,
      byKey,
      [
        container("postgres"),
        container("renamed", { labels: { "mcp.service": "old", "mcp.component": "db" } }),
        container("theirs", { labels: { "mcp.node": "lab2", "mcp.service": "x" } }),
        container("ours", { labels: { "mcp.node": NODE, "mcp.service": "lost" } }),
      ],
      NODE,
    );
    assert.deepEqual(
      plan.recreate.map((d) => [d.row.service, d.reason]),
      [
        ["gone", "container was gone"],
        ["exited", "container was exited"],
      ],
    );
    assert.deepEqual(
      plan.unmanaged.map((u) => [u.container.name, u.service, u.component]),
      [
        ["postgres", "postgres", ""],
        ["renamed", "old", "db"],
        ["ours", "lost", ""],
      ],
    );
    assert.deepEqual(
      plan.foreign.map((c) => c.name),
      ["theirs"],
    );
  });

  test("recoverAtStart: recreates on the recorded ports without pulling, leaves the rest alone", async () => {
    const { ctx, runtime, registry, logs } = harness();
    await deployOk(ctx, example("hello"));
    await deployOk(ctx, example("multi"));
    await deployOk(ctx, example("legacy"));
    await stopService(ctx, "legacy");
    const portsBefore = registry.routes
      .list()
      .map((r) => [r.service, r.component, r.name, r.hostPort]);
    const stoppedId = runtime.containers.get("legacy")?.id;
    // While the agent was down: one container removed, one exited, one stranger started.
    runtime.containers.delete("hello-web");
    runtime.setState("multi-api", "exited", 137);
    runtime.addContainer({ name: "stray", image: "docker.io/library/redis:7" });
    runtime.addContainer({ name: "other-node-web", image: IMAGE, labels: { "mcp.node": "lab2" } });
    runtime.clearCalls();

    const report = await recoverAtStart(ctx);
    assert.deepEqual(report.recovered.sort(), ["hello/web", "multi/api"]);
    assert.equal(report.failed.size, 0);
    assert.deepEqual(report.unmanaged, ["stray"]);
    assert.deepEqual(runtime.callsOf("pull"), [], "no pull");
    assert.deepEqual(
      registry.routes.list().map((r) => [r.service, r.component, r.name, r.hostPort]),
      portsBefore,
      "the recorded host ports",
    );
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.equal(runtime.containers.get("multi-api")?.state, "running");
    assert.ok(
      !runtime.ops().some((op) => op.endsWith(" legacy")),
      `desired stopped is not touched: ${runtime.ops().join(", ")}`,
    );
    assert.equal(runtime.containers.get("legacy")?.id, stoppedId);
    assert.equal(runtime.containers.get("stray")?.state, "running", "left alone");

    const [recover] = events(registry, "hello", "recover");
    assert.equal(recover?.newState, "running");
    assert.match(
      recover?.message ?? "",
      /^container was gone: recreated localhost\/mcp-httpenv:v1 \(PORT=\d+\)$/,
    );
    assert.match(events(registry, "multi", "recover")[0]?.message ?? "", /^container was exited: /);
    const [stray] = events(registry, "stray", "unmanaged");
    assert.equal(stray?.newState, "running");
    assert.match(
      stray?.message ?? "",
      /container stray \(docker.io\/library\/redis:7\) is not in this agent's registry/,
    );
    assert.deepEqual(
      events(registry, "other-node-web", "unmanaged"),
      [],
      "another node's container",
    );
    assert.ok(
      logs
        .lines()
        .some(
          (l) =>
            l.msg === "container not managed by this agent; left alone" && l.container === "stray",
        ),
    );
  });

  test("recoverAtStart: a missing image fails that component only, with an event, and keeps its ports", async () => {
    const { ctx, runtime, registry } = harness({ images: [IMAGE, "localhost/mcp-httpenv:v2"] });
    await deployOk(ctx, example("hello"));
    const v2 = example("multi");
    v2.components = v2.components.map((c) => ({ ...c, image: "localhost/mcp-httpenv:v2" }));
    await deployOk(ctx, v2);
    const multiPorts = registry.routes.list({ service: "multi" }).map((r) => r.hostPort);
    runtime.containers.clear();
    runtime.images.delete("localhost/mcp-httpenv:v2");
    runtime.clearCalls();

    const report = await recoverAtStart(ctx);
    assert.deepEqual(report.recovered, ["hello/web"]);
    assert.deepEqual([...report.failed.keys()].sort(), ["multi/api", "multi/web"]);
    assert.match(
      report.failed.get("multi/api") ?? "",
      /^image: localhost\/mcp-httpenv:v2 is not in local storage and this operation does not pull/,
    );
    assert.deepEqual(runtime.callsOf("pull"), []);
    assert.deepEqual(
      runtime.runs.map((c) => c.name),
      ["hello-web"],
    );
    assert.equal(events(registry, "multi", "recover_failed").length, 2);
    assert.deepEqual(
      registry.routes.list({ service: "multi" }).map((r) => r.hostPort),
      multiPorts,
      "ports stay recorded for a later deploy",
    );
    assert.equal(registry.components.get("multi", "api")?.observedState, "removed");
  });
});
