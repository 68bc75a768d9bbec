/**
 * Redeploy latency: `mcp deploy benchweb` against a real agent, versus the raw
 * podman commands an operator would type for the same container.
 *
 *   node --import tsx bench/deploy.ts [--runs N] [--no-breakdown]
 *
 * Per run, alternating: (a) `mcp deploy benchweb` (spawn of the CLI to its
 * exit), (b) `podman rm -f -t 10 benchweb-raw` + `podman run -d …` (both
 * spawns, timed together), and, unless --no-breakdown, (c) the same deploy
 * command in this process (CliContext + deployCommand: no node start-up, same
 * TLS dial and RPC), which splits mcp's overhead into "CLI process" and
 * "agent + RPC". Each also gets a second figure: time until HTTP 200 on the
 * container's port. Bare start-up of `mcp --version` and `podman --version`
 * is measured too, so the ratio can be read honestly.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import { CliContext, type CliIO } from "../src/cli/context.js";
import { deployCommand } from "../src/cli/commands/deploy.js";
import { containerName, setAsideName } from "../src/runtime/names.js";
import { runCommand } from "../src/util/exec.js";
import { freePort } from "../test/helpers/agent.js";
import { LiveAgent, TEST_IMAGE, runMcp, webDefinition } from "../test/helpers/live-agent.js";
import {
  deployedPort,
  flagArg,
  intArg,
  ms,
  rawRunArgv,
  roundStats,
  stats,
  waitHttp200,
  withCleanup,
  type Stats,
} from "./lib.js";

const NODE = "bench";
const SERVICE = "benchweb";
const RAW = "benchweb-raw";
const TARGET_RATIO = 1.25;

const runs = intArg("runs", 10);
const breakdown = !flagArg("no-breakdown");

interface Sample {
  /** Spawn to exit of the command(s). */
  cmd: number;
  /** Spawn to the first HTTP 200 on the container's port. */
  http: number;
}

/** The argv an operator would type for the raw container, on fixed host port `port`. */
function rawCommands(port: number): string[][] {
  return [
    ["podman", "rm", "-f", "-t", "10", RAW],
    // Same three labels the agent sets (mcp.node also lets LiveAgent.cleanup sweep it).
    rawRunArgv(RAW, NODE, port, ["--label", "mcp.component=web", "--label", `mcp.service=${RAW}`]),
  ];
}

/**
 * The agent answers before it removes the old container and holds the
 * service's lock until that ends (docs/ARCHITECTURE.md): wait for it outside
 * the timed window, so no run pays for the previous one's clean-up.
 */
