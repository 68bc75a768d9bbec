/**
 * `mcp status [service]`: desired against observed state, drift, whether
 * the node's proxy serves each route now (SERVED), the last
 * check's output of each unhealthy component and recent events, from every
 * node (or the service's own node when its definition is known); exits
 * non-zero when a node did not answer.
 *
 * With a service whose definition file is here, it also compares each
 * component's spec in the file with the one the agent holds (ListServices
 * include_spec) and says where they differ, e.g. after `mcp rollback`
 * (which never rewrites the file): `web: runs a different spec than
 * services/x.toml (running → file: image a:v1 → a:v2)`.
 */
import type {
  DriftInfo,
  EventInfo,
  GetServiceStatusResponse,
  RouteStatus,
  ServiceInfo,
  ServiceSpec,
} from "../../gen/mcp/v1/mcp.js";
import { specDifferences } from "../../servicedef/diff.js";
import { toServiceSpec } from "../../servicedef/spec.js";
import { McpError } from "../../util/errors.js";
import type { CliContext, LoadedDefinition } from "../context.js";
import { formatJson, formatTable } from "../output.js";
import { answered, componentRows, formatRoutes } from "../service-rows.js";

export interface NodeStatusAnswer {
  node: string;
  status: GetServiceStatusResponse;
  /** The local definition compared with what the agent holds (`mcp status <service>`). */
  definition?: { file: string; differences: string[] };
}

/**
 * One line per component whose spec in the file differs from the agent's
 * (running → file), or that only one of them has. Pure; empty when they agree.
 */
export function definitionDifferences(
  file: string,
  local: ServiceSpec,
  held: ServiceInfo | undefined,
): string[] {
  const heldSpecs = new Map((held?.spec?.components ?? []).map((c) => [c.name, c]));
  const lines: string[] = [];
  for (const c of local.components) {
    const running = heldSpecs.get(c.name);
    if (!running) {
      lines.push(`${c.name}: in ${file}, not on the agent`);
      continue;
    }
    const diff = specDifferences(running, c);
    if (diff.length > 0) {
      lines.push(
        `${c.name}: runs a different spec than ${file} (running → file: ${diff.join("; ")})`,
      );
    }
  }
  const inFile = new Set(local.components.map((c) => c.name));
  for (const name of heldSpecs.keys()) {
    if (!inFile.has(name)) lines.push(`${name}: on the agent, not in ${file}`);
  }
  return lines;
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
    formatServed(info.routes),
    formatRoutes(info.routes, info.ports),
  ]);
  let text = formatTable(
    ["SERVICE", "COMPONENT", "NODE", "DESIRED", "OBSERVED", "DRIFT", "SERVED", "PORTS"],
    rows,
  );
  for (const { definition, status } of answers) {
    if (!definition || definition.differences.length === 0) continue;
    const service = status.services[0]?.name ?? "";
    text += `\n${definition.differences.join("\n")}\n`;
    text += `(mcp deploy ${service} runs the file's spec; mcp history ${service} shows what ran)\n`;
  }
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

/**
 * Whether the node's proxy serves each route now, in the order of the PORTS
 * cell: `yes`, `no`, `-` (not a proxy route: udp, no [proxy], an older agent).
 */
export function formatServed(routes: Pick<RouteStatus, "served">[]): string {
  if (routes.length === 0) return "-";
  return routes.map((r) => (r.served === undefined ? "-" : r.served ? "yes" : "no")).join(",");
}

/** A check's output (a command's, say) on one table line. */
function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, " ⏎ ");
}

/** An event's `prev → new  message` cell. */
export function eventDetail(e: EventInfo): string {
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
  const { nodes, loaded } = service
    ? await nodesForService(ctx, service)
    : { nodes: await ctx.allNodes(), loaded: undefined };
  const answers = await ctx.fanOut(nodes, async (client): Promise<NodeStatusAnswer> => {
    const name = service ?? "";
    const status = await client.call("getServiceStatus", { name, eventLimit: 0 });
    if (!loaded) return { node: client.name, status };
    const held = await client.call("listServices", { name, includeSpec: true });
    const info = held.services.find((s) => s.name === name);
    return {
      node: client.name,
      status,
      definition: {
        file: loaded.file,
        differences: definitionDifferences(loaded.file, toServiceSpec(loaded.def), info),
      },
    };
  });
  const statuses = answered(answers).map(({ node, result }) => ({ ...result, node }));
  ctx.io.out(opts.json ? formatJson(statuses) : formatStatus(statuses));
  return ctx.reportMissing(answers) > 0 ? 1 : 0;
}

async function nodesForService(
  ctx: CliContext,
  service: string,
): Promise<{ nodes: Awaited<ReturnType<CliContext["allNodes"]>>; loaded?: LoadedDefinition }> {
  let loaded;
  try {
    loaded = await ctx.loadDefinition(service);
  } catch (err) {
    // No local definition (e.g. adopted or exported only): ask every node.
    if (err instanceof McpError && err.code === "not_found") return { nodes: await ctx.allNodes() };
    throw err;
  }
  // A definition naming an unknown node is an error, not a reason to ask everyone.
  return { nodes: [await ctx.nodeOf(loaded)], loaded };
}
