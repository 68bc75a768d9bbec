/**
 * The idle agent: resident set size of the `mcp-agent serve` process right
 * after start (0 services) and idle after 100 one-route services were
 * deployed in parallel through the CLI and answer HTTP, and the CPU it uses
 * while idle, with none and with those services.
 *
 *   node --import tsx bench/idle-rss.ts [--services N] [--idle SECONDS] [--samples N]
 *                                       [--cpu-window SECONDS] [--prefix P]
 *
 * RSS is VmRSS from /proc/<pid>/status (the agent process only; podman,
 * conmon and the containers are not counted). VmHWM, the peak RSS, is
 * reported too: it shows what the parallel deploys cost at their height.
 * Idle CPU is utime + stime from /proc/<pid>/stat over `--cpu-window`
 * seconds in which nobody asks the agent anything, as a share of one core:
 * the agent's process, and apart from it the agent's own
 * `podman system service` (its pid file is `podman.sock.pid` in the agent's
 * directory).
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { LiveAgent, TEST_IMAGE, httpGet, oneRouteDefinition } from "../test/helpers/live-agent.js";
import {
  deployedPort,
  intArg,
  loadavg1,
  namePrefix,
  procCpuSeconds,
  procMemoryMB,
  sleep,
  stats,
  withCleanup,
} from "./lib.js";

const prefix = namePrefix();
const NODE = `${prefix}benchrss`;
const TARGET_MB = 100;
/** Idle CPU target, percent of one core. */
const TARGET_CPU = 1;

const services = intArg("services", 100);
const idleSeconds = intArg("idle", 5);
const samples = intArg("samples", 5);
const cpuWindow = intArg("cpu-window", 30);

interface IdleCpu {
  /** Percent of one core over the window. */
  agent: number;
  /** The agent's own podman service; undefined when its pid file names none. */
  podman: number | undefined;
  load: number;
}

/** Percent of one core each process used over `seconds` of idle (nothing asked of the agent). */
async function idleCpu(
  agentPid: number,
  podmanPid: number | undefined,
  seconds: number,
  signal: AbortSignal,
): Promise<IdleCpu> {
  const cpu = (pid: number | undefined) =>
    pid === undefined ? Promise.resolve(undefined) : procCpuSeconds(pid);
  const [agentBefore, podmanBefore] = await Promise.all([cpu(agentPid), cpu(podmanPid)]);
  const start = performance.now();
  await sleep(seconds * 1000, signal);
  const [agentAfter, podmanAfter] = await Promise.all([cpu(agentPid), cpu(podmanPid)]);
  const elapsed = (performance.now() - start) / 1000;
  const percent = (after?: number, before?: number) =>
    after === undefined || before === undefined ? undefined : ((after - before) / elapsed) * 100;
  return {
    agent: percent(agentAfter, agentBefore) ?? NaN,
    podman: percent(podmanAfter, podmanBefore),
    load: loadavg1(),
  };
}

/** The pid of the agent's own podman service, if it wrote one and it runs. */
async function podmanServicePid(agentDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path.join(agentDir, "podman.sock.pid"), "utf8")).trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** `count` VmRSS readings `intervalMs` apart, in MB. */
async function sampleRss(
  pid: number,
  count: number,
  intervalMs: number,
  signal: AbortSignal,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(intervalMs, signal);
    out.push(await procMemoryMB(pid, "VmRSS"));
  }
  return out;
}

const mb = (v: number) => Math.round(v * 10) / 10;

let agent: LiveAgent | undefined;

