/**
 * `mcp ui`'s view model: what the collector last heard from each node →
 * the snapshot the page renders (view-types.ts). Pure, and built from the
 * same row logic as `mcp ps`, `mcp status`, `mcp node status` and `mcp route
 * list`, so the page and the commands never tell different stories.
 */
import type {
  EventInfo,
  GetServiceStatusResponse,
  LiveCheckResponse,
  NodeStatusResponse,
  ProxyRouteInfo,
} from "../../gen/mcp/v1/mcp.js";
import { isDrift } from "../../protocol/drift.js";
import { routeCertExpiry, routeMode, routeOwner } from "../commands/edge.js";
import { nodeStatusLines, poolSize } from "../commands/node-status.js";
import { eventDetail, formatServed } from "../commands/status.js";
import { componentRows, formatRoutes } from "../service-rows.js";
import type { Tone, UiComponent, UiEvent, UiNode, UiRoute, UiSnapshot } from "./view-types.js";

/** What a node's ListRoutes said: its routes, no [proxy], or a failure. */
export type RoutesAnswer = { routes: ProxyRouteInfo[] } | { noProxy: true } | { error: string };

/** Everything the collector knows about one node: its last answers, and whether it answers now. */
export interface NodeObservation {
  name: string;
  address: string;
  live?: LiveCheckResponse;
  status?: NodeStatusResponse;
  serviceStatus?: GetServiceStatusResponse;
  routes?: RoutesAnswer;
  /** Set while the node does not answer: why, and since when. */
  failure?: { reason: string; since: Date };
  /** Calls besides LiveCheck that failed at the last poll (`NodeStatus: …`). */
  problems?: string[];
}

/** How many events the page lists (newest first, all nodes). */
export const EVENTS_SHOWN = 50;

/** A component's colour: the worst thing about it (drift before ill health before its state). */
export function componentTone(c: {
  desired: string;
  observed: string;
  health: string;
  drift: boolean;
}): Tone {
  if (c.drift) return "drift";
  if (c.health === "unhealthy") return "unhealthy";
  if (c.observed === "running") return "running";
  return c.desired === "running" ? "exited" : "stopped";
}

export function uiEvent(node: string, e: EventInfo): UiEvent {
  return {
    node,
    time: e.timestamp?.toISOString() ?? "",
    service: e.service,
    component: e.component,
    kind: e.kind,
    detail: eventDetail(e),
  };
}

/** Newest first; events without a time last. */
export function newestFirst(events: UiEvent[]): UiEvent[] {
  return [...events].sort((a, b) => b.time.localeCompare(a.time));
}

function uiNode(n: NodeObservation, now: Date): UiNode {
  const node: UiNode = {
    name: n.name,
    address: n.address,
    reachable: n.failure === undefined,
    proxy: !n.routes
      ? "unknown"
      : "routes" in n.routes
        ? "yes"
        : "noProxy" in n.routes
          ? "no"
          : "unknown",
  };
  if (n.failure) {
    node.error = n.failure.reason;
    node.unreachableSince = n.failure.since.toISOString();
  }
  if (n.problems && n.failure === undefined) node.problems = [...n.problems];
  if (n.status) {
    const facts = new Map(nodeStatusLines(n.status, now));
    const fact = (label: string) => facts.get(label);
    node.agentVersion = fact("agent");
    node.runtime = fact("runtime");
    node.services = fact("services");
    node.disk = fact("disk");
    node.memory = fact("memory");
    node.cpu = fact("cpu");
    if (n.status.uptimeSince) node.upSince = n.status.uptimeSince.toISOString();
    const pool = poolSize(n.status.portRange);
    node.ports = {
      allocated: n.status.portsAllocated,
      range: n.status.portRange,
      ...(pool === undefined ? {} : { pool }),
    };
  }
  if (n.live) {
    node.running = n.live.services
      .flatMap((s) => s.components)
      .filter((c) => c.observedState === "running").length;
    node.unmanaged = n.live.unmanaged.length;
  }
  return node;
}

/** The components of the nodes that answer, sorted like `mcp ps`. */
function uiComponents(nodes: NodeObservation[]): UiComponent[] {
  const reachable = nodes.filter((n) => n.failure === undefined && n.live);
  // SERVED comes from GetServiceStatus (LiveCheck does not ask the proxy).
  const served = new Map<string, string>();
  for (const n of reachable) {
    for (const s of n.serviceStatus?.services ?? []) {
      for (const c of s.components)
        served.set(`${n.name}/${s.name}/${c.name}`, formatServed(c.routes));
    }
  }
  const rows = componentRows(
    reachable.map((n) => ({ node: n.name, services: n.live?.services ?? [] })),
  );
  return rows.map(({ service, component, node, info }): UiComponent => {
    const key = `${node}/${service}/${component}`;
    const drift = isDrift(info.desiredState, info.observedState);
    const health = info.health || "-";
    return {
      key,
      node,
      service,
      component,
      desired: info.desiredState,
      observed: info.observedState,
      health,
      ...(info.health === "unhealthy" && info.healthOutput
        ? { healthOutput: info.healthOutput }
        : {}),
      drift,
      image: info.image,
      version: info.version,
      ...(info.observedState === "running" && info.startedAt
        ? { startedAt: info.startedAt.toISOString() }
        : {}),
      ports: formatRoutes(info.routes, info.ports),
      served: served.get(key) ?? "-",
      tone: componentTone({
        desired: info.desiredState,
        observed: info.observedState,
        health,
        drift,
      }),
    };
  });
}

function uiRoutes(nodes: NodeObservation[]): UiRoute[] {
  return nodes.flatMap((n) =>
    n.failure === undefined && n.routes && "routes" in n.routes
      ? n.routes.routes.map((r) => ({
          node: n.name,
          listener: r.listener,
          hostname: r.hostname,
          mode: routeMode(r),
          backend: r.backend,
          owner: routeOwner(r),
          served: r.served,
          certExpires: routeCertExpiry(r),
        }))
      : [],
  );
}

/** The page's whole picture (pure: `now` only for the facts that mention it). */
export function buildSnapshot(nodes: NodeObservation[], now: Date): UiSnapshot {
  const events = nodes.flatMap((n) =>
    n.failure === undefined
      ? (n.serviceStatus?.recentEvents ?? []).map((e) => uiEvent(n.name, e))
      : [],
  );
  return {
    nodes: nodes.map((n) => uiNode(n, now)),
    components: uiComponents(nodes),
    routes: uiRoutes(nodes),
    events: newestFirst(events).slice(0, EVENTS_SHOWN),
  };
}
