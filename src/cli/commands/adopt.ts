/**
 * `mcp adopt <service> [--node N]`: take the node's existing containers of
 * the service into its agent's registry (AdoptContainers; what is taken over
 * is described in src/agent/adopt.ts). The node comes from `--node`, else
 * from the local definition; without either the command refuses.
 */
import type { AdoptResult } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";

/** One line per container: `  ad1-web → web: adopted` / `: skipped: …` / `: error: …`. Pure. */
export function formatAdoptResults(results: AdoptResult[]): string {
  return results
    .map((r) => {
      const outcome = r.outcome || (r.success ? "adopted" : "error");
      const why = r.error ? `: ${r.error}` : "";
      return `  ${r.container} → ${r.component}: ${outcome}${why}\n`;
    })
    .join("");
}

/** `--node`, else the node of the local definition; a missing definition needs `--node`. */
export async function adoptNode(
  ctx: CliContext,
  service: string,
  nodeOpt: string | undefined,
): Promise<string> {
  if (nodeOpt) return nodeOpt;
  try {
    return (await ctx.loadDefinition(service)).def.node;
  } catch (err) {
    if (err instanceof McpError && err.code === "not_found") {
      throw new McpError(
        "invalid_argument",
        `no definition for service "${service}": pass --node <node> to say where its containers run`,
      );
    }
    throw err;
  }
}

export async function adoptCommand(
  ctx: CliContext,
  service: string,
  opts: { node?: string },
): Promise<number> {
  const node = await ctx.node(await adoptNode(ctx, service, opts.node));
  const response = await ctx.withClient(node, (client) =>
    client.call("adoptContainers", { service }),
  );
  ctx.io.out(`node ${node.name}:\n${formatAdoptResults(response.results)}`);
  return response.results.every((r) => r.success) ? 0 : 1;
}
