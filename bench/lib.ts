/**
 * Small helpers shared by the benchmarks: statistics, a fine-grained HTTP
 * readiness probe, /proc memory and CPU readings, argument parsing and
 * cleanup on Ctrl-C. The agent itself comes from test/helpers/live-agent.ts,
 * like in the integration tests.
 */
import http from "node:http";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { runCommand } from "../src/util/exec.js";
import { TEST_IMAGE, oneRouteDefinition, type LiveAgent } from "../test/helpers/live-agent.js";

export interface Stats {
  n: number;
  min: number;
  median: number;
  p90: number;
  max: number;
}

/** Median (mean of the middle two for an even count) and nearest-rank p90. */
export function stats(values: number[]): Stats {
  if (values.length === 0) return { n: 0, min: NaN, median: NaN, p90: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (i: number) => sorted[Math.min(n - 1, Math.max(0, i))] ?? NaN;
  const median = n % 2 === 1 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
  return { n, min: at(0), median, p90: at(Math.ceil(0.9 * n) - 1), max: at(n - 1) };
}

/** Nearest-rank percentile `p` (0–100) of `values`, e.g. 99 for p99 (NaN when empty). */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? NaN;
}

/** Milliseconds with one decimal, for the report and the JSON line. */
export function ms(value: number): number {
  return Math.round(value * 10) / 10;
}

export function roundStats(s: Stats): Stats {
  return { n: s.n, min: ms(s.min), median: ms(s.median), p90: ms(s.p90), max: ms(s.max) };
}

/** Runs `fn` and returns its result with the elapsed wall time in ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; elapsed: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, elapsed: performance.now() - start };
}

/** Waits `millis` ms; rejects at once when `signal` aborts (Ctrl-C). */
export function sleep(millis: number, signal?: AbortSignal): Promise<void> {
  return delay(millis, undefined, signal ? { signal } : {});
}

/** One GET on a fresh connection (no keep-alive: the old container's socket must not be reused). */
export function getStatus(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: urlPath, agent: false, timeout: 1000 },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * Polls `http://127.0.0.1:<port><path>` every `intervalMs` until it answers
 * 200 (the helper's httpGet polls every 100 ms, too coarse to time a start).
 */
export async function waitHttp200(
  port: number,
  urlPath = "/health",
  timeoutMs = 15_000,
  intervalMs = 5,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "no attempt";
  while (performance.now() < deadline) {
    try {
      const status = await getStatus(port, urlPath);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(intervalMs);
  }
  throw new Error(`no HTTP 200 on 127.0.0.1:${port}${urlPath} within ${timeoutMs} ms (${last})`);
}

/** A `VmXxx:` figure from /proc/<pid>/status, in MB (1 MB = 1024 kB, as `ps` shows). */
export async function procMemoryMB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

let clockTicks: number | undefined;

/** CPU time (utime + stime) the process `pid` used so far, in seconds (/proc/<pid>/stat). */
export async function procCpuSeconds(pid: number): Promise<number> {
  clockTicks ??= Number((await runCommand(["getconf", "CLK_TCK"])).stdout.trim()) || 100;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces and parentheses: count from its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the whole line (utime, stime), 3 being the first after the name.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`no utime/stime in /proc/${pid}/stat`);
  }
  return (utime + stime) / clockTicks;
}

/** The 1-minute load average, rounded to 2 decimals, for the report and the JSON line. */
export function loadavg1(): number {
  return Math.round((os.loadavg()[0] ?? NaN) * 100) / 100;
}

/**
 * The argv of a raw `podman run -d` of the test image as `name`, on host port
 * `port` (`-p 127.0.0.1:port:port`, `PORT=port`), labelled `mcp.node=<node>`
 * so that LiveAgent.cleanup sweeps it; `extra` goes before the image.
 */
export function rawRunArgv(
  name: string,
  node: string,
  port: number,
  extra: string[] = [],
): string[] {
  return [
    "podman",
    "run",
    "-d",
    "--name",
    name,
    "--label",
    `mcp.node=${node}`,
    "-p",
    `127.0.0.1:${port}:${port}`,
    "-e",
    `PORT=${port}`,
    ...extra,
    TEST_IMAGE,
  ];
}

/** `PORT=12345` from `mcp deploy` output (`  web: ok  PORT=12345`). */
export function deployedPort(stdout: string): number {
  const match = /\bPORT=(\d+)/.exec(stdout);
  if (!match?.[1]) throw new Error(`no PORT= in deploy output:\n${stdout}`);
  return Number(match[1]);
}

