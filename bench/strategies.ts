/**
 * Redeploy downtime and deploy time of each strategy (issue 7): `mcp deploy`
 * of a good new version with `strategy = "stop-first"` and with
 * `strategy = "start-first"`, each against the raw podman commands an
 * operator would type for the same replacement, in the same run.
 *
 *   node --import tsx bench/strategies.ts [--runs N]
 *
 * While each redeploy runs, a poller sends `GET /health` to the stable host
 * port every 20 ms (each on a fresh connection, not waiting for the previous
 * one) and the longest stretch of failed requests is the run's downtime:
 * from the first failed request to the next one that got 200.
 *
 * Raw equivalents, on their own fixed host port H, timed until the new
 * container answers 200 (what mcp's health gate waits for too):
 *  - stop-first: `podman rm -f` of the old container, `podman run` of the new;
 *  - start-first: `podman run` of the new beside on a second port, poll it,
 *    `podman stop` + `podman rename` of the old, `podman run` of the new on
 *    H, poll it, `podman rm -f` of the old and the trial.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import { runCommand } from "../src/util/exec.js";
import { setAsideName, trialName } from "../src/runtime/names.js";
import type { Strategy } from "../src/servicedef/types.js";
import { freePort } from "../test/helpers/agent.js";
import {
  LiveAgent,
  TEST_IMAGE,
  httpGet,
  parseEnvPage,
  webDefinition,
} from "../test/helpers/live-agent.js";
import {
  deployedPort,
  getStatus,
  intArg,
  ms,
  rawRunArgv,
  roundStats,
  sleep,
  stats,
  waitHttp200,
  withCleanup,
  type Stats,
} from "./lib.js";

const NODE = "bn-strategies";
const STRATEGIES: readonly Strategy[] = ["stop-first", "start-first"];
const POLL_MS = 20;
/** Polling goes on this long after the deploy, so that the last gap is closed. */
const TAIL_MS = 200;
const TARGET_DOWNTIME_MS = 1500;
const RELEASES = ["green", "blue"] as const;

const runs = intArg("runs", 7);

/** One redeploy: wall time of the deploy and the longest gap the poller saw. */
interface Sample {
  wall: number;
  gap: number;
}

