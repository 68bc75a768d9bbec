/**
 * The allocator's view of which host ports the registry holds: every
 * allocated route port, plus the host side of every explicit `ports` mapping
 * (old style), so a route is never handed a port that `legacy` publishes.
 */
import type { Registry } from "../registry/index.js";
import { parsePortMapping } from "../servicedef/ports.js";
import { routeKey } from "./container-spec.js";
import type { PortBook } from "./ports.js";

export class RegistryPortBook implements PortBook {
  constructor(private readonly registry: Registry) {}

  heldPorts(): Map<number, string> {
    const held = new Map<number, string>();
    for (const row of this.registry.routes.heldHostPorts()) {
      held.set(row.port, routeKey(row.service, row.component, row.name));
    }
    for (const component of this.registry.components.list()) {
      for (const mapping of component.spec.ports) {
        const hostPort = parsePortMapping(mapping)?.hostPort;
        if (hostPort !== undefined && !held.has(hostPort)) {
          held.set(hostPort, `${component.service}/${component.name}/ports`);
        }
      }
    }
    return held;
  }
}
