/**
 * The environment variables that tell a container its route ports
 * (DESIGN.md "Service definitions", reference §7.3).
 */
import { McpError } from "../util/errors.js";

/** `PORT` for the unnamed route, `PORT_<NAME>` (upper-cased, `-` → `_`) for a named one. */
export function routeEnvName(route: { name?: string }): string {
  return route.name ? `PORT_${route.name.toUpperCase().replaceAll("-", "_")}` : "PORT";
}

/** `KEY=hostPort` for each route, in route order, e.g. `["PORT_REST=12345"]`. */
export function portEnv(routes: { name?: string; hostPort: number }[]): string[] {
  return routes.map((r) => `${routeEnvName(r)}=${r.hostPort}`);
}

/**
 * `-e KEY=VALUE` entries as the map the API takes; a later entry for a key
 * wins, as with repeated `-e`. `-e KEY` alone (the CLI copies podman's own
 * variable) has no meaning for a server, so it is refused, never guessed.
 */
export function envMap(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const eq = e.indexOf("=");
    if (eq <= 0) {
      throw new McpError("invalid_argument", `env entry ${JSON.stringify(e)}: expected KEY=VALUE`);
    }
    out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}
