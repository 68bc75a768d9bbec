/**
 * What `deploy()` records in the revision it makes besides the specs: which
 * operation made it (a rollback says so and names the revision it went back
 * to) and how each component ended. Kept apart from deploy.ts so rollback
 * and the streaming RPC can shape a revision without touching the steps.
 */
import type { ComponentResult } from "../../gen/mcp/v1/mcp.js";
import type { RevisionKind, RevisionOutcome } from "../../registry/index.js";

export interface RevisionOptions {
  /** Deploy exactly these components of the spec (a rollback's targets), instead of `req.component`. */
  components?: readonly string[];
  /** What a component's row says besides spec and outcome; absent: a plain deploy. */
  note?: (component: string) => { kind: RevisionKind; rollbackTo: number };
  /** The operation's kind (events, crash points): "deploy" when absent. */
  kind?: RevisionKind;
  /** Told the revision's number as soon as it is taken (the streaming RPC sends it with the result). */
  taken?: (revision: number) => void;
}

/**
 * A component result as a revision outcome: the result's own `outcome` when
 * it says "rolled back" (the old version serves again), else ok / failed.
 */
export function revisionOutcome(result: ComponentResult): RevisionOutcome {
  if (result.outcome === "rolled back") return "rolled back";
  return result.success ? "ok" : "failed";
}
