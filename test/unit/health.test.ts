/**
 * `[components.health]` and `strategy` in a definition: every rule with its
 * exact message, the defaults, and the round trip through ServiceSpec and
 * back to TOML text.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ComponentSpec, HealthSpec, ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import { healthPlan } from "../../src/health/plan.js";
import { HEALTH_DEFAULTS, defaultStrategy } from "../../src/servicedef/health.js";
import {
  fromServiceSpec,
  parseServiceDef,
  toServiceSpec,
  validateServiceSpec,
} from "../../src/servicedef/index.js";
import { renderServiceDef } from "../../src/servicedef/render.js";
import { ValidationError, formatProblem } from "../../src/util/errors.js";

const FILE = "web.toml";

/** A one-component definition with `routes` and the given health table body. */
function def(health: string, routes = ["rest"], extra = ""): string {
  const routeTables = routes
    .map((r) => {
      const [name, protocol] = r.split("/");
      return [
        "[[components.routes]]",
        ...(name ? [`name = "${name}"`] : []),
        "port = 443",
        ...(protocol ? [`protocol = "${protocol}"`] : []),
      ].join("\n");
    })
    .join("\n\n");
  return [
    'name = "web"',
    'node = "local"',
    "",
    "[[components]]",
    'name = "web"',
    'image = "localhost/app:v1"',
    extra,
    "",
    health ? `[components.health]\n${health}` : "",
    "",
    routeTables,
    "",
  ].join("\n");
}

function problems(text: string): string[] {
  try {
    parseServiceDef(text, FILE);
    return [];
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return err.problems.map((p) => formatProblem(FILE, p));
  }
}

const at = (rest: string) => `${FILE}: components[0].health${rest}`;

