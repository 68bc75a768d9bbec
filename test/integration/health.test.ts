/**
 * Health probes against a real container on real podman, through the API
 * runtime on a podman service of the test's own (startApiRuntime): http, tcp
 * and exec checks pass and fail as configured, and a deploy's wait gives up
 * at its deadline with the last check's output.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ComponentSpec } from "../../src/gen/mcp/v1/mcp.js";
import { healthPlan, type HealthPlan } from "../../src/health/plan.js";
import { checkOnce, waitHealthy } from "../../src/health/probe.js";
import { mcpLabels } from "../../src/runtime/names.js";
import type { PodmanApiRuntime } from "../../src/runtime/libpod/runtime.js";
import { freePort } from "../helpers/agent.js";
import { TEST_IMAGE, httpGet } from "../helpers/live-agent.js";
import { startApiRuntime, type ApiRuntimeFixture } from "../helpers/runtime-tests.js";

let rt: ApiRuntimeFixture | undefined;
let runtime: PodmanApiRuntime;
const WEB = `hc-web-${process.pid}`;
const DONE = `hc-done-${process.pid}`;
const HOST = "127.0.0.1";

const plan = (check: HealthPlan["check"], deadlineMs = 1000): HealthPlan => ({
  check,
  intervalMs: 10_000,
  timeoutMs: 500,
  retries: 3,
  startPeriodMs: 0,
  deadlineMs,
});

describe("health probes on real podman", () => {
  let port: number;
  let closed: number;
  before(async () => {
    rt = await startApiRuntime({ stopTimeoutSeconds: 0 });
    runtime = rt.api;
    port = await freePort();
    closed = await freePort();
    await runtime.run({
      name: WEB,
      image: TEST_IMAGE,
      labels: mcpLabels("hc", "web", "hc-node"),
      ports: [`${HOST}:${port}:${port}`],
      volumes: [],
      env: [`PORT=${port}`],
      cmd: [],
    });
    await httpGet(port, "/health");
    await runtime.run({
      name: DONE,
      image: TEST_IMAGE,
      labels: mcpLabels("hc", "done", "hc-node"),
      ports: [],
      volumes: [],
      env: [],
      cmd: ["true"],
    });
  });
  after(async () => {
    await rt?.stop([WEB, DONE]);
  });

  test("http: 200 passes; 404 and a closed port fail, with what they saw", async () => {
    const ok = await checkOnce(
      { type: "http", host: HOST, port, path: "/health" },
      runtime,
      WEB,
      1000,
    );
    assert.deepEqual(ok, { healthy: true, output: "HTTP 200: ok" });
    const missing = await checkOnce(
      { type: "http", host: HOST, port, path: "/nope" },
      runtime,
      WEB,
      1000,
    );
    assert.equal(missing.healthy, false);
    assert.match(missing.output, /^HTTP 404/);
    const refused = await checkOnce(
      { type: "http", host: HOST, port: closed, path: "/" },
      runtime,
      WEB,
      1000,
    );
    assert.equal(refused.healthy, false);
    assert.match(refused.output, /ECONNREFUSED/);
  });

  test("tcp: every port must accept", async () => {
    assert.equal(
      (await checkOnce({ type: "tcp", host: HOST, ports: [port] }, runtime, WEB, 500)).healthy,
      true,
    );
    const r = await checkOnce(
      { type: "tcp", host: HOST, ports: [port, closed] },
      runtime,
      WEB,
      500,
    );
    assert.equal(r.healthy, false);
    assert.match(r.output, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${closed}`));
  });

  test("exec: exit 0 passes; any other exit fails with the command's output", async () => {
    assert.equal(
      (await checkOnce({ type: "exec", cmd: ["true"] }, runtime, WEB, 5000)).healthy,
      true,
    );
    const r = await checkOnce(
      { type: "exec", cmd: ["sh", "-c", "echo not ready; exit 3"] },
      runtime,
      WEB,
      5000,
    );
    assert.deepEqual(r, { healthy: false, output: "exit 3: not ready" });
    const gone = await checkOnce({ type: "exec", cmd: ["true"] }, runtime, "hc-no-such", 5000);
    assert.equal(gone.healthy, false);
    assert.match(gone.output, /no such container/);
  });

  test("the default plan: a tcp check on every tcp route, else still running", async () => {
    const spec = ComponentSpec.fromPartial({
      name: "web",
      image: TEST_IMAGE,
      routes: [{ name: "", port: 443, mode: "", hostname: "", protocol: "" }],
    });
    const p = healthPlan(spec, new Map([["", port]]), HOST);
    assert.deepEqual(p.check, { type: "tcp", host: HOST, ports: [port] });
    assert.equal((await waitHealthy(p, runtime, WEB)).healthy, true);

    const running = { ...plan({ type: "running", forMs: 300 }), deadlineMs: 5000 };
    const up = await waitHealthy(running, runtime, WEB, { pollMs: 50 });
    assert.equal(up.healthy, true);
    assert.ok(up.elapsedMs >= 300, `passed after ${up.elapsedMs} ms`);
    const exited = await waitHealthy(running, runtime, DONE, { pollMs: 50 });
    assert.equal(exited.healthy, false);
    assert.match(exited.output, /^container (exited|stopped)/);
  });

  test("a deploy's wait gives up at the deadline, with the last output", async () => {
    const start = Date.now();
    const r = await waitHealthy(
      plan({ type: "http", host: HOST, port: closed, path: "/" }, 600),
      runtime,
      WEB,
    );
    const took = Date.now() - start;
    assert.equal(r.healthy, false);
    assert.ok(r.attempts >= 3, `${r.attempts} attempts`);
    assert.ok(took < 2000, `gave up after ${took} ms`);
    assert.match(r.output, /ECONNREFUSED/);
  });
});
