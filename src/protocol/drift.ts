/**
 * When a component drifts: the rule the agent's monitor applies (drift
 * events, alerts, `mcp status`'s DRIFT) and the CLI's `mcp ui` applies to
 * what LiveCheck shows, so both say the same thing.
 */

/** Whether observed state disagrees with desired state (`ignore` never drifts). */
export function isDrift(desired: string, observed: string): boolean {
  if (desired === "ignore") return false;
  if (desired === "running") return observed !== "running";
  // desired stopped: anything but a live container is fine
  return observed === "running" || observed === "paused";
}
