/**
 * The agent's config file (`mcp-agent.toml`, reference §4.3 and §9).
 *
 * The file uses snake_case TOML keys; the loaded AgentConfig is camelCase with
 * every default filled in, durations in milliseconds and every path absolute
 * (relative paths are resolved against the config file's directory, so a config
 * written by `mcp-agent init` keeps working wherever the directory is moved).
 */
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { stringify } from "smol-toml";
import { at, defined, TableChecker, type Parse } from "../util/checker.js";
import { LOG_LEVELS, type LogLevel } from "../util/log.js";
import {
  BUILTIN_LIMITS,
  DEFAULT_LOG_MAX_SIZE,
  LIMIT_KEYS,
  MAX_LOG_MAX_BYTES,
  MIN_LOG_MAX_BYTES,
  parseSize,
  type Limits,
} from "../servicedef/limits.js";
import { DEFAULT_TRANSPORT_LIMITS } from "../protocol/limits.js";
import { parseHostPort } from "./address.js";
import {
  EDGE_KEYS,
  edgeConfigFrom,
  edgeConfigToTables,
  type CertsConfig,
  type DnsConfig,
  type ProxyConfig,
} from "./edge.js";
import { formatDuration, parseDuration } from "./duration.js";
import { parseToml, readTextFile, resolvePath, throwProblems } from "./files.js";
import {
  AGENT_DIR_WHAT,
  PODMAN_STORAGE_DIRS,
  SYSTEM_DIRS,
  describeReach,
  normalizeAbsolute,
  reach,
  type ProtectedDir,
} from "./protected-dirs.js";

/** An inclusive range of host ports; a single port has `from === to`. */
export interface PortRange {
  from: number;
  to: number;
}

export interface AgentConfig {
  agent: {
    nodeName: string;
    /** Service data directories live at `<dataRoot>/<service>`. */
    dataRoot: string;
    /** Accept `:latest` images (refused by default). */
    allowLatest: boolean;
  };
  server: {
    /** `host:port` the gRPC server binds. */
    listen: string;
    tlsCert: string;
    tlsKey: string;
    /** The CA that issued tlsCert; informational for the agent (the CLI pins it). */
    caCert?: string | undefined;
    /**
     * A connection that has not made an authenticated call this long after
     * TCP accept (TLS handshake included) is closed. See src/agent/server/transport.ts.
     */
    firstRequestTimeoutMs: number;
  };
  database: { path: string };
  auth: { tokensFile: string };
  ports: {
    /** Allocation range: `min` inclusive, `max` exclusive. */
    range: { min: number; max: number };
    reserved: PortRange[];
    /** Skip the kernel's ephemeral range (ip_local_port_range). */
    excludeEphemeral: boolean;
    bindAddresses: string[];
  };
  monitor: {
    intervalMs: number;
    /** argv run without a shell; empty = no alerts. */
    alertCommand: string[];
    cooldownMs: number;
    flapThreshold: number;
    flapWindowMs: number;
    retentionMs: number;
  };
  /** How many revisions of each service the agent keeps (`mcp history`). */
  history: { keep: number };
  log: { level: LogLevel };
  /**
   * What a definition may ask of the host beyond the defaults (src/agent/policy/rules.ts):
   * every allowance is off unless the operator turns it on.
   */
  policy: {
    /** `network = "host"` (never with routes or explicit ports). */
    allowHostNetwork: boolean;
    /** Host ports below 1024, for explicit `ports` and the `[ports] range`. */
    allowLowPorts: boolean;
    /** Host directories volumes may come from besides the service's data directory. */
    volumeRoots: string[];
  };
  containers: {
    /** Podman `--log-opt max-size` of every container the agent starts (`10m`). */
    logMaxSize: string;
  };
  podman: {
    /**
     * `[podman] socket`: the libpod API socket of an existing
     * `podman system service` (a path); "" = the agent starts its own at
     * `podman.sock` next to this config.
     */
    socket: string;
  };
  /** The limits on received specs: the built-ins, or stricter ones from `[limits]`. */
  limits: Limits;
  /**
   * `[metrics] listen`: the `host:port` of the Prometheus metrics listener
   * (src/agent/metrics/); absent: no listener.
   */
  metrics?: { listen: string };
  /** `[proxy]`, `[certs]`, `[dns]` (edge.ts): each absent unless configured. */
  proxy?: ProxyConfig;
  certs?: CertsConfig;
  dns?: DnsConfig;
}

