/** NodeStatus: the agent's versions, what it manages, and the node's resources. */
import { statfs } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { NodeStatusResponse } from "../../gen/mcp/v1/mcp.js";
import type { Runtime } from "../../runtime/types.js";
import { errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";

/**
 * podman's version, asked once per runtime (it does not change under a
 * running agent). Keyed by runtime, not module-wide, so two agents in one
 * process (tests, embedding) each report their own; a failed answer is not
 * remembered, so a podman that was briefly unavailable is asked again.
 */
const runtimeVersions = new WeakMap<Runtime, string>();

async function runtimeVersionOf(ctx: AgentContext): Promise<string> {
  const known = runtimeVersions.get(ctx.runtime);
  if (known !== undefined) return known;
  try {
    const version = await ctx.runtime.version();
    runtimeVersions.set(ctx.runtime, version);
    return version;
  } catch (err) {
    ctx.logger.warn({ err: errorMessage(err) }, "podman version failed");
    return "";
  }
}

export async function nodeStatus(ctx: AgentContext): Promise<NodeStatusResponse> {
  const runtimeVersion = await runtimeVersionOf(ctx);
  const components = ctx.registry.components.list();
  const disk = await diskOf(ctx, path.dirname(ctx.registry.path));
  const stats = ctx.allocator.stats();
  const cpus = os.cpus().length || 1;
  return {
    nodeName: ctx.settings.node,
    runtime: "podman",
    runtimeVersion,
    agentVersion: ctx.settings.agentVersion,
    serviceCount: ctx.registry.services.list().length,
    componentCount: components.length,
    runningCount: components.filter((c) => c.observedState === "running").length,
    diskTotalBytes: disk.total,
    diskFreeBytes: disk.free,
    memoryTotalBytes: os.totalmem(),
    memoryFreeBytes: os.freemem(),
    // One-minute load average as a share of all cores: cheap and honest.
    cpuUsagePercent: Math.min(100, ((os.loadavg()[0] ?? 0) / cpus) * 100),
    uptimeSince: ctx.startedAt,
    cpuCount: cpus,
    portRange: stats.pool,
    portsAllocated: stats.held,
  };
}

/** Disk of the registry's filesystem; zeros (and a warning) if it cannot be read. */
async function diskOf(ctx: AgentContext, dir: string): Promise<{ total: number; free: number }> {
  try {
    const s = await statfs(dir);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch (err) {
    ctx.logger.warn({ err: errorMessage(err), dir }, "statfs failed");
    return { total: 0, free: 0 };
  }
}
