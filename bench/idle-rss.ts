/**
 * Agent memory: resident set size of the `mcp-agent serve` process right
 * after start (0 services), and idle after 20 one-route services were deployed
 * in parallel through the CLI and answer HTTP.
 *
 *   node --import tsx bench/idle-rss.ts [--services N] [--idle SECONDS] [--samples N]
 *
 * RSS is VmRSS from /proc/<pid>/status (the agent process only; podman,
 * conmon and the containers are not counted). VmHWM, the peak RSS, is
 * reported too: it shows what the parallel deploys cost at their height.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import { LiveAgent, TEST_IMAGE, httpGet, oneRouteDefinition } from "../test/helpers/live-agent.js";
import { deployedPort, intArg, procMemoryMB, sleep, stats, withCleanup } from "./lib.js";

const NODE = "benchrss";
const TARGET_MB = 80;

const services = intArg("services", 20);
const idleSeconds = intArg("idle", 5);
const samples = intArg("samples", 5);

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

  const names = Array.from({ length: services }, (_, i) => `idle${String(i + 1).padStart(2, "0")}`);
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
  const load = os.loadavg()[0] ?? NaN;

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
  row(
    `${services} parallel \`mcp deploy\`:`,
    `all exited after ${deploySeconds.toFixed(1)} s, all answer HTTP after ${readySeconds.toFixed(1)} s`,
  );
  row("1-min load average:", `${load.toFixed(2)} on ${os.cpus().length} CPUs`);
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
      parallelDeploySeconds: mb(deploySeconds),
      allHttpSeconds: mb(readySeconds),
      loadavg1: mb(load),
    }),
  );
}

await withCleanup(main, async () => {
  await agent?.cleanup();
});
