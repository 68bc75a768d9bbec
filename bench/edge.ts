/**
 * Routes through HAProxy (issue 8): what the agent's proxy costs per request
 * and how long a route change takes, on a real HAProxy started through
 * HaproxyDriver + HaproxyProcess (like test/integration/haproxy-driver.test.ts).
 *
 *   node --import tsx bench/edge.ts [--rounds N] [--requests N] [--wrk-seconds N] [--wrk-rounds N]
 *                                 [--routes N]
 *
 * Behind one listener:
 *  - L7: a real container (localhost/mcp-httpenv:v1, `-p 127.0.0.1:H:H`)
 *    with a certificate from the local route CA; compared with plain HTTP
 *    straight to its host port H.
 *  - L4: a node `https` server on loopback with its own certificate from the
 *    same CA (an L4 route passes TLS through, so its backend must speak TLS);
 *    compared with HTTPS straight to that server.
 *
 * 1. Latency: sequential GETs over one keep-alive connection per target,
 *    proxy and direct alternating in rounds; median, p99, median ratio.
 * 2. Throughput: `wrk` (2 threads, 20 connections), proxy and direct
 *    alternating (ABBA); median requests/s and their ratio.
 * 3. Route changes: median of driver.setRoute for new L7 names (certificate
 *    issued beforehand, timed apart) and new L4 names, and of removeRoute.
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { rm } from "node:fs/promises";
import type { CertPair } from "../src/certs/x509.js";
import { issueRouteCert, loadOrCreateRouteCa, routePem } from "../src/edge/certs/local-ca.js";
import { HaproxyDriver } from "../src/edge/haproxy/driver.js";
import type { ProxyRoute } from "../src/edge/types.js";
import { HaproxyProcess } from "../src/edge/haproxy/process.js";
import { runCommand } from "../src/util/exec.js";
import { freePort, tempDir } from "../test/helpers/agent.js";
import { TEST_IMAGE } from "../test/helpers/live-agent.js";
import {
  intArg,
  ms,
  percentile,
  rawRunArgv,
  roundStats,
  stats,
  timed,
  waitHttp200,
  withCleanup,
} from "./lib.js";

const PREFIX = "mcp-bench-edge-";
const CONTAINER = `${PREFIX}${process.pid}`;
const L7_HOST = "web.edge.bench.test";
/** wrk sends the URL's host as SNI: an L4 name it can use must resolve, hence localhost. */
const L4_HOST = "localhost";
const WRK = { threads: 2, connections: 20 };

const rounds = intArg("rounds", 10);
const perRound = intArg("requests", 100);
const wrkSeconds = intArg("wrk-seconds", 4);
const wrkRounds = intArg("wrk-rounds", 2);
const routeRuns = intArg("routes", 20);

/** What the benchmark started, for cleanup (each set once it exists). */
const started: {
  dir?: string;
  proxy?: HaproxyProcess;
  backend?: https.Server;
  container?: string;
  agents: http.Agent[];
} = { agents: [] };

interface Rig {
  ca: CertPair;
  driver: HaproxyDriver;
  listener: number;
  webPort: number;
  tlsPort: number;
}

// ---------------------------------------------------------------- set-up

async function startContainer(port: number): Promise<void> {
  started.container = CONTAINER;
  await runCommand(rawRunArgv(CONTAINER, "mcp-bench-edge", port, ["--rm"]));
  await waitHttp200(port);
}

/** The L4 backend: HTTPS on loopback, `ok` to every request (keep-alive, like wrk wants). */
async function startTlsBackend(ca: CertPair): Promise<number> {
  const leaf = await issueRouteCert(ca, L4_HOST);
  const server = https.createServer(
    { cert: `${leaf.cert}\n${ca.cert}`, key: leaf.key },
    (_r, res) => res.end("ok\n"),
  );
  started.backend = server;
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

async function startProxy(dir: string, ca: CertPair, listener: number): Promise<HaproxyDriver> {
  const fallback = await issueRouteCert(ca, "default.invalid");
  const proxy = new HaproxyProcess(dir);
  started.proxy = proxy;
  const driver = new HaproxyDriver(dir, "127.0.0.1", proxy);
  await driver.start([listener], routePem(fallback, ca));
  return driver;
}

async function setUp(): Promise<Rig> {
  const dir = await tempDir(PREFIX);
  started.dir = dir;
  const ca = await loadOrCreateRouteCa(dir, "bench-edge");
  const [listener, webPort] = [await freePort(), await freePort()];
  await startContainer(webPort);
  const tlsPort = await startTlsBackend(ca);
  const driver = await startProxy(dir, ca, listener);
  const certPem = routePem(await issueRouteCert(ca, L7_HOST), ca);
  await driver.setRoute({ listener, hostname: L7_HOST, mode: "l7", hostPort: webPort, certPem });
  await driver.setRoute({ listener, hostname: L4_HOST, mode: "l4", hostPort: tlsPort });
  return { ca, driver, listener, webPort, tlsPort };
}

// ---------------------------------------------------------------- latency

/** One GET; resolves whether it went over a reused (kept-alive) connection. */
type Get = () => Promise<boolean>;

function getOnce(send: (onRes: (res: http.IncomingMessage) => void) => http.ClientRequest) {
  return new Promise<boolean>((resolve, reject) => {
    const req = send((res) => {
      res.resume();
      res.on("error", reject);
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(req.reusedSocket)
          : reject(new Error(`HTTP ${res.statusCode}`)),
      );
    });
    req.on("error", reject);
  });
}

