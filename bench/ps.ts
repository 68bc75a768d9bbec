/**
 * `mcp ps` across nodes: two nodes asked in parallel versus one, and `mcp ps`
 * versus the raw `podman ps -a --format json` on one node.
 *
 *   node --import tsx bench/ps.ts [--runs N] [--containers N] [--prefix P]
 *
 * Two real nodes on this machine (scripts/nodes.sh: network namespaces with
 * their own Podman storage), one real agent in each, `--containers` one-route
 * services (default 20) deployed on each. Then, `--runs` times (default 15),
 * alternating, each a spawn timed until exit:
 *
 *   (a) `mcp ps` with a CLI config that lists node 1 only
 *   (b) `mcp ps` with a CLI config that lists both nodes
 *   (c) `podman ps -a --format json` inside node 1 (its storage, its namespace)
 *
 * Ratios: b/a (target ≤ 1.3: the nodes are asked in parallel) and a/c
 * (target ≤ 1.5, issue 9: `mcp ps` against typing `podman ps` by hand).
 * `mcp ps` asks the agent for a live check, so (a) contains one container
 * list from the agent's podman service plus the CLI's start-up, TLS and the
 * RPC; `mcp --version` is timed too, to show the CLI's start-up alone.
 */
import { copyFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { runCommand } from "../src/util/exec.js";
import { oneRouteDefinition, runMcp, type LiveAgent } from "../test/helpers/live-agent.js";
import {
  NODE_AGENT_PORT,
  ensureNodes,
  nodePodman,
  removeNodes,
  startNodeAgent,
  type NetnsNode,
} from "../test/helpers/netns-nodes.js";
import { intArg, ms, namePrefix, roundStats, stats, withCleanup, type Stats } from "./lib.js";

const prefix = namePrefix();
const NODE_NAMES = [`${prefix}mnb1`, `${prefix}mnb2`] as const;
const TARGET_RATIO = 1.3;
/** `mcp ps` on one node against `podman ps -a --format json` there (issue 9). */
const TARGET_RAW_RATIO = 1.5;
/** Deploys in flight at once while setting up (2 cores: more only queues). */
const DEPLOY_PARALLEL = 4;

const runs = intArg("runs", 15);
const containers = intArg("containers", 20);

const agents: LiveAgent[] = [];
let createdNodes = false;

async function timedRun(argv: () => Promise<{ check: () => void }>): Promise<number> {
  const start = performance.now();
  const { check } = await argv();
  const elapsed = performance.now() - start;
  check();
  return elapsed;
}

/** `mcp --config <config> ps`; checks the exit code and the number of rows. */
function mcpPs(config: string, rows: number) {
  return async () => {
    const res = await runMcp(["--config", config, "ps"]);
    return {
      check: () => {
        if (res.code !== 0) throw new Error(`mcp ps exited ${res.code}:\n${res.stderr}`);
        const got = res.stdout.trim().split("\n").length - 1;
        if (got !== rows) throw new Error(`mcp ps showed ${got} rows, expected ${rows}`);
      },
    };
  };
}

function podmanPs(node: NetnsNode, rows: number) {
  return async () => {
    const { stdout } = await runCommand(nodePodman(node, ["ps", "-a", "--format", "json"]));
    return {
      check: () => {
        const got = (JSON.parse(stdout) as unknown[]).length;
        if (got !== rows) throw new Error(`podman ps showed ${got} containers, expected ${rows}`);
      },
    };
  };
}

/** Runs `jobs` with at most `limit` at a time. */
async function inBatches(jobs: (() => Promise<void>)[], limit: number, signal: AbortSignal) {
  for (let i = 0; i < jobs.length; i += limit) {
    signal.throwIfAborted();
    await Promise.all(jobs.slice(i, i + limit).map((job) => job()));
  }
}

function line(label: string, s: Stats): string {
  const f = (v: number) => v.toFixed(0).padStart(5);
  return `  ${label.padEnd(44)} median ${f(s.median)} ms   p90 ${f(s.p90)} ms   min ${f(s.min)}   max ${f(s.max)}`;
}

async function main(signal: AbortSignal): Promise<void> {
  const up = await ensureNodes(2);
  createdNodes = up.created;
  const [n1, n2] = up.nodes;
  if (!n1 || !n2) throw new Error("scripts/nodes.sh did not describe two nodes");
  signal.throwIfAborted();

  const [a1, a2] = await Promise.all([
    startNodeAgent(n1, { name: NODE_NAMES[0] }),
    startNodeAgent(n2, { name: NODE_NAMES[1] }),
  ]);
  agents.push(a1, a2);
  // One config with node 1 only, one with both (node 2 with its own CA and token).
  const oneNode = path.join(a1.dir, "one-node.toml");
  await copyFile(a1.cliConfig, oneNode);
  const twoNodes = a1.cliConfig;
  const add = await runMcp([
    "--config",
    twoNodes,
    "node",
    "add",
    NODE_NAMES[1],
    `${n2.address}:${NODE_AGENT_PORT}`,
    "--ca",
    path.join(a2.dir, "ca.pem"),
    "--token-file",
    path.join(a2.dir, "token"),
  ]);
  if (add.code !== 0) throw new Error(`mcp node add failed: ${add.stderr}`);

  const deployStart = performance.now();
  const jobs: (() => Promise<void>)[] = [];
  for (const [i, node] of NODE_NAMES.entries()) {
    for (let c = 1; c <= containers; c++) {
      const name = `${prefix}mnb${i + 1}-${String(c).padStart(3, "0")}`;
      await a1.addDefinition(name, oneRouteDefinition(name, node));
      jobs.push(async () => {
        const res = await runMcp(["--config", twoNodes, "deploy", name]);
        if (res.code !== 0) throw new Error(`deploy ${name} exited ${res.code}: ${res.stderr}`);
      });
    }
  }
  await inBatches(jobs, DEPLOY_PARALLEL, signal);
  process.stderr.write(
    `  deployed ${jobs.length} services on 2 nodes in ${ms((performance.now() - deployStart) / 1000)} s\n`,
  );

  // Warm-up: first CLI runs, first podman ps in each store.
  await timedRun(mcpPs(oneNode, containers));
  await timedRun(mcpPs(twoNodes, 2 * containers));
  await timedRun(podmanPs(n1, containers));

  const one: number[] = [];
  const two: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < runs; i++) {
    signal.throwIfAborted();
    one.push(await timedRun(mcpPs(oneNode, containers)));
    two.push(await timedRun(mcpPs(twoNodes, 2 * containers)));
    raw.push(await timedRun(podmanPs(n1, containers)));
    process.stderr.write(
      `  run ${i + 1}/${runs}: one node ${ms(one[i] ?? NaN)} ms, two nodes ${ms(two[i] ?? NaN)} ms, podman ps ${ms(raw[i] ?? NaN)} ms\n`,
    );
  }
  const startup: number[] = [];
  for (let i = 0; i < Math.max(5, Math.min(runs, 10)); i++) {
    const start = performance.now();
    const res = await runMcp(["--version"]);
    startup.push(performance.now() - start);
    if (res.code !== 0) throw new Error(`mcp --version exited ${res.code}`);
  }

  const s = { one: stats(one), two: stats(two), raw: stats(raw), startup: stats(startup) };
  const ratioNodes = s.two.median / s.one.median;
  const ratioRaw = s.one.median / s.raw.median;
  const ratioRawNoStartup = (s.one.median - s.startup.median) / s.raw.median;
  const load = os.loadavg()[0] ?? NaN;

  console.log(
    `\nmcp ps with ${containers} containers per node, ${runs} runs each, alternating (1-min load ${load.toFixed(2)} on ${os.cpus().length} CPUs)`,
  );
  console.log(line("(a) mcp ps, 1 node", s.one));
  console.log(line("(b) mcp ps, 2 nodes (in parallel)", s.two));
  console.log(line("(c) podman ps -a --format json, 1 node", s.raw));
  console.log(line("mcp --version (CLI start-up)", s.startup));
  const row = (label: string, value: string) => console.log(`  ${label.padEnd(44)} ${value}`);
  console.log("");
  row(
    "ratio 2 nodes / 1 node (median):",
    `${ratioNodes.toFixed(2)}  (target ≤ ${TARGET_RATIO}: ${ratioNodes <= TARGET_RATIO ? "met" : "NOT met"})`,
  );
  row(
    "ratio mcp ps / podman ps, a/c (median):",
    `${ratioRaw.toFixed(2)}  (target ≤ ${TARGET_RAW_RATIO}: ${ratioRaw <= TARGET_RAW_RATIO ? "met" : "NOT met"})`,
  );
  row("ratio minus CLI start-up:", `${ratioRawNoStartup.toFixed(2)}  ((a − mcp --version) / c)`);

  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify({
      bench: "ps",
      runs,
      containersPerNode: containers,
      unit: "ms",
      oneNode: roundStats(s.one),
      twoNodes: roundStats(s.two),
      podmanPs: roundStats(s.raw),
      cliStartup: roundStats(s.startup),
      ratioTwoNodesToOne: round(ratioNodes),
      ratioMcpToPodman: round(ratioRaw),
      ratioMcpToPodmanMinusCliStartup: round(ratioRawNoStartup),
      target: TARGET_RATIO,
      targetMet: ratioNodes <= TARGET_RATIO,
      targetMcpToPodman: TARGET_RAW_RATIO,
      targetMcpToPodmanMet: ratioRaw <= TARGET_RAW_RATIO,
      loadavg1: Math.round(load * 100) / 100,
    }),
  );
}

await withCleanup(main, async () => {
  await Promise.all(agents.map((a) => a.cleanup()));
  if (createdNodes) await removeNodes();
});
