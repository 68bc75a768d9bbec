/**
 * What the agent hands podman for one component: the stored ComponentSpec
 * plus the host ports allocated for its routes. Pure, so tests can assert on
 * the exact container that a deploy would start.
 */
import { isIPv6 } from "node:net";
import type { ComponentSpec, RouteSpec } from "../../gen/mcp/v1/mcp.js";
import { containerName, mcpLabels } from "../../runtime/names.js";
import type { ContainerSpec } from "../../runtime/types.js";
import { portEnv } from "../../servicedef/env.js";
import { formatRouteMapping, parsePortMapping } from "../../servicedef/ports.js";

export interface ContainerTarget {
  node: string;
  service: string;
  /** Host address the route ports are published on, e.g. 127.0.0.1. */
  bindAddress: string;
  /** The size cap of the container's log (`10m`); absent: podman's default (none). */
  logMaxSize?: string | undefined;
}

/** The registry key of a route: `service/component/name` ("" for the unnamed route). */
export function routeKey(service: string, component: string, route: string): string {
  return `${service}/${component}/${route}`;
}

/**
 * The route name a trial container's temporary port is held under
 * (`rest#trial`): beside the route's own port, never mistaken for it.
 */
export function trialRoute(route: string): string {
  return `${route}#trial`;
}

/**
 * The route name a route's standby port is held under (`rest#standby`):
 * behind the proxy, the second port of its pair, where a start-first
 * redeploy starts the new version (steps/swap.ts).
 */
export function standbyRoute(route: string): string {
  return `${route}#standby`;
}

export function routeProtocol(route: Pick<RouteSpec, "protocol">): "tcp" | "udp" {
  return route.protocol === "udp" ? "udp" : "tcp";
}

/**
 * An explicit mapping without a host address (`18080:8080`) gets `bind`
 * (the first `[ports] bind_addresses` entry): podman would otherwise publish
 * it on every interface. Rewritten here, when the container is built, rather
 * than in the stored spec: the registry keeps the mapping as the operator
 * wrote it (service show/export and sync diffs match the file), and a changed
 * bind address applies at the next (re)creation. Mappings with an address are
 * kept verbatim (the policy allows only bind addresses); `bind` "" leaves
 * them all alone.
 */
export function withHostAddress(mapping: string, bind: string): string {
  const parsed = parsePortMapping(mapping);
  if (bind === "" || parsed?.hostPort === undefined || parsed.hostIp !== undefined) return mapping;
  return `${isIPv6(bind) ? `[${bind}]` : bind}:${mapping}`;
}

/**
 * Builds the container for `component`, given `hostPorts` (route name → host
 * port). Every route is published as `<bind>:H:H` (container port = host
 * port = $PORT…), after the component's explicit `ports` (bound to `<bind>`
 * when they name no address, see withHostAddress); the agent's port
 * variables come after the user's env so they are easy to spot.
 */
export function containerSpecFor(
  target: ContainerTarget,
  component: ComponentSpec,
  hostPorts: ReadonlyMap<string, number>,
): ContainerSpec {
  const routed = component.routes.map((route) => {
    const hostPort = hostPorts.get(route.name);
    if (hostPort === undefined) {
      throw new Error(`no host port allocated for route "${route.name}" of ${component.name}`);
    }
    return { route, hostPort };
  });
  const spec: ContainerSpec = {
    name: containerName(target.service, component.name),
    image: component.image,
    labels: mcpLabels(target.service, component.name, target.node),
    ports: [
      ...component.ports.map((mapping) => withHostAddress(mapping, target.bindAddress)),
      ...routed.map(({ route, hostPort }) =>
        formatRouteMapping(target.bindAddress, hostPort, routeProtocol(route)),
      ),
    ],
    volumes: [...component.volumes],
    env: [
      ...component.env,
      ...portEnv(
        routed.map(({ route, hostPort }) =>
          route.name ? { name: route.name, hostPort } : { hostPort },
        ),
      ),
    ],
    cmd: [...component.cmd],
  };
  if (component.network) spec.network = component.network;
  if (component.user) spec.user = component.user;
  if (component.restart) spec.restart = component.restart;
  if (component.memory) spec.memory = component.memory;
  if (component.cpus) spec.cpus = component.cpus;
  if (component.pids) spec.pids = component.pids;
  if (target.logMaxSize) spec.logMaxSize = target.logMaxSize;
  return spec;
}
