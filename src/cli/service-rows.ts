/**
 * What `mcp ps`, `mcp list` and `mcp status` share: the answers of every
 * node flattened to one row per component, and the routes cell.
 */
import type { RouteStatus, ServiceInfo } from "../gen/mcp/v1/mcp.js";
import type { NodeAnswer } from "./context.js";

export interface NodeServices {
  node: string;
  services: ServiceInfo[];
}

function byServiceThenComponent<T extends { service: string; component: string }>(
  a: T,
  b: T,
): number {
  return a.service.localeCompare(b.service) || a.component.localeCompare(b.component);
}

/** Flattens services to one row per component, sorted by service then component. */
export function componentRows(answers: NodeServices[]) {
  return answers
    .flatMap(({ node, services }) =>
      services.flatMap((s) =>
        s.components.map((c) => ({ service: s.name, component: c.name, node, info: c })),
      ),
    )
    .sort(byServiceThenComponent);
}

/** `rest:8443/l4→127.0.0.1:12345`-style cell, `PORT` for the unnamed route. */
export function formatRoutes(routes: RouteStatus[], explicit: string[]): string {
  const parts = routes.map(
    (r) => `${r.name || "PORT"}:${r.port}/${r.mode || "l4"}→${r.hostPort > 0 ? r.hostPort : "-"}`,
  );
  return [...parts, ...explicit].join(",") || "-";
}

/** The nodes that answered, with their answers. */
export function answered<T>(answers: NodeAnswer<T>[]): { node: string; result: T }[] {
  return answers.flatMap((a) =>
    a.result === undefined ? [] : [{ node: a.node.name, result: a.result }],
  );
}
