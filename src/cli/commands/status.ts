/**
 * `mcp status [service]`: desired against observed state, drift, the last
 * check's output of each unhealthy component and recent events, from every
 * node (or the service's own node when its definition is known); exits
 * non-zero when a node did not answer.
 */
import type { DriftInfo, EventInfo, GetServiceStatusResponse } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { formatJson, formatTable } from "../output.js";
import { answered, componentRows, formatRoutes } from "../service-rows.js";

export interface NodeStatusAnswer {
  node: string;
  status: GetServiceStatusResponse;
}

export function formatStatus(answers: NodeStatusAnswer[]): string {
  const drift = new Set(
    answers.flatMap(({ node, status }) =>
      status.drift.map((d: DriftInfo) => `${node}/${d.service}/${d.component}`),
    ),
  );
  const components = componentRows(
    answers.map(({ node, status }) => ({ node, services: status.services })),
  );
  const rows = components.map(({ service, component, node, info }) => [
    service,
    component,
    node,
    info.desiredState,
    info.observedState,
    drift.has(`${node}/${service}/${component}`) ? "DRIFT" : "ok",
    formatRoutes(info.routes, info.ports),
  ]);
  let text = formatTable(
    ["SERVICE", "COMPONENT", "NODE", "DESIRED", "OBSERVED", "DRIFT", "PORTS"],
    rows,
  );
  const unhealthy = components.filter(({ info }) => info.health === "unhealthy");
  if (unhealthy.length > 0) {
    text += "\nUNHEALTHY\n";
    text += formatTable(
      ["SERVICE", "COMPONENT", "NODE", "CHECKED", "LAST CHECK"],
      unhealthy.map(({ service, component, node, info }) => [
        service,
        component,
        node,
        info.healthCheckedAt?.toISOString() ?? "-",
        oneLine(info.healthOutput) || "-",
      ]),
    );
  }
  const events = answers
    .flatMap(({ node, status }) => status.recentEvents.map((e) => ({ node, e })))
    .sort((a, b) => (b.e.timestamp?.getTime() ?? 0) - (a.e.timestamp?.getTime() ?? 0));
  if (events.length > 0) {
    text += "\nRECENT EVENTS\n";
    text += formatTable(
      ["TIME", "NODE", "SERVICE", "COMPONENT", "EVENT", "DETAIL"],
      events.map(({ node, e }) => [
        e.timestamp?.toISOString() ?? "",
        node,
        e.service,
        e.component,
        e.kind,
        eventDetail(e),
      ]),
    );
  }
  return text;
}

/** A check's output (a command's, say) on one table line. */
function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, " ⏎ ");
}

function eventDetail(e: EventInfo): string {
  const transition =
    e.prevState || e.newState ? `${e.prevState || "-"} → ${e.newState || "-"}` : "";
  return [transition, oneLine(e.message)].filter(Boolean).join("  ");
}

export async function statusCommand(
  ctx: CliContext,
  service: string | undefined,
  opts: { json?: boolean },
): Promise<number> {
  // One service lives on one node: ask only that node when its definition is known.
  const nodes = service ? await nodesForService(ctx, service) : await ctx.allNodes();
  const answers = await ctx.fanOut(nodes, (client) =>
    client.call("getServiceStatus", { name: service ?? "", eventLimit: 0 }),
  );
  const statuses = answered(answers).map(({ node, result }) => ({ node, status: result }));
  ctx.io.out(opts.json ? formatJson(statuses) : formatStatus(statuses));
  return ctx.reportMissing(answers) > 0 ? 1 : 0;
}

async function nodesForService(ctx: CliContext, service: string) {
  let loaded;
  try {
    loaded = await ctx.loadDefinition(service);
  } catch (err) {
    // No local definition (e.g. adopted or exported only): ask every node.
    if (err instanceof McpError && err.code === "not_found") return await ctx.allNodes();
    throw err;
  }
  // A definition naming an unknown node is an error, not a reason to ask everyone.
  return [await ctx.nodeOf(loaded)];
}