function keepAlive<T extends http.Agent>(agent: T): T {
  started.agents.push(agent);
  return agent;
}

/** Plain HTTP to 127.0.0.1:port, one keep-alive connection. */
function httpTarget(port: number): Get {
  const agent = keepAlive(new http.Agent({ keepAlive: true, maxSockets: 1 }));
  return () => getOnce((cb) => http.get({ host: "127.0.0.1", port, path: "/health", agent }, cb));
}

/** HTTPS to 127.0.0.1:port with SNI and Host `name`, verified against `ca`. */
function httpsTarget(port: number, name: string, ca: string): Get {
  const agent = keepAlive(new https.Agent({ keepAlive: true, maxSockets: 1 }));
  const options = { host: "127.0.0.1", port, path: "/health", servername: name, ca, agent };
  return () => getOnce((cb) => https.get({ ...options, headers: { host: name } }, cb));
}

interface Series {
  times: number[];
  reused: number;
}

async function timeRequests(get: Get, n: number, into: Series): Promise<void> {
  for (let i = 0; i < n; i++) {
    const { value: reused, elapsed } = await timed(get);
    into.times.push(elapsed);
    if (reused) into.reused++;
  }
}

/** `rounds` × `perRound` requests each way, alternating which side goes first. */
async function latencyPair(proxy: Get, direct: Get, signal: AbortSignal) {
  const result: Record<"proxy" | "direct", Series> = {
    proxy: { times: [], reused: 0 },
    direct: { times: [], reused: 0 },
  };
  const warm: Series = { times: [], reused: 0 };
  await timeRequests(proxy, 20, warm);
  await timeRequests(direct, 20, warm);
  for (let r = 0; r < rounds; r++) {
    signal.throwIfAborted();
    const order = r % 2 === 0 ? (["proxy", "direct"] as const) : (["direct", "proxy"] as const);
    for (const side of order) {
      await timeRequests(side === "proxy" ? proxy : direct, perRound, result[side]);
    }
  }
  return result;
}

// ---------------------------------------------------------------- wrk

interface WrkResult {
  rps: number;
  non2xx: number;
  socketErrors: string;
}

