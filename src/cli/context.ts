/**
 * What every command needs: the CLI config (loaded on first use), service
 * definitions, and agent clients for the nodes. Commands get a CliContext and
 * return an exit code; they never call process.exit themselves.
 */
import path from "node:path";
import { loadCliConfig, resolveNode, type CliConfig, type ResolvedNode } from "../config/cli.js";
import { parseServiceDef, readServiceDefFile } from "../servicedef/parse.js";
import type { ServiceDef } from "../servicedef/types.js";
import { McpError, errorMessage } from "../util/errors.js";
import {
  AgentVersionError,
  NodeNotAnsweringError,
  connectNode,
  hintOf,
  type AgentClient,
  type CallOpts,
} from "./client.js";
import { failureReason, waitConnected, withNodeDeadline } from "./deadline.js";
import { DEFAULT_CONNECT_TIMEOUT_MS, fanOutLimits } from "./limits.js";
import { processIO, type CliIO } from "./io.js";
import { asOutcome, type StateChange } from "./outcome.js";

export { processIO, type CliIO } from "./io.js";

export interface CliOptions {
  /** `--timeout`: overrides `[client] connect_timeout` and the default (limits.ts). */
  connectTimeoutMs?: number | undefined;
}

export interface LoadedDefinition {
  def: ServiceDef;
  file: string;
  text: string;
}

export interface NodeAnswer<T> {
  node: ResolvedNode;
  result?: T;
  /** Why the node did not answer, without the node's name. */
  error?: string;
  /** The error itself, when it did not answer. */
  failure?: unknown;
}

export class CliContext {
  private loaded?: Promise<CliConfig>;

  constructor(
    readonly configPath: string,
    readonly io: CliIO = processIO,
    readonly options: CliOptions = {},
  ) {}

  /** How long connecting to a node may take: `--timeout`, else the config, else 15 s. */
  async connectTimeoutMs(): Promise<number> {
    return (
      this.options.connectTimeoutMs ??
      (await this.config()).client.connectTimeoutMs ??
      DEFAULT_CONNECT_TIMEOUT_MS
    );
  }

  /** The CLI config, read once. `allowMissing` gives an empty one (for `node add`). */
  config(opts: { allowMissing?: boolean } = {}): Promise<CliConfig> {
    this.loaded ??= loadCliConfig(this.configPath, opts);
    return this.loaded;
  }

  async definitionPath(service: string): Promise<string> {
    return path.join((await this.config()).services.dir, `${service}.toml`);
  }

