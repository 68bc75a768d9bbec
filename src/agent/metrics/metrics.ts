/**
 * The agent's Prometheus metrics (README "Metrics"): their definitions, on a
 * prom-client Registry of the agent's own (never the process-wide default).
 *
 * - State gauges (components, drift, port pool, proxy routes, certificate
 *   expiry) are computed at scrape time from one read of the agent's state
 *   (state.ts) through the pure functions of samples.ts, so a scrape shows
 *   what `mcp status` would: they cannot drift from it.
 * - Counters and histograms (deploys, failures and their duration, drift
 *   and flap events, RPCs) are counted where the thing happens, through
 *   the MetricsRecorder this class implements (`ctx.metrics`).
 * - Node's process metrics (prom-client's defaults: memory, CPU, event
 *   loop) come along, but for the few whose names break the conventions
 *   `promtool check metrics` enforces.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { CountedCondition, MetricsRecorder } from "./recorder.js";
import {
  certificateSamples,
  componentSamples,
  driftSamples,
  proxyRouteSamples,
  type AgentState,
  type Sample,
} from "./samples.js";

/**
 * prom-client defaults that are gauges named `_total` (`promtool check
 * metrics` refuses them); left out.
 */
export const DROPPED_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/** Deploy duration buckets (seconds): a deploy takes a second or two, a failing health gate its deadline. */
export const DEPLOY_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
/** RPC latency buckets (seconds): listings in milliseconds, deploys and followed logs far longer. */
export const RPC_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300];

export interface AgentMetricsOptions {
  node: string;
  version: string;
  /** Reads what the state gauges show; called once per scrape (concurrent scrapes share it). */
  readState: () => Promise<AgentState>;
  /** prom-client's process metrics (default true; unit tests turn them off for exact output). */
  processMetrics?: boolean;
}

export class AgentMetrics implements MetricsRecorder {
  readonly registry = new Registry();
  readonly #readState: () => Promise<AgentState>;
  /** The state read of the scrape under way: every gauge's collect() shares it. */
  #reading: Promise<AgentState> | undefined;
  readonly #deploys: Counter<"service" | "kind">;
  readonly #deployFailures: Counter<"service" | "kind">;
  readonly #deployDuration: Histogram<"service" | "kind" | "outcome">;
  readonly #conditions: Record<CountedCondition, Counter<"service">>;
  readonly #rpcs: Counter<"method" | "code">;
  readonly #rpcDuration: Histogram<"method" | "code">;

  constructor(opts: AgentMetricsOptions) {
    this.#readState = opts.readState;
    const registers = [this.registry];
    new Gauge({
      name: "mcp_agent_info",
      help: "The agent: its node name and version (always 1).",
      labelNames: ["node", "version"],
      registers,
    }).set({ node: opts.node, version: opts.version }, 1);
    this.#stateGauge(
      "mcp_components",
      "Components by service, desired state, observed state and health (as mcp status shows them).",
      ["service", "desired_state", "observed_state", "health"],
      (s) => componentSamples(s.components),
    );
    this.#stateGauge(
      "mcp_components_drifting",
      "Components whose observed state disagrees with the desired one, by service.",
      ["service"],
      (s) => driftSamples(s.components),
    );
    this.#stateGauge("mcp_port_pool_size", "Host ports the allocator may hand out.", [], (s) => [
      { labels: {}, value: s.ports.poolSize },
    ]);
    this.#stateGauge("mcp_port_pool_in_use", "Ports of the pool held by components.", [], (s) => [
      { labels: {}, value: s.ports.held },
    ]);
    this.#stateGauge(
      "mcp_proxy_routes",
      "Proxy routes by listener port, mode and whether the running proxy serves them.",
      ["listener", "mode", "served"],
      (s) => proxyRouteSamples(s.routes),
    );
    this.#stateGauge(
      "mcp_certificate_expiry_timestamp_seconds",
      "When the proxy's certificate for each L7 hostname expires (Unix time).",
      ["hostname", "issuer"],
      (s) => certificateSamples(s.certificates),
    );
    this.#deploys = new Counter({
      name: "mcp_deploys_total",
      help: "Deploys and rollbacks that ran (refusals before any step are not counted), by service.",
      labelNames: ["service", "kind"],
      registers,
    });
    this.#deployFailures = new Counter({
      name: "mcp_deploy_failures_total",
      help: "Deploys and rollbacks in which a component failed, by service.",
      labelNames: ["service", "kind"],
      registers,
    });
    this.#deployDuration = new Histogram({
      name: "mcp_deploy_duration_seconds",
      help: "How long deploys and rollbacks took until their results were known.",
      labelNames: ["service", "kind", "outcome"],
      buckets: DEPLOY_BUCKETS,
      registers,
    });
    this.#conditions = {
      drift: new Counter({
        name: "mcp_drift_events_total",
        help: "Components that entered drift (a drift event), by service.",
        labelNames: ["service"],
        registers,
      }),
      flap: new Counter({
        name: "mcp_flap_events_total",
        help: "Components found flapping (a flap event), by service.",
        labelNames: ["service"],
        registers,
      }),
    };
    this.#rpcs = new Counter({
      name: "mcp_rpcs_total",
      help: "RPCs answered, by method and gRPC status code (streaming calls count when they end).",
      labelNames: ["method", "code"],
      registers,
    });
    this.#rpcDuration = new Histogram({
      name: "mcp_rpc_duration_seconds",
      help: "RPC latency until the status was sent, by method and gRPC status code.",
      labelNames: ["method", "code"],
      buckets: RPC_BUCKETS,
      registers,
    });
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
  }

  /** The exposition text of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  deployEnded(d: { service: string; kind: string; ok: boolean; seconds: number }): void {
    const labels = { service: d.service, kind: d.kind };
    this.#deploys.inc(labels);
    // Present at 0 from a service's first deploy: a rate over it needs no absent() guard.
    this.#deployFailures.inc(labels, d.ok ? 0 : 1);
    this.#deployDuration.observe({ ...labels, outcome: d.ok ? "ok" : "failed" }, d.seconds);
  }

  conditionEntered(kind: CountedCondition, service: string): void {
    this.#conditions[kind].inc({ service });
  }

  rpcEnded(method: string, code: string, seconds: number): void {
    this.#rpcs.inc({ method, code });
    this.#rpcDuration.observe({ method, code }, seconds);
  }

  #state(): Promise<AgentState> {
    this.#reading ??= this.#readState().finally(() => {
      this.#reading = undefined;
    });
    return this.#reading;
  }

  #stateGauge(
    name: string,
    help: string,
    labelNames: string[],
    samplesOf: (state: AgentState) => Sample[],
  ): void {
    const read = () => this.#state();
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const samples = samplesOf(await read());
        // Only what holds now: a state no component is in any more goes away.
        this.reset();
        for (const s of samples) this.set(s.labels, s.value);
      },
    });
  }
}
