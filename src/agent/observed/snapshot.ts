/**
 * What one refresh of observed state found (refresh.ts refreshObserved), in
 * a file of its own so the context can name it without importing refresh.ts
 * (which needs the context): no import cycles.
 */
import type { ComponentRow } from "../../registry/index.js";
import type { ContainerStatus } from "../../runtime/types.js";

/** `skipped` keys were left as they were (see refreshObserved). */
export interface ObservedSnapshot {
  components: ComponentRow[];
  byKey: Map<string, ContainerStatus>;
  unmanaged: ContainerStatus[];
  /** `service/component` keys whose registry row this refresh did not touch. */
  skipped: Set<string>;
  /** `service/component` keys whose observed state, container or start this refresh changed. */
  changed: string[];
}

/** The in-memory view of podman's containers (view.ts), as readers use it. */
export interface ContainerView {
  /** Every container, or undefined while the view is not current (readers list then). */
  containers(): ContainerStatus[] | undefined;
  /** What a reader found out from podman itself about the container `name` (undefined: none). */
  learn(name: string, status: ContainerStatus | undefined): void;
}
