/**
 * The environment variables that tell a container its route ports
 * (DESIGN.md "Service definitions", reference §7.3).
 */

/** `PORT` for the unnamed route, `PORT_<NAME>` (upper-cased, `-` → `_`) for a named one. */
export function routeEnvName(route: { name?: string }): string {
  return route.name ? `PORT_${route.name.toUpperCase().replaceAll("-", "_")}` : "PORT";
}

/** `KEY=hostPort` for each route, in route order, e.g. `["PORT_REST=12345"]`. */
export function portEnv(routes: { name?: string; hostPort: number }[]): string[] {
  return routes.map((r) => `${routeEnvName(r)}=${r.hostPort}`);
}
