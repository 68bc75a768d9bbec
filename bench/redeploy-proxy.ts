/**
 * Requests failed during a redeploy under load, behind the agent's proxy
 * (issue 8): a real agent with its own HAProxy, one L7 service with an http
 * check, a client sending requests through the proxy over HTTPS (verified
 * against the route CA) all the time, and redeploys of a new version three
 * ways, alternating in one run:
 *
 *  - `start-first`: the swap behind the proxy (steps/swap.ts); target 0 failed;
 *  - `stop-first`: in place, the old container stops before the new one
 *    runs on the same host port (HAProxy retries a refused connect 1 s
 *    later, so a short gap mostly delays requests; a longer one answers 503);
 *  - by hand: what the proxy sees when an operator replaces the agent's
 *    container in place, `podman rm -f` + `podman run` of the same container
 *    (name, labels, host port, env) on the same host port, while HAProxy
 *    keeps pointing at that port.
 *
 *   node --import tsx bench/redeploy-proxy.ts [--runs N] [--loops N]
 *
 * The client: `--loops` (4) keep-alive loops, each one request at a time
 * with a 10 ms pause, plus one loop on a fresh connection (new TCP + TLS)
 * per request every 20 ms; 10 s client timeout, longer than HAProxy holds a
 * request. A request fails when it gets no 200 (a 503 or 502 from the proxy,
 * a reset, a timeout). Each redeploy's window runs from the deploy's start
 * to 300 ms after its end and until every request it held is answered; a
 * request belongs to the window it was sent in. The gap is the longest time
 * between two 200 answers. Afterwards the agent is restarted (SIGTERM, its
 * HAProxy adopted) with the default drain (2 s) and one more start-first
 * redeploy is timed, for reference.
 */
import https from "node:https";
import { readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parse, stringify } from "smol-toml";
import { runCommand } from "../src/util/exec.js";
import { freePort } from "../test/helpers/agent.js";
import {
  LiveAgent,
  TEST_IMAGE,
  parseEnvPage,
  l7Definition,
  type NodeServicesJson,
} from "../test/helpers/live-agent.js";
import {
  intArg,
  ms,
  rawRunArgv,
  roundStats,
  sleep,
  stats,
  timed,
  waitHttp200,
  withCleanup,
} from "./lib.js";

const NODE = "bench-rp";
const SERVICE = "benchrp";
/** The component's container (`<service>-<component>`). */
const CONTAINER = `${SERVICE}-web`;
const DOMAIN = "svc.mcp.test";
const HOST = `${SERVICE}.${DOMAIN}`;
const DRAIN = "500ms";
const DEFAULT_DRAIN = "2s";
/** Pause of each keep-alive loop between its requests, and of the fresh-connection loop. */
const PACE_MS = 10;
const FRESH_PACE_MS = 20;
/** Longer than HAProxy holds a request (3 connect retries, 1 s apart): its own answer counts. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A window goes on this long after the deploy, so that a late failure still counts. */
const TAIL_MS = 300;
/** Quiet time between two windows (requests sent then count as "between"). */
const SETTLE_MS = 200;
const MIN_RATE = 50;
/** A request this slow that still got 200 was held (HAProxy retries a refused connect after 1 s). */
const SLOW_MS = 500;
const RELEASES = ["green", "blue"] as const;

const KINDS = ["start-first", "stop-first", "by-hand"] as const;
type Kind = (typeof KINDS)[number];

const runs = intArg("runs", 5);
const loops = intArg("loops", 4);

// ---------------------------------------------------------------- load

interface Request {
  sent: number;
  done: number;
  /** HTTP status, 0 when there was no answer (refused, reset, timed out). */
  status: number;
  fresh: boolean;
  error?: string;
}

