/**
 * Carrying out a HealthPlan: one check (`checkOnce`), and a deploy's wait for
 * the first passing check (`waitHealthy`: every ~100 ms until the deadline).
 * TCP and HTTP checks connect from the agent to the component's host ports
 * on the bind address; exec checks run inside the container through the
 * runtime. Every outcome carries a line of output for events and the CLI.
 */
import http from "node:http";
import net from "node:net";
import type { Runtime } from "../runtime/types.js";
import { errorMessage } from "../util/errors.js";
import type { HealthCheck, HealthPlan } from "./plan.js";

/** How often a deploy polls until the first check passes. */
export const DEPLOY_POLL_MS = 100;
/**
 * The first polls come sooner (2, 4, 8, 16, 32, 64 ms, then every pollMs):
 * a container usually listens within a few ms of its start returning
 * (measured on the test image through the libpod API: 1-20 ms, median 4-5),
 * and the wait is the downtime of a stop-first deploy.
 */
const FIRST_POLL_MS = 2;
/** How often a failing deploy check asks whether the container still runs. */
const EXITED_CHECK_MS = 1000;
/** Most output kept from one check. */
const OUTPUT_MAX = 500;

export interface CheckResult {
  healthy: boolean;
  /** What the check saw: `HTTP 503: …`, `connect ECONNREFUSED …`, the command's output. */
  output: string;
}

function cut(text: string): string {
  const t = text.trim();
  return t.length > OUTPUT_MAX ? `…${t.slice(-OUTPUT_MAX)}` : t;
}

export function checkTcp(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: CheckResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () =>
      done({ healthy: false, output: `connect ${host}:${port}: no answer in ${timeoutMs} ms` }),
    );
    socket.once("connect", () => done({ healthy: true, output: `connected to ${host}:${port}` }));
    socket.once("error", (err) => done({ healthy: false, output: errorMessage(err) }));
  });
}

/** 200-399 is healthy; redirects are not followed. */
export function checkHttp(
  host: string,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < OUTPUT_MAX) body += chunk;
      });
      res.on("end", () => {
        const code = res.statusCode ?? 0;
        resolve({ healthy: code >= 200 && code < 400, output: cut(`HTTP ${code}: ${body}`) });
      });
      res.on("error", (err) => resolve({ healthy: false, output: errorMessage(err) }));
    });
    req.on("timeout", () =>
      req.destroy(new Error(`GET ${path} on ${host}:${port}: no answer in ${timeoutMs} ms`)),
    );
    req.on("error", (err) => resolve({ healthy: false, output: errorMessage(err) }));
  });
}

export async function checkExec(
  runtime: Runtime,
  container: string,
  cmd: readonly string[],
  timeoutMs: number,
): Promise<CheckResult> {
  try {
    const r = await runtime.exec(container, cmd, timeoutMs);
    const how = r.timedOut ? `timed out after ${timeoutMs} ms` : `exit ${r.exitCode ?? "(killed)"}`;
    return { healthy: r.exitCode === 0 && !r.timedOut, output: cut(`${how}: ${r.output}`) };
  } catch (err) {
    return { healthy: false, output: cut(errorMessage(err)) };
  }
}

async function isRunning(runtime: Runtime, container: string): Promise<CheckResult> {
  const status = await runtime.inspect(container);
  const state = status?.state ?? "gone";
  return { healthy: state === "running", output: `container ${state}` };
}

/** One check of `check` against `container`. */
export async function checkOnce(
  check: HealthCheck,
  runtime: Runtime,
  container: string,
  timeoutMs: number,
): Promise<CheckResult> {
  switch (check.type) {
    case "tcp": {
      for (const port of check.ports) {
        const r = await checkTcp(check.host, port, timeoutMs);
        if (!r.healthy) return r;
      }
      return { healthy: true, output: `connected to ${check.ports.join(", ")}` };
    }
    case "http":
      return checkHttp(check.host, check.port, check.path, timeoutMs);
    case "exec":
      return checkExec(runtime, container, check.cmd, timeoutMs);
    case "running":
    case "none":
      return isRunning(runtime, container);
  }
}

export interface WaitOptions {
  pollMs?: number;
  signal?: AbortSignal;
  /** After each failed check (progress for the operator). */
  onAttempt?: (attempt: number, result: CheckResult) => void;
}

export interface WaitResult extends CheckResult {
  attempts: number;
  elapsedMs: number;
}

/**
 * Polls until the first passing check or `plan.deadlineMs`. A "running"
 * check passes only once the container has kept running for its `forMs`.
 */
export async function waitHealthy(
  plan: HealthPlan,
  runtime: Runtime,
  container: string,
  opts: WaitOptions = {},
): Promise<WaitResult> {
  const pollMs = opts.pollMs ?? DEPLOY_POLL_MS;
  const start = Date.now();
  const deadline = start + plan.deadlineMs;
  let attempts = 0;
  let lastInspect = start;
  for (;;) {
    opts.signal?.throwIfAborted();
    attempts++;
    const last = await checkOnce(plan.check, runtime, container, plan.timeoutMs);
    const elapsedMs = Date.now() - start;
    const settled = plan.check.type !== "running" || elapsedMs >= plan.check.forMs;
    if (!last.healthy && plan.check.type === "running") return { ...last, attempts, elapsedMs };
    if (last.healthy && settled) return { ...last, attempts, elapsedMs };
    const wait = Math.min(pollMs, FIRST_POLL_MS * 2 ** (attempts - 1));
    if (Date.now() + wait > deadline) return { ...last, healthy: false, attempts, elapsedMs };
    if (!last.healthy) {
      // A container that has exited will not start listening: no use waiting
      // out the deadline (asked at most once a second).
      if (Date.now() - lastInspect >= EXITED_CHECK_MS) {
        lastInspect = Date.now();
        const status = await runtime.inspect(container);
        if (status?.state !== "running") {
          const how = status
            ? `exited${status.exitCode !== undefined ? ` with code ${status.exitCode}` : ""}`
            : "is gone";
          return {
            healthy: false,
            output: `container ${how}; last check: ${last.output}`,
            attempts,
            elapsedMs,
          };
        }
      }
      opts.onAttempt?.(attempts, last);
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * What the agent checks health with: the probes above on the real runtime,
 * or, in unit tests of operations over a fake runtime, a scripted stand-in.
 */
export interface HealthProber {
  check(plan: HealthPlan, container: string): Promise<CheckResult>;
  waitHealthy(plan: HealthPlan, container: string, opts?: WaitOptions): Promise<WaitResult>;
}

export function runtimeProber(runtime: Runtime): HealthProber {
  return {
    check: (plan, container) => checkOnce(plan.check, runtime, container, plan.timeoutMs),
    waitHealthy: (plan, container, opts) => waitHealthy(plan, runtime, container, opts),
  };
}