/** Revisions of each service kept when the config does not say. */
export const DEFAULT_HISTORY_KEEP = 20;

const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const NODE_NAME_EXPECTED = "a lower-case DNS label (a-z, 0-9, '-', '.'), at most 63 chars";

/** The keys each section may hold; [agent], [server], [database] and [auth] are required. */
const KEYS = {
  agent: ["node_name", "data_root", "allow_latest"],
  server: ["listen", "tls_cert", "tls_key", "ca_cert", "first_request_timeout"],
  database: ["path"],
  auth: ["tokens_file"],
  ports: ["range", "reserved", "exclude_ephemeral", "bind_addresses"],
  monitor: ["interval", "alert_command", "cooldown", "flap_threshold", "flap_window", "retention"],
  history: ["keep"],
  log: ["level"],
  policy: ["allow_host_network", "allow_low_ports", "volume_roots"],
  containers: ["log_max_size"],
  podman: ["socket"],
  metrics: ["listen"],
  limits: Object.values(LIMIT_KEYS),
  ...EDGE_KEYS,
};

/**
 * Builds an AgentConfig from parsed TOML (or an equivalent object), applying
 * defaults and resolving relative paths against `baseDir`. `file` names the
 * source in error messages.
 */
export function agentConfigFromObject(data: unknown, baseDir: string, file: string): AgentConfig {
  const c = new TableChecker();
  const root = c.strictTable(Object.keys(KEYS))(data, "");
  const section = (key: keyof typeof KEYS, required = false) =>
    c.section(root, "", key, KEYS[key], required);
  const agent = section("agent", true);
  const server = section("server", true);
  const database = section("database", true);
  const auth = section("auth", true);
  const ports = section("ports");
  const monitor = section("monitor");
  const history = section("history");
  const log = section("log");
  const policy = section("policy");
  const containers = section("containers");
  const podman = section("podman");
  const limits = section("limits");
  const metrics = section("metrics");
  // A `[metrics]` table turns the listener on, so it must say where.
  const metricsListen = metrics(
    "listen",
    c.parsing(hostPort, '"host:port"'),
    root !== undefined && Object.hasOwn(root, "metrics"),
  );

  const path: Parse<string> = (v, p) => {
    const s = c.nonEmpty(v, p);
    return s === undefined ? undefined : resolvePath(baseDir, s);
  };
  const duration =
    (positive: boolean): Parse<number> =>
    (v, p) => {
      const ms = c.parsing(parseDuration, 'a duration such as "30s"')(v, p);
      return positive && ms === 0 ? c.expected(p, "a duration above zero", v) : ms;
    };

  // Required values fall back to a placeholder, never used: any problem throws below.
  const cfg: AgentConfig = {
    agent: {
      nodeName: agent("node_name", c.matching(NODE_NAME, NODE_NAME_EXPECTED), true) ?? "",
      dataRoot: agent("data_root", path) ?? "/srv",
      allowLatest: agent("allow_latest", c.boolean) ?? false,
    },
    server: {
      listen: server("listen", c.parsing(hostPort, '"host:port"')) ?? "127.0.0.1:9444",
      tlsCert: server("tls_cert", path, true) ?? "",
      tlsKey: server("tls_key", path, true) ?? "",
      caCert: server("ca_cert", path),
      firstRequestTimeoutMs:
        server("first_request_timeout", duration(true)) ??
        DEFAULT_TRANSPORT_LIMITS.firstRequestTimeoutMs,
    },
    database: { path: database("path", path, true) ?? "" },
    auth: { tokensFile: auth("tokens_file", path, true) ?? "" },
    ports: {
      range: ports("range", portRange(c)) ?? { min: 10000, max: 60000 },
      reserved: defined(ports("reserved", c.list(reservedPorts(c))) ?? []),
      excludeEphemeral: ports("exclude_ephemeral", c.boolean) ?? true,
      bindAddresses: ports("bind_addresses", ipAddresses(c)) ?? ["127.0.0.1"],
    },
    monitor: {
      intervalMs: monitor("interval", duration(true)) ?? parseDuration("30s"),
      alertCommand: defined(monitor("alert_command", c.list(c.nonEmpty)) ?? []),
      cooldownMs: monitor("cooldown", duration(false)) ?? parseDuration("15m"),
      flapThreshold: monitor("flap_threshold", c.integer(1)) ?? 3,
      flapWindowMs: monitor("flap_window", duration(true)) ?? parseDuration("10m"),
      retentionMs: monitor("retention", duration(true)) ?? parseDuration("720h"),
    },
    history: { keep: history("keep", c.integer(1, 1000)) ?? DEFAULT_HISTORY_KEEP },
    log: { level: log("level", c.oneOf<LogLevel>(LOG_LEVELS)) ?? "info" },
    policy: {
      allowHostNetwork: policy("allow_host_network", c.boolean) ?? false,
      allowLowPorts: policy("allow_low_ports", c.boolean) ?? false,
      volumeRoots: defined(policy("volume_roots", c.list(absoluteDir(c))) ?? []),
    },
    containers: {
      logMaxSize: containers("log_max_size", logMaxSize(c)) ?? DEFAULT_LOG_MAX_SIZE,
    },
    podman: {
      socket:
        podman("socket", (v, p) => {
          const text = c.nonEmpty(v, p);
          return text === undefined
            ? undefined
            : resolvePath(baseDir, text.replace(/^unix:\/\//, ""));
        }) ?? "",
    },
    limits: agentLimits(c, limits),
    ...(metricsListen === undefined ? {} : { metrics: { listen: metricsListen } }),
    ...edgeConfigFrom(c, root, baseDir),
  };
  checkPolicy(c, cfg, baseDir);
  checkMetricsListen(c, cfg);
  throwProblems(file, c);
  return cfg;
}

/**
 * The directories holding the agent's own files (config, registry, tokens,
 * TLS key and certificates; `mcp-agent init` puts them all in one): no
 * service may mount them or have one as its data directory, since they hold
 * the CA key, the token and the registry.
 */
export function agentDirectories(cfg: AgentConfig, configDir: string): string[] {
  const files = [cfg.database.path, cfg.auth.tokensFile, cfg.server.tlsCert, cfg.server.tlsKey];
  if (cfg.server.caCert !== undefined) files.push(cfg.server.caCert);
  const dirs = [resolve(configDir), ...files.map((f) => dirname(f))];
  return [...new Set(dirs)];
}

/** The agent's directories as protected directories, for the volume policy. */
export function agentProtectedDirs(cfg: AgentConfig, configDir: string): ProtectedDir[] {
  return agentDirectories(cfg, configDir).map((p) => ({
    path: p,
    kind: "agent",
    what: AGENT_DIR_WHAT,
  }));
}

/**
 * Cross-field rules of [policy]: a volume root may not reach a protected
 * directory (the host's, Podman's or the agent's) nor contain data_root (it
 * would hand every service every other service's data); data_root may not be
 * the agent's directory; a port range below 1024 needs allow_low_ports.
 */
function checkPolicy(c: TableChecker, cfg: AgentConfig, configDir: string): void {
  const agentDirs = agentProtectedDirs(cfg, configDir);
  const forbidden = [...SYSTEM_DIRS, ...PODMAN_STORAGE_DIRS, ...agentDirs];
  cfg.policy.volumeRoots.forEach((root, i) => {
    const p = at("policy.volume_roots", i);
    for (const d of forbidden) {
      const how = reach(root, d.path);
      if (how) {
        c.fail(p, `${root} ${describeReach(how, d)}: never allowed as a volume root`);
        return;
      }
    }
    const dataRoot = cfg.agent.dataRoot;
    const how = reach(root, dataRoot);
    if (how === "is" || how === "contains") {
      c.fail(
        p,
        `${root} contains data_root ${dataRoot}: every service could mount every other service's data directory`,
      );
    }
  });
  const own = agentDirs.find((d) => d.path === cfg.agent.dataRoot);
  if (own) {
    c.fail(
      "agent.data_root",
      `${cfg.agent.dataRoot} is the agent's own directory: service data directories would be the agent's files; use another directory (the default is /srv)`,
    );
  }
  if (cfg.ports.range.min < 1024 && !cfg.policy.allowLowPorts) {
    c.fail(
      "ports.range",
      `starts at ${cfg.ports.range.min}, below 1024 (privileged ports); set [policy] allow_low_ports = true to allow it`,
    );
  }
}

/** The metrics listener cannot share the gRPC server's port (both bind it). */
function checkMetricsListen(c: TableChecker, cfg: AgentConfig): void {
  if (!cfg.metrics) return;
  const metrics = parseHostPort(cfg.metrics.listen).port;
  if (metrics !== 0 && metrics === parseHostPort(cfg.server.listen).port) {
    c.fail(
      "metrics.listen",
      `port ${metrics} is the gRPC server's ([server] listen = "${cfg.server.listen}"); use another port`,
    );
  }
}

/** An absolute directory without `..`, normalised. */
function absoluteDir(c: TableChecker): Parse<string> {
  return (v, p) => {
    const s = c.nonEmpty(v, p);
    if (s === undefined) return undefined;
    return normalizeAbsolute(s) ?? c.expected(p, 'an absolute path without ".." segments', s);
  };
}

/** A podman size for `--log-opt max-size`, kept as written. */
function logMaxSize(c: TableChecker): Parse<string> {
  return (v, p) => {
    const bytes = typeof v === "string" ? parseSize(v) : undefined;
    return bytes !== undefined && bytes >= MIN_LOG_MAX_BYTES && bytes <= MAX_LOG_MAX_BYTES
      ? (v as string)
      : c.expected(
          p,
          'a size like "10m" (a whole number and b, k, m or g) from "64k" to "1024g"',
          v,
        );
  };
}

/** Each `[limits]` key may lower its built-in limit, never raise it. */
function agentLimits(c: TableChecker, read: ReturnType<TableChecker["section"]>): Limits {
  const limits = { ...BUILTIN_LIMITS };
  for (const name of Object.keys(LIMIT_KEYS) as (keyof Limits)[]) {
    const builtin = BUILTIN_LIMITS[name];
    const value = read(LIMIT_KEYS[name], (v, p) =>
      typeof v === "number" && Number.isInteger(v) && v > builtin
        ? c.fail(
            p,
            `expected at most ${builtin}, the built-in limit ([limits] can only lower it), got ${v}`,
          )
        : c.integer(1, builtin)(v, p),
    );
    if (value !== undefined) limits[name] = value;
  }
  return limits;
}

/** `host:port`, kept as written. */
function hostPort(text: string): string {
  parseHostPort(text);
  return text;
}

/** `[min, max]`, max exclusive. */
function portRange(c: TableChecker): Parse<{ min: number; max: number }> {
  return (v, p) => {
    if (!Array.isArray(v) || v.length !== 2) return c.expected(p, "[min, max] (two ports)", v);
    const min = c.integer(1, 65535)(v[0], at(p, 0));
    const max = c.integer(2, 65536)(v[1], at(p, 1));
    if (min === undefined || max === undefined) return undefined;
    if (min >= max) return c.fail(p, "min must be below max ([min, max), max exclusive)");
    return { min, max };
  };
}

/** `8080` or `"9000-9100"` → inclusive range. */
function reservedPorts(c: TableChecker): Parse<PortRange> {
  return (v, p) => {
    const m = typeof v === "string" ? /^(\d+)-(\d+)$/.exec(v.trim()) : null;
    const [from, to] = typeof v === "number" ? [v, v] : [Number(m?.[1]), Number(m?.[2])];
    return Number.isInteger(from) && from >= 1 && to <= 65535 && from <= to
      ? { from, to }
      : c.expected(p, 'a port or "a-b" range within 1-65535', v);
  };
}

/** At least one IP address. */
function ipAddresses(c: TableChecker): Parse<string[]> {
  const ip: Parse<string> = (v, p) =>
    typeof v === "string" && isIP(v) !== 0 ? v : c.expected(p, "an IP address", v);
  return (v, p) => {
    const ips = c.list(ip)(v, p);
    if (ips?.length === 0) return c.fail(p, "expected at least one address");
    return ips && defined(ips);
  };
}

/** Loads and validates an agent config; throws ValidationError listing every problem. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  const file = resolve(path);
  const text = await readTextFile(
    file,
    'create it with "mcp-agent init" or pass --config with the right path',
  );
  return agentConfigFromObject(parseToml(file, text), dirname(file), file);
}

/** Renders a config as TOML with every key explicit (what `mcp-agent init` writes). */
export function renderAgentConfig(cfg: AgentConfig): string {
  const limits: Record<string, number> = {};
  for (const name of Object.keys(LIMIT_KEYS) as (keyof Limits)[]) {
    if (cfg.limits[name] !== BUILTIN_LIMITS[name]) limits[LIMIT_KEYS[name]] = cfg.limits[name];
  }
  const server: Record<string, string> = {
    listen: cfg.server.listen,
    tls_cert: cfg.server.tlsCert,
    tls_key: cfg.server.tlsKey,
  };
  if (cfg.server.caCert !== undefined) server.ca_cert = cfg.server.caCert;
  server.first_request_timeout = formatDuration(cfg.server.firstRequestTimeoutMs);
  const body = stringify({
    agent: {
      node_name: cfg.agent.nodeName,
      data_root: cfg.agent.dataRoot,
      allow_latest: cfg.agent.allowLatest,
    },
    server,
    database: { path: cfg.database.path },
    auth: { tokens_file: cfg.auth.tokensFile },
    ports: {
      range: [cfg.ports.range.min, cfg.ports.range.max],
      reserved: cfg.ports.reserved.map((r) => (r.from === r.to ? r.from : `${r.from}-${r.to}`)),
      exclude_ephemeral: cfg.ports.excludeEphemeral,
      bind_addresses: cfg.ports.bindAddresses,
    },
    monitor: {
      interval: formatDuration(cfg.monitor.intervalMs),
      alert_command: cfg.monitor.alertCommand,
      cooldown: formatDuration(cfg.monitor.cooldownMs),
      flap_threshold: cfg.monitor.flapThreshold,
      flap_window: formatDuration(cfg.monitor.flapWindowMs),
      retention: formatDuration(cfg.monitor.retentionMs),
    },
    history: { keep: cfg.history.keep },
    log: { level: cfg.log.level },
    policy: {
      allow_host_network: cfg.policy.allowHostNetwork,
      allow_low_ports: cfg.policy.allowLowPorts,
      volume_roots: cfg.policy.volumeRoots,
    },
    containers: { log_max_size: cfg.containers.logMaxSize },
    ...(cfg.podman.socket ? { podman: { socket: cfg.podman.socket } } : {}),
    ...(cfg.metrics ? { metrics: { listen: cfg.metrics.listen } } : {}),
    // Only what is stricter than the built-ins: a later version may raise those.
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
    ...edgeConfigToTables(cfg),
  });
  return `# mcp-agent configuration (reference §4.3). Relative paths are relative to this file.\n\n${body}\n`;
}
