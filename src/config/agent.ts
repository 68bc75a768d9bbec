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
import { z } from "zod";
import { parseHostPort } from "./address.js";
import { formatDuration, parseDuration } from "./duration.js";
import { LOG_LEVELS, type LogLevel } from "../util/log.js";
import { parseToml, readTextFile, resolvePath, validateToml } from "./files.js";

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
  log: { level: LogLevel };
}

const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

const nonEmpty = z.string().min(1, "must not be empty");

/** A duration string ("30s") turned into milliseconds; `def` goes through the same parse. */
function duration(def: string, { positive }: { positive: boolean }) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        const ms = parseDuration(text);
        if (positive && ms <= 0) {
          ctx.issues.push({ code: "custom", message: "must be greater than zero", input: text });
        }
        return ms;
      } catch (err) {
        ctx.issues.push({ code: "custom", message: (err as Error).message, input: text });
        return z.NEVER;
      }
    })
    .prefault(def);
}

const port = z.number().int("must be an integer").min(1).max(65535);

/** `8080` or `"9000-9100"` → inclusive range. */
const reservedEntry = z.union([port, z.string()]).transform((v, ctx): PortRange => {
  if (typeof v === "number") return { from: v, to: v };
  const m = /^(\d+)-(\d+)$/.exec(v.trim());
  const from = Number(m?.[1]);
  const to = Number(m?.[2]);
  if (!m || from < 1 || to > 65535 || from > to) {
    ctx.issues.push({
      code: "custom",
      message: `expected a port or "a-b" range within 1-65535, got ${JSON.stringify(v)}`,
      input: v,
    });
    return z.NEVER;
  }
  return { from, to };
});

const listenAddress = z.string().superRefine((v, ctx) => {
  try {
    parseHostPort(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
});

const fileSchema = z.strictObject({
  agent: z.strictObject({
    node_name: z
      .string()
      .regex(NODE_NAME, "must be a lower-case DNS label (a-z, 0-9, '-', '.'), at most 63 chars"),
    data_root: nonEmpty.default("/srv"),
    allow_latest: z.boolean().default(false),
  }),
  server: z.strictObject({
    listen: listenAddress.default("127.0.0.1:9444"),
    tls_cert: nonEmpty,
    tls_key: nonEmpty,
    ca_cert: nonEmpty.optional(),
  }),
  database: z.strictObject({ path: nonEmpty }),
  auth: z.strictObject({ tokens_file: nonEmpty }),
  ports: z
    .strictObject({
      range: z
        .tuple([z.number().int().min(1).max(65535), z.number().int().min(2).max(65536)])
        .refine(([min, max]) => min < max, "min must be below max ([min, max), max exclusive)")
        .default([10000, 60000]),
      reserved: z.array(reservedEntry).default([]),
      exclude_ephemeral: z.boolean().default(true),
      bind_addresses: z
        .array(z.string().refine((s) => isIP(s) !== 0, "must be an IP address"))
        .min(1, "needs at least one address")
        .default(["127.0.0.1"]),
    })
    .prefault({}),
  monitor: z
    .strictObject({
      interval: duration("30s", { positive: true }),
      alert_command: z.array(nonEmpty).default([]),
      cooldown: duration("15m", { positive: false }),
      flap_threshold: z.number().int().min(1).default(3),
      flap_window: duration("10m", { positive: true }),
      retention: duration("720h", { positive: true }),
    })
    .prefault({}),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default("info") }).prefault({}),
});

/**
 * Builds an AgentConfig from parsed TOML (or an equivalent object), applying
 * defaults and resolving relative paths against `baseDir`. `file` names the
 * source in error messages.
 */
export function agentConfigFromObject(data: unknown, baseDir: string, file: string): AgentConfig {
  const raw = validateToml(file, fileSchema, data);
  const abs = (p: string) => resolvePath(baseDir, p);
  return {
    agent: {
      nodeName: raw.agent.node_name,
      dataRoot: abs(raw.agent.data_root),
      allowLatest: raw.agent.allow_latest,
    },
    server: {
      listen: raw.server.listen,
      tlsCert: abs(raw.server.tls_cert),
      tlsKey: abs(raw.server.tls_key),
      caCert: raw.server.ca_cert === undefined ? undefined : abs(raw.server.ca_cert),
    },
    database: { path: abs(raw.database.path) },
    auth: { tokensFile: abs(raw.auth.tokens_file) },
    ports: {
      range: { min: raw.ports.range[0], max: raw.ports.range[1] },
      reserved: raw.ports.reserved,
      excludeEphemeral: raw.ports.exclude_ephemeral,
      bindAddresses: raw.ports.bind_addresses,
    },
    monitor: {
      intervalMs: raw.monitor.interval,
      alertCommand: raw.monitor.alert_command,
      cooldownMs: raw.monitor.cooldown,
      flapThreshold: raw.monitor.flap_threshold,
      flapWindowMs: raw.monitor.flap_window,
      retentionMs: raw.monitor.retention,
    },
    log: { level: raw.log.level },
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
  const server: Record<string, string> = {
    listen: cfg.server.listen,
    tls_cert: cfg.server.tlsCert,
    tls_key: cfg.server.tlsKey,
  };
  if (cfg.server.caCert !== undefined) server.ca_cert = cfg.server.caCert;
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
    log: { level: cfg.log.level },
  });
  return `# mcp-agent configuration (reference §4.3). Relative paths are relative to this file.\n\n${body}\n`;
}