/** Every `POLL_MS`, one GET /health on `port`; `stop()` gives the longest failed stretch. */
class GapPoller {
  private readonly probes: Promise<{ at: number; ok: boolean }>[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(port: number) {
    const probe = () => {
      const at = performance.now();
      this.probes.push(
        getStatus(port, "/health").then(
          (status) => ({ at, ok: status === 200 }),
          () => ({ at, ok: false }),
        ),
      );
    };
    probe();
    this.timer = setInterval(probe, POLL_MS);
  }

  async stop(): Promise<number> {
    clearInterval(this.timer);
    const probes = (await Promise.all(this.probes)).sort((a, b) => a.at - b.at);
    let gap = 0;
    let since: number | undefined;
    for (const p of probes) {
      if (!p.ok) {
        since ??= p.at;
      } else if (since !== undefined) {
        gap = Math.max(gap, p.at - since);
        since = undefined;
      }
    }
    if (since !== undefined) throw new Error("the stable port still fails after the deploy");
    return gap;
  }
}

/** Runs `deploy` under a poller of `port`; checks that `release` serves afterwards. */
async function measured(
  port: number,
  release: string,
  deploy: () => Promise<void>,
): Promise<Sample> {
  const poller = new GapPoller(port);
  const start = performance.now();
  try {
    await deploy();
  } catch (err) {
    await poller.stop().catch(() => undefined);
    throw err;
  }
  const wall = performance.now() - start;
  await sleep(TAIL_MS);
  const gap = await poller.stop();
  const env = parseEnvPage(await httpGet(port, "/"));
  if (env.RELEASE !== release) {
    throw new Error(`port ${port} serves RELEASE=${env.RELEASE ?? "(none)"}, not ${release}`);
  }
  return { wall, gap };
}

function definition(service: string, strategy: Strategy, release: string): string {
  return webDefinition(service, NODE, [
    `strategy = "${strategy}"`,
    `env = ["RELEASE=${release}"]`,
    "",
    "[[components.routes]]",
    "port = 443",
    'mode = "l7"',
    "",
    "[components.health]",
    'type = "http"',
    'path = "/health"',
  ]);
}

async function podman(...args: string[]): Promise<void> {
  await runCommand(["podman", ...args]);
}

/** `podman run -d` of the raw container `name` on host port `port`. */
async function rawRun(name: string, port: number, release: string): Promise<void> {
  await runCommand(rawRunArgv(name, NODE, port, ["-e", `RELEASE=${release}`]));
}

/** The replacement typed by hand for `strategy`, on stable port `port` (trial on `trialPort`). */
async function rawRedeploy(
  strategy: Strategy,
  name: string,
  port: number,
  trialPort: number,
  release: string,
): Promise<void> {
  if (strategy === "stop-first") {
    await podman("rm", "-f", "-t", "10", name);
    await rawRun(name, port, release);
    await waitHttp200(port);
    return;
  }
  const next = trialName(name);
  const prev = setAsideName(name);
  await rawRun(next, trialPort, release);
  await waitHttp200(trialPort);
  await podman("stop", "-t", "10", name);
  await podman("rename", name, prev);
  await rawRun(name, port, release);
  await waitHttp200(port);
  await podman("rm", "-f", "-t", "10", prev, next);
}

interface Result {
  strategy: Strategy;
  mcp: Sample[];
  raw: Sample[];
}

async function benchStrategy(
  agent: LiveAgent,
  strategy: Strategy,
  signal: AbortSignal,
): Promise<Result> {
  const service = `bn-${strategy}`;
  const raw = `bn-raw-${strategy}`;
  const [rawPort, trialPort] = [await freePort(), await freePort()];

  // Warm-up: the first deploy (port allocation, image check) and the first raw run.
  await agent.addDefinition(service, definition(service, strategy, RELEASES[0]));
  const first = await agent.cli(["deploy", service]);
  if (first.code !== 0) throw new Error(`mcp deploy exited ${first.code}:\n${first.stderr}`);
  const port = deployedPort(first.stdout);
  await waitHttp200(port);
  await rawRun(raw, rawPort, RELEASES[0]);
  await waitHttp200(rawPort);

  const result: Result = { strategy, mcp: [], raw: [] };
  for (let i = 1; i <= runs; i++) {
    signal.throwIfAborted();
    const release = RELEASES[i % 2] ?? "";
    await agent.addDefinition(service, definition(service, strategy, release));
    const a = await measured(port, release, async () => {
      const res = await agent.cli(["deploy", service]);
      if (res.code !== 0) throw new Error(`mcp deploy exited ${res.code}:\n${res.stderr}`);
      const now = deployedPort(res.stdout);
      if (now !== port) throw new Error(`host port moved from ${port} to ${now}`);
    });
    result.mcp.push(a);
    signal.throwIfAborted();
    const b = await measured(rawPort, release, () =>
      rawRedeploy(strategy, raw, rawPort, trialPort, release),
    );
    result.raw.push(b);
    process.stderr.write(
      `  ${strategy} run ${i}/${runs}: mcp ${ms(a.wall)} ms (gap ${ms(a.gap)} ms), ` +
        `raw ${ms(b.wall)} ms (gap ${ms(b.gap)} ms)\n`,
    );
  }
  return result;
}

const s = (v: number) => (v / 1000).toFixed(2);

function report(r: Result): Record<string, unknown> {
  const mcpWall = stats(r.mcp.map((x) => x.wall));
  const rawWall = stats(r.raw.map((x) => x.wall));
  const mcpGap = stats(r.mcp.map((x) => x.gap));
  const rawGap = stats(r.raw.map((x) => x.gap));
  const ratio = mcpWall.median / rawWall.median;
  const met = mcpGap.median <= TARGET_DOWNTIME_MS;
  console.log(
    `strategy ${r.strategy}: mcp median ${s(mcpWall.median)} s vs raw ${s(rawWall.median)} s → ratio ${ratio.toFixed(2)}; ` +
      `downtime median ${s(mcpGap.median)} s (max ${s(mcpGap.max)} s) vs raw ${s(rawGap.median)} s (max ${s(rawGap.max)} s)`,
  );
  const line = (label: string, x: Stats) =>
    console.log(
      `  ${label.padEnd(26)} median ${ms(x.median).toFixed(0).padStart(6)} ms   p90 ${ms(x.p90).toFixed(0).padStart(6)} ms   min ${ms(x.min).toFixed(0).padStart(6)}   max ${ms(x.max).toFixed(0).padStart(6)}`,
    );
  line("mcp deploy (wall)", mcpWall);
  line("raw podman (wall)", rawWall);
  line("mcp downtime (longest gap)", mcpGap);
  line("raw downtime (longest gap)", rawGap);
  console.log(
    `  per-run gaps, mcp: ${r.mcp.map((x) => ms(x.gap)).join(", ")} ms; raw: ${r.raw.map((x) => ms(x.gap)).join(", ")} ms`,
  );
  console.log(
    `  downtime target ≤ ${s(TARGET_DOWNTIME_MS)} s (median): ${met ? "met" : "NOT met"}`,
  );
  return {
    mcp: roundStats(mcpWall),
    raw: roundStats(rawWall),
    mcpDowntime: roundStats(mcpGap),
    rawDowntime: roundStats(rawGap),
    ratio: Math.round(ratio * 1000) / 1000,
    targetMet: met,
  };
}

let agent: LiveAgent | undefined;

await withCleanup(
  async (signal) => {
    agent = await LiveAgent.start({ node: NODE });
    const results: Result[] = [];
    for (const strategy of STRATEGIES) {
      signal.throwIfAborted();
      results.push(await benchStrategy(agent, strategy, signal));
    }
    const load = os.loadavg()[0] ?? NaN;
    console.log(
      `\nRedeploy of a good version (${TEST_IMAGE}, http check on /health), ${runs} runs per strategy, ` +
        `mcp and raw alternating, /health polled every ${POLL_MS} ms (1-min load ${load.toFixed(2)} on ${os.cpus().length} CPUs)`,
    );
    const json: Record<string, unknown> = {};
    for (const r of results) json[r.strategy] = report(r);
    console.log(
      JSON.stringify({
        bench: "strategies",
        runs,
        unit: "ms",
        pollMs: POLL_MS,
        ...json,
        targetDowntimeMs: TARGET_DOWNTIME_MS,
        loadavg1: Math.round(load * 100) / 100,
      }),
    );
  },
  async () => {
    for (const strategy of STRATEGIES) {
      const raw = `bn-raw-${strategy}`;
      await runCommand([
        "podman",
        "rm",
        "-f",
        "-t",
        "0",
        "--ignore",
        raw,
        trialName(raw),
        setAsideName(raw),
      ]).catch(() => undefined);
    }
    await agent?.cleanup();
  },
);
