/**
 * The operator CLI's config (`~/.config/mcp/mcp.toml`, reference §4.2): where
 * service definitions live and how to reach each node. The node list lives
 * only here; the CLI holds no database.
 *
 * ```toml
 * [services]
 * dir = "services"              # default: services/ next to this file
 * [tls]
 * ca_cert = "ca.pem"            # shared default CA for every node
 * [auth]
 * token_path = "token"          # shared default bearer token file
 * [client]
 * connect_timeout = "15s"       # connecting to an agent; --timeout overrides it
 * [[nodes]]
 * name = "rift"
 * address = "100.95.252.120:9444"
 * ca_cert = "rift-ca.pem"       # optional per-node override
 * token_path = "rift-token"     # optional per-node override
 * ```
 */
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { stringify } from "smol-toml";
import { defined, TableChecker, type Parse } from "../util/checker.js";
import { McpError } from "../util/errors.js";
import { parseHostPort } from "./address.js";
import { formatDuration, parseDuration } from "./duration.js";
import { parseToml, readTextFile, resolvePath, throwProblems, writeFileAtomic } from "./files.js";

export interface CliNode {
  name: string;
  /** `host:port` of the node's agent. */
  address: string;
  caCert?: string | undefined;
  tokenPath?: string | undefined;
}

export interface CliConfig {
  services: { dir: string };
  tls: { caCert?: string | undefined };
  auth: { tokenPath?: string | undefined };
  /** Unset: the built-in default (src/cli/limits.ts). */
  client: { connectTimeoutMs?: number | undefined };
  nodes: CliNode[];
}

/** What the CLI needs to dial one node: every path resolved, overrides applied. */
export interface ResolvedNode {
  name: string;
  address: string;
  caCert: string;
  tokenPath: string;
}

/** `$XDG_CONFIG_HOME/mcp/mcp.toml`, else `~/.config/mcp/mcp.toml`. */
export function defaultCliConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && xdg.startsWith("/") ? xdg : join(env.HOME || homedir(), ".config");
  return join(base, "mcp", "mcp.toml");
}

/** The config path to use: `--config` flag, then `$MCP_CONFIG`, then the default. */
export function cliConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag || env.MCP_CONFIG || defaultCliConfigPath(env));
}

const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const NODE_NAME_EXPECTED = "a lower-case DNS label (a-z, 0-9, '-', '.'), at most 63 chars";
const NODE_KEYS = ["name", "address", "ca_cert", "token_path"];

/** Checks of a node's name and `host:port` address (kept as written). */
function nodeChecks(c: TableChecker) {
  return {
    name: c.matching(NODE_NAME, NODE_NAME_EXPECTED),
    address: c.parsing((text) => {
      parseHostPort(text);
      return text;
    }, '"host:port"'),
  };
}

/** Checks a parsed file; relative paths (and `~/`) are resolved against `base`. */
function cliConfigFromObject(data: unknown, base: string, file: string): CliConfig {
  const c = new TableChecker();
  const check = nodeChecks(c);
  const path: Parse<string> = (v, p) => {
    const s = c.nonEmpty(v, p);
    return s === undefined ? undefined : resolvePath(base, s);
  };
  // Required values fall back to a placeholder, never used: any problem throws below.
  const node: Parse<CliNode> = (v, p) => {
    const t = c.strictTable(NODE_KEYS)(v, p);
    if (!t) return undefined;
    return {
      name: c.field(t, p, "name", check.name, true) ?? "",
      address: c.field(t, p, "address", check.address, true) ?? "",
      caCert: c.field(t, p, "ca_cert", path),
      tokenPath: c.field(t, p, "token_path", path),
    };
  };

  const root = c.strictTable(["services", "tls", "auth", "client", "nodes"])(data, "");
  const dir = c.section(root, "", "services", ["dir"])("dir", path);
  const caCert = c.section(root, "", "tls", ["ca_cert"])("ca_cert", path);
  const tokenPath = c.section(root, "", "auth", ["token_path"])("token_path", path);
  const connectTimeoutMs = c.section(root, "", "client", ["connect_timeout"])(
    "connect_timeout",
    (v, p) => {
      const ms = c.parsing(parseDuration, 'a duration such as "15s"')(v, p);
      return ms === 0 ? c.expected(p, "a duration above zero", v) : ms;
    },
  );
  const nodes = c.field(root, "", "nodes", c.list(node, "an array of tables ([[nodes]])")) ?? [];
  const seen = new Map<string, number>();
  nodes.forEach((n, i) => {
    if (!n?.name) return;
    const first = seen.get(n.name);
    if (first === undefined) seen.set(n.name, i);
    else c.fail(`nodes[${i}].name`, `duplicate node "${n.name}" (also nodes[${first}])`);
  });
  const cfg: CliConfig = {
    services: { dir: dir ?? resolvePath(base, "services") },
    tls: { caCert },
    auth: { tokenPath },
    client: { connectTimeoutMs },
    nodes: defined(nodes),
  };
  throwProblems(file, c);
  return cfg;
}

