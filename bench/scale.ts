/**
 * Scale on one node (issue 9, item 4): what one more service costs as the
 * node fills up. N one-route services deployed one after the other through
 * the CLI, each deploy timed (CLI spawn → exit) together with the agent's
 * own CPU time for it; at checkpoints (1, 25, 50, 100 services, …) the
 * listings are timed the same way: `mcp ps` (LiveCheck), `mcp status`
 * (GetServiceStatus: a monitor pass first) and `mcp list` (ListServices).
 *
 *   node --import tsx bench/scale.ts [--services N] [--runs N] [--prefix P]
 *
 * Something that scans every service on every deploy shows as deploy #N
 * costing more agent CPU than deploy #1; a listing that grows worse than
 * linearly shows as its per-service cost rising between checkpoints.
 */
import { performance } from "node:perf_hooks";
import { LiveAgent, oneRouteDefinition, type CliRun } from "../test/helpers/live-agent.js";
import {
  intArg,
  loadavg1,
  ms,
  namePrefix,
  procCpuSeconds,
  roundStats,
  stats,
  withCleanup,
  type Stats,
} from "./lib.js";

const prefix = namePrefix();
const NODE = `${prefix}benchscale`;
const count = intArg("services", 100);
const runs = intArg("runs", 5);
const names = Array.from(
  { length: count },
  (_, i) => `${prefix}sc-${String(i + 1).padStart(3, "0")}`,
);
const CHECKPOINTS = [...new Set([1, 25, 50, 100, 200, 500, count])].filter((n) => n <= count);
/** Deploys averaged at each end of the sequence. */
const EDGE = Math.max(1, Math.min(10, Math.floor(count / 4)));

interface Sample {
  /** CLI spawn → exit, ms. */
  wall: number;
  /** The agent process's CPU time (utime + stime) meanwhile, ms (in clock ticks: 10 ms steps). */
  cpu: number;
}

let agent: LiveAgent | undefined;

/** Runs the CLI once, timing it and the agent's CPU time meanwhile; fails on a non-zero exit. */
async function measured(live: LiveAgent, pid: number, args: string[]): Promise<Sample & CliRun> {
  const cpuBefore = await procCpuSeconds(pid);
  const start = performance.now();
  const res = await live.cli(args);
  const wall = performance.now() - start;
  const cpu = ((await procCpuSeconds(pid)) - cpuBefore) * 1000;
  if (res.code !== 0) {
    throw new Error(`mcp ${args.join(" ")} exited ${res.code}:\n${res.stdout}${res.stderr}`);
  }
  return { ...res, wall, cpu };
}

/** Wall times, and the agent's CPU time as a mean (single readings are whole clock ticks). */
interface Figures {
  wall: Stats;
  cpuMean: number;
}

interface Checkpoint {
  services: number;
  ps: Figures;
  status: Figures;
  list: Figures;
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

function figures(samples: Sample[]): Figures {
  return { wall: stats(samples.map((x) => x.wall)), cpuMean: mean(samples.map((x) => x.cpu)) };
}

type Listing = "ps" | "status" | "list";
const LISTINGS: Listing[] = ["ps", "status", "list"];

async function checkpoint(
  live: LiveAgent,
  pid: number,
  services: number,
  signal: AbortSignal,
): Promise<Checkpoint> {
  const samples: Record<Listing, Sample[]> = { ps: [], status: [], list: [] };
  for (let i = 0; i < runs; i++) {
    for (const what of LISTINGS) {
      signal.throwIfAborted();
      const res = await measured(live, pid, [what]);
      if (what === "ps") {
        const rows = res.stdout.trim().split("\n").length - 1;
        if (rows !== services) throw new Error(`mcp ps showed ${rows} rows, expected ${services}`);
      }
      samples[what].push(res);
    }
  }
  return {
    services,
    ps: figures(samples.ps),
    status: figures(samples.status),
    list: figures(samples.list),
  };
}

async function main(signal: AbortSignal): Promise<void> {
  agent = await LiveAgent.start({ node: NODE });
  const live = agent;
  const pid = live.pid;
  if (pid === undefined) throw new Error("the agent has no pid");
  for (const name of names) await live.addDefinition(name, oneRouteDefinition(name, NODE));

  const deploys: Sample[] = [];
  const checkpoints: Checkpoint[] = [];
  for (const [i, name] of names.entries()) {
    signal.throwIfAborted();
    deploys.push(await measured(live, pid, ["deploy", name]));
    if (CHECKPOINTS.includes(i + 1)) {
      const c = await checkpoint(live, pid, i + 1, signal);
      checkpoints.push(c);
      process.stderr.write(
        `  ${i + 1} services: deploy ${ms(deploys[i]?.wall ?? NaN)} ms; ps ${ms(c.ps.wall.median)}, status ${ms(c.status.wall.median)}, list ${ms(c.list.wall.median)} ms\n`,
      );
    }
  }

  const first = figures(deploys.slice(0, EDGE));
  const last = figures(deploys.slice(-EDGE));
  const growth = {
    wall: last.wall.median / first.wall.median,
    cpu: last.cpuMean / first.cpuMean,
  };
  const load = loadavg1();

  const f = (v: number) => v.toFixed(0).padStart(5);
  const cpu = (v: number) => v.toFixed(1).padStart(5);
  console.log(
    `\nScale on one node: ${count} one-route services deployed one after the other (1-min load ${load})`,
  );
  console.log(`  sequential deploys (CLI spawn→exit; the agent's CPU time for each, mean):`);
  const deployLine = (label: string, x: Figures) =>
    console.log(
      `    ${label}`.padEnd(26) +
        `wall median ${f(x.wall.median)} ms   agent CPU ${cpu(x.cpuMean)} ms`,
    );
  deployLine(`#1–#${EDGE}:`, first);
  deployLine(`#${count - EDGE + 1}–#${count}:`, last);
  console.log(
    `    last / first:`.padEnd(26) +
      `wall ${growth.wall.toFixed(2)}   agent CPU ${growth.cpu.toFixed(2)}   (1.0: no growth)`,
  );
  console.log(
    `  listings, ${runs} runs each (wall median / agent CPU mean, ms; agent CPU per service in brackets):`,
  );
  for (const c of checkpoints) {
    const cell = (x: Figures) =>
      `${f(x.wall.median)} / ${cpu(x.cpuMean)} (${(x.cpuMean / c.services).toFixed(2)})`;
    console.log(
      `    ${String(c.services).padStart(4)} services:  ps ${cell(c.ps)}   status ${cell(c.status)}   list ${cell(c.list)}`,
    );
  }

  const round = (x: Figures) => ({ wall: roundStats(x.wall), cpuMean: ms(x.cpuMean) });
  console.log(
    JSON.stringify({
      bench: "scale",
      services: count,
      runs,
      unit: "ms",
      deployWall: deploys.map((d) => ms(d.wall)),
      deployCpu: deploys.map((d) => ms(d.cpu)),
      firstDeploys: round(first),
      lastDeploys: round(last),
      growthWall: Math.round(growth.wall * 100) / 100,
      growthCpu: Math.round(growth.cpu * 100) / 100,
      checkpoints: checkpoints.map((c) => ({
        services: c.services,
        ps: round(c.ps),
        status: round(c.status),
        list: round(c.list),
      })),
      loadavg1: load,
    }),
  );
}

await withCleanup(main, async () => {
  await agent?.cleanup();
});
