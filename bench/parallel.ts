/**
 * 100 parallel deploys: `mcp deploy` of N one-route services at once against
 * one real agent, beside N parallel raw `podman run -d` of the same
 * containers (fixed free host ports) — the load an operator's script or a CI
 * job might put on a node.
 *
 *   node --import tsx bench/parallel.ts [--services N] [--prefix P]
 *
 * Reports the wall time of each side, the ratio, how many CLIs answered with
 * success, and whether every service got a distinct host port.
 */
import os from "node:os";
import { performance } from "node:perf_hooks";
import { runCommand } from "../src/util/exec.js";
import { freePort } from "../test/helpers/agent.js";
import { LiveAgent, oneRouteDefinition } from "../test/helpers/live-agent.js";
import { deployedPort, intArg, ms, namePrefix, rawRunArgv, withCleanup } from "./lib.js";

const prefix = namePrefix();
const NODE = `${prefix}benchpar`;
const count = intArg("services", 100);
const names = Array.from({ length: count }, (_, i) => `${prefix}par-${String(i).padStart(3, "0")}`);

async function rawRun(name: string, port: number): Promise<void> {
  await runCommand(rawRunArgv(`${name}-raw`, NODE, port));
}

let agent: LiveAgent | undefined;

await withCleanup(
  async (signal) => {
    agent = await LiveAgent.start({ node: NODE });
    for (const name of names) await agent.addDefinition(name, oneRouteDefinition(name, NODE));
    const load = os.loadavg()[0]?.toFixed(2);

    const mcpStart = performance.now();
    const runs = await Promise.all(names.map((name) => agent!.cli(["deploy", name])));
    const mcpWall = performance.now() - mcpStart;
    signal.throwIfAborted();
    const answered = runs.filter((r) => r.code === 0);
    const ports = answered.map((r) => deployedPort(r.stdout));
    const distinct = new Set(ports).size;

    const rawPorts = await Promise.all(names.map(() => freePort()));
    const rawStart = performance.now();
    const rawResults = await Promise.allSettled(
      names.map((name, i) => rawRun(name, rawPorts[i] ?? 0)),
    );
    const rawWall = performance.now() - rawStart;
    const rawOk = rawResults.filter((r) => r.status === "fulfilled").length;

    console.log(`parallel deploys: ${count} services, load ${load}`);
    console.log(
      `  mcp deploy ×${count} in parallel: ${ms(mcpWall)} ms wall, ${answered.length} ok, ${distinct} distinct host ports`,
    );
    console.log(`  podman run ×${count} in parallel: ${ms(rawWall)} ms wall, ${rawOk} ok`);
    console.log(`  ratio mcp/raw: ${(mcpWall / rawWall).toFixed(2)}`);
    for (const r of runs.filter((x) => x.code !== 0).slice(0, 3)) {
      console.log(`  failed (exit ${r.code}): ${r.stderr.trim().split("\n")[0]}`);
    }
    console.log(
      JSON.stringify({
        bench: "parallel",
        services: count,
        mcpWallMs: ms(mcpWall),
        rawWallMs: ms(rawWall),
        ratio: Math.round((mcpWall / rawWall) * 100) / 100,
        ok: answered.length,
        distinctPorts: distinct,
        rawOk,
        load: Number(load),
      }),
    );
    if (answered.length !== count || distinct !== count) process.exitCode = 1;
  },
  async () => {
    await agent?.cleanup();
  },
);
