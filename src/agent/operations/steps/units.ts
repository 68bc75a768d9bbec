/** Every step unit by its name (plan.ts names them, runner.ts runs them). */
import { CONTAINER_STEPS, type ComponentOp } from "./component.js";
import { EDGE_STEPS } from "./edge.js";
import { SWAP_STEPS } from "./swap.js";
import type { StepName } from "./plan.js";
import type { Step } from "./runner.js";

export const COMPONENT_STEPS: Record<StepName, Step<ComponentOp>> = {
  ...CONTAINER_STEPS,
  ...EDGE_STEPS,
  ...SWAP_STEPS,
};
