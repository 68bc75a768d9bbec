/**
 * What checking a component's health means, given its spec and the host
 * ports its routes got: which probe, on which ports, with which timings
 * (README, "Health checks"). Pure: the probes in probe.ts carry it out.
 *
 * - `[components.health]` absent: a TCP connect check on every tcp route;
 *   a component without tcp routes must still be running after 2 s.
 * - http / tcp: the route named by `route`, else the unnamed route, else the
 *   first tcp route. UDP routes are never checked.
 * - exec: `cmd` inside the container, exit 0 = healthy.
 * - none: no check; a deploy waits only for the container to be running.
 */
import { parseDuration } from "../config/duration.js";
import type { ComponentSpec } from "../gen/mcp/v1/mcp.js";
import { HEALTH_DEFAULTS } from "../servicedef/health.js";

/** How long a component without tcp routes (and no check) must keep running. */
export const STILL_RUNNING_MS = 2000;

export type HealthCheck =
  | { type: "tcp"; host: string; ports: number[] }
  | { type: "http"; host: string; port: number; path: string }
  | { type: "exec"; cmd: string[] }
  | { type: "running"; forMs: number }
  | { type: "none" };

export interface HealthPlan {
  check: HealthCheck;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  deadlineMs: number;
}

/**
 * The plan for `component`, whose routes got `hostPorts` (route name → host
 * port, "" for the unnamed route), checked on `host` (the bind address).
 * The spec is assumed valid; a route without a host port is skipped.
 */
export function healthPlan(
  component: ComponentSpec,
  hostPorts: ReadonlyMap<string, number>,
  host: string,
): HealthPlan {
  const h = component.health;
  const ms = (value: string | undefined, fallback: string) => parseDuration(value || fallback);
  const timings = {
    intervalMs: ms(h?.interval, HEALTH_DEFAULTS.interval),
    timeoutMs: ms(h?.timeout, HEALTH_DEFAULTS.timeout),
    retries: h?.retries || HEALTH_DEFAULTS.retries,
    startPeriodMs: ms(h?.startPeriod, HEALTH_DEFAULTS.start_period),
    deadlineMs: ms(h?.deadline, HEALTH_DEFAULTS.deadline),
  };
  const tcpRoutes = component.routes.filter((r) => r.protocol !== "udp" && hostPorts.has(r.name));
  const portOf = (name: string) => hostPorts.get(name) ?? 0;
  if (!h) {
    const check: HealthCheck =
      tcpRoutes.length > 0
        ? { type: "tcp", host, ports: tcpRoutes.map((r) => portOf(r.name)) }
        : { type: "running", forMs: STILL_RUNNING_MS };
    return { check, ...timings };
  }
  const chosen =
    tcpRoutes.find((r) => h.route !== "" && r.name === h.route) ??
    tcpRoutes.find((r) => r.name === "") ??
    tcpRoutes[0];
  const port = chosen ? portOf(chosen.name) : 0;
  switch (h.type) {
    case "http":
      return { check: { type: "http", host, port, path: h.path || "/" }, ...timings };
    case "tcp":
      return { check: { type: "tcp", host, ports: [port] }, ...timings };
    case "exec":
      return { check: { type: "exec", cmd: [...h.cmd] }, ...timings };
    default:
      return { check: { type: "none" }, ...timings };
  }
}
