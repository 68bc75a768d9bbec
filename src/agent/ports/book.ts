/**
 * The allocator's view of which host ports the registry holds: every
 * allocated route port, plus the host side of every explicit `ports` mapping
 * (old style), so a route is never handed a port that `legacy` publishes.
 */
import type { Registry } from "../../registry/index.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { routeKey, standbyRoute, trialRoute } from "../operations/container-spec.js";
import type { PortHolder } from "../policy/rules.js";
import type { PortBook } from "./allocator.js";

/**
 * Every holder of every host port, routes first: unlike heldPorts() a port
 * held twice (a stale spec, a race the policy check then refuses) lists both.
 */
export function portHolders(registry: Registry): PortHolder[] {
  const holders: PortHolder[] = registry.routes.heldHostPorts().map((row) => ({
    port: row.port,
    service: row.service,
    component: row.component,
    route: row.standby ? standbyRoute(row.name) : row.name,
  }));
  for (const component of registry.components.list()) {
    for (const mapping of component.spec.ports) {
      const hostPort = parsePortMapping(mapping)?.hostPort;
      if (hostPort !== undefined) {
        holders.push({ port: hostPort, service: component.service, component: component.name });
      }
    }
    // A trial container's temporary ports (start-first deploys) are held
    // until it is removed, in the registry like every other port.
    for (const trial of component.pending?.trial ?? []) {
      holders.push({
        port: trial.hostPort,
        service: component.service,
        component: component.name,
        route: trialRoute(trial.name),
      });
    }
  }
  return holders;
}

export class RegistryPortBook implements PortBook {
  constructor(private readonly registry: Registry) {}

  heldPorts(): Map<number, string> {
    const held = new Map<number, string>();
    for (const h of portHolders(this.registry)) {
      if (held.has(h.port)) continue;
      const key =
        h.route === undefined
          ? `${h.service}/${h.component}/ports`
          : routeKey(h.service, h.component, h.route);
      held.set(h.port, key);
    }
    return held;
  }
}
