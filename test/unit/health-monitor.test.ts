/**
 * Health in steady state: the state machine as pure functions, the
 * `unhealthy` alert condition, the registry columns (migration 5), and the
 * health loop inside the Monitor over a FakeRuntime with scripted checks
 * (ctx.health) and a fake clock. test/integration/health-monitor.test.ts
 * covers the same against podman and a real agent.
 */
import assert from "node:assert/strict";
import { setImmediate as flush } from "node:timers/promises";
import { describe, test } from "node:test";
import type { AgentContext } from "../../src/agent/context.js";
import { serviceInfos } from "../../src/agent/messages.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { stopService } from "../../src/agent/operations/lifecycle.js";
import type { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import type { HealthCheck, HealthPlan } from "../../src/health/plan.js";
import type { CheckResult, HealthProber, WaitResult } from "../../src/health/probe.js";
import {
  applyCheck,
  notChecked,
  recalled,
  watching,
  type CheckContext,
  type HealthMemo,
} from "../../src/health/state.js";
import {
  alertEnv,
  conditionsOf,
  emptyMemory,
  evaluate,
  type ComponentObservation,
  type MonitorPolicy,
} from "../../src/monitor/alerts.js";
import { Monitor, type MonitorSettings } from "../../src/monitor/monitor.js";
import { MIGRATIONS, openRegistry, type EventRow } from "../../src/registry/index.js";
import { parseServiceDef, toServiceSpec } from "../../src/servicedef/index.js";
import { IMAGE, NODE, agent } from "../helpers/fake-agent.js";

// ------------------------------------------------------------------ pure: the state machine

const T: CheckContext = { nowMs: 100_000, startedAtMs: 0, retries: 3, startPeriodMs: 0 };
const PASS: CheckResult = { healthy: true, output: "HTTP 200: ok" };
const FAIL: CheckResult = { healthy: false, output: "HTTP 503: down" };

/** Applies results in order from `memo`; returns each step's status and transition kind. */
function run(memo: HealthMemo, results: CheckResult[], t: Partial<CheckContext> = {}) {
  const steps: string[] = [];
  for (const r of results) {
    const step = applyCheck(memo, r, { ...T, ...t });
    memo = step.memo;
    steps.push(step.transition ? `${memo.status}!${step.transition.kind}` : memo.status);
  }
  return { memo, steps };
}

describe("health state (pure)", () => {
  test("a new component: the first pass is healthy, not news; retries failures in a row → unhealthy, once", () => {
    const start = watching(recalled(""));
    assert.deepEqual(start, { status: "starting", failures: 0, verdict: "" });
    assert.deepEqual(run(start, [PASS, PASS]).steps, ["healthy", "healthy"]);
    assert.deepEqual(run(start, [PASS, FAIL, FAIL, FAIL, FAIL]).steps, [
      "healthy",
      "healthy",
      "healthy",
      "unhealthy!unhealthy",
      "unhealthy",
    ]);
  });

  test("the first verdict unhealthy is a transition too (from no verdict)", () => {
    const step = applyCheck(watching(recalled("")), FAIL, { ...T, retries: 1 });
    assert.deepEqual(step.memo, { status: "unhealthy", failures: 1, verdict: "unhealthy" });
    assert.deepEqual(step.transition, { kind: "unhealthy", from: "", output: "HTTP 503: down" });
  });

  test("one pass resets the count; unhealthy → healthy is a transition with the pass's output", () => {
    const healthy = recalled("healthy");
    assert.deepEqual(run(healthy, [FAIL, FAIL, PASS, FAIL, FAIL]).steps, [
      "healthy",
      "healthy",
      "healthy",
      "healthy",
      "healthy",
    ]);
    const back = applyCheck(recalled("unhealthy"), PASS, T);
    assert.deepEqual(back.transition, {
      kind: "healthy",
      from: "unhealthy",
      output: "HTTP 200: ok",
    });
    assert.equal(back.memo.status, "healthy");
  });

  test("failures within the start period do not count; after it they do", () => {
    const start = watching(recalled(""));
    const within = { startedAtMs: 0, startPeriodMs: 10_000, nowMs: 9_999 };
    assert.deepEqual(run(start, [FAIL, FAIL, FAIL, FAIL], within).memo, start, "still starting");
    const after = { ...within, nowMs: 10_000 };
    assert.deepEqual(run(start, [FAIL, FAIL, FAIL], after).steps, [
      "starting",
      "starting",
      "unhealthy!unhealthy",
    ]);
    assert.equal(
      run(start, [FAIL, FAIL, FAIL], { ...within, startedAtMs: null }).memo.status,
      "unhealthy",
      "an unknown start time is long ago",
    );
    assert.equal(run(start, [PASS], within).memo.status, "healthy", "a pass counts at once");
  });

  test("a new container starts over, but an unhealthy component stays unhealthy until a pass", () => {
    assert.deepEqual(watching({ status: "healthy", failures: 2, verdict: "healthy" }), {
      status: "starting",
      failures: 0,
      verdict: "healthy",
    });
    const ill = watching({ status: "unhealthy", failures: 3, verdict: "unhealthy" });
    assert.deepEqual(ill, { status: "unhealthy", failures: 0, verdict: "unhealthy" });
    assert.deepEqual(run(ill, [FAIL, FAIL, FAIL]).steps, ["unhealthy", "unhealthy", "unhealthy"]);
    assert.deepEqual(run(ill, [PASS]).steps, ["healthy!healthy"]);
  });

  test("not checked keeps the verdict: a later pass after an unhealthy spell is still news", () => {
    const off = notChecked({ status: "unhealthy", failures: 3, verdict: "unhealthy" }, "");
    assert.deepEqual(off, { status: "", failures: 0, verdict: "unhealthy" });
    assert.deepEqual(run(watching(off), [PASS]).steps, ["healthy!healthy"]);
    assert.equal(notChecked(recalled("healthy"), "none").status, "none");
    assert.deepEqual(recalled("starting"), { status: "starting", failures: 0, verdict: "" });
  });
});

// ------------------------------------------------------------------ pure: the alert condition

const POLICY: MonitorPolicy = {
  cooldownMs: 60_000,
  flapThreshold: 3,
  flapWindowMs: 600_000,
  alerting: true,
};

function obs(fields: Partial<ComponentObservation> = {}): ComponentObservation {
  return {
    service: "hl",
    component: "web",
    desired: "running",
    observed: "running",
    transitions: 0,
    health: "healthy",
    healthOutput: "HTTP 200: ok",
    ...fields,
  };
}

describe("the unhealthy condition (pure)", () => {
  const ill = { health: "unhealthy", healthOutput: "HTTP 503: down" };

  test("only while desired and observed running; the message is the last output", () => {
    const [c] = conditionsOf(obs(ill), POLICY);
    assert.equal(c?.kind, "unhealthy");
    assert.equal(c?.message, "HTTP 503: down");
    assert.deepEqual(
      conditionsOf(obs({ ...ill, observed: "exited" }), POLICY).map((x) => x.kind),
      ["drift"],
      "a stopped container is drift, whatever its last check said",
    );
    assert.deepEqual(conditionsOf(obs({ ...ill, desired: "ignore" }), POLICY), []);
    assert.deepEqual(conditionsOf(obs({ health: "starting" }), POLICY), []);
  });

  test("alertEnv: kind unhealthy, the output in the message", () => {
    const [c] = conditionsOf(obs(ill), POLICY);
    assert.ok(c);
    assert.deepEqual(alertEnv("lab1", c), {
      MCP_ALERT_KIND: "unhealthy",
      MCP_NODE: "lab1",
      MCP_SERVICE: "hl",
      MCP_COMPONENT: "web",
      MCP_DESIRED: "running",
      MCP_OBSERVED: "running",
      MCP_MESSAGE: "hl/web on lab1: unhealthy: HTTP 503: down",
    });
  });

  test("episodes and cooldown as for drift: one alert per episode, kinds apart", () => {
    let memory = emptyMemory();
    const at = (ms: number, o: ComponentObservation) => {
      const r = evaluate([o], new Set(), memory, ms, POLICY);
      memory = r.memory;
      return [r.entered.map((c) => c.kind), r.alerts.map((c) => c.kind)];
    };
    assert.deepEqual(at(0, obs(ill)), [["unhealthy"], ["unhealthy"]]);
    assert.deepEqual(at(1000, obs(ill)), [[], []], "same episode");
    assert.deepEqual(at(2000, obs()), [[], []]);
    assert.deepEqual(at(3000, obs(ill)), [["unhealthy"], []], "a new episode within the cooldown");
    assert.deepEqual(at(4000, obs({ ...ill, observed: "removed" })), [["drift"], ["drift"]]);
    assert.deepEqual(at(70_000, obs(ill)), [["unhealthy"], ["unhealthy"]], "cooled down");
  });
});

// ------------------------------------------------------------------ registry

describe("registry: components.health (migration 5)", () => {
  test("setHealth writes for the container it names only, and leaves updated_at alone", () => {
    assert.equal(MIGRATIONS[4]?.version, 5);
    const { registry } = agent();
    registry.services.upsert({ name: "hl", active: true, comment: "" });
    const [web] = spec([{ name: "web" }]).components;
    assert.ok(web);
    registry.components.upsert({ service: "hl", name: "web", spec: web, desiredState: "running" });
    registry.components.setObserved("hl", "web", { state: "running", containerId: "c1" });
    const before = registry.components.get("hl", "web");
    assert.deepEqual(before?.health, { status: "", output: "", checkedAt: null });
    const h = { status: "healthy", output: "ok", checkedAt: "2026-06-01T00:00:00.000Z" } as const;
    assert.equal(registry.components.setHealth("hl", "web", "c0", h), false, "another container");
    assert.equal(registry.components.setHealth("hl", "gone", "c1", h), false);
    assert.equal(registry.components.setHealth("hl", "web", "c1", h), true);
    const after = registry.components.get("hl", "web");
    assert.deepEqual(after?.health, h);
    assert.equal(after?.updatedAt, before?.updatedAt);
    assert.throws(
      () =>
        registry.components.setHealth("hl", "web", "c1", {
          ...h,
          status: "poorly" as "healthy",
        }),
      /CHECK constraint/,
    );
  });

  test("a migrated registry file reopens with the health it held", () => {
    const { dbPath, registry } = agent();
    registry.services.upsert({ name: "hl", active: true, comment: "" });
    const [web] = spec([{ name: "web" }]).components;
    assert.ok(web);
    registry.components.upsert({ service: "hl", name: "web", spec: web, desiredState: "running" });
    registry.components.setHealth("hl", "web", "", {
      status: "unhealthy",
      output: "exit 1",
      checkedAt: null,
    });
    registry.close();
    const again = openRegistry(dbPath);
    try {
      assert.equal(again.components.get("hl", "web")?.health.status, "unhealthy");
    } finally {
      again.close();
    }
  });
});

// ------------------------------------------------------------------ the loop over a fake runtime

interface ComponentDef {
  name: string;
  /** An unnamed route (→ $PORT). */
  route?: boolean;
  /** Lines of [components.health]. */
  health?: string[];
}

function definition(components: ComponentDef[], name = "hl"): string {
  const lines = [`name = "${name}"`, `node = "${NODE}"`];
  for (const c of components) {
    lines.push("", "[[components]]", `name = "${c.name}"`, `image = "${IMAGE}"`);
    if (c.route) lines.push("[[components.routes]]", "port = 443");
    if (c.health) lines.push("[components.health]", ...c.health);
  }
  return `${lines.join("\n")}\n`;
}

function spec(components: ComponentDef[], name = "hl"): ServiceSpec {
  return toServiceSpec(parseServiceDef(definition(components, name), `${name}.toml`));
}

async function deployOk(ctx: AgentContext, s: ServiceSpec): Promise<void> {
  const results = await deploy(ctx, { service: s, component: "" });
  for (const r of results) assert.equal(r.success, true, `${r.name}: ${r.error}`);
}

/** ctx.health scripted: a result per container (default: a pass), one-shot holds, every call kept. */
class ScriptedHealth implements HealthProber {
  readonly calls: { container: string; check: HealthCheck }[] = [];
  readonly results = new Map<string, CheckResult>();
  readonly #holds = new Map<string, Promise<CheckResult>>();

  check(plan: HealthPlan, container: string): Promise<CheckResult> {
    this.calls.push({ container, check: plan.check });
    const held = this.#holds.get(container);
    if (held) {
      this.#holds.delete(container);
      return held;
    }
    return Promise.resolve(this.results.get(container) ?? PASS);
  }

  waitHealthy(plan: HealthPlan, container: string): Promise<WaitResult> {
    return Promise.resolve({
      ...(this.results.get(container) ?? PASS),
      attempts: 1,
      elapsedMs: 0,
    });
  }

  /** The next check of `container` waits until release(result) is called. */
  hold(container: string): (result: CheckResult) => void {
    let release!: (r: CheckResult) => void;
    this.#holds.set(container, new Promise<CheckResult>((resolve) => (release = resolve)));
    return (r) => release(r);
  }

  callsOf(container: string): number {
    return this.calls.filter((c) => c.container === container).length;
  }
}

const SETTINGS: MonitorSettings = {
  intervalMs: 60_000,
  alertCommand: ["/usr/local/bin/notify"],
  cooldownMs: 3_600_000,
  flapThreshold: 3,
  flapWindowMs: 60_000,
  retentionMs: 720 * 3_600_000,
};

function setup(settings: Partial<MonitorSettings> = {}, realClock = false) {
  const { ctx, runtime, registry } = agent();
  const health = new ScriptedHealth();
  ctx.health = health;
  const clock = { t: Date.now() };
  const alerts: Record<string, string>[] = [];
  const monitor = new Monitor(
    ctx,
    { ...SETTINGS, ...settings },
    {
      ...(realClock ? {} : { now: () => clock.t }),
      runAlert: (_argv, env) => {
        alerts.push(env);
        return Promise.resolve();
      },
    },
  );
  /** A pass after everything the loop asked for so far, then the alerts it started. */
  const settle = async () => {
    await monitor.runOnce();
    await monitor.settled();
  };
  const events = (kind: string, component?: string): EventRow[] =>
    registry.events
      .list({ service: "hl" })
      .filter((e) => e.kind === kind && (component === undefined || e.component === component))
      .reverse();
  const healthOf = (component: string) => registry.components.get("hl", component)?.health;
  return { ctx, runtime, registry, health, clock, alerts, monitor, settle, events, healthOf };
}

/** An http check of /health every second, unhealthy after `retries` failures. */
const http = (retries = 2) => [
  'type = "http"',
  'path = "/health"',
  'interval = "1s"',
  `retries = ${retries}`,
];

describe("the health loop (fake runtime, scripted checks)", () => {
  test("an http check on the route's host port, on its interval; unhealthy after retries: one event, one alert; healthy again: an event", async () => {
    const h = setup();
    await deployOk(h.ctx, spec([{ name: "web", route: true, health: http() }]));
    const port = h.registry.routes.list({ service: "hl" })[0]?.hostPort;
    assert.ok(port);

    assert.deepEqual(await h.monitor.health.tick(), []);
    assert.deepEqual(h.health.calls, [
      { container: "hl-web", check: { type: "http", host: "127.0.0.1", port, path: "/health" } },
    ]);
    assert.deepEqual(h.healthOf("web"), {
      status: "healthy",
      output: "HTTP 200: ok",
      checkedAt: new Date(h.clock.t).toISOString(),
    });
    assert.deepEqual(h.events("healthy"), [], "the first pass is not news");

    await h.monitor.health.tick();
    assert.equal(h.health.callsOf("hl-web"), 1, "not due yet");
    h.clock.t += 999;
    await h.monitor.health.tick();
    assert.equal(h.health.callsOf("hl-web"), 1, "still not");
    h.clock.t += 1;
    await h.monitor.health.tick();
    assert.equal(h.health.callsOf("hl-web"), 2, "one interval after the last check");

    h.health.results.set("hl-web", { healthy: false, output: "HTTP 404: not found" });
    h.clock.t += 1000;
    assert.deepEqual(await h.monitor.health.tick(), []);
    assert.equal(h.healthOf("web")?.status, "healthy", "one failure of two allowed");
    h.runtime.clearCalls();
    h.clock.t += 1000;
    const [turned] = await h.monitor.health.tick();
    assert.equal(turned?.kind, "unhealthy");
    assert.equal(h.runtime.ops()[0], "inspect hl-web", "asked podman whether it still runs");
    assert.deepEqual(h.healthOf("web"), {
      status: "unhealthy",
      output: "HTTP 404: not found",
      checkedAt: new Date(h.clock.t).toISOString(),
    });
    const [ill] = h.events("unhealthy");
    assert.deepEqual(
      [ill?.component, ill?.prevState, ill?.newState, ill?.message],
      ["web", "healthy", "unhealthy", "HTTP 404: not found"],
    );
    await h.settle();
    assert.deepEqual(h.alerts, [
      {
        MCP_ALERT_KIND: "unhealthy",
        MCP_NODE: NODE,
        MCP_SERVICE: "hl",
        MCP_COMPONENT: "web",
        MCP_DESIRED: "running",
        MCP_OBSERVED: "running",
        MCP_MESSAGE: "hl/web on local: unhealthy: HTTP 404: not found",
      },
    ]);

    for (let i = 0; i < 3; i++) {
      h.clock.t += 1000;
      await h.monitor.health.tick();
      await h.settle();
    }
    assert.equal(h.events("unhealthy").length, 1, "one event per transition");
    assert.equal(h.alerts.length, 1, "one alert per episode");
    assert.deepEqual(h.events("drift"), []);

    h.health.results.delete("hl-web");
    h.clock.t += 1000;
    const [back] = await h.monitor.health.tick();
    assert.equal(back?.kind, "healthy");
    const [healthy] = h.events("healthy");
    assert.deepEqual(
      [healthy?.prevState, healthy?.newState, healthy?.message],
      ["unhealthy", "healthy", "HTTP 200: ok"],
    );
    await h.settle();
    assert.equal(h.alerts.length, 1, "healthy is not alerted");

    // Ill again within the cooldown: a new event, the alert held back.
    h.health.results.set("hl-web", FAIL);
    for (let i = 0; i < 2; i++) {
      h.clock.t += 1000;
      await h.monitor.health.tick();
    }
    await h.settle();
    assert.equal(h.events("unhealthy").length, 2);
    assert.equal(h.alerts.length, 1, "cooldown");
    await h.monitor.stop();
  });

  test("failures within start_period do not count", async () => {
    const h = setup();
    await deployOk(
      h.ctx,
      spec([{ name: "web", route: true, health: [...http(), 'start_period = "10s"'] }]),
    );
    h.health.results.set("hl-web", FAIL);
    for (let i = 0; i < 5; i++) {
      await h.monitor.health.tick();
      h.clock.t += 1000;
    }
    assert.equal(h.health.callsOf("hl-web"), 5);
    assert.equal(h.healthOf("web")?.status, "starting");
    h.clock.t += 6000; // past the start period
    await h.monitor.health.tick();
    h.clock.t += 1000;
    await h.monitor.health.tick();
    assert.equal(h.healthOf("web")?.status, "unhealthy");
    assert.equal(h.events("unhealthy")[0]?.prevState, "", "no verdict before");
    await h.monitor.stop();
  });

  test("what is checked: desired and observed running; none never; running without podman; cleared when stopped", async () => {
    const h = setup();
    await deployOk(
      h.ctx,
      spec([
        { name: "web", route: true },
        { name: "plain" },
        { name: "quiet", route: true, health: ['type = "none"'] },
        { name: "cmd", health: ['type = "exec"', 'cmd = ["cat", "/www/health"]'] },
      ]),
    );
    h.runtime.clearCalls();
    await h.monitor.health.tick();
    const port = h.registry.routes.list({ service: "hl", component: "web" })[0]?.hostPort;
    assert.deepEqual(
      h.health.calls.map((c) => [c.container, c.check]),
      [
        ["hl-web", { type: "tcp", host: "127.0.0.1", ports: [port] }],
        ["hl-cmd", { type: "exec", cmd: ["cat", "/www/health"] }],
      ],
      "no check for none; the implicit running check asks nobody",
    );
    assert.deepEqual(h.runtime.ops(), [], "no podman call for a pass");
    assert.deepEqual(
      ["web", "plain", "quiet", "cmd"].map((c) => h.healthOf(c)?.status),
      ["healthy", "healthy", "none", "healthy"],
    );
    assert.equal(h.healthOf("plain")?.output, "container running");

    await stopService(h.ctx, "hl");
    h.clock.t += 60_000;
    h.health.calls.length = 0;
    await h.monitor.health.tick();
    assert.deepEqual(h.health.calls, [], "stopped: not checked");
    assert.deepEqual(
      ["web", "plain", "quiet", "cmd"].map((c) => h.healthOf(c)),
      Array(4).fill({ status: "", output: "", checkedAt: null }),
    );

    // Desired stopped but started by hand: observed running is not enough.
    h.runtime.setState("hl-web", "running");
    await h.monitor.runOnce();
    await h.monitor.health.tick();
    assert.deepEqual(h.health.calls, []);
    await h.monitor.stop();
  });

  test("a slow check stalls neither the drift pass nor other components' checks", async () => {
    const h = setup();
    await deployOk(
      h.ctx,
      spec([
        { name: "slow", health: ['type = "exec"', 'cmd = ["sleep", "600"]'] },
        { name: "fast", route: true },
        { name: "other" },
      ]),
    );
    const release = h.health.hold("hl-slow");
    const ticking = h.monitor.health.tick();
    await flush();
    assert.equal(h.healthOf("fast")?.status, "healthy", "recorded while the slow one runs");
    assert.equal(h.healthOf("slow")?.status, "starting");

    h.runtime.containers.delete("hl-other");
    const pass = await h.monitor.runOnce();
    assert.deepEqual(
      pass.entered.map((c) => `${c.kind} ${c.component}`),
      ["drift other"],
    );
    h.clock.t += 60_000;
    await h.monitor.health.tick();
    assert.equal(h.health.callsOf("hl-slow"), 1, "never two checks of one component at once");
    assert.equal(h.health.callsOf("hl-fast"), 2);

    release(PASS);
    await ticking;
    assert.equal(h.healthOf("slow")?.status, "healthy");
    await h.monitor.stop();
  });

  test("a check that fails because the container is gone is drift, not ill health", async () => {
    const h = setup();
    await deployOk(
      h.ctx,
      spec([
        {
          name: "web",
          route: true,
          health: http(1),
        },
      ]),
    );
    await h.monitor.health.tick();
    h.health.results.set("hl-web", { healthy: false, output: "connect ECONNREFUSED" });
    h.runtime.setState("hl-web", "exited", 137); // the registry still says running
    h.clock.t += 1000;
    assert.deepEqual(await h.monitor.health.tick(), []);
    assert.equal(h.healthOf("web")?.status, "healthy", "not called unhealthy");
    await h.settle();
    assert.deepEqual(h.events("unhealthy"), []);
    assert.equal(h.events("drift").length, 1, "the pass it asked for saw the exit");
    assert.deepEqual(
      h.alerts.map((a) => a.MCP_ALERT_KIND),
      ["drift"],
    );
    await h.monitor.health.tick();
    assert.equal(h.healthOf("web")?.status, "", "not running: not checked");
    await h.monitor.stop();
  });

  test("a result about a container that was replaced meanwhile is dropped; the new one starts over", async () => {
    const h = setup();
    const s = spec([{ name: "web", route: true, health: http() }]);
    await deployOk(h.ctx, s);
    await h.monitor.health.tick();
    const oldId = h.registry.components.get("hl", "web")?.containerId;
    const release = h.health.hold("hl-web");
    h.clock.t += 1000;
    const ticking = h.monitor.health.tick();
    await flush();
    await deployOk(h.ctx, s); // a redeploy: a new container
    assert.notEqual(h.registry.components.get("hl", "web")?.containerId, oldId);
    release(FAIL);
    await ticking;
    assert.deepEqual(h.healthOf("web")?.output, "HTTP 200: ok", "nothing written");
    await h.monitor.health.tick();
    assert.equal(h.healthOf("web")?.status, "healthy", "the new container passed at once");
    assert.equal(h.health.callsOf("hl-web"), 3);
    await h.monitor.stop();
  });

  test("after an agent restart the recorded status is where the loop starts", async () => {
    const h = setup();
    await deployOk(h.ctx, spec([{ name: "web", route: true, health: http(1) }]));
    h.health.results.set("hl-web", FAIL);
    await h.monitor.health.tick();
    assert.equal(h.healthOf("web")?.status, "unhealthy");
    await h.monitor.stop();

    const again = new Monitor(h.ctx, SETTINGS, {
      now: () => h.clock.t,
      runAlert: () => Promise.resolve(),
    });
    h.clock.t += 1000;
    await again.health.tick();
    assert.equal(h.events("unhealthy").length, 1, "still the same verdict: no new event");
    h.health.results.delete("hl-web");
    h.clock.t += 1000;
    await again.health.tick();
    assert.deepEqual(
      h.events("healthy").map((e) => e.prevState),
      ["unhealthy"],
    );
    await again.stop();
  });

  test("start(): each component on its own interval, with real timers; stop() ends it", async () => {
    const h = setup({}, true);
    await deployOk(
      h.ctx,
      spec([
        { name: "quick", route: true, health: ['type = "tcp"', 'interval = "50ms"'] },
        { name: "slowly", route: true, health: ['type = "tcp"', 'interval = "10s"'] },
      ]),
    );
    h.monitor.start();
    await new Promise((r) => setTimeout(r, 600));
    const quick = h.health.callsOf("hl-quick");
    assert.ok(quick >= 4 && quick <= 13, `${quick} checks of a 50ms interval in 600ms`);
    assert.equal(h.health.callsOf("hl-slowly"), 1);
    await h.monitor.stop();
    const stopped = h.health.calls.length;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(h.health.calls.length, stopped, "no checks after stop()");
  });

  test("start(): the whole registry is read every RESCAN_MS or when a row changed, not once per check; a stopped component never wakes the loop", async () => {
    const h = setup({}, true);
    const names = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const tcp = ['type = "tcp"', 'interval = "40ms"'];
    await deployOk(h.ctx, spec(names.map((name) => ({ name, route: true, health: tcp }))));
    await deployOk(h.ctx, spec([{ name: "web", route: true, health: tcp }], "down"));
    h.monitor.start();
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(h.health.callsOf("down-web") > 0, "checked while it ran");
    await stopService(h.ctx, "down");
    // Only the loop's scan reads every route at once.
    let reads = 0;
    const list = h.registry.routes.list.bind(h.registry.routes);
    h.registry.routes.list = (filter = {}) => {
      if (filter.service === undefined) reads++;
      return list(filter);
    };
    const before = new Map(names.map((name) => [name, h.health.callsOf(`hl-${name}`)]));
    const stopped = h.health.callsOf("down-web");
    await new Promise((r) => setTimeout(r, 700));
    await h.monitor.stop();
    for (const name of names) {
      const checks = h.health.callsOf(`hl-${name}`) - (before.get(name) ?? 0);
      assert.ok(checks >= 5, `${checks} checks of ${name} (40ms interval) in 700ms`);
    }
    assert.ok(h.health.callsOf("down-web") - stopped <= 1, "the stopped component is not checked");
    assert.ok(reads <= 2, `${reads} registry scans in 700ms (the stop changed a row: one)`);
  });
});

describe("messages: health in ComponentInfo", () => {
  test("status, output and time while the container runs; nothing for one that does not", () => {
    const { registry } = agent();
    registry.services.upsert({ name: "hl", active: true, comment: "" });
    const s = spec([{ name: "web" }, { name: "down" }]);
    for (const c of s.components) {
      registry.components.upsert({ service: "hl", name: c.name, spec: c, desiredState: "running" });
      registry.components.setObserved("hl", c.name, {
        state: c.name === "web" ? "running" : "exited",
        containerId: c.name,
      });
      registry.components.setHealth("hl", c.name, c.name, {
        status: "unhealthy",
        output: "exit 1: gone",
        checkedAt: "2026-06-01T00:00:00.000Z",
      });
    }
    const [info] = serviceInfos(
      registry.services.list(),
      registry.components.list(),
      registry.routes.list(),
    );
    const web = info?.components.find((c) => c.name === "web");
    const down = info?.components.find((c) => c.name === "down");
    assert.deepEqual(
      [web?.health, web?.healthOutput, web?.healthCheckedAt?.toISOString()],
      ["unhealthy", "exit 1: gone", "2026-06-01T00:00:00.000Z"],
    );
    assert.deepEqual(
      [down?.health, down?.healthOutput, down?.healthCheckedAt],
      ["", "", undefined],
    );
  });
});
