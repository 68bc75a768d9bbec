/**
 * Which MCP version introduced each RPC, so a CLI newer than its agent can
 * say "agent on node X is version 0.1.0; this needs 0.2.0 or later" instead
 * of a bare UNIMPLEMENTED (src/cli/client.ts asks the agent's version with
 * NodeStatus when a call is unimplemented).
 *
 * Keyed by the generated method names (`deployStream`), so a new RPC in the
 * proto does not typecheck until it has a row here: give it the version it
 * ships in. Never change a row once released.
 */
import type { McpAgentServiceService } from "../gen/mcp/v1/mcp.js";

export type RpcMethod = keyof typeof McpAgentServiceService;

export const RPC_SINCE = {
  deploy: "0.1.0",
  undeployService: "0.1.0",
  stopService: "0.1.0",
  startService: "0.1.0",
  restartService: "0.1.0",
  syncDesiredState: "0.1.0",
  listServices: "0.1.0",
  getServiceStatus: "0.1.0",
  liveCheck: "0.1.0",
  adoptContainers: "0.1.0",
  purgeComponent: "0.1.0",
  pushFile: "0.1.0",
  pullFile: "0.1.0",
  nodeStatus: "0.1.0",
  logs: "0.1.0",
  listRevisions: "0.1.0",
  deployStream: "0.2.0",
  rollback: "0.2.0",
  listRoutes: "0.3.0",
  addRoute: "0.3.0",
  removeRoute: "0.3.0",
  listCerts: "0.3.0",
  getRouteCa: "0.3.0",
  listDnsRecords: "0.3.0",
} as const satisfies Record<RpcMethod, string>;

/** The proto's name of a method: `deployStream` → `DeployStream`. */
export function rpcName(method: RpcMethod): string {
  return method.charAt(0).toUpperCase() + method.slice(1);
}

/**
 * Compares two `MAJOR.MINOR.PATCH[-pre]` versions: negative when `a` is
 * older, 0 when equal, positive when newer. A pre-release sorts before its
 * release (`0.2.0-rc.1` < `0.2.0`); pre-release tags are compared as text.
 * Text that is not a version compares as older than any version.
 */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+.*)?$/.exec(v.trim());
    return m ? { nums: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] } : undefined;
  };
  const pa = parse(a);
  const pb = parse(b);
  if (!pa || !pb) return (pa ? 1 : 0) - (pb ? 1 : 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa.nums[i] ?? 0) - (pb.nums[i] ?? 0);
    if (d !== 0) return d;
  }
  if (pa.pre === pb.pre) return 0;
  if (pa.pre === undefined) return 1;
  if (pb.pre === undefined) return -1;
  return pa.pre < pb.pre ? -1 : 1;
}
