/**
 * `mcp ps`, `mcp list`, `mcp status [service]`: ask every node in parallel,
 * show what answered, name what did not, and exit non-zero if any node was
 * missing (so scripts notice a partial picture).
 */
import type {
  DriftInfo,
  EventInfo,
  GetServiceStatusResponse,
  RouteStatus,
  ServiceInfo,
} from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { CliContext, NodeAnswer } from "../context.js";
import { formatJson, formatTable, formatUptime } from "../output.js";

export interface NodeServices {
  node: string;
  services: ServiceInfo[];
}

function byServiceThenComponent<T extends { service: string; component: string }>(
  a: T,
  b: T,
): number {
  return a.service.localeCompare(b.service) || a.component.localeCompare(b.component);
}

/** Flattens services to one row per component, sorted by service then component. */
export function componentRows(answers: NodeServices[]) {
  return answers
    .flatMap(({ node, services }) =>
      services.flatMap((s) =>
        s.components.map((c) => ({ service: s.name, component: c.name, node, info: c })),
      ),
    )
    .sort(byServiceThenComponent);
}

export function formatPs(answers: NodeServices[], now: Date): string {
  const rows = componentRows(answers).map(({ service, component, node, info }) => [
    service,
    component,
    node,
    info.observedState,
    info.version,
    info.observedState === "running" && info.startedAt
      ? formatUptime(now.getTime() - info.startedAt.getTime())
      : "-",
  ]);
  return formatTable(["SERVICE", "COMPONENT", "NODE", "STATE", "VERSION", "UPTIME"], rows);
}

/** `rest:8443/l4→127.0.0.1:12345`-style cell, `PORT` for the unnamed route. */
export function formatRoutes(routes: RouteStatus[], explicit: string[]): string {
  const parts = routes.map(
    (r) => `${r.name || "PORT"}:${r.port}/${r.mode || "l4"}→${r.hostPort > 0 ? r.hostPort : "-"}`,
  );
  return [...parts, ...explicit].join(",") || "-";
}

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
  const rows = componentRows(
    answers.map(({ node, status }) => ({ node, services: status.services })),
  ).map(({ service, component, node, info }) => [
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

function eventDetail(e: EventInfo): string {
  const transition =
    e.prevState || e.newState ? `${e.prevState || "-"} → ${e.newState || "-"}` : "";
  return [transition, e.message].filter(Boolean).join("  ");
}

function answered<T>(answers: NodeAnswer<T>[]): { node: string; result: T }[] {
  return answers.flatMap((a) =>
    a.result === undefined ? [] : [{ node: a.node.name, result: a.result }],
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