/** `--name value` or `--name=value` as a positive integer, else `fallback`. */
export function intArg(name: string, fallback: number): number {
  const raw = rawArg(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`--${name} needs a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** `--name value` or `--name=value` as a string, else `fallback`. */
export function stringArg(name: string, fallback: string): string {
  return rawArg(name) ?? fallback;
}

/** The value of the last `--name value` or `--name=value`, if any. */
function rawArg(name: string): string | undefined {
  const argv = process.argv.slice(2);
  let raw: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === `--${name}`) raw = argv[i + 1];
    else if (arg.startsWith(`--${name}=`)) raw = arg.slice(name.length + 3);
  }
  return raw;
}

/**
 * `--prefix P`: put in front of every node and service name a bench makes,
 * so that two people's runs on one machine never share a name (and neither
 * one's cleanup, which goes by the node label, touches the other's).
 */
export function namePrefix(): string {
  const prefix = stringArg("prefix", "");
  if (prefix !== "" && !/^[a-z][a-z0-9-]*$/.test(prefix)) {
    throw new Error(`--prefix needs lowercase letters, digits and dashes, got ${prefix}`);
  }
  return prefix;
}

export function flagArg(name: string): boolean {
  return process.argv.slice(2).includes(`--${name}`);
}

/**
 * Runs `body`, then `cleanup` whatever happens: on success, on a thrown error
 * (exit 1) and on Ctrl-C / SIGTERM. The first signal aborts `signal`: the body
 * checks it between steps (so it starts no container after cleanup began),
 * then cleanup runs and the process exits 130 / 143. A second signal cleans up
 * and exits at once.
 */
export async function withCleanup(
  body: (signal: AbortSignal) => Promise<void>,
  cleanup: () => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  let cleaned: Promise<void> | undefined;
  const runCleanup = () => {
    cleaned ??= cleanup().catch((err: unknown) => {
      console.error(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    return cleaned;
  };
  const exitCode = (signal: NodeJS.Signals) => (signal === "SIGINT" ? 130 : 143);
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      console.error(`\n${signal} again: cleaning up now`);
      void runCleanup().then(() => process.exit(exitCode(signal)));
      return;
    }
    console.error(`\n${signal}: stopping after the current step, then cleaning up…`);
    process.exitCode = exitCode(signal);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await body(controller.signal);
  } catch (err) {
    if (!controller.signal.aborted) {
      console.error(
        `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      process.exitCode = 1;
    }
  } finally {
    await runCleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * Latencies judged against a target on the median over all runs, where a
 * run not seen within the timeout counts as longer than any seen (the
 * median stays honest when some are missing).
 */
export interface LatencyVerdict {
  /** The runs that were seen. */
  seen: Stats;
  timeouts: number;
  /** Median over all runs / target (Infinity when most were not seen). */
  ratio: number;
  met: boolean;
  /** The JSON line's fields. */
  json: {
    timeouts: number;
    medianAllMs: number | null;
    ratioToTarget: number | null;
    target: number;
    targetMet: boolean;
  };
}

export function judgeLatency(runs: (number | undefined)[], targetMs: number): LatencyVerdict {
  const seen = runs.flatMap((v) => (v === undefined ? [] : [v]));
  const timeouts = runs.length - seen.length;
  const all = stats(runs.map((v) => v ?? Infinity));
  const ratio = all.median / targetMs;
  const met = all.median <= targetMs;
  return {
    seen: stats(seen),
    timeouts,
    ratio,
    met,
    json: {
      timeouts,
      medianAllMs: Number.isFinite(all.median) ? ms(all.median) : null,
      ratioToTarget: Number.isFinite(ratio) ? Math.round(ratio * 100) / 100 : null,
      target: targetMs,
      targetMet: met,
    },
  };
}

/** `812 ms`, `—` for no figure. */
export function msText(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(0)} ms` : "—";
}

/** One aligned line of a report. */
export function reportRow(label: string, value: string): void {
  console.log(`  ${label.padEnd(40)} ${value}`);
}

/** The report's lines for a verdict: the seen runs, the timeouts, the ratio to the target. */
export function reportLatency(
  v: LatencyVerdict,
  opts: { seenLabel: string; targetMs: number; timeoutMs: number },
): void {
  const s = v.seen;
  reportRow(
    opts.seenLabel,
    s.n > 0
      ? `median ${msText(s.median)}   p90 ${msText(s.p90)}   min ${msText(s.min)}   max ${msText(s.max)}`
      : "never",
  );
  reportRow(
    "not seen within the timeout:",
    `${v.timeouts} of ${s.n + v.timeouts} (timeout ${opts.timeoutMs / 1000} s)`,
  );
  reportRow(
    `median over all runs / ${opts.targetMs} ms target:`,
    `${Number.isFinite(v.ratio) ? v.ratio.toFixed(2) : `> ${(opts.timeoutMs / opts.targetMs).toFixed(0)}`}  (target ≤ 1: ${v.met ? "met" : "NOT met"})`,
  );
}

/**
 * Deploys a one-route service with no health check (a check would find a
 * removed container too, at its own pace: the drift benches time the drift
 * path alone); throws with the CLI's output when the deploy fails.
 */
export async function deployUnchecked(
  live: LiveAgent,
  service: string,
  node: string,
): Promise<void> {
  await live.addDefinition(
    service,
    oneRouteDefinition(service, node, TEST_IMAGE, ["", "[components.health]", 'type = "none"']),
  );
  const deployed = await live.cli(["deploy", service]);
  if (deployed.code !== 0) {
    throw new Error(`mcp deploy exited ${deployed.code}:\n${deployed.stdout}${deployed.stderr}`);
  }
}