function parseWrk(out: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out)?.[1];
  if (!rps) throw new Error(`no Requests/sec in wrk output:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: (.*)/.exec(out)?.[1] ?? "none";
  return { rps: Number(rps), non2xx, socketErrors };
}

async function wrk(url: string, host: string): Promise<WrkResult> {
  const { stdout } = await runCommand(
    [
      "wrk",
      `-t${WRK.threads}`,
      `-c${WRK.connections}`,
      `-d${wrkSeconds}s`,
      "-H",
      `Host: ${host}`,
      `${url}/health`,
    ],
    { timeoutMs: (wrkSeconds + 20) * 1000 },
  );
  const result = parseWrk(stdout);
  if (result.non2xx > 0) throw new Error(`wrk ${url}: ${result.non2xx} non-2xx answers`);
  return result;
}

interface WrkPair {
  proxy: number[];
  direct: number[];
  socketErrors: string[];
}

/** `wrkRounds` wrk runs each way, proxy and direct alternating (ABBA…); requests/s of each. */
async function wrkPair(urls: { proxy: string; direct: string }, host: string, signal: AbortSignal) {
  const pair: WrkPair = { proxy: [], direct: [], socketErrors: [] };
  for (let r = 0; r < wrkRounds; r++) {
    const order = r % 2 === 0 ? (["proxy", "direct"] as const) : (["direct", "proxy"] as const);
    for (const side of order) {
      signal.throwIfAborted();
      const result = await wrk(urls[side], host);
      pair[side].push(result.rps);
      if (result.socketErrors !== "none") pair.socketErrors.push(`${side}: ${result.socketErrors}`);
    }
  }
  return pair;
}

// ---------------------------------------------------------------- route changes

interface RouteTimes {
  certIssue: number[];
  addL7: number[];
  addL4: number[];
  removeL7: number[];
  removeL4: number[];
}

async function timeRouteChanges(rig: Rig, signal: AbortSignal): Promise<RouteTimes> {
  const t: RouteTimes = { certIssue: [], addL7: [], addL4: [], removeL7: [], removeL4: [] };
  const { listener } = rig;
  const names = Array.from({ length: routeRuns }, (_, i) => `r${i}.edge.bench.test`);
  for (const name of names) {
    signal.throwIfAborted();
    const leaf = await timed(() => issueRouteCert(rig.ca, name));
    t.certIssue.push(leaf.elapsed);
    const l7: ProxyRoute = { listener, hostname: name, mode: "l7", hostPort: rig.webPort };
    l7.certPem = routePem(leaf.value, rig.ca);
    t.addL7.push((await timed(() => rig.driver.setRoute(l7))).elapsed);
    const l4: ProxyRoute = { listener, hostname: `l4-${name}`, mode: "l4", hostPort: rig.tlsPort };
    t.addL4.push((await timed(() => rig.driver.setRoute(l4))).elapsed);
  }
  // The last new name answers with its own certificate: the adds really took effect.
  await httpsTarget(listener, names.at(-1) ?? "", rig.ca.cert)();
  for (const name of names) {
    t.removeL7.push((await timed(() => rig.driver.removeRoute(listener, name, "l7"))).elapsed);
    t.removeL4.push(
      (await timed(() => rig.driver.removeRoute(listener, `l4-${name}`, "l4"))).elapsed,
    );
  }
  return t;
}

// ---------------------------------------------------------------- report

const f1 = (v: number) => ms(v).toFixed(1);
const f2 = (v: number) => v.toFixed(2);
/** Milliseconds to the microsecond, for sub-millisecond latencies. */
const ms3 = (v: number) => Math.round(v * 1000) / 1000;

function latencyFigures(r: { proxy: Series; direct: Series }) {
  const side = (s: Series) => ({
    median: ms3(stats(s.times).median),
    p99: ms3(percentile(s.times, 99)),
    reusedPct: Math.round((100 * s.reused) / s.times.length),
  });
  const proxy = side(r.proxy);
  const direct = side(r.direct);
  return { proxy, direct, ratio: Math.round((proxy.median / direct.median) * 100) / 100 };
}

function printLatency(title: string, fig: ReturnType<typeof latencyFigures>): void {
  const line = (label: string, s: typeof fig.proxy) =>
    console.log(
      `  ${label.padEnd(34)} median ${s.median.toFixed(3)} ms   p99 ${s.p99.toFixed(3)} ms   connection reused ${s.reusedPct}%`,
    );
  console.log(title);
  line("through HAProxy", fig.proxy);
  line("direct", fig.direct);
  console.log(`  median ratio proxy/direct: ${f2(fig.ratio)}`);
}

function wrkFigures(p: WrkPair) {
  const proxyRps = Math.round(stats(p.proxy).median);
  const directRps = Math.round(stats(p.direct).median);
  return { proxyRps, directRps, ratio: Math.round((proxyRps / directRps) * 100) / 100 };
}

function printWrk(title: string, p: WrkPair): ReturnType<typeof wrkFigures> {
  const fig = wrkFigures(p);
  const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  console.log(
    `  ${title.padEnd(34)} proxy ${fig.proxyRps} req/s vs direct ${fig.directRps} req/s → ratio ${f2(fig.ratio)}` +
      `   (runs: proxy ${runs(p.proxy)}; direct ${runs(p.direct)})`,
  );
  if (p.socketErrors.length > 0) console.log(`    socket errors: ${p.socketErrors.join("; ")}`);
  return fig;
}

function printRoutes(t: RouteTimes): Record<string, unknown> {
  const rows: [string, keyof RouteTimes][] = [
    ["certificate issue (local CA)", "certIssue"],
    ["setRoute, new L7 name (with cert)", "addL7"],
    ["setRoute, new L4 name", "addL4"],
    ["removeRoute L7", "removeL7"],
    ["removeRoute L4", "removeL4"],
  ];
  console.log(`route changes on the running HAProxy (${routeRuns} new names each, no reload):`);
  const json: Record<string, unknown> = {};
  for (const [label, key] of rows) {
    const s = stats(t[key]);
    console.log(
      `  ${label.padEnd(34)} median ${f1(s.median).padStart(5)} ms   p90 ${f1(s.p90).padStart(5)} ms   max ${f1(s.max).padStart(5)} ms`,
    );
    json[key] = roundStats(s);
  }
  return json;
}

// ---------------------------------------------------------------- main

interface Figures {
  l7: ReturnType<typeof latencyFigures>;
  l4: ReturnType<typeof latencyFigures>;
  wrkL7: WrkPair;
  wrkL4: WrkPair;
  routes: RouteTimes;
}

async function measure(rig: Rig, signal: AbortSignal): Promise<Figures> {
  const { ca, listener, webPort, tlsPort } = rig;
  const l7 = latencyFigures(
    await latencyPair(httpsTarget(listener, L7_HOST, ca.cert), httpTarget(webPort), signal),
  );
  const l4 = latencyFigures(
    await latencyPair(
      httpsTarget(listener, L4_HOST, ca.cert),
      httpsTarget(tlsPort, L4_HOST, ca.cert),
      signal,
    ),
  );
  for (const agent of started.agents.splice(0)) agent.destroy();
  const wrkL7 = await wrkPair(
    { proxy: `https://127.0.0.1:${listener}`, direct: `http://127.0.0.1:${webPort}` },
    L7_HOST,
    signal,
  );
  const wrkL4 = await wrkPair(
    { proxy: `https://${L4_HOST}:${listener}`, direct: `https://${L4_HOST}:${tlsPort}` },
    L4_HOST,
    signal,
  );
  const routes = await timeRouteChanges(rig, signal);
  return { l7, l4, wrkL7, wrkL4, routes };
}

