/** `mcp node list|add|remove` and `mcp login`. */
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { addNode, removeNode, saveCliConfig } from "../../config/cli.js";
import { writeFileAtomic } from "../../config/files.js";
import type { NodeStatusResponse } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { formatJson, formatTable } from "../output.js";

export interface NodeRow {
  name: string;
  address: string;
  version: string;
  status: NodeStatusResponse | undefined;
  error: string | undefined;
}

export function formatNodeList(rows: NodeRow[]): string {
  return formatTable(
    ["NAME", "ADDRESS", "VERSION", "STATUS"],
    rows.map((r) => [
      r.name,
      r.address,
      r.version || "-",
      r.error ? `unreachable: ${r.error}` : "ok",
    ]),
  );
}

export async function nodeListCommand(ctx: CliContext, opts: { json?: boolean }): Promise<number> {
  const answers = await ctx.fanOut(await ctx.allNodes(), (client) => client.call("nodeStatus", {}));
  const rows: NodeRow[] = answers.map((a) => ({
    name: a.node.name,
    address: a.node.address,
    version: a.result?.agentVersion ?? "",
    status: a.result,
    error: a.error,
  }));
  ctx.io.out(opts.json ? formatJson(rows) : formatNodeList(rows));
  // The table says why; a node with no agent at all is also said as for any command.
  ctx.reportMissing(answers, { notAnsweringOnly: true });
  return rows.some((r) => r.error) ? 1 : 0;
}

export async function nodeAddCommand(
  ctx: CliContext,
  name: string,
  address: string,
  opts: { ca?: string; tokenFile?: string },
): Promise<number> {
  const next = addNode(await ctx.config({ allowMissing: true }), {
    name,
    address,
    ...(opts.ca ? { caCert: path.resolve(opts.ca) } : {}),
    ...(opts.tokenFile ? { tokenPath: path.resolve(opts.tokenFile) } : {}),
  });
  await saveCliConfig(ctx.configPath, next);
  ctx.io.out(`added node ${name} (${address}) to ${ctx.configPath}\n`);
  return 0;
}

export async function nodeRemoveCommand(ctx: CliContext, name: string): Promise<number> {
  await saveCliConfig(ctx.configPath, removeNode(await ctx.config(), name));
  ctx.io.out(`removed node ${name} from ${ctx.configPath}\n`);
  return 0;
}

/**
 * Stores an operator token (from `--token-file` or standard input) where the
 * config says, mode 0600. Tokens come from `mcp-agent init` (or an admin).
 */
export async function loginCommand(
  ctx: CliContext,
  opts: { tokenFile?: string; node?: string },
  readStdin: () => Promise<string>,
): Promise<number> {
  const raw = opts.tokenFile ? await readFile(opts.tokenFile, "utf8") : await readStdin();
  const token = raw.trim();
  if (!token || /\s/.test(token)) {
    throw new McpError(
      "invalid_argument",
      "login: expected one token (no spaces) on standard input or in --token-file",
    );
  }
  const target = opts.node
    ? (await ctx.node(opts.node)).tokenPath
    : (await ctx.config()).auth.tokenPath;
  if (!target) {
    throw new McpError("invalid_config", `login: ${ctx.configPath} has no [auth] token_path`);
  }
  await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
  await writeFileAtomic(target, token + "\n", 0o600);
  ctx.io.out(`token stored in ${target}\n`);
  return 0;
}
