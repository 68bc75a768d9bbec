/**
 * `mcp purge [service[/component]] [--dry-run] [--node N]`: remove registry
 * entries of components that are gone and no longer defined (PurgeComponent;
 * the rules are in src/agent/operations/purge.ts).
 *
 * The CLI computes `defined_components` from the local definitions, per node:
 * a node is sent the `service/component` keys of the definitions whose
 * `node` is that node. So a service moved from node A to node B leaves a
 * purgeable stale entry on A instead of one that purge could never clear.
 * If any definition file is invalid, purge refuses to run: it cannot tell
 * what that file still defines.
 *
 * Nodes: `--node`, else every node in the config (in parallel). With a
 * service named, nodes that do not know it are skipped quietly; if none knows
 * it, that is an error.
 *
 * Exit: with a service or component named, 0 only if everything in scope
 * was purged (or would be, with --dry-run); `mcp purge` alone is a sweep and
 * exits 0 whatever it kept. A node that does not answer, or an invalid
 * definition, exits 1. A node whose answer did not come before the deadline
 * (`--deadline`, 2 min; not a dry run), with nothing else wrong, exits 3: the
 * purge may still be running there.
 */
import type { PurgeResult } from "../../gen/mcp/v1/mcp.js";
import type { ResolvedNode } from "../../config/cli.js";
import { McpError, errorMessage } from "../../util/errors.js";
import { hintLine, type AgentClient, type CallOpts } from "../client.js";
import type { CliContext, LoadedDefinition } from "../context.js";
import { EXIT, OutcomeUnknownError, type StateChange } from "../outcome.js";
import { deadlineFor, parseTarget } from "./deploy.js";
import { loadAllDefinitions, nodeError } from "./sync.js";

/** `service/component` keys of the definitions placed on `node`. Pure. */
export function definedComponents(definitions: LoadedDefinition[], node: string): string[] {
  return definitions
    .filter((d) => d.def.node === node)
    .flatMap((d) => d.def.components.map((c) => `${d.def.name}/${c.name}`))
    .sort();
}

/** One line per result: `  svc/web: purged: …`, `would purge`, `not purged`; `svc (service)` for the row. Pure. */
export function formatPurgeResults(node: string, results: PurgeResult[], dryRun: boolean): string {
  let text = `node ${node}${dryRun ? " (dry run)" : ""}:\n`;
  if (results.length === 0) text += "  nothing registered\n";
  for (const r of results) {
    const what = r.component ? `${r.service}/${r.component}` : `${r.service} (service)`;
    const verdict = r.purged ? (dryRun ? "would purge" : "purged") : "not purged";
    text += `  ${what}: ${verdict}: ${r.reason}\n`;
  }
  return text;
}

export async function purgeCommand(
  ctx: CliContext,
  target: string | undefined,
  opts: { dryRun?: boolean; node?: string; deadline?: number },
): Promise<number> {
  const { service, component } = target ? parseTarget(target) : { service: "", component: "" };
  const dryRun = opts.dryRun ?? false;
  const change: StateChange = { verb: "purge", target, deadlineMs: deadlineFor("purge", opts) };
  const all = await loadAllDefinitions(ctx);
  if (all.problems.length > 0) {
    for (const p of all.problems) ctx.io.err(`mcp: ${p}\n`);
    throw new McpError(
      "invalid_definition",
      "purge: refusing to run while a definition is invalid (it may still define what would be purged)",
    );
  }
  const nodes: ResolvedNode[] = opts.node ? [await ctx.node(opts.node)] : await ctx.allNodes();
  const answers = await Promise.all(
    nodes.map(async (node) => {
      const purge = (client: AgentClient, call: CallOpts) =>
        client.call(
          "purgeComponent",
          {
            service,
            component,
            dryRun,
            definedComponents: definedComponents(all.definitions, node.name),
          },
          call,
        );
      try {
        // A dry run changes nothing: its deadline passing is a plain failure.
        const res = dryRun
          ? await ctx.withClient(node, (client) => purge(client, { timeoutMs: change.deadlineMs }))
          : await ctx.changeState(node, change, purge);
        return { node, results: res.results };
      } catch (err) {
        if (err instanceof OutcomeUnknownError) return { node, outcomeUnknown: err.message };
        const unknown = err instanceof McpError && err.code === "not_found";
        return { node, error: errorMessage(err), hint: hintLine(err), unknown };
      }
    }),
  );

  let failed = false;
  let stillRunning = false;
  let notPurged = 0;
  for (const a of answers) {
    if (a.outcomeUnknown !== undefined) {
      stillRunning = true;
      ctx.io.err(`mcp: ${a.outcomeUnknown}\n`);
    } else if (a.results) {
      ctx.io.out(formatPurgeResults(a.node.name, a.results, dryRun));
      notPurged += a.results.filter((r) => !r.purged).length;
    } else if (!(a.unknown && service && nodes.length > 1)) {
      // Asked one node, or no target: an unknown service there is the answer.
      failed = true;
      ctx.io.err(nodeError(a.node.name, (a.error ?? "").split("\n")) + (a.hint ?? ""));
    }
  }
  const found = answers.some((a) => a.results);
  if (service && !found && !failed && !stillRunning) {
    const what = component ? `${service}/${component}` : service;
    throw new McpError(
      "not_found",
      `unknown ${component ? "component" : "service"} "${what}" on every node`,
    );
  }
  if (failed) return EXIT.failed;
  if (stillRunning) return EXIT.unknown;
  return service && notPurged > 0 ? EXIT.failed : EXIT.ok;
}
