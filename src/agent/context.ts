/**
 * Everything an RPC handler needs, wired once by `mcp-agent serve`.
 * Handlers take this context and plain messages; they never see gRPC.
 */
import type { Logger } from "pino";
import type { Edge } from "../edge/edge.js";
import type { Registry } from "../registry/index.js";
import { runtimeProber, type HealthProber } from "../health/probe.js";
import type { Runtime } from "../runtime/types.js";
import type { Limits } from "../servicedef/limits.js";
import type { ContainerView, ObservedSnapshot } from "./observed/snapshot.js";
import { KeyedMutex } from "../util/keyed-mutex.js";
import { ImageCache } from "./operations/images.js";
import { defaultPolicy, type AgentPolicy } from "./policy/rules.js";
import type { PortAllocator } from "./ports/allocator.js";
import type { CrashPoint } from "./operations/crash-points.js";
import type { MetricsRecorder } from "./metrics/recorder.js";

export interface AgentSettings {
  node: string;
  /** Address route ports are published on (`-p <bind>:H:H`). */
  bindAddress: string;
  allowLatest: boolean;
  /** Service data directories live at `<dataRoot>/<service>`. */
  dataRoot: string;
  agentVersion: string;
  /** Seconds podman waits after SIGTERM before SIGKILL. */
  stopTimeoutSeconds: number;
  /** What definitions may publish and mount (policy.ts); serve.ts builds it from the config. */
  policy: AgentPolicy;
  /** The limits every received spec is validated with (config `[limits]`); absent: the built-ins. */
  limits?: Limits;
  /** Each container's log size cap (config `[containers] log_max_size`); absent: none. */
  logMaxSize?: string;
  /** Revisions of each service kept (config `[history] keep`); absent: 20. */
  historyKeep?: number;
}

export interface AgentContext {
  settings: AgentSettings;
  registry: Registry;
  runtime: Runtime;
  allocator: PortAllocator;
  /** Health checks of deploys and the monitor (src/health). */
  health: HealthProber;
  images: ImageCache;
  /** Serialises operations on one service; different services run in parallel. */
  serviceLocks: KeyedMutex;
  logger: Logger;
  startedAt: Date;
  /** Before every named step of a component operation (tests inject crashes here). */
  crashPoint?: CrashPoint | undefined;
  /**
   * The watch loop (src/monitor), set by serve.ts once the server is up.
   * GetServiceStatus runs a pass through it first, so `mcp status` shows fresh drift.
   */
  monitor?: { runOnce(): Promise<ObservedSnapshot> };
  /**
   * What podman runs, kept current by its events (observed/view.ts, set by
   * serve.ts); absent (unit tests) or not current, readers list instead.
   */
  observed?: ContainerView | undefined;
  /** The node's proxy, certificates and DNS, when the config has `[proxy]` (serve.ts). */
  edge?: Edge | undefined;
  /** Counts deploys, drift and flap events for `[metrics]` (metrics/, set by serve.ts); absent: none. */
  metrics?: MetricsRecorder | undefined;
}

/**
 * Without a policy the strictest one applies (defaultPolicy, publishing on
 * `bindAddress`): tests that do not care about the policy still get it.
 */
export function createAgentContext(deps: {
  settings: Omit<AgentSettings, "policy"> & { policy?: AgentPolicy };
  registry: Registry;
  runtime: Runtime;
  allocator: PortAllocator;
  logger: Logger;
  crashPoint?: CrashPoint | undefined;
  /** Absent: the real probes over `runtime`. */
  health?: HealthProber;
  edge?: Edge | undefined;
}): AgentContext {
  const { policy, ...settings } = deps.settings;
  return {
    ...deps,
    settings: { ...settings, policy: policy ?? defaultPolicy([settings.bindAddress]) },
    health: deps.health ?? runtimeProber(deps.runtime),
    images: new ImageCache(deps.runtime),
    serviceLocks: new KeyedMutex(),
    startedAt: new Date(),
  };
}
