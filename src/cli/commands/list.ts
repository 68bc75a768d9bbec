/**
 * `mcp list`: every component on every node with desired and observed
 * state and its ports; exits non-zero when a node did not answer.
 */
import type { CliContext } from "../context.js";
import { formatJson, formatTable } from "../output.js";
import { answered, componentRows, formatRoutes, type NodeServices } from "../service-rows.js";

export function formatList(answers: NodeServices[]): string {
  const rows = componentRows(answers).map(({ service, component, node, info }) => [
    service,
    component,
    node,
    info.desiredState,
    info.observedState,
    info.version,
    formatRoutes(info.routes, info.ports),
  ]);
  return formatTable(
    ["SERVICE", "COMPONENT", "NODE", "DESIRED", "OBSERVED", "VERSION", "PORTS"],
    rows,
  );
}

export async function listCommand(ctx: CliContext, opts: { json?: boolean }): Promise<number> {
  const answers = await ctx.fanOut(await ctx.allNodes(), (client) =>
    client.call("listServices", { name: "", includeSpec: false }),
  );
  const services = answered(answers).map(({ node, result }) => ({
    node,
    services: result.services,
  }));
  ctx.io.out(opts.json ? formatJson(services) : formatList(services));
  return ctx.reportMissing(answers) > 0 ? 1 : 0;
}
