/**
 * `mcp ps`: every component on every node (asked in parallel), its state,
 * health, version and uptime; names the nodes that did not answer and exits
 * non-zero then, so scripts notice a partial picture.
 */
import type { CliContext } from "../context.js";
import { formatJson, formatTable, formatUptime } from "../output.js";
import { answered, componentRows, type NodeServices } from "../service-rows.js";

export function formatPs(answers: NodeServices[], now: Date): string {
  const rows = componentRows(answers).map(({ service, component, node, info }) => [
    service,
    component,
    node,
    info.observedState,
    info.health || "-",
    info.version,
    info.observedState === "running" && info.startedAt
      ? formatUptime(now.getTime() - info.startedAt.getTime())
      : "-",
  ]);
  return formatTable(
    ["SERVICE", "COMPONENT", "NODE", "STATE", "HEALTH", "VERSION", "UPTIME"],
    rows,
  );
}

export async function psCommand(ctx: CliContext, opts: { json?: boolean }): Promise<number> {
  const answers = await ctx.fanOut(await ctx.allNodes(), (client) => client.call("liveCheck", {}));
  const services = answered(answers).map(({ node, result }) => ({
    node,
    services: result.services,
  }));
  ctx.io.out(opts.json ? formatJson(componentRows(services)) : formatPs(services, new Date()));
  return ctx.reportMissing(answers) > 0 ? 1 : 0;
}