async function oldContainerGone(): Promise<void> {
  const aside = setAsideName(containerName(SERVICE, "web"));
  for (let i = 0; i < 200; i++) {
    const gone = await runCommand(["podman", "container", "exists", aside]).then(
      () => false,
      () => true,
    );
    if (gone) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function mcpDeploy(agent: LiveAgent): Promise<{ sample: Sample; port: number }> {
  const start = performance.now();
  const res = await agent.cli(["deploy", SERVICE]);
  const cmd = performance.now() - start;
  if (res.code !== 0) throw new Error(`mcp deploy exited ${res.code}:\n${res.stdout}${res.stderr}`);
  const port = deployedPort(res.stdout);
  await waitHttp200(port);
  const http = performance.now() - start;
  await oldContainerGone();
  return { sample: { cmd, http }, port };
}

async function rawDeploy(port: number): Promise<Sample> {
  const start = performance.now();
  for (const argv of rawCommands(port)) await runCommand(argv);
  const cmd = performance.now() - start;
  await waitHttp200(port);
  return { cmd, http: performance.now() - start };
}

/** `mcp deploy` without the CLI process: same code path from CliContext on, in this process. */
async function inProcessDeploy(configPath: string): Promise<{ sample: Sample; port: number }> {
  let out = "";
  const io: CliIO = { out: (t) => void (out += t), err: (t) => void (out += t) };
  const start = performance.now();
  const code = await deployCommand(new CliContext(configPath, io), SERVICE, {});
  const cmd = performance.now() - start;
  if (code !== 0) throw new Error(`in-process deploy returned ${code}:\n${out}`);
  const port = deployedPort(out);
  await waitHttp200(port);
  const http = performance.now() - start;
  await oldContainerGone();
  return { sample: { cmd, http }, port };
}

/** Median-able start-up times of a bare command (no work, just process start and exit). */
async function startupTimes(run: () => Promise<unknown>, times: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    await run();
    out.push(performance.now() - start);
  }
  return out;
}

function line(label: string, s: Stats): string {
  const f = (v: number) => v.toFixed(0).padStart(6);
  return `  ${label.padEnd(38)} median ${f(s.median)} ms   p90 ${f(s.p90)} ms   min ${f(s.min)}   max ${f(s.max)}`;
}

let agent: LiveAgent | undefined;

async function main(signal: AbortSignal): Promise<void> {
  agent = await LiveAgent.start({ node: NODE });
  signal.throwIfAborted();
  // stop-first: the same container swap as the raw `rm -f` + `run` it is
  // compared with (bench/strategies.ts compares both strategies).
  await agent.addDefinition(
    SERVICE,
    webDefinition(SERVICE, NODE, [
      'strategy = "stop-first"',
      "",
      "[[components.routes]]",
      "port = 443",
      'mode = "l7"',
    ]),
  );
  const rawPort = await freePort();

  // Warm-up: first deploy (image check, port allocation), first raw run, first in-process load.
  const first = await mcpDeploy(agent);
  signal.throwIfAborted();
  await rawDeploy(rawPort);
  signal.throwIfAborted();
  if (breakdown) await inProcessDeploy(agent.cliConfig);
  const ports = new Set<number>([first.port]);

  const mcp: Sample[] = [];
  const raw: Sample[] = [];
  const inproc: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    signal.throwIfAborted();
    const a = await mcpDeploy(agent);
    mcp.push(a.sample);
    ports.add(a.port);
    signal.throwIfAborted();
    raw.push(await rawDeploy(rawPort));
    if (breakdown) {
      signal.throwIfAborted();
      const c = await inProcessDeploy(agent.cliConfig);
      inproc.push(c.sample);
      ports.add(c.port);
    }
    process.stderr.write(
      `  run ${i + 1}/${runs}: mcp ${ms(a.sample.cmd)} ms, raw ${ms(raw[i]?.cmd ?? NaN)} ms` +
        (breakdown ? `, in-process ${ms(inproc[i]?.cmd ?? NaN)} ms` : "") +
        "\n",
    );
  }

  signal.throwIfAborted();
  const startupRuns = Math.max(5, runs);
  const cliStartup = stats(
    await startupTimes(async () => {
      const res = await runMcp(["--version"]);
      if (res.code !== 0) throw new Error(`mcp --version exited ${res.code}: ${res.stderr}`);
    }, startupRuns),
  );
  const podmanStartup = stats(
    await startupTimes(() => runCommand(["podman", "--version"]), startupRuns),
  );

  const s = {
    mcp: stats(mcp.map((x) => x.cmd)),
    raw: stats(raw.map((x) => x.cmd)),
    mcpHttp: stats(mcp.map((x) => x.http)),
    rawHttp: stats(raw.map((x) => x.http)),
    inproc: stats(inproc.map((x) => x.cmd)),
    inprocHttp: stats(inproc.map((x) => x.http)),
  };
  const ratio = s.mcp.median / s.raw.median;
  const ratioHttp = s.mcpHttp.median / s.rawHttp.median;
  const ratioNoStartup = (s.mcp.median - cliStartup.median) / s.raw.median;
  const ratioInproc = breakdown ? s.inproc.median / s.raw.median : NaN;

  const load = os.loadavg()[0] ?? NaN;
  console.log(
    `\nRedeploy of a one-route service (${TEST_IMAGE}), ${runs} runs each, alternating (1-min load ${load.toFixed(2)} on ${os.cpus().length} CPUs)`,
  );
  console.log(line("(a) mcp deploy (CLI spawn→exit)", s.mcp));
  console.log(line("(b) raw podman rm -f + run", s.raw));
  if (breakdown) console.log(line("(c) deploy in-process (no CLI spawn)", s.inproc));
  console.log("  until HTTP 200:");
  console.log(line("(a) mcp deploy", s.mcpHttp));
  console.log(line("(b) raw podman", s.rawHttp));
  if (breakdown) console.log(line("(c) in-process", s.inprocHttp));
  console.log("  bare process start-up:");
  console.log(line("mcp --version (node + imports)", cliStartup));
  console.log(line("podman --version", podmanStartup));
  const row = (label: string, value: string) => console.log(`  ${label.padEnd(38)} ${value}`);
  console.log("");
  row(
    "ratio mcp/raw (median):",
    `${ratio.toFixed(2)}  (target ≤ ${TARGET_RATIO}: ${ratio <= TARGET_RATIO ? "met" : "NOT met"})`,
  );
  row("ratio until HTTP 200:", ratioHttp.toFixed(2));
  row("ratio minus CLI start-up:", `${ratioNoStartup.toFixed(2)}  ((a − mcp --version) / b)`);
  if (breakdown) {
    row("ratio in-process/raw:", `${ratioInproc.toFixed(2)}  (c / b)`);
    row(
      `where mcp's extra ${ms(s.mcp.median - s.raw.median)} ms go:`,
      `CLI process ≈ ${ms(s.mcp.median - s.inproc.median)} ms (a − c), ` +
        `agent + TLS dial + RPC ≈ ${ms(s.inproc.median - s.raw.median)} ms (c − b)`,
    );
  }
  row(
    "host port kept across redeploys:",
    ports.size === 1 ? `yes (${[...ports].join()})` : `NO: ${[...ports].join(", ")}`,
  );

  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify({
      bench: "deploy",
      runs,
      unit: "ms",
      mcp: roundStats(s.mcp),
      raw: roundStats(s.raw),
      mcpHttp: roundStats(s.mcpHttp),
      rawHttp: roundStats(s.rawHttp),
      ...(breakdown
        ? { inProcess: roundStats(s.inproc), inProcessHttp: roundStats(s.inprocHttp) }
        : {}),
      cliStartup: roundStats(cliStartup),
      podmanStartup: roundStats(podmanStartup),
      ratio: round(ratio),
      ratioHttp: round(ratioHttp),
      ratioMinusCliStartup: round(ratioNoStartup),
      ...(breakdown ? { ratioInProcess: round(ratioInproc) } : {}),
      target: TARGET_RATIO,
      targetMet: ratio <= TARGET_RATIO,
      stablePort: ports.size === 1,
      loadavg1: Math.round(load * 100) / 100,
    }),
  );
}

await withCleanup(main, async () => {
  await runCommand(["podman", "rm", "-f", "-t", "0", "--ignore", RAW]).catch(() => undefined);
  await agent?.cleanup();
});
