/**
 * Which steps a component operation takes, in which order (pure). One list
 * of step units (component.ts) carries every strategy; a strategy is only an
 * order of them (docs/ARCHITECTURE.md, "Strategies"):
 *
 * - start-first, the old version running: the new one is proved beside it
 *   first (trial container on temporary ports, its health check), then the
 *   old one stops and the new one starts on the stable ports and must pass
 *   its check again;
 * - stop-first (or nothing running to protect): the old one stops, the new
 *   one starts on the stable ports and must pass its check. The new
 *   container is created while the old one stops; only its start waits.
 *
 * - start-first behind the proxy (every route on it): the new version runs
 *   on the routes' standby ports, passes its check, the proxy moves to it,
 *   the old one drains and stops; the new one is never off the proxy's path
 *   and the old one serves until the proxy has moved (steps/swap.ts).
 *
 * Behind the proxy, the new version's routes are put on the proxy (with a
 * certificate for L7 names) once it runs and passed its check, just before
 * the commit.
 *
 * Deploy and rollback are health-gated: a new version that fails its check
 * is removed and the old one put back. Start, restart and recovery recreate
 * the version already recorded: nothing older to go back to, so no gate
 * (the monitor reports its health).
 */
import type { Strategy } from "../../../servicedef/types.js";

export type StepName =
  | SwapStepName
  | "policy"
  | "record"
  | "pull"
  | "image"
  | "prepare volumes"
  | "allocate trial ports"
  | "start trial"
  | "trial health"
  | "remove trial"
  | "set aside old container"
  | "allocate ports"
  | "create container"
  | "stop old container"
  | "start container"
  | "health"
  | "dns"
  | "certificates"
  | "routes"
  | "commit"
  | "retire old names"
  | "remove old container";

/** The units of steps/swap.ts. */
export type SwapStepName =
  | "allocate standby ports"
  | "start new version"
  | "new version health"
  | "drain"
  | "promote new version";

/** The units of steps/edge.ts. */
export type EdgeStepName = "dns" | "certificates" | "routes" | "retire old names";

/** The component's container before the operation. */
export type OldContainer = "none" | "stopped" | "running";

export interface PlanInput {
  strategy: Strategy;
  old: OldContainer;
  /** The new version must prove itself (deploy, rollback). */
  gated: boolean;
  /** false: never pull (recovery); the image must be local. */
  pull: boolean;
  /** Some of the component's routes go on the node's proxy (edge on, not udp). */
  proxied?: boolean;
  /** The node publishes route names in DNS (`[dns]`). */
  dns?: boolean;
  /**
   * Every route of the component is on the proxy (and it has some, and no
   * explicit ports): a start-first redeploy can swap behind the proxy.
   */
  swappable?: boolean;
}

/** Whether the plan is the swap behind the proxy (steps/swap.ts). */
export function isSwap(input: PlanInput): boolean {
  return (
    input.gated &&
    input.strategy === "start-first" &&
    input.old === "running" &&
    input.swappable === true &&
    input.proxied === true
  );
}

export function planSteps(input: PlanInput): StepName[] {
  const steps: StepName[] = ["policy", "record", input.pull ? "pull" : "image", "prepare volumes"];
  if (isSwap(input)) {
    steps.push("allocate standby ports", "start new version", "new version health");
    if (input.dns) steps.push("dns");
    steps.push("certificates", "routes", "drain", "set aside old container", "stop old container");
    steps.push("promote new version", "commit");
    if (input.dns) steps.push("retire old names");
    steps.push("remove old container");
    return steps;
  }
  if (input.gated && input.strategy === "start-first" && input.old === "running") {
    steps.push("allocate trial ports", "start trial", "trial health", "remove trial");
  }
  if (input.old !== "none") steps.push("set aside old container");
  steps.push("allocate ports", "create container");
  // The old container stops while the new one is created (create binds no
  // port); only the start waits for it.
  if (input.old === "running") steps.push("stop old container");
  steps.push("start container");
  if (input.gated) steps.push("health");
  // Only a version that passed its check gets a certificate and the proxy's traffic.
  if (input.proxied) {
    // The name first: an ACME server resolves it before it validates.
    if (input.dns) steps.push("dns");
    steps.push("certificates", "routes");
  }
  steps.push("commit");
  if (input.proxied && input.dns) steps.push("retire old names");
  if (input.old !== "none") steps.push("remove old container");
  return steps;
}
