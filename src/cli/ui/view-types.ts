/**
 * What `mcp ui`'s page receives (`/api/snapshot`, each SSE `snapshot`
 * event): the nodes' answers already turned into what the page shows, by
 * the CLI's own row logic (snapshot.ts). No imports: the browser bundle
 * (web/) compiles this file too, with the DOM library and no Node types.
 *
 * Nothing in it changes unless a node's answer changed (uptimes are sent as
 * start times, the page counts them), so an unchanged snapshot is not sent.
 */

/** The colour a row or card gets (app.css), worst first. */
export type Tone = "unreachable" | "drift" | "unhealthy" | "exited" | "stopped" | "running";

export interface UiNode {
  name: string;
  address: string;
  /** Whether its last poll was answered. */
  reachable: boolean;
  /** Why not (reachable false): "connection refused", "did not answer within 5 s" … */
  error?: string;
  /** When it stopped answering (ISO), while it does not. */
  unreachableSince?: string;
  /** Calls that failed although the node answers (`GetServiceStatus: podman …`). */
  problems?: string[];
  /** `mcp node status`'s facts; absent until NodeStatus answered once. */
  agentVersion?: string;
  runtime?: string;
  /** `3 (5 components, 4 running)`. */
  services?: string;
  disk?: string;
  memory?: string;
  cpu?: string;
  /** The agent's start (ISO): the page shows the uptime. */
  upSince?: string;
  /** Host ports held, and the pool's size when the agent's description of it parses. */
  ports?: { allocated: number; pool?: number; range: string };
  /** Components whose container runs now (LiveCheck): the chart's first line. */
  running?: number;
  /** Containers podman runs that belong to no service. */
  unmanaged?: number;
  /** `yes`: routes are listed; `no`: the node has no [proxy]; `unknown`: ListRoutes failed. */
  proxy: "yes" | "no" | "unknown";
}

/** One component, as `mcp ps` and `mcp status` show it. */
export interface UiComponent {
  /** `node/service/component`: unique, the page's key for selection. */
  key: string;
  node: string;
  service: string;
  component: string;
  desired: string;
  observed: string;
  /** `healthy`, `unhealthy`, `starting` …, `-` without a check. */
  health: string;
  /** The last check's output, for an unhealthy component. */
  healthOutput?: string;
  drift: boolean;
  image: string;
  version: string;
  /** When its container started (ISO), while it runs: the page shows the uptime. */
  startedAt?: string;
  /** `mcp status`'s PORTS cell. */
  ports: string;
  /** `mcp status`'s SERVED cell (from GetServiceStatus; `-` before it answered). */
  served: string;
  tone: Tone;
}

/** One proxy route, as `mcp route list` shows it. */
export interface UiRoute {
  node: string;
  listener: number;
  hostname: string;
  /** `l4`, `l7`, `l7+pp`. */
  mode: string;
  backend: string;
  /** `svc/web`, `-` for a manual route. */
  owner: string;
  served: boolean;
  /** `2026-12-01` for an L7 route's certificate, else `-`. */
  certExpires: string;
}

/** One recorded event, as `mcp status`'s RECENT EVENTS shows it. */
export interface UiEvent {
  node: string;
  /** ISO; empty when the agent sent none. */
  time: string;
  service: string;
  component: string;
  kind: string;
  detail: string;
}

export interface UiSnapshot {
  nodes: UiNode[];
  /** Every component of the nodes that answered, by service, component, node. */
  components: UiComponent[];
  routes: UiRoute[];
  /** Newest first, every node's. */
  events: UiEvent[];
}

/** `/api/component`: a component's panel. */
export interface UiComponentDetail {
  /** The log tail, as podman wrote it (with timestamps). */
  logs: string;
  /** Whether the tail was cut at the byte limit. */
  truncated: boolean;
  /** Why there are no logs (a removed container has none). */
  logsError?: string;
  events: UiEvent[];
}
