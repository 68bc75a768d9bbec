/**
 * Several nodes on this one machine for the multi-node tests and benchmarks:
 * each is a network namespace with its own address and its own Podman storage,
 * made by scripts/nodes.sh. A node's agent is a real `mcp-agent serve` started
 * inside the namespace (through LiveAgent's `prefix`), listening on the node's
 * address; the CLI reaches it over the host's route to those addresses.
 *
 * The nodes are shared machine state: `ensureNodes` brings them up only when
 * they are not (scripts/test.sh does it before the whole run) and says whether
 * it did, so whoever created them removes them (`removeNodes`).
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CommandError, runCommand } from "../../src/util/exec.js";
import { LiveAgent, type LiveAgentOptions } from "./live-agent.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const NODES_SCRIPT = path.join(ROOT, "scripts/nodes.sh");
/** The port every node's agent listens on (each node has its own address). */
export const NODE_AGENT_PORT = 9444;

export interface NetnsNode {
  /** 1-based index: node `n1` is namespace `mcp-n1`. */
  index: number;
  netns: string;
  /** The node's IPv4 address (exists only inside its namespace; routed from the host). */
  address: string;
  /** argv prefix that runs a command inside the node: its network and its Podman. */
  prefix: string[];
}

function parseEnvLines(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return values;
}

async function describeNode(index: number): Promise<NetnsNode> {
  const { stdout } = await runCommand([NODES_SCRIPT, "env", String(index)]);
  const env = parseEnvLines(stdout);
  const get = (key: string): string => {
    const value = env.get(key);
    if (!value) throw new Error(`scripts/nodes.sh env ${index}: no ${key} in:\n${stdout}`);
    return value;
  };
  const netns = get("NETNS");
  return {
    index,
    netns,
    address: get("ADDRESS"),
    prefix: [
      "nsenter",
      `--net=${netns}`,
      "env",
      `CONTAINERS_CONF=${get("CONTAINERS_CONF")}`,
      `CONTAINERS_STORAGE_CONF=${get("CONTAINERS_STORAGE_CONF")}`,
    ],
  };
}

/**
 * Makes sure nodes 1..count are up (scripts/nodes.sh, idempotent) and
 * describes them. `created` is true when this call had to create something.
 */
export async function ensureNodes(
  count: number,
): Promise<{ nodes: NetnsNode[]; created: boolean }> {
  if (!existsSync(NODES_SCRIPT)) throw new Error(`${NODES_SCRIPT} is missing`);
  let created = false;
  try {
    await runCommand([NODES_SCRIPT, "check", String(count)]);
  } catch (err) {
    if (!(err instanceof CommandError) || err.exitCode !== 1) throw err;
    await runCommand([NODES_SCRIPT, "up", String(count)], { timeoutMs: 120_000 });
    created = true;
  }
  const nodes: NetnsNode[] = [];
  for (let i = 1; i <= count; i++) nodes.push(await describeNode(i));
  return { nodes, created };
}

/** Removes every node (containers, storage, namespaces, bridge). */
export async function removeNodes(): Promise<void> {
  await runCommand([NODES_SCRIPT, "down"], { timeoutMs: 120_000 });
}

/** `podman …` inside `node` (its own storage), as argv. */
export function nodePodman(node: NetnsNode, args: string[]): string[] {
  return [...node.prefix, "podman", ...args];
}

/** Names of the containers `podman ps -a` shows inside `node`, sorted. */
export async function nodeContainers(node: NetnsNode): Promise<string[]> {
  const { stdout } = await runCommand(nodePodman(node, ["ps", "-a", "--format", "{{.Names}}"]));
  return stdout.split("\n").filter(Boolean).sort();
}

/**
 * A real agent inside `node`: `mcp-agent init --listen <address>:9444`
 * (`caDir` signs its certificate with an existing CA), serving from the
 * namespace with the node's Podman, publishing route ports on the node's
 * address so the host can reach them.
 */
export function startNodeAgent(
  node: NetnsNode,
  opts: {
    name: string;
    caDir?: string;
    port?: number;
    config?: LiveAgentOptions["config"];
  },
): Promise<LiveAgent> {
  const { ports, ...rest } = opts.config ?? {};
  return LiveAgent.start({
    node: opts.name,
    init: {
      listen: `${node.address}:${opts.port ?? NODE_AGENT_PORT}`,
      ...(opts.caDir ? { caDir: opts.caDir } : {}),
    },
    prefix: node.prefix,
    config: { ...rest, ports: { bind_addresses: [node.address], ...ports } },
  });
}

/** GETs `http://<host>:<port><urlPath>`, retrying while the container starts. */
export async function httpGetAt(
  host: string,
  port: number,
  urlPath = "/",
  timeoutMs = 10_000,
): Promise<string> {
  const url = `http://${host}:${port}${urlPath}`;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return await res.text();
      lastError = new Error(`HTTP ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no HTTP answer on ${url}: ${String(lastError)}`);
}
