/**
 * A service definition as the operator writes it in TOML (see DESIGN.md,
 * "Service definitions"). Optional fields stay absent when the file omits
 * them, so a definition converts to a ServiceSpec and back unchanged.
 */
import type { Limits } from "./limits.js";

export type RouteMode = "l4" | "l7";
export type RouteProtocol = "tcp" | "udp";

export interface RouteDef {
  /** Absent for the single unnamed route ($PORT); named routes get $PORT_<NAME>. */
  name?: string;
  /** The proxy listener port (1-65535), not a container port. */
  port: number;
  /** Absent means l4. */
  mode?: RouteMode;
  hostname?: string;
  /** Absent means tcp. */
  protocol?: RouteProtocol;
  /**
   * The proxy sends a PROXY protocol v2 header first, so the container
   * learns the client's address (L4 too). Only ever `true` here: absent
   * means off, and a written `false` reads back as absent.
   */
  proxy_protocol?: true;
}

export type HealthType = "http" | "tcp" | "exec" | "none";
export type Strategy = "start-first" | "stop-first";

/** `[components.health]`; durations as written ("10s"), absent fields take HEALTH_DEFAULTS. */
export interface HealthDef {
  type: HealthType;
  /** http/tcp: the named route whose host port is checked (default: the unnamed, else the first tcp route). */
  route?: string;
  /** http only; 200-399 is healthy. */
  path?: string;
  /** exec only: run inside the container, exit 0 = healthy. */
  cmd?: string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  deadline?: string;
}

export interface ComponentDef {
  name: string;
  image: string;
  network?: string;
  user?: string;
  restart?: string;
  /** Podman `--memory`: a whole number and b, k, m or g (`256m`), at least 6m. */
  memory?: string;
  /** Podman `--cpus` (`0.5`), 0.01-1024. */
  cpus?: number;
  /** Podman `--pids-limit`, at least 1. */
  pids?: number;
  /** Old-style explicit podman -p mappings, kept verbatim. */
  ports?: string[];
  volumes?: string[];
  cmd?: string[];
  /** KEY=VALUE */
  env?: string[];
  routes?: RouteDef[];
  health?: HealthDef;
  /** Absent: stop-first with volumes or explicit ports, else start-first (defaultStrategy). */
  strategy?: Strategy;
}

export interface BuildDef {
  images?: Record<string, string>;
  uses_mcdsl?: boolean;
}

export interface ServiceDef {
  name: string;
  node: string;
  /** Absent means true. */
  active?: boolean;
  comment?: string;
  /** Source directory relative to the build workspace (CLI-side only). */
  path?: string;
  /** Build configuration (CLI-side only; not sent to the agent). */
  build?: BuildDef;
  components: ComponentDef[];
}

/** Desired state of a component, as the agent records it. */
export type DesiredState = "running" | "stopped" | "ignore";

/** Options for validating a definition. */
export interface ServiceDefOptions {
  /** Accept images tagged `:latest` (off by default: the agent's config decides). */
  allowLatest?: boolean;
  /** The limits to apply (default BUILTIN_LIMITS; the agent passes its own, stricter ones). */
  limits?: Limits;
}