async function main(signal: AbortSignal): Promise<void> {
  agent = await LiveAgent.start({ node: NODE });
  const pid = agent.pid;
  if (pid === undefined) throw new Error("the agent has no pid");

  // "Right after start": the agent said it is ready; give it a second to settle.
  await sleep(1000, signal);
  const atStart = stats(await sampleRss(pid, 3, 300, signal));
  // Start-up garbage is collected within seconds: the fair baseline is 0 services, same idle time.
  await sleep(idleSeconds * 1000, signal);
  const idleEmpty = stats(await sampleRss(pid, 3, 300, signal));
  const podmanPid = await podmanServicePid(agent.dir);
  const cpuEmpty = await idleCpu(pid, podmanPid, cpuWindow, signal);

  const names = Array.from(
    { length: services },
    (_, i) => `${prefix}idle${String(i + 1).padStart(3, "0")}`,
  );
  for (const name of names)
    await agent.addDefinition(name, oneRouteDefinition(name, NODE, TEST_IMAGE));

  // Like `for s in …; do mcp deploy $s & done; wait`.
  signal.throwIfAborted();
  const live = agent;
  const deployStart = performance.now();
  const results = await Promise.all(names.map((name) => live.cli(["deploy", name])));
  const deploySeconds = (performance.now() - deployStart) / 1000;
  const failed = results.filter((r) => r.code !== 0);
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} of ${services} deploys failed, e.g.:\n${failed[0]?.stdout}${failed[0]?.stderr}`,
    );
  }
  const ports = results.map((r) => deployedPort(r.stdout));
  if (new Set(ports).size !== ports.length)
    throw new Error(`duplicate host ports: ${ports.join(", ")}`);
  await Promise.all(ports.map((port) => httpGet(port, "/health", 30_000)));
  const readySeconds = (performance.now() - deployStart) / 1000;

  await sleep(idleSeconds * 1000, signal);
  const idle = stats(await sampleRss(pid, samples, 1000, signal));
  const peak = await procMemoryMB(pid, "VmHWM");
  const perService = (idle.median - idleEmpty.median) / services;
  const cpuFull = await idleCpu(pid, podmanPid, cpuWindow, signal);
  const load = loadavg1();
  const cpuMet = cpuFull.agent < TARGET_CPU;
  const pct = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}%`);

  const row = (label: string, value: string) => console.log(`  ${label.padEnd(36)} ${value}`);
  console.log(`\nmcp-agent resident memory (VmRSS, pid ${pid})`);
  row("right after start, 0 services:", `${mb(atStart.median)} MB (median of 3)`);
  row(`0 services, ${idleSeconds} s idle:`, `${mb(idleEmpty.median)} MB (median of 3)`);
  row(
    `${services} services, ${idleSeconds} s idle:`,
    `${mb(idle.median)} MB median, ${mb(idle.min)}–${mb(idle.max)} MB over ${samples} samples`,
  );
  row("peak (VmHWM, during the deploys):", `${mb(peak)} MB`);
  row(
    "growth per service (vs 0 idle):",
    perService >= 0
      ? `${mb(perService * 1024)} kB`
      : "n/a (the 0-service figure still holds start-up garbage no GC has collected yet)",
  );
  row(`target ≤ ${TARGET_MB} MB idle:`, idle.max <= TARGET_MB ? "met" : "NOT met");
  console.log(
    `\nidle CPU over ${cpuWindow} s, percent of one core (utime + stime, /proc/<pid>/stat)`,
  );
  row(
    "0 services:",
    `agent ${pct(cpuEmpty.agent)}, its podman service ${pct(cpuEmpty.podman)} (load ${cpuEmpty.load})`,
  );
  row(
    `${services} services:`,
    `agent ${pct(cpuFull.agent)}, its podman service ${pct(cpuFull.podman)} (load ${cpuFull.load})`,
  );
  row(`target < ${TARGET_CPU}% (the agent):`, cpuMet ? "met" : "NOT met");
  row(
    `${services} parallel \`mcp deploy\`:`,
    `all exited after ${deploySeconds.toFixed(1)} s, all answer HTTP after ${readySeconds.toFixed(1)} s`,
  );
  row("1-min load average:", `${load.toFixed(2)} on ${os.cpus().length} CPUs`);
  const cpuJson = (c: IdleCpu) => ({
    agentPercent: Math.round(c.agent * 1000) / 1000,
    podmanPercent: c.podman === undefined ? null : Math.round(c.podman * 1000) / 1000,
    loadavg1: c.load,
  });
  console.log(
    JSON.stringify({
      bench: "idle-rss",
      unit: "MB",
      services,
      idleSeconds,
      rssStartMB: mb(atStart.median),
      rssIdleEmptyMB: mb(idleEmpty.median),
      rssIdleMB: mb(idle.median),
      rssIdleMaxMB: mb(idle.max),
      rssPeakMB: mb(peak),
      perServiceKB: mb(perService * 1024),
      target: TARGET_MB,
      targetMet: idle.max <= TARGET_MB,
      cpuWindowSeconds: cpuWindow,
      cpuIdleEmpty: cpuJson(cpuEmpty),
      cpuIdle: cpuJson(cpuFull),
      cpuTargetPercent: TARGET_CPU,
      cpuTargetMet: cpuMet,
      parallelDeploySeconds: mb(deploySeconds),
      allHttpSeconds: mb(readySeconds),
      loadavg1: load,
    }),
  );
}

await withCleanup(main, async () => {
  await agent?.cleanup();
});
