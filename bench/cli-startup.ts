/**
 * The CLI's start-up: the same commands with the V8 compile cache
 * (src/cli/compile-cache.ts) and without it (`MCP_CLI_CACHE=off`, as before
 * it), against a bare `node -e 0`.
 *
 *   node --import tsx bench/cli-startup.ts [--runs N] [--prefix P]
 *
 * One real agent on loopback with one one-route service. Each run, in
 * alternation, spawns and times until exit: `mcp --version`, `mcp ps` and
 * `mcp status <service>`, each with the cache (in a fresh cache directory,
 * recorded by one untimed run of each command first) and without, and
 * `node -e 0`. The ratio cached/uncached is the cache's effect; the cached
 * figure minus `node -e 0` is what MCP itself still costs per command.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCommand } from "../src/util/exec.js";
import { LiveAgent, oneRouteDefinition, runMcp } from "../test/helpers/live-agent.js";
import { intArg, loadavg1, ms, namePrefix, roundStats, stats, timed, withCleanup } from "./lib.js";

const prefix = namePrefix();
const NODE = `${prefix}benchcli`;
const SERVICE = `${prefix}clistart`;
const runs = intArg("runs", 21);

let agent: LiveAgent | undefined;
let cacheHome: string | undefined;

async function main(signal: AbortSignal): Promise<void> {
  agent = await LiveAgent.start({ node: NODE });
  const live = agent;
  await live.addDefinition(SERVICE, oneRouteDefinition(SERVICE, NODE));
  const deployed = await runMcp(["--config", live.cliConfig, "deploy", SERVICE]);
  if (deployed.code !== 0) throw new Error(`deploy failed: ${deployed.stderr}`);
  cacheHome = await mkdtemp(path.join(os.tmpdir(), "mcp-bench-cli-cache-"));

  const commands: Record<string, string[]> = {
    "mcp --version": ["--version"],
    "mcp ps": ["--config", live.cliConfig, "ps"],
    [`mcp status ${SERVICE}`]: ["--config", live.cliConfig, "status", SERVICE],
  };
  const cached = { XDG_CACHE_HOME: cacheHome };
  const uncached = { MCP_CLI_CACHE: "off" };
  const run = async (args: string[], env: NodeJS.ProcessEnv) => {
    const { value, elapsed } = await timed(() => runMcp(args, { env }));
    if (value.code !== 0)
      throw new Error(`mcp ${args.join(" ")} exited ${value.code}: ${value.stderr}`);
    return elapsed;
  };
  // Untimed: the first run of each command records the cache.
  for (const args of Object.values(commands)) await run(args, cached);

  const times = new Map<string, number[]>();
  const add = (label: string, t: number) => times.set(label, [...(times.get(label) ?? []), t]);
  const load: number[] = [];
  for (let i = 0; i < runs; i++) {
    signal.throwIfAborted();
    load.push(loadavg1());
    for (const [label, args] of Object.entries(commands)) {
      add(`${label} (cache)`, await run(args, cached));
      add(`${label} (no cache)`, await run(args, uncached));
    }
    add("node -e 0", (await timed(() => runCommand([process.execPath, "-e", "0"]))).elapsed);
  }

  const med = (label: string) => stats(times.get(label) ?? []).median;
  console.log(
    `CLI start-up, ${runs} alternating runs (load ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)})`,
  );
  for (const [label, values] of times) {
    const s = roundStats(stats(values));
    console.log(
      `  ${label.padEnd(34)} median ${String(s.median).padStart(6)} ms   p90 ${String(s.p90).padStart(6)} ms`,
    );
  }
  const result: Record<string, number> = { node: ms(med("node -e 0")) };
  for (const label of Object.keys(commands)) {
    const ratio = med(`${label} (cache)`) / med(`${label} (no cache)`);
    const own = med(`${label} (cache)`) - med("node -e 0");
    console.log(
      `  ${label.padEnd(34)} cache/no cache ${ratio.toFixed(2)}   beyond bare node ${own.toFixed(0)} ms`,
    );
    result[label] = Math.round(ratio * 100) / 100;
  }
  console.log(JSON.stringify({ bench: "cli-startup", runs, ...result }));
}

await withCleanup(main, async () => {
  await agent?.cleanup();
  if (cacheHome) await rm(cacheHome, { recursive: true, force: true });
});
