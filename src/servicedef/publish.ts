/**
 * What a component's container publishes and is told, given the host ports
 * its routes got: the `-p` mappings and the env. One rule for both sides:
 * the agent builds its containers from it (agent/operations/container-spec.ts)
 * and `mcp service export` writes the same ports and variables into a Pod or a
 * Compose file (src/cli/export/), so the exported file means what MCP runs.
 */
import { isIPv6 } from "node:net";
import type { ComponentSpec, RouteSpec } from "../gen/mcp/v1/mcp.js";
import { portEnv } from "./env.js";
import { formatRouteMapping, parsePortMapping } from "./ports.js";

/** Modes `--network` takes by name; anything else names networks (bridge mode, on those networks). */
export const NETWORK_MODES: ReadonlySet<string> = new Set([
  "bridge",
  "host",
  "none",
  "private",
  "slirp4netns",
  "pasta",
]);

export function routeProtocol(route: Pick<RouteSpec, "protocol">): "tcp" | "udp" {
  return route.protocol === "udp" ? "udp" : "tcp";
}

/** A route with the host port allocated for it. */
export interface RoutedPort {
  route: RouteSpec;
  hostPort: number;
}

/**
 * Each route of `component` with its host port from `hostPorts` (route name →
 * port, "" for the unnamed route). A route without one is refused: a
 * container without its port variable would listen where nobody looks.
 */
export function routedPorts(
  component: Pick<ComponentSpec, "name" | "routes">,
  hostPorts: ReadonlyMap<string, number>,
): RoutedPort[] {
  return component.routes.map((route) => {
    const hostPort = hostPorts.get(route.name);
    if (hostPort === undefined) {
      throw new Error(`no host port allocated for route "${route.name}" of ${component.name}`);
    }
    return { route, hostPort };
  });
}

/**
 * An explicit mapping without a host address (`18080:8080`) gets `bind`
 * (the first `[ports] bind_addresses` entry): podman would otherwise publish
 * it on every interface. Rewritten when the container is built, rather
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
 * The `-p` mappings, in podman's syntax: the component's explicit `ports`
 * (bound to `bind` when they name no address, see withHostAddress), then
 * every route as `<bind>:H:H` (container port = host port = $PORT…).
 */
export function publishedPorts(
  component: Pick<ComponentSpec, "ports">,
  routed: readonly RoutedPort[],
  bind: string,
): string[] {
  return [
    ...component.ports.map((mapping) => withHostAddress(mapping, bind)),
    ...routed.map(({ route, hostPort }) =>
      formatRouteMapping(bind, hostPort, routeProtocol(route)),
    ),
  ];
}

/** The container's `KEY=VALUE` env: the user's, then the port variables (easy to spot last). */
export function containerEnv(
  component: Pick<ComponentSpec, "env">,
  routed: readonly RoutedPort[],
): string[] {
  return [
    ...component.env,
    ...portEnv(
      routed.map(({ route, hostPort }) =>
        route.name ? { name: route.name, hostPort } : { hostPort },
      ),
    ),
  ];
}
