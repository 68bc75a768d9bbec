/**
 * `mcp sync [--dry-run]`: push every definition in the services dir to the
 * agent of its node (SyncDesiredState), all nodes in parallel. Additive and
 * intent-only (see src/agent/operations/sync.ts): nothing is deleted, deployed or
 * stopped.
 *
 * Exit codes, for scripts: 0 = done / nothing would change, 1 = (dry run)
 * something would change, 2 = error (a bad definition file, an unknown node,
 * a node that could not be reached), 3 = no error, but a node did not answer
 * before the deadline (`--deadline`, 2 min): the sync may still be running
 * there. Definitions are all read and checked first; if any is bad, every
 * problem is printed and nothing is pushed.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import type { ServiceSpec, ServiceSyncResult } from "../../gen/mcp/v1/mcp.js";
import type { ResolvedNode } from "../../config/cli.js";
import { parseServiceDef, readServiceDefFile } from "../../servicedef/parse.js";
import { toServiceSpec } from "../../servicedef/spec.js";
import { McpError, ValidationError, errorMessage } from "../../util/errors.js";
import { hintLine, type AgentClient, type CallOpts } from "../client.js";
import type { CliContext, LoadedDefinition } from "../context.js";
import { EXIT, OutcomeUnknownError } from "../outcome.js";
import { deadlineFor } from "./deploy.js";

/** Exit codes of `mcp sync`. */
export const SYNC_EXIT = { ok: 0, changes: 1, error: 2, unknown: EXIT.unknown } as const;

export interface AllDefinitions {
  dir: string;
  definitions: LoadedDefinition[];
  /** One line per problem, each naming its file. */
  problems: string[];
}

/**
 * Reads and validates every `*.toml` in the services dir (sorted by name).
 * A file whose `name` differs from its file name is a problem, as for
 * `mcp deploy <service>`. A missing or unreadable dir throws.
 */
export async function loadAllDefinitions(ctx: CliContext): Promise<AllDefinitions> {
  const dir = (await ctx.config()).services.dir;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".toml")).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new McpError(
      code === "ENOENT" ? "not_found" : "invalid_argument",
      code === "ENOENT"
        ? `services dir ${dir} does not exist`
        : `cannot read services dir ${dir}: ${errorMessage(err)}`,
    );
  }
  const definitions: LoadedDefinition[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    try {
      const text = await readServiceDefFile(file);
      const def = parseServiceDef(text, file);
      const expected = name.slice(0, -".toml".length);
      if (def.name !== expected) {
        problems.push(`${file}: name is "${def.name}", expected "${expected}" (the file name)`);
        continue;
      }
      definitions.push({ def, file, text });
    } catch (err) {
      if (err instanceof ValidationError) problems.push(...err.message.split("\n"));
      else problems.push(`${file}: ${errorMessage(err)}`);
    }
  }
  return { dir, definitions, problems };
}

/** Definitions grouped by their node, in the order first named; unknown nodes are problems. */
export async function groupByNode(
  ctx: CliContext,
  definitions: LoadedDefinition[],
): Promise<{ groups: { node: ResolvedNode; defs: LoadedDefinition[] }[]; problems: string[] }> {
  const groups = new Map<string, { node: ResolvedNode; defs: LoadedDefinition[] }>();
  const problems: string[] = [];
  for (const d of definitions) {
    try {
      const node = await ctx.nodeOf(d);
      const group = groups.get(node.name) ?? { node, defs: [] };
      group.defs.push(d);
      groups.set(node.name, group);
    } catch (err) {
      // An unknown node already reads `<file>: node: unknown node …`.
      const unknown = err instanceof McpError && err.code === "not_found";
      problems.push(unknown ? errorMessage(err) : `${d.file}: node: ${errorMessage(err)}`);
    }
  }
  return { groups: [...groups.values()], problems };
}

/** Per node: one line per service, then its changes indented. Pure. */
export function formatSyncResults(
  node: string,
  results: ServiceSyncResult[],
  dryRun: boolean,
): string {
  let text = `node ${node}${dryRun ? " (dry run)" : ""}:\n`;
  for (const r of results) {
    const summary = dryRun && r.changed ? `would be ${r.summary}` : r.summary;
    text += `  ${r.name}: ${summary}\n`;
    for (const change of r.changes) text += `    ${change}\n`;
  }
  return text;
}

/** `mcp: node N: reason` (the client's errors already name the node), extra lines indented. */
export function nodeError(node: string, lines: string[]): string {
  return lines
    .map((line, i) => {
      if (i > 0) return `mcp:   ${line}\n`;
      return line.startsWith(`node ${node}`) ? `mcp: ${line}\n` : `mcp: node ${node}: ${line}\n`;
    })
    .join("");
}

export async function syncCommand(
  ctx: CliContext,
  opts: { dryRun?: boolean; deadline?: number },
): Promise<number> {
  const dryRun = opts.dryRun ?? false;
  const deadlineMs = deadlineFor("sync", opts);
  try {
    const all = await loadAllDefinitions(ctx);
    const { groups, problems } = await groupByNode(ctx, all.definitions);
    problems.unshift(...all.problems);
    if (problems.length > 0) {
      for (const p of problems) ctx.io.err(`mcp: ${p}\n`);
      ctx.io.err(`mcp: sync: nothing pushed (${problems.length} problem(s))\n`);
      return SYNC_EXIT.error;
    }
    if (groups.length === 0) {
      ctx.io.out(`no definitions in ${all.dir}: nothing to sync\n`);
      return SYNC_EXIT.ok;
    }
    const answers = await Promise.all(
      groups.map(async ({ node, defs }) => {
        const services: ServiceSpec[] = defs.map((d) => toServiceSpec(d.def));
        const push = (client: AgentClient, call: CallOpts) =>
          client.call("syncDesiredState", { services, dryRun }, call);
        try {
          // A dry run changes nothing: its deadline passing is a plain failure.
          const res = dryRun
            ? await ctx.withClient(node, (client) => push(client, { timeoutMs: deadlineMs }))
            : await ctx.changeState(node, { verb: "sync", deadlineMs }, push);
          return { node, results: res.results };
        } catch (err) {
          if (err instanceof OutcomeUnknownError) return { node, unknown: err.message };
          return { node, error: errorMessage(err).split("\n"), hint: hintLine(err) };
        }
      }),
    );
    let failed = false;
    let unknown = false;
    let changed = 0;
    for (const a of answers) {
      if (a.unknown !== undefined) {
        unknown = true;
        ctx.io.err(`mcp: ${a.unknown}\n`);
        continue;
      }
      if (a.error) {
        failed = true;
        ctx.io.err(nodeError(a.node.name, a.error) + (a.hint ?? ""));
        continue;
      }
      ctx.io.out(formatSyncResults(a.node.name, a.results, dryRun));
      changed += a.results.filter((r) => r.changed).length;
    }
    if (failed) return SYNC_EXIT.error;
    if (unknown) return SYNC_EXIT.unknown;
    if (dryRun) {
      ctx.io.out(
        changed === 0
          ? "nothing would change\n"
          : `${changed} service${changed === 1 ? "" : "s"} would change\n`,
      );
      return changed === 0 ? SYNC_EXIT.ok : SYNC_EXIT.changes;
    }
    ctx.io.out(`${changed} service${changed === 1 ? "" : "s"} changed\n`);
    return SYNC_EXIT.ok;
  } catch (err) {
    ctx.io.err(`mcp: sync: ${errorMessage(err).split("\n")[0]}\n`);
    return SYNC_EXIT.error;
  }
}