const MISSING_HINT =
  'run "mcp-agent init" on the node (it writes a ready mcp.toml to use with --config) ' +
  'or "mcp node add <name> <host:port>" to create it';

/** A config with nothing in it, as `mcp node add` starts from on a fresh machine. */
export function emptyCliConfig(path: string): CliConfig {
  return {
    services: { dir: join(dirname(resolve(path)), "services") },
    tls: {},
    auth: {},
    client: {},
    nodes: [],
  };
}

/**
 * Loads the CLI config. Relative paths (and `~/`) are resolved against the
 * file's directory. A missing file is an McpError telling the operator how to
 * create one, unless `allowMissing` (then an empty config is returned).
 */
export async function loadCliConfig(
  path: string,
  opts: { allowMissing?: boolean } = {},
): Promise<CliConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readTextFile(file, MISSING_HINT, "not_found");
  } catch (err) {
    if (opts.allowMissing && err instanceof McpError && err.code === "not_found") {
      return emptyCliConfig(file);
    }
    throw err;
  }
  return cliConfigFromObject(parseToml(file, text), dirname(file), file);
}

/** Renders the config as TOML (absolute paths, optional keys only when set). */
export function renderCliConfig(cfg: CliConfig): string {
  const opt = <T>(key: string, v: T | undefined) => (v === undefined ? {} : { [key]: v });
  return stringify({
    services: { dir: cfg.services.dir },
    tls: opt("ca_cert", cfg.tls.caCert),
    auth: opt("token_path", cfg.auth.tokenPath),
    ...(cfg.client.connectTimeoutMs === undefined
      ? {}
      : { client: { connect_timeout: formatDuration(cfg.client.connectTimeoutMs) } }),
    nodes: cfg.nodes.map((n) => ({
      name: n.name,
      address: n.address,
      ...opt("ca_cert", n.caCert),
      ...opt("token_path", n.tokenPath),
    })),
  });
}

/** Writes the config atomically with mode 0600 (it points at secrets). */
export async function saveCliConfig(path: string, cfg: CliConfig): Promise<void> {
  await writeFileAtomic(resolve(path), `${renderCliConfig(cfg)}\n`, 0o600);
}

function describeNodes(cfg: CliConfig): string {
  return cfg.nodes.length === 0
    ? 'no nodes are configured; add one with "mcp node add <name> <host:port>"'
    : `configured nodes: ${cfg.nodes.map((n) => n.name).join(", ")}`;
}

/** Looks a node up and applies per-node overrides over the shared CA and token. */
export function resolveNode(cfg: CliConfig, name: string): ResolvedNode {
  const node = cfg.nodes.find((n) => n.name === name);
  if (!node)
    throw new McpError("not_found", `unknown node ${JSON.stringify(name)} (${describeNodes(cfg)})`);
  const caCert = node.caCert ?? cfg.tls.caCert;
  const tokenPath = node.tokenPath ?? cfg.auth.tokenPath;
  if (caCert === undefined) {
    throw new McpError(
      "invalid_config",
      `node ${name} has no CA certificate: set [tls] ca_cert or ca_cert on the node`,
    );
  }
  if (tokenPath === undefined) {
    throw new McpError(
      "invalid_config",
      `node ${name} has no token: set [auth] token_path or token_path on the node`,
    );
  }
  return { name, address: node.address, caCert, tokenPath };
}

/** Returns a copy with `node` added; refuses a bad name/address or a duplicate. */
export function addNode(cfg: CliConfig, node: CliNode): CliConfig {
  const c = new TableChecker();
  const check = nodeChecks(c);
  check.name(node.name, "name");
  check.address(node.address, "address");
  if (c.problems.length > 0) {
    const problems = c.problems.map((p) => `${p.path}: ${p.message}`);
    throw new McpError("invalid_argument", `cannot add node: ${problems.join(", ")}`);
  }
  if (cfg.nodes.some((n) => n.name === node.name)) {
    throw new McpError(
      "invalid_argument",
      `node ${node.name} already exists; remove it first with "mcp node remove ${node.name}"`,
    );
  }
  return { ...cfg, nodes: [...cfg.nodes, { ...node }] };
}

/** Returns a copy without the named node; not_found if there is none. */
export function removeNode(cfg: CliConfig, name: string): CliConfig {
  if (!cfg.nodes.some((n) => n.name === name)) {
    throw new McpError("not_found", `unknown node ${JSON.stringify(name)} (${describeNodes(cfg)})`);
  }
  return { ...cfg, nodes: cfg.nodes.filter((n) => n.name !== name) };
}
