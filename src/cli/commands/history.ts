/**
 * `mcp history <service> [--node N] [--json]`: the revisions the agent keeps
 * of a service (ListRevisions), newest first, one line per component:
 * `REV COMPONENT IMAGE DEPLOYED OUTCOME`. A failed component's reason
 * follows its line; a rollback's rows say which revision they went back to
 * (`ok (rollback to 3)`); `rolled back` is a component whose new version
 * failed while the old one serves again. The node comes from `--node`, else from the local
 * definition (or the only configured node).
 */
import type { RevisionInfo } from "../../gen/mcp/v1/mcp.js";
import type { CliContext } from "../context.js";
import { formatJson, formatTable, formatUtcTime } from "../output.js";
import { oneLine } from "../progress.js";
import { nodeOfService } from "./deploy.js";

/** `ok`, `failed`, `rolled back`, and for a rollback's rows `ok (rollback to 3)`. */
export function formatOutcome(r: Pick<RevisionInfo, "outcome" | "kind" | "rollbackTo">): string {
  return r.kind === "rollback" ? `${r.outcome} (rollback to ${r.rollbackTo})` : r.outcome;
}

/** The history table, with each failure's reason on the line below it. Pure. */
export function formatHistory(revisions: RevisionInfo[]): string {
  if (revisions.length === 0) return "no revisions\n";
  const rows = revisions.map((r) => [
    String(r.revision),
    r.component,
    r.image,
    formatUtcTime(r.deployedAt),
    formatOutcome(r),
  ]);
  const table = formatTable(["REV", "COMPONENT", "IMAGE", "DEPLOYED", "OUTCOME"], rows).split("\n");
  const out = [table[0] ?? ""];
  revisions.forEach((r, i) => {
    out.push(table[i + 1] ?? "");
    if (r.outcome !== "ok" && r.message) out.push(`    ${oneLine(r.message)}`);
  });
  return `${out.join("\n")}\n`;
}

export async function historyCommand(
  ctx: CliContext,
  service: string,
  opts: { node?: string; json?: boolean },
): Promise<number> {
  const node = await nodeOfService(ctx, service, opts.node);
  const { revisions } = await ctx.withClient(node, (client) =>
    client.call("listRevisions", { service }),
  );
  ctx.io.out(
    opts.json ? formatJson({ node: node.name, service, revisions }) : formatHistory(revisions),
  );
  return 0;
}
