/**
 * Injected crash points, for tests only (docs/ARCHITECTURE.md, "Crash
 * points"). With `MCP_CRASH_AT=<operation>:<step>[@<component>]` in its
 * environment, the agent kills itself with SIGKILL when it is about to run
 * that step (for that component), so a test can check what the next start
 * makes of a deploy cut short at exactly that point.
 */
import { writeSync } from "node:fs";

/** Called before every named step; resolves at once unless the agent is to die there. */
export type CrashPoint = (point: string, component: string) => Promise<void>;

/** Parses `deploy:start container@api` into its parts; undefined when unset. */
export function parseCrashAt(
  value: string | undefined,
): { point: string; component?: string } | undefined {
  if (!value) return undefined;
  const [point = "", component] = value.split("@");
  return component ? { point, component } : { point };
}

/** The crash point the environment asks for, or none. */
export function crashPointFromEnv(env: NodeJS.ProcessEnv = process.env): CrashPoint | undefined {
  const at = parseCrashAt(env.MCP_CRASH_AT);
  if (!at) return undefined;
  return (point, component) => {
    if (point !== at.point || (at.component !== undefined && at.component !== component)) {
      return Promise.resolve();
    }
    // Synchronous: nothing after this line runs, and the test wants to know why.
    writeSync(2, `mcp-agent: MCP_CRASH_AT=${env.MCP_CRASH_AT}: killing myself at ${point}\n`);
    process.kill(process.pid, "SIGKILL");
    return new Promise<void>(() => {});
  };
}