/** Keep-alive loops and one fresh-connection loop through the proxy, until stop(). */
class Load {
  readonly requests: Request[] = [];
  readonly started = performance.now();
  private running = true;
  /** Send times of the requests in flight. */
  private readonly inflight = new Set<{ sent: number }>();
  private lastOk = 0;
  private readonly agents: https.Agent[] = [];
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly listener: number,
    private readonly ca: string,
    keepAliveLoops: number,
  ) {
    for (let i = 0; i < keepAliveLoops; i++) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop(agent, PACE_MS));
    }
    this.loops.push(this.loop(false, FRESH_PACE_MS));
  }

  private once(agent: https.Agent | false): Promise<Request> {
    const sent = performance.now();
    return new Promise((resolve) => {
      const end = (status: number, error?: string) =>
        resolve({
          sent,
          done: performance.now(),
          status,
          fresh: agent === false,
          ...(error ? { error } : {}),
        });
      const req = https.get(
        {
          host: "127.0.0.1",
          port: this.listener,
          path: "/health",
          servername: HOST,
          headers: { host: HOST },
          ca: this.ca,
          agent,
        },
        (res) => {
          res.resume();
          res.on("end", () => end(res.statusCode ?? 0));
          res.on("error", (err) => end(0, err.message));
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error("timed out")));
      req.on("error", (err) => end(0, (err as NodeJS.ErrnoException).code ?? err.message));
    });
  }

  private async loop(agent: https.Agent | false, pace: number): Promise<void> {
    while (this.running) {
      const mark = { sent: performance.now() };
      this.inflight.add(mark);
      const request = await this.once(agent);
      this.inflight.delete(mark);
      this.requests.push(request);
      if (request.status === 200) this.lastOk = request.done;
      await sleep(pace);
    }
  }

  /**
   * Waits until no request sent before `since` is still in flight (HAProxy
   * holds some for its connect retry) and one sent later got 200: the next
   * window starts with every loop running again.
   */
  async settled(since: number, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const oldest = () => Math.min(Infinity, ...[...this.inflight].map((m) => m.sent));
    while (oldest() < since || this.lastOk < since) {
      if (performance.now() > deadline)
        throw new Error("the load did not recover after a redeploy");
      await sleep(5);
    }
  }

  /** Stops every loop (after its request in flight) and closes the connections. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const agent of this.agents) agent.destroy();
  }
}

// ---------------------------------------------------------------- redeploys

interface Window {
  kind: Kind | "agent restart" | "start-first (drain 2s)";
  start: number;
  end: number;
  wall: number;
}

function definition(listener: number, strategy: "start-first" | "stop-first", release: string) {
  const lines = [`strategy = "${strategy}"`, `env = ["RELEASE=${release}"]`];
  return l7Definition(SERVICE, NODE, listener, { lines, deadline: "10s" });
}

async function mcpDeploy(agent: LiveAgent, listener: number, kind: Kind, release: string) {
  const strategy = kind === "stop-first" ? "stop-first" : "start-first";
  await agent.addDefinition(SERVICE, definition(listener, strategy, release));
  return async () => {
    const res = await agent.cli(["deploy", SERVICE]);
    if (res.code !== 0)
      throw new Error(`mcp deploy exited ${res.code}:\n${res.stdout}${res.stderr}`);
  };
}

/** The route's current host port (it moves within its pair on a swap). */
async function hostPort(agent: LiveAgent): Promise<number> {
  const res = await agent.cli(["list", "--json"]);
  if (res.code !== 0) throw new Error(`mcp list exited ${res.code}:\n${res.stderr}`);
  const nodes = JSON.parse(res.stdout) as NodeServicesJson[];
  const svc = nodes.flatMap((n) => n.services).find((s) => s.name === SERVICE);
  const port = svc?.components[0]?.routes[0]?.hostPort ?? 0;
  if (port <= 0) throw new Error(`${SERVICE} has no host port`);
  return port;
}

/**
 * The in-place replacement typed by hand: `podman run` of the agent's
 * container as an operator would type it (its name, labels, host port,
 * PORT, the new RELEASE); prepared before the window, so only `rm -f`,
 * `run` and the wait count.
 */
async function handDeploy(agent: LiveAgent, release: string) {
  const port = await hostPort(agent);
  const run = rawRunArgv(CONTAINER, NODE, port, [
    ...["--label", `mcp.service=${SERVICE}`, "--label", "mcp.component=web"],
    ...["-e", `RELEASE=${release}`],
  ]);
  return async () => {
    await runCommand(["podman", "rm", "-f", "-t", "10", CONTAINER]);
    await runCommand(run);
    await waitHttp200(port);
  };
}

