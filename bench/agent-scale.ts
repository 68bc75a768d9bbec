/**
 * The agent's own work as a node fills up (issue 9, item 4), without podman
 * or the CLI: the real operations, handlers, monitor pass and health loop
 * over an in-memory runtime (test/helpers/fake-runtime.ts) and a real
 * registry file, at each size of `--sizes` (default 100 and 1000 services).
 *
 *   node --import tsx bench/agent-scale.ts [--sizes 100,1000] [--runs N]
 *
 * Per size: the mean time of the first and the last tenth of the deploys
 * (something every deploy does over all services makes the last ones
 * slower), a redeploy with all present, and each listing's time. The growth
 * column divides the time at the largest size by the time at the smallest
 * and by the size ratio: about 1 is linear, well above it super-linear; for
 * a deploy, which should not depend on the other services at all, it is the
 * time ratio itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { ServerUnaryCall, handleUnaryCall } from "@grpc/grpc-js";
import { AgentMetrics } from "../src/agent/metrics/metrics.js";
import { readAgentState } from "../src/agent/metrics/state.js";
import { refreshObserved } from "../src/agent/observed/refresh.js";
import { deploy } from "../src/agent/operations/deploy.js";
import { createHandlers } from "../src/agent/server/handlers.js";
import type { ServiceSpec } from "../src/gen/mcp/v1/mcp.js";
import { HealthLoop } from "../src/monitor/health.js";
import { Monitor } from "../src/monitor/monitor.js";
import { openRegistry } from "../src/registry/index.js";
import { parseServiceDef, toServiceSpec } from "../src/servicedef/index.js";
import { fakeAgentContext } from "../test/helpers/fake-context.js";
import { ScriptedProber } from "../test/helpers/fake-health.js";
import { FakeRuntime } from "../test/helpers/fake-runtime.js";
import { TEST_IMAGE, oneRouteDefinition } from "../test/helpers/live-agent.js";
import { intArg, loadavg1, stringArg, withCleanup } from "./lib.js";

const NODE = "bench-agent-scale";
const sizes = stringArg("sizes", "100,1000")
  .split(",")
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0)
  .sort((a, b) => a - b);
const runs = intArg("runs", 10);

/** What is timed at each size, in ms per call. */
interface Row {
  deployFirst: number;
  deployLast: number;
  redeploy: number;
  listServices: number;
  liveCheck: number;
  statusAll: number;
  statusOne: number;
  nodeStatus: number;
  refresh: number;
  monitorPass: number;
  healthScan: number;
  /** GET /metrics' work: the state read and the exposition text (src/agent/metrics/). */
  scrape: number;
}

/** Whether the figure should not depend on the number of services (a deploy). */
const PER_SERVICE_CONSTANT = new Set<keyof Row>(["deployFirst", "deployLast", "redeploy"]);

function invoke<Req, Res>(handler: handleUnaryCall<Req, Res> | undefined, req: Req): Promise<Res> {
  if (!handler) throw new Error("no such handler");
  return new Promise((resolve, reject) => {
    const call = { request: req } as unknown as ServerUnaryCall<Req, Res>;
    handler(call, (err, value) =>
      err ? reject(new Error(String(err.details))) : resolve(value as Res),
    );
  });
}

/** Mean ms of `n` calls, after one untimed. */
async function timeEach(n: number, fn: () => unknown): Promise<number> {
  await fn();
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return (performance.now() - start) / n;
}

const dirs: string[] = [];

