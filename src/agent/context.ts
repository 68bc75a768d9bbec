/**
 * Everything an RPC handler needs, wired once by `mcp-agent serve`.
 * Handlers take this context and plain messages; they never see gRPC.
 */
import type { Logger } from "pino";
import type { Registry } from "../registry/index.js";
import type { Runtime } from "../runtime/types.js";
import type { Limits } from "../servicedef/limits.js";
import type { ObservedSnapshot } from "./observe.js";
import { KeyedMutex } from "../util/keyed-mutex.js";
import { ImageCache } from "./images.js";
import type { PortAllocator } from "./ports.js";

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
  /** The limits every received spec is validated with (config `[limits]`); absent: the built-ins. */
  limits?: Limits;
  /** Each container's log size cap (config `[containers] log_max_size`); absent: none. */
  logMaxSize?: string;
}

export interface AgentContext {
  settings: AgentSettings;
  registry: Registry;
  runtime: Runtime;
  allocator: PortAllocator;
  images: ImageCache;
  /** Serialises operations on one service; different services run in parallel. */
  serviceLocks: KeyedMutex;
  logger: Logger;
  startedAt: Date;
  /**
   * The watch loop (src/monitor), set by serve.ts once the server is up.
   * GetServiceStatus runs a pass through it first, so `mcp status` shows fresh drift.
   */
  monitor?: { runOnce(): Promise<ObservedSnapshot> };
}

export function createAgentContext(deps: {
  settings: AgentSettings;
  registry: Registry;
  runtime: Runtime;
  allocator: PortAllocator;
  logger: Logger;
}): AgentContext {
  return {
    ...deps,
    images: new ImageCache(deps.runtime),
    serviceLocks: new KeyedMutex(),
    startedAt: new Date(),
  };
}