/** The page through the proxy must show `release` (a fresh HTTPS request). */
async function servedRelease(listener: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: "127.0.0.1",
        port: listener,
        path: "/",
        servername: HOST,
        headers: { host: HOST },
        ca,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(parseEnvPage(body).RELEASE ?? "")
            : reject(new Error(`GET / through the proxy: HTTP ${res.statusCode}`)),
        );
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

/**
 * Runs `step` as one window (until TAIL_MS after it, and until the requests
 * it held are answered) and checks the release the proxy serves afterwards. */
async function windowed(
  load: Load,
  windows: Window[],
  kind: Window["kind"],
  step: () => Promise<void>,
  check?: { listener: number; ca: string; release: string },
): Promise<Window> {
  const start = performance.now();
  const { elapsed } = await timed(step);
  await sleep(TAIL_MS);
  await load.settled(start + elapsed);
  const w: Window = { kind, start, end: performance.now(), wall: elapsed };
  windows.push(w);
  if (check) {
    const served = await servedRelease(check.listener, check.ca);
    if (served !== check.release)
      throw new Error(`${kind}: the proxy serves ${served}, not ${check.release}`);
  }
  await sleep(SETTLE_MS);
  return w;
}

// ---------------------------------------------------------------- figures

interface Tally {
  requests: number;
  failed: number;
  s503: number;
  otherStatus: number;
  connErrors: number;
  freshFailed: number;
  /** Requests answered 200 only after SLOW_MS or more (held by HAProxy's connect retries). */
  slow: number;
  /** The longest request, in ms. */
  slowest: number;
  /** Failures by kind: `503`, `ECONNRESET`, `timed out`… */
  kinds: Record<string, number>;
  /** When each failed request was sent, in ms after the deploy started. */
  at: number[];
  /** Longest time between two 200 answers, in ms. */
  gap: number;
}

function tally(all: Request[], oks: number[], from: number, to: number): Tally {
  const mine = all.filter((r) => r.sent >= from && r.sent < to);
  const failed = mine.filter((r) => r.status !== 200);
  // 200 answers in the window, and the last one before it (where the gap starts).
  let i = oks.findIndex((t) => t >= from);
  if (i < 0) i = oks.length;
  let gap = 0;
  let prev = i > 0 ? (oks[i - 1] ?? from) : from;
  for (; i < oks.length && (oks[i] ?? Infinity) < to; i++) {
    const t = oks[i] ?? prev;
    gap = Math.max(gap, t - prev);
    prev = t;
  }
  // A stretch that runs past the window ends at the next 200.
  gap = Math.max(gap, (oks[i] ?? to) - prev);
  return {
    requests: mine.length,
    failed: failed.length,
    s503: failed.filter((r) => r.status === 503).length,
    otherStatus: failed.filter((r) => r.status !== 503 && r.status !== 0).length,
    connErrors: failed.filter((r) => r.status === 0).length,
    freshFailed: failed.filter((r) => r.fresh).length,
    slow: mine.filter((r) => r.status === 200 && r.done - r.sent >= SLOW_MS).length,
    slowest: Math.max(0, ...mine.map((r) => r.done - r.sent)),
    kinds: countKinds(failed),
    at: failed.map((r) => Math.round(r.sent - from)),
    gap,
  };
}

function countKinds(failed: Request[]): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const r of failed) {
    const k = r.status === 0 ? (r.error ?? "no answer") : String(r.status);
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  return kinds;
}