function report(f: Figures): void {
  const load = os.loadavg()[0] ?? NaN;
  console.log(
    `\nRoutes through HAProxy (${TEST_IMAGE} behind L7, a node https server behind L4; ` +
      `1-min load ${f2(load)} on ${os.cpus().length} CPUs)`,
  );
  const requests = `${rounds}×${perRound} sequential GET /health each way, alternating`;
  printLatency(`L7 latency (${requests}): HTTPS via HAProxy vs plain HTTP to the host port`, f.l7);
  console.log(
    "  (the container's busybox httpd closes every connection: direct pays a TCP connect per request, " +
      "and so does HAProxy towards it; the client's TLS connection to HAProxy stays open)",
  );
  printLatency(
    `L4 latency (${requests}): HTTPS via HAProxy (SNI passthrough) vs HTTPS direct`,
    f.l4,
  );
  console.log(
    `wrk, ${wrkRounds}×${wrkSeconds} s each way (alternating), ${WRK.threads} threads, ` +
      `${WRK.connections} connections, GET /health, median requests/s:`,
  );
  const wrkL7 = printWrk("L7 (https via proxy / http direct)", f.wrkL7);
  console.log(
    "    (wrk sends the URL host as SNI: 127.0.0.1 matches no certificate, so HAProxy serves its default " +
      "certificate and routes by the Host header — the same TLS work, fine for throughput)",
  );
  const wrkL4 = printWrk("L4 (https via proxy / https direct)", f.wrkL4);
  const routes = printRoutes(f.routes);
  console.log(
    JSON.stringify({
      bench: "edge",
      unit: "ms",
      latency: { l7: f.l7, l4: f.l4, rounds, perRound },
      wrk: { seconds: wrkSeconds, rounds: wrkRounds, ...WRK, l7: wrkL7, l4: wrkL4 },
      routes,
      loadavg1: Math.round(load * 100) / 100,
    }),
  );
}

async function cleanup(): Promise<void> {
  for (const agent of started.agents) agent.destroy();
  await started.proxy?.stop();
  started.backend?.closeAllConnections();
  started.backend?.close();
  if (started.container) {
    await runCommand(["podman", "rm", "-f", "-t", "0", "--ignore", started.container]);
  }
  if (started.dir) await rm(started.dir, { recursive: true, force: true });
}

await withCleanup(async (signal) => {
  const start = performance.now();
  const rig = await setUp();
  signal.throwIfAborted();
  report(await measure(rig, signal));
  process.stderr.write(
    `edge bench done in ${(ms(performance.now() - start) / 1000).toFixed(1)} s\n`,
  );
}, cleanup);
