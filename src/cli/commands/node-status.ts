/**
 * `mcp node status [node]`: what each agent reports about its node (NodeStatus):
 * versions, what it manages, its port pool and the machine's resources. Nodes
 * are asked in parallel within the fan-out timeout; one that does not answer
 * is shown as unreachable and makes the exit code 1.
 */
import type { NodeStatusResponse } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { formatJson, formatTable, formatUptime } from "../output.js";

export interface NodeStatusRow {
  name: string;
  address: string;
  status?: NodeStatusResponse;
  error?: string;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `512 B`, `1.5 KiB`, `12.3 GiB`: binary units, one decimal from KiB on. */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/**
 * How many ports a pool description holds: `10000-32767,61000-61999` (ranges
 * inclusive, a single port as `N`, as the agent writes it), `none` = 0.
 * undefined when the text is not in that form (an agent that sent nothing).
 */
export function poolSize(pool: string): number | undefined {
  const text = pool.trim();
  if (text === "none") return 0;
  if (text === "") return undefined;
  let total = 0;
  for (const part of text.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m?.[1]) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return undefined;
    total += to - from + 1;
  }
  return total;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `free X of Y (Z% used)`, or `unknown` when the agent could not read it. */
function freeOf(free: number, total: number): string {
  if (total <= 0) return "unknown";
  const used = Math.round(((total - free) / total) * 100);
  return `${formatBytes(free)} free of ${formatBytes(total)} (${used}% used)`;
}

function portsLine(s: NodeStatusResponse): string {
  const size = poolSize(s.portRange);
  const pool = size === undefined ? "pool unknown" : `pool of ${size}: ${s.portRange}`;
  return `${s.portsAllocated} allocated (${pool})`;
}

/** The key/value lines of one node's status (pure: `now` for the uptime). */
export function nodeStatusLines(s: NodeStatusResponse, now: Date): [string, string][] {
  const since = s.uptimeSince;
  return [
    ["agent", s.agentVersion || "-"],
    ["runtime", s.runtime ? `${s.runtime} ${s.runtimeVersion || "(version unknown)"}` : "-"],
    [
      "services",
      `${s.serviceCount} (${plural(s.componentCount, "component")}, ${s.runningCount} running)`,
    ],
    ["ports", portsLine(s)],
    ["disk", freeOf(s.diskFreeBytes, s.diskTotalBytes)],
    ["memory", freeOf(s.memoryFreeBytes, s.memoryTotalBytes)],
    [
      "cpu",
      `${plural(s.cpuCount, "core")}, load ${Math.round(s.cpuUsagePercent)}% (1-min average)`,
    ],
    [
      "up since",
      since ? `${since.toISOString()} (${formatUptime(now.getTime() - since.getTime())})` : "-",
    ],
  ];
}

/** One block per node, blank line between them; unreachable nodes say why. */
export function formatNodeStatus(rows: NodeStatusRow[], now: Date): string {
  return rows
    .map((row) => {
      const head = `NODE ${row.name} (${row.address})\n`;
      const lines: [string, string][] = row.status
        ? [["status", "ok"], ...nodeStatusLines(row.status, now)]
        : [["status", `unreachable: ${row.error ?? "no answer"}`]];
      const body = formatTable(["", ""], lines).split("\n").slice(1).join("\n");
      return head + body.replace(/^/gm, "  ").replace(/ +$/gm, "");
    })
    .join("\n");
}

export async function nodeStatusCommand(
  ctx: CliContext,
  node: string | undefined,
  opts: { json?: boolean },
): Promise<number> {
  const nodes = node ? [await ctx.node(node)] : await ctx.allNodes();
  if (nodes.length === 0) {
    throw new McpError(
      "not_found",
      `no nodes are configured in ${ctx.configPath}; add one with "mcp node add <name> <host:port>"`,
    );
  }
  const answers = await ctx.fanOut(nodes, (client) => client.call("nodeStatus", {}));
  const rows: NodeStatusRow[] = answers.map((a) => ({
    name: a.node.name,
    address: a.node.address,
    ...(a.result ? { status: a.result } : {}),
    ...(a.error !== undefined ? { error: a.error } : {}),
  }));
  ctx.io.out(opts.json ? formatJson(rows) : formatNodeStatus(rows, new Date()));
  // The blocks say why; a node with no agent at all is also said as for any command.
  ctx.reportMissing(answers, { notAnsweringOnly: true });
  return rows.some((r) => r.error !== undefined) ? 1 : 0;
}
