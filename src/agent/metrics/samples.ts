/**
 * The state gauges as pure functions: what the agent holds at scrape time
 * (registry rows, the port book's count, the proxy's routes, certificates)
 * → label sets and values. metrics.ts sets its gauges from these in
 * prom-client's `collect()`, so a scrape shows what `mcp status` would.
 * Labels are by service (and component state), never by container id.
 */
import { status } from "@grpc/grpc-js";
import type { ComponentRow } from "../../registry/index.js";
import { healthShown } from "../messages.js";
import { isDrift } from "../../protocol/drift.js";

export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
}

/** What the scrape-time gauges are computed from (state.ts reads it). */
export interface AgentState {
  components: readonly Pick<
    ComponentRow,
    "service" | "desiredState" | "observedState" | "health"
  >[];
  ports: { poolSize: number; held: number };
  /** Every proxy row with whether the running proxy serves it; empty without `[proxy]`. */
  routes: readonly { listener: number; mode: string; served: boolean }[];
  /** The certificate the proxy has for each L7 name (ListCerts: notAfter always set). */
  certificates: readonly { hostname: string; issuer: string; notAfter?: Date | undefined }[];
}

/** The health label of a component: as `mcp status` shows it, "unknown" for none shown. */
export function healthLabel(component: AgentState["components"][number]): string {
  return healthShown(component.observedState, component.health).status || "unknown";
}

/** One sample per distinct label set, its value the number of items with it; sorted. */
export function countBy<T>(items: Iterable<T>, labelsOf: (item: T) => Labels): Sample[] {
  const counts = new Map<string, Sample>();
  for (const item of items) {
    const labels = labelsOf(item);
    const key = JSON.stringify(Object.entries(labels));
    const sample = counts.get(key);
    if (sample) sample.value += 1;
    else counts.set(key, { labels, value: 1 });
  }
  return [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, s]) => s);
}

/** `mcp_components`: components by service, desired and observed state, and health. */
export function componentSamples(components: AgentState["components"]): Sample[] {
  return countBy(components, (c) => ({
    service: c.service,
    desired_state: c.desiredState,
    observed_state: c.observedState,
    health: healthLabel(c),
  }));
}

/** `mcp_components_drifting`: per service, how many components drift now (0 included). */
export function driftSamples(components: AgentState["components"]): Sample[] {
  const drifting = new Map<string, number>();
  for (const c of components) {
    drifting.set(
      c.service,
      (drifting.get(c.service) ?? 0) + (isDrift(c.desiredState, c.observedState) ? 1 : 0),
    );
  }
  return [...drifting.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, value]) => ({ labels: { service }, value }));
}

/** `mcp_proxy_routes`: the proxy's routes by listener, mode and whether they are served. */
export function proxyRouteSamples(routes: AgentState["routes"]): Sample[] {
  return countBy(routes, (r) => ({
    listener: String(r.listener),
    mode: r.mode,
    served: String(r.served),
  }));
}

/** `mcp_certificate_expiry_timestamp_seconds`: each L7 name's certificate's notAfter. */
export function certificateSamples(certificates: AgentState["certificates"]): Sample[] {
  return [...certificates]
    .sort((a, b) => a.hostname.localeCompare(b.hostname))
    .flatMap(({ hostname, issuer, notAfter }) =>
      notAfter
        ? [{ labels: { hostname, issuer }, value: Math.floor(notAfter.getTime() / 1000) }]
        : [],
    );
}

/** The method's name from a gRPC path: `/mcp.v1.McpAgentService/Deploy` → `Deploy`. */
export function rpcMethod(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1) || path;
}

/** A gRPC status code's name (`0` → `OK`, `16` → `UNAUTHENTICATED`); a code grpc-js lacks as its number. */
export function grpcCodeName(code: number): string {
  const name = (status as unknown as Record<number, string | undefined>)[code];
  return name ?? String(code);
}
