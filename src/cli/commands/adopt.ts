/**
 * `mcp adopt <service> [--node N]`: take the node's existing containers of
 * the service into its agent's registry (AdoptContainers; what is taken over
 * is described in src/agent/operations/adopt.ts). The node comes from `--node`, else
 * from the local definition; without either the command refuses.
 */
import type { AdoptResult } from "../../gen/mcp/v1/mcp.js";
import type { CliContext } from "../context.js";
import type { StateChange } from "../outcome.js";
import { deadlineFor, nodeOfService } from "./deploy.js";

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

export async function adoptCommand(
  ctx: CliContext,
  service: string,
  opts: { node?: string; deadline?: number },
): Promise<number> {
  const node = await nodeOfService(ctx, service, opts.node);
  const change: StateChange = {
    verb: "adopt",
    target: service,
    deadlineMs: deadlineFor("adopt", opts),
  };
  const response = await ctx.changeState(node, change, (client, call) =>
    client.call("adoptContainers", { service }, call),
  );
  ctx.io.out(`node ${node.name}:\n${formatAdoptResults(response.results)}`);
  return response.results.every((r) => r.success) ? 0 : 1;
}