async function measure(size: number, signal: AbortSignal): Promise<Row> {
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-bench-agent-scale-"));
  dirs.push(dir);
  const registry = openRegistry(path.join(dir, "mcp.db"));
  try {
    const runtime = new FakeRuntime({ images: [TEST_IMAGE] });
    const ctx = fakeAgentContext({
      registry,
      runtime,
      dataRoot: path.join(dir, "data"),
      health: new ScriptedProber(),
      pool: [{ from: 20000, to: 60000 }],
      // Every port free: the fake runtime's own probe scans all its containers.
      probe: () => Promise.resolve(true),
      settings: { node: NODE },
    });
    // Counting from the first deploy, as an agent with [metrics] does.
    const metrics = new AgentMetrics({
      node: NODE,
      version: "bench",
      readState: () => readAgentState(ctx),
    });
    ctx.metrics = metrics;
    const specs: ServiceSpec[] = Array.from({ length: size }, (_, i) => {
      const name = `as${String(i).padStart(5, "0")}`;
      return toServiceSpec(parseServiceDef(oneRouteDefinition(name, NODE), `${name}.toml`));
    });
    const deployOne = async (spec: ServiceSpec) => {
      const [result] = await deploy(ctx, { service: spec, component: "" });
      if (!result?.success) throw new Error(`deploy ${spec.name}: ${result?.error}`);
    };
    const times: number[] = [];
    for (const spec of specs) {
      signal.throwIfAborted();
      const start = performance.now();
      await deployOne(spec);
      times.push(performance.now() - start);
      runtime.clearCalls();
    }
    const tenth = Math.max(1, Math.floor(size / 10));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const h = createHandlers(ctx);
    const monitor = new Monitor(ctx, {
      intervalMs: 600_000,
      alertCommand: [],
      cooldownMs: 0,
      flapThreshold: 3,
      flapWindowMs: 600_000,
      retentionMs: 720 * 3_600_000,
    });
    ctx.monitor = monitor;
    const health = new HealthLoop(ctx, { now: Date.now, wantPass: () => {} });
    await health.tick(); // the first checks: every later tick finds none due
    const first = specs[0];
    if (!first) throw new Error("no services");
    return {
      deployFirst: mean(times.slice(0, tenth)),
      deployLast: mean(times.slice(-tenth)),
      redeploy: await timeEach(runs, () => deployOne(first)),
      listServices: await timeEach(runs, () =>
        invoke(h.listServices, { name: "", includeSpec: false }),
      ),
      liveCheck: await timeEach(runs, () => invoke(h.liveCheck, {})),
      statusAll: await timeEach(runs, () =>
        invoke(h.getServiceStatus, { name: "", eventLimit: 0 }),
      ),
      statusOne: await timeEach(runs, () =>
        invoke(h.getServiceStatus, { name: first.name, eventLimit: 0 }),
      ),
      nodeStatus: await timeEach(runs, () => invoke(h.nodeStatus, {})),
      refresh: await timeEach(runs, () => refreshObserved(ctx)),
      monitorPass: await timeEach(runs, () => monitor.runOnce()),
      healthScan: await timeEach(runs, () => health.tick()),
      scrape: await timeEach(runs, () => metrics.scrape()),
    };
  } finally {
    registry.close();
  }
}

async function main(signal: AbortSignal): Promise<void> {
  if (sizes.length === 0) throw new Error("--sizes needs service counts, e.g. 100,1000");
  const rows: { size: number; row: Row }[] = [];
  for (const size of sizes) {
    const started = performance.now();
    rows.push({ size, row: await measure(size, signal) });
    process.stderr.write(
      `  ${size} services measured in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
    );
  }
  const small = rows[0];
  const large = rows[rows.length - 1];
  if (!small || !large) return;
  const keys = Object.keys(small.row) as (keyof Row)[];
  const growth = (k: keyof Row) => {
    const ratio = large.row[k] / small.row[k];
    return PER_SERVICE_CONSTANT.has(k) ? ratio : ratio / (large.size / small.size);
  };

  console.log(
    `\nThe agent's own work (fake runtime, real registry), ms per call (1-min load ${loadavg1()})`,
  );
  console.log(
    `  ${"".padEnd(14)}` +
      rows.map((r) => `${r.size} services`.padStart(15)).join("") +
      "   growth (1 ≈ linear; deploys: 1 = none)",
  );
  for (const k of keys) {
    console.log(
      `  ${k.padEnd(14)}` +
        rows.map((r) => r.row[k].toFixed(2).padStart(15)).join("") +
        growth(k).toFixed(2).padStart(10),
    );
  }
  const round = (v: number) => Math.round(v * 1000) / 1000;
  console.log(
    JSON.stringify({
      bench: "agent-scale",
      unit: "ms",
      runs,
      sizes: rows.map((r) => ({
        services: r.size,
        ...Object.fromEntries(keys.map((k) => [k, round(r.row[k])])),
      })),
      growth: Object.fromEntries(keys.map((k) => [k, Math.round(growth(k) * 100) / 100])),
      loadavg1: loadavg1(),
    }),
  );
}

await withCleanup(main, () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  return Promise.resolve();
});