  /**
   * Reads `<services dir>/<service>.toml` (or `file`) without validating it:
   * `service edit` must be able to open a file that does not parse yet. A
   * file over the size limit is refused before it is read.
   */
  async readDefinition(
    service: string | undefined,
    file?: string,
  ): Promise<{ file: string; text: string }> {
    const target = file ?? (service ? await this.definitionPath(service) : undefined);
    if (!target) throw new McpError("invalid_argument", "name a service or pass -f <file>");
    try {
      return { file: target, text: await readServiceDefFile(target) };
    } catch (err) {
      if (err instanceof McpError) throw err;
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new McpError(
          "not_found",
          service && !file
            ? `no definition for service "${service}": ${target} does not exist`
            : `${target} does not exist`,
        );
      }
      throw new McpError("invalid_argument", `cannot read ${target}: ${errorMessage(err)}`);
    }
  }

  /** Reads and validates `<services dir>/<service>.toml`, or `file` when given. */
  async loadDefinition(service: string | undefined, file?: string): Promise<LoadedDefinition> {
    const { file: target, text } = await this.readDefinition(service, file);
    const def = parseServiceDef(text, target);
    if (service && !file && def.name !== service) {
      throw new McpError(
        "invalid_definition",
        `${target}: name is "${def.name}", expected "${service}" (the file name)`,
      );
    }
    return { def, file: target, text };
  }

  async node(name: string): Promise<ResolvedNode> {
    return resolveNode(await this.config(), name);
  }

  /**
   * The node a definition names. An unknown one is the definition's
   * problem, so the error names the file and the field:
   * `/path/web.toml: node: unknown node "x" (known: a, b)`.
   */
  async nodeOf(loaded: Pick<LoadedDefinition, "def" | "file">): Promise<ResolvedNode> {
    const config = await this.config();
    const name = loaded.def.node;
    if (!config.nodes.some((n) => n.name === name)) {
      const known =
        config.nodes.length === 0
          ? 'no nodes are configured; add one with "mcp node add <name> <host:port>"'
          : `known: ${config.nodes.map((n) => n.name).join(", ")}`;
      throw new McpError(
        "not_found",
        `${loaded.file}: node: unknown node ${JSON.stringify(name)} (${known})`,
      );
    }
    return resolveNode(config, name);
  }

  async allNodes(): Promise<ResolvedNode[]> {
    const config = await this.config();
    return config.nodes.map((n) => resolveNode(config, n.name));
  }

  /**
   * Dials `node`, waits for the connection (at most the connect timeout: past
   * it nothing was sent and the command fails), runs `fn`, and always closes
   * the connection. `fn`'s calls keep their own deadlines.
   */
  async withClient<T>(node: ResolvedNode, fn: (client: AgentClient) => Promise<T>): Promise<T> {
    const connectMs = await this.connectTimeoutMs();
    const client = await connectNode(node);
    try {
      await waitConnected(client, connectMs);
      return await fn(client);
    } finally {
      client.close();
    }
  }

  /**
   * withClient for a command that changes state: `fn` gets the call options
   * carrying the change's deadline, and a deadline that passes becomes an
   * OutcomeUnknownError (exit 3, "may still be running").
   */
  async changeState<T>(
    node: ResolvedNode,
    change: StateChange,
    fn: (client: AgentClient, call: CallOpts) => Promise<T>,
  ): Promise<T> {
    try {
      return await this.withClient(node, (client) => fn(client, { timeoutMs: change.deadlineMs }));
    } catch (err) {
      throw asOutcome(err, change);
    }
  }

  /**
   * Runs `fn` against every node in parallel, each within fanOutLimits of the
   * connect timeout; a node that fails is reported, not fatal.
   */
  async fanOut<T>(
    nodes: ResolvedNode[],
    fn: (client: AgentClient) => Promise<T>,
  ): Promise<NodeAnswer<T>[]> {
    const limits = fanOutLimits(await this.connectTimeoutMs());
    return Promise.all(
      nodes.map(async (node): Promise<NodeAnswer<T>> => {
        try {
          return { node, result: await withNodeDeadline(node, limits, fn) };
        } catch (err) {
          return { node, error: failureReason(err, node.name), failure: err };
        }
      }),
    );
  }

  /**
   * Prints one stderr line per node that did not answer, then the hints
   * they carry (each once); returns how many did not answer. A node that is
   * not there at all reads `node NAME (ADDRESS) is not answering: is
   * mcp-agent running?`, as for a command that asks one node.
   * `notAnsweringOnly`: report just those (commands whose output already
   * says why the others failed).
   */
  reportMissing(answers: NodeAnswer<unknown>[], opts: { notAnsweringOnly?: boolean } = {}): number {
    const missing = answers.filter((a) => a.error !== undefined);
    const hints = new Set<string>();
    for (const a of missing) {
      const named =
        a.failure instanceof NodeNotAnsweringError || a.failure instanceof AgentVersionError;
      if (opts.notAnsweringOnly && !(a.failure instanceof NodeNotAnsweringError)) continue;
      const message = named ? errorMessage(a.failure) : `node ${a.node.name}: ${a.error}`;
      this.io.err(`mcp: ${message}\n`);
      const hint = hintOf(a.failure);
      if (hint) hints.add(hint);
    }
    for (const hint of hints) this.io.err(`hint: ${hint}\n`);
    return missing.length;
  }
}