function kindsText(kinds: Record<string, number>): string {
  const parts = Object.entries(kinds).map(([k, n]) => `${k} ×${n}`);
  return parts.length > 0 ? parts.join(", ") : "none";
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sec = (v: number) => (v / 1000).toFixed(2);

function summary(kind: string, ws: Window[], ts: Tally[]) {
  const failed = stats(ts.map((t) => t.failed));
  const gap = stats(ts.map((t) => t.gap));
  const wall = stats(ws.map((w) => w.wall));
  const kinds: Record<string, number> = {};
  for (const t of ts) for (const [k, n] of Object.entries(t.kinds)) kinds[k] = (kinds[k] ?? 0) + n;
  const at = ts.flatMap((t) => t.at);
  const out = {
    redeploys: ws.length,
    failedMedian: failed.median,
    failedMax: failed.max,
    failedTotal: sum(ts.map((t) => t.failed)),
    requests: sum(ts.map((t) => t.requests)),
    s503: sum(ts.map((t) => t.s503)),
    otherStatus: sum(ts.map((t) => t.otherStatus)),
    connErrors: sum(ts.map((t) => t.connErrors)),
    freshFailed: sum(ts.map((t) => t.freshFailed)),
    failures: kinds,
    slow: sum(ts.map((t) => t.slow)),
    slowestMs: ms(Math.max(0, ...ts.map((t) => t.slowest))),
    gapMs: roundStats(gap),
    wallMs: roundStats(wall),
  };
  console.log(
    `${kind.padEnd(11)} failed per redeploy median ${out.failedMedian} max ${out.failedMax} total ${out.failedTotal}/${out.requests} ` +
      `(503: ${out.s503}, other status: ${out.otherStatus}, connection errors: ${out.connErrors}; on fresh connections: ${out.freshFailed}); ` +
      `longest gap without a 200 median ${ms(gap.median)} ms max ${ms(gap.max)} ms; deploy wall median ${sec(wall.median)} s (max ${sec(wall.max)} s)`,
  );
  console.log(
    `${"".padEnd(11)} failures: ${kindsText(kinds)}${at.length > 0 ? ` (sent at +${at.join(", +")} ms)` : ""}; answered 200 after ≥ ${SLOW_MS} ms: ${out.slow} (slowest request ${out.slowestMs} ms)`,
  );
  console.log(
    `${"".padEnd(11)} per redeploy: failed ${ts.map((t) => t.failed).join(", ")}; gaps ${ts.map((t) => ms(t.gap).toFixed(0)).join(", ")} ms; walls ${ws.map((w) => ms(w.wall).toFixed(0)).join(", ")} ms`,
  );
  return out;
}

// ---------------------------------------------------------------- main

let agent: LiveAgent | undefined;
let load: Load | undefined;

await withCleanup(
  async (signal) => {
    agent = await LiveAgent.start({
      node: NODE,
      init: { proxy: true },
      config: { proxy: { http_port: 0, drain: DRAIN } },
    });
    const ca = await readFile(path.join(agent.dir, "proxy", "route-ca.crt"), "utf8");
    const listener = await freePort();

    // The first deploy (port pair, certificate), outside the load.
    let release: string = RELEASES[0];
    await (
      await mcpDeploy(agent, listener, "stop-first", release)
    )();
    const served = await servedRelease(listener, ca);
    if (served !== release) throw new Error(`first deploy: the proxy serves ${served}`);

    const traffic = new Load(listener, ca, loops);
    load = traffic;
    const windows: Window[] = [];
    await sleep(500, signal);
    for (let round = 0; round < runs; round++) {
      for (let j = 0; j < KINDS.length; j++) {
        signal.throwIfAborted();
        // Which kind goes first rotates from round to round.
        const kind = KINDS[(round + j) % KINDS.length] ?? "start-first";
        release = release === RELEASES[0] ? RELEASES[1] : RELEASES[0];
        const step =
          kind === "by-hand"
            ? await handDeploy(agent, release)
            : await mcpDeploy(agent, listener, kind, release);
        const w = await windowed(traffic, windows, kind, step, { listener, ca, release });
        process.stderr.write(`  round ${round + 1}/${runs} ${kind}: ${ms(w.wall)} ms\n`);
      }
    }

    // For reference: the default drain, after an agent restart (HAProxy is adopted).
    signal.throwIfAborted();
    const live = agent;
    await windowed(traffic, windows, "agent restart", async () => {
      await live.kill("SIGTERM");
      const config = parse(await readFile(live.agentConfig, "utf8")) as Record<
        string,
        Record<string, unknown>
      >;
      config.proxy = { ...config.proxy, drain: DEFAULT_DRAIN };
      await writeFile(live.agentConfig, stringify(config));
      await live.launch();
    });
    signal.throwIfAborted();
    release = release === RELEASES[0] ? RELEASES[1] : RELEASES[0];
    const slow = await windowed(
      traffic,
      windows,
      "start-first (drain 2s)",
      await mcpDeploy(agent, listener, "start-first", release),
      { listener, ca, release },
    );
    process.stderr.write(`  start-first with drain ${DEFAULT_DRAIN}: ${ms(slow.wall)} ms\n`);

    await traffic.stop();
    const requests = traffic.requests;
    const duration = (Math.max(...requests.map((r) => r.done)) - traffic.started) / 1000;
    const oks = requests
      .filter((r) => r.status === 200)
      .map((r) => r.done)
      .sort((a, b) => a - b);
    const rate = requests.length / duration;
    const inside = (r: Request) => windows.some((w) => r.sent >= w.start && r.sent < w.end);
    const between = requests.filter((r) => !inside(r) && r.status !== 200).length;
    const freshCount = requests.filter((r) => r.fresh).length;
    const load1 = os.loadavg()[0] ?? NaN;

    console.log(
      `\nRedeploys of ${TEST_IMAGE} behind the agent's HAProxy (L7, HTTPS with the route CA, http check on /health), ` +
        `${runs} per way, alternating; [proxy] drain ${DRAIN}. Load: ${loops} keep-alive loops (${PACE_MS} ms pause) + ` +
        `1 fresh-connection loop (${FRESH_PACE_MS} ms pause), ${requests.length} requests in ${duration.toFixed(1)} s = ` +
        `${rate.toFixed(0)} req/s (${freshCount} on fresh connections; ≥ ${MIN_RATE} req/s: ${rate >= MIN_RATE ? "met" : "NOT met"}). ` +
        `1-min load ${load1.toFixed(2)} on ${os.cpus().length} CPUs.`,
    );
    const json: Record<string, unknown> = {};
    for (const kind of KINDS) {
      const ws = windows.filter((w) => w.kind === kind);
      json[kind] = summary(
        kind,
        ws,
        ws.map((w) => tally(requests, oks, w.start, w.end)),
      );
    }
    const ref = (kind: Window["kind"]) => {
      const w = windows.find((x) => x.kind === kind);
      if (!w) throw new Error(`no ${kind} window`);
      return { w, t: tally(requests, oks, w.start, w.end) };
    };
    const restart = ref("agent restart");
    const drain2 = ref("start-first (drain 2s)");
    const swap = json["start-first"] as ReturnType<typeof summary>;
    const stop = json["stop-first"] as ReturnType<typeof summary>;
    const hand = json["by-hand"] as ReturnType<typeof summary>;
    console.log(
      `failed requests per redeploy (median, total): start-first swap ${swap.failedMedian} (${swap.failedTotal}) ` +
        `vs in place: stop-first ${stop.failedMedian} (${stop.failedTotal}), by hand ${hand.failedMedian} (${hand.failedTotal}); ` +
        `swap target 0 failed: ${swap.failedTotal === 0 ? "met" : "NOT met"}`,
    );
    console.log(
      `start-first with the default drain ${DEFAULT_DRAIN}: deploy wall ${sec(drain2.w.wall)} s ` +
        `(vs ${sec(swap.wallMs.median)} s with ${DRAIN}), ${drain2.t.failed} failed of ${drain2.t.requests} (${kindsText(drain2.t.kinds)}), longest gap ${ms(drain2.t.gap)} ms`,
    );
    console.log(
      `agent restart under load (SIGTERM, HAProxy adopted): ${sec(restart.w.wall)} s, ${restart.t.failed} failed of ${restart.t.requests} (${kindsText(restart.t.kinds)}); ` +
        `failed between redeploys: ${between}`,
    );
    console.log(
      JSON.stringify({
        bench: "redeploy-proxy",
        runs,
        unit: "ms",
        drain: DRAIN,
        loops,
        requests: requests.length,
        rateRps: Math.round(rate),
        freshRequests: freshCount,
        ...json,
        drain2s: {
          wallMs: ms(drain2.w.wall),
          failed: drain2.t.failed,
          failures: drain2.t.kinds,
          gapMs: ms(drain2.t.gap),
        },
        agentRestart: {
          wallMs: ms(restart.w.wall),
          failed: restart.t.failed,
          failures: restart.t.kinds,
        },
        failedBetween: between,
        targetMet: swap.failedTotal === 0,
        loadavg1: Math.round(load1 * 100) / 100,
      }),
    );
  },
  async () => {
    await load?.stop();
    await agent?.cleanup();
  },
);
