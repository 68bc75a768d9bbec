/**
 * What the agent hands podman for one component: the stored ComponentSpec
 * plus the host ports allocated for its routes. Pure, so tests can assert on
 * the exact container that a deploy would start.
 */
import type { ComponentSpec } from "../../gen/mcp/v1/mcp.js";
import { containerName, mcpLabels } from "../../runtime/names.js";
import type { ContainerSpec } from "../../runtime/types.js";
import { containerEnv, publishedPorts, routedPorts } from "../../servicedef/publish.js";

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

/**
 * Builds the container for `component`, given `hostPorts` (route name → host
 * port): the ports and env of servicedef/publish.ts (which service export
 * writes too), the spec's volumes, cmd and settings, MCP's labels.
 */
export function containerSpecFor(
  target: ContainerTarget,
  component: ComponentSpec,
  hostPorts: ReadonlyMap<string, number>,
): ContainerSpec {
  const routed = routedPorts(component, hostPorts);
  const spec: ContainerSpec = {
    name: containerName(target.service, component.name),
    image: component.image,
    labels: mcpLabels(target.service, component.name, target.node),
    ports: publishedPorts(component, routed, target.bindAddress),
    volumes: [...component.volumes],
    env: containerEnv(component, routed),
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