describe("[components.health]: one rule at a time", () => {
  test("type is required and one of http, tcp, exec, none", () => {
    assert.deepEqual(problems(def('path = "/up"')), [`${at(".type")}: required`]);
    assert.deepEqual(problems(def('type = "grpc"')), [
      `${at(".type")}: expected "http" or "tcp" or "exec" or "none", got "grpc"`,
    ]);
  });

  test("the table itself must be a table", () => {
    const text = def("").replace(
      'image = "localhost/app:v1"',
      'image = "localhost/app:v1"\nhealth = "yes"',
    );
    assert.deepEqual(problems(text), [
      `${FILE}: components[0].health: expected a table ([components.health]), got "yes"`,
    ]);
  });

  test("unknown keys are refused", () => {
    assert.deepEqual(problems(def('type = "tcp"\nintervall = "5s"')), [
      `${at(".intervall")}: unknown field`,
    ]);
  });

  test("route: must name a tcp route of the component; only for http and tcp", () => {
    assert.deepEqual(problems(def('type = "http"\nroute = "grpc"', ["rest", "admin"])), [
      `${at(".route")}: no route named "grpc" in this component (it has "rest", "admin")`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nroute = "x"', [""])), [
      `${at(".route")}: no route named "x" in this component (it has no named routes)`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nroute = "dns"', ["rest", "dns/udp"])), [
      `${at(".route")}: route "dns" is udp: only tcp routes can be checked`,
    ]);
    assert.deepEqual(problems(def('type = "exec"\ncmd = ["/bin/true"]\nroute = "rest"')), [
      `${at(".route")}: only http and tcp checks have a route (this one is "exec")`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nroute = "rest"')), []);
  });

  test("http and tcp need a tcp route", () => {
    assert.deepEqual(problems(def('type = "http"', [])), [
      `${at("")}: an http check needs a tcp route to check, and this component has none`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"', ["dns/udp"])), [
      `${at("")}: a tcp check needs a tcp route to check, and this component has none`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"', [""])), [], "the unnamed route counts");
  });

  test("path: http only, starting with / and printable", () => {
    assert.deepEqual(problems(def('type = "http"\npath = "up"')), [
      `${at(".path")}: expected a path starting with "/" (printable, no spaces), got "up"`,
    ]);
    assert.deepEqual(problems(def('type = "http"\npath = "/a b"')), [
      `${at(".path")}: expected a path starting with "/" (printable, no spaces), got "/a b"`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\npath = "/up"')), [
      `${at(".path")}: only http checks have a path (this one is "tcp")`,
    ]);
    assert.deepEqual(problems(def('type = "http"\npath = "/up?ready=1"')), []);
  });

  test("cmd: required for exec, exec only, at least one string", () => {
    assert.deepEqual(problems(def('type = "exec"')), [`${at(".cmd")}: required for an exec check`]);
    assert.deepEqual(problems(def('type = "exec"\ncmd = []')), [
      `${at(".cmd")}: expected at least one argument`,
    ]);
    assert.deepEqual(problems(def('type = "exec"\ncmd = ["/bin/check", 3]')), [
      `${at(".cmd[1]")}: expected a string, got 3`,
    ]);
    assert.deepEqual(problems(def('type = "http"\ncmd = ["/bin/check"]')), [
      `${at(".cmd")}: only exec checks have a cmd (this one is "http")`,
    ]);
    assert.deepEqual(problems(def('type = "exec"\ncmd = ["/bin/check", "--fast"]', [])), []);
  });

  test("durations: valid, above zero (start_period may be 0), at most 1h", () => {
    assert.deepEqual(problems(def('type = "tcp"\ninterval = "10"')), [
      `${at(".interval")}: invalid duration "10": expected a number and a unit ms, s, m or h (e.g. "30s", "15m", "1h30m")`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\ntimeout = "0s"')), [
      `${at(".timeout")}: expected a duration above zero, got "0s"`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\ndeadline = "2h"')), [
      `${at(".deadline")}: expected at most 1h, got "2h"`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nstart_period = 5')), [
      `${at(".start_period")}: expected a duration such as "10s", got 5`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nstart_period = "0s"\ndeadline = "1h"')), []);
  });

  test("retries: an integer 1-100", () => {
    assert.deepEqual(problems(def('type = "tcp"\nretries = 0')), [
      `${at(".retries")}: expected an integer 1-100, got 0`,
    ]);
    assert.deepEqual(problems(def('type = "tcp"\nretries = 1.5')), [
      `${at(".retries")}: expected an integer 1-100, got 1.5`,
    ]);
  });

  test("none: no route, path or cmd; nothing needed", () => {
    assert.deepEqual(problems(def('type = "none"', [])), []);
    assert.deepEqual(problems(def('type = "none"\npath = "/"')), [
      `${at(".path")}: only http checks have a path (this one is "none")`,
    ]);
  });

  test("every problem at once", () => {
    assert.deepEqual(problems(def('type = "http"\npath = "x"\nretries = 0\ncmd = ["a"]')), [
      `${at(".path")}: expected a path starting with "/" (printable, no spaces), got "x"`,
      `${at(".retries")}: expected an integer 1-100, got 0`,
      `${at(".cmd")}: only exec checks have a cmd (this one is "http")`,
    ]);
  });
});

describe("strategy", () => {
  test('"start-first" or "stop-first"', () => {
    assert.deepEqual(problems(def("", ["rest"], 'strategy = "blue-green"')), [
      `${FILE}: components[0].strategy: expected "start-first" or "stop-first", got "blue-green"`,
    ]);
    assert.deepEqual(problems(def("", ["rest"], 'strategy = "stop-first"')), []);
  });

  test('"start-first" with explicit ports is refused: they cannot be bound twice', () => {
    const ports = 'ports = ["127.0.0.1:18080:8080"]';
    assert.deepEqual(problems(def("", ["rest"], `strategy = "start-first"\n${ports}`)), [
      `${FILE}: components[0].strategy: "start-first" runs two containers at once, which explicit ports cannot: use "stop-first" or routes`,
    ]);
    assert.deepEqual(problems(def("", ["rest"], `strategy = "stop-first"\n${ports}`)), []);
  });

  test("the default: stop-first with volumes or explicit ports, else start-first", () => {
    assert.equal(defaultStrategy({}), "start-first");
    assert.equal(defaultStrategy({ volumes: ["/srv/a:/data"] }), "stop-first");
    assert.equal(defaultStrategy({ ports: ["127.0.0.1:18080:8080"] }), "stop-first");
  });
});

describe("health and strategy round trips", () => {
  const full = def(
    [
      'type = "http"',
      'route = "rest"',
      'path = "/up"',
      'interval = "5s"',
      'timeout = "1s"',
      "retries = 2",
      'start_period = "500ms"',
      'deadline = "30s"',
    ].join("\n"),
    ["rest", "grpc"],
    'strategy = "stop-first"',
  );

  test("def → spec → wire → def is exact, and so is render → parse", () => {
    const parsed = parseServiceDef(full, FILE);
    assert.deepEqual(parsed.components[0]?.health, {
      type: "http",
      route: "rest",
      path: "/up",
      interval: "5s",
      timeout: "1s",
      retries: 2,
      start_period: "500ms",
      deadline: "30s",
    });
    assert.equal(parsed.components[0]?.strategy, "stop-first");
    const wire = ServiceSpec.decode(ServiceSpec.encode(toServiceSpec(parsed)).finish());
    assert.deepEqual(validateServiceSpec(wire), []);
    assert.deepEqual(fromServiceSpec(wire), parsed);
    assert.deepEqual(parseServiceDef(renderServiceDef(parsed), FILE), parsed);
  });

  test("an exec check and a bare type round-trip; absent health stays absent", () => {
    for (const health of ['type = "exec"\ncmd = ["/bin/check", "-q"]', 'type = "tcp"', ""]) {
      const parsed = parseServiceDef(def(health), FILE);
      const wire = ServiceSpec.decode(ServiceSpec.encode(toServiceSpec(parsed)).finish());
      assert.deepEqual(fromServiceSpec(wire), parsed, health);
      assert.deepEqual(parseServiceDef(renderServiceDef(parsed), FILE), parsed, health);
      if (!health) assert.equal(parsed.components[0]?.health, undefined);
    }
  });

  test("a spec's health is checked by the agent like a file's", () => {
    const spec = toServiceSpec(parseServiceDef(def('type = "tcp"'), FILE));
    const c = spec.components[0];
    assert.ok(c?.health);
    c.health.type = "exec";
    assert.deepEqual(
      validateServiceSpec(spec).map((p) => `${p.path}: ${p.message}`),
      ["components[0].health.cmd: required for an exec check"],
    );
  });

  test("the defaults are what the README says", () => {
    assert.deepEqual(HEALTH_DEFAULTS, {
      interval: "10s",
      timeout: "2s",
      retries: 3,
      start_period: "0s",
      deadline: "60s",
    });
  });
});

describe("healthPlan: which probe, on which port, with which timings", () => {
  const spec = (fields: Partial<ComponentSpec>) =>
    ComponentSpec.fromPartial({ name: "web", image: "localhost/app:v1", ...fields });
  const route = (name: string, protocol = "") => ({
    name,
    port: 443,
    mode: "",
    hostname: "",
    protocol,
    proxyProtocol: false,
  });
  const ports = new Map([
    ["", 20001],
    ["rest", 20002],
    ["grpc", 20003],
    ["dns", 20004],
  ]);

  test("no health table: tcp on every tcp route (udp never), else still running for 2 s", () => {
    const p = healthPlan(
      spec({ routes: [route("rest"), route("dns", "udp"), route("grpc")] }),
      ports,
      "127.0.0.1",
    );
    assert.deepEqual(p.check, { type: "tcp", host: "127.0.0.1", ports: [20002, 20003] });
    assert.deepEqual(
      { i: p.intervalMs, t: p.timeoutMs, r: p.retries, s: p.startPeriodMs, d: p.deadlineMs },
      { i: 10_000, t: 2000, r: 3, s: 0, d: 60_000 },
    );
    assert.deepEqual(
      healthPlan(spec({ routes: [route("dns", "udp")] }), ports, "127.0.0.1").check,
      {
        type: "running",
        forMs: 2000,
      },
    );
  });

  test("http/tcp: the named route, else the unnamed one, else the first tcp route", () => {
    const health = (h: Partial<HealthSpec>) => HealthSpec.fromPartial(h);
    const named = healthPlan(
      spec({
        routes: [route("rest"), route("grpc")],
        health: health({ type: "http", route: "grpc", path: "/up" }),
      }),
      ports,
      "127.0.0.1",
    );
    assert.deepEqual(named.check, { type: "http", host: "127.0.0.1", port: 20003, path: "/up" });
    const unnamed = healthPlan(
      spec({ routes: [route("")], health: health({ type: "tcp" }) }),
      ports,
      "::1",
    );
    assert.deepEqual(unnamed.check, { type: "tcp", host: "::1", ports: [20001] });
    const first = healthPlan(
      spec({ routes: [route("dns", "udp"), route("rest")], health: health({ type: "http" }) }),
      ports,
      "127.0.0.1",
    );
    assert.deepEqual(first.check, { type: "http", host: "127.0.0.1", port: 20002, path: "/" });
  });

  test("exec and none; timings as written", () => {
    const p = healthPlan(
      spec({
        health: HealthSpec.fromPartial({
          type: "exec",
          cmd: ["/bin/check"],
          interval: "5s",
          timeout: "250ms",
          retries: 2,
          startPeriod: "1m",
          deadline: "1m30s",
        }),
      }),
      ports,
      "127.0.0.1",
    );
    assert.deepEqual(p, {
      check: { type: "exec", cmd: ["/bin/check"] },
      intervalMs: 5000,
      timeoutMs: 250,
      retries: 2,
      startPeriodMs: 60_000,
      deadlineMs: 90_000,
    });
    assert.deepEqual(
      healthPlan(spec({ health: HealthSpec.fromPartial({ type: "none" }) }), ports, "x").check,
      { type: "none" },
    );
  });
});
