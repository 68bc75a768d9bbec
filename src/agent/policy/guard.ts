/**
 * Where the agent applies its policy (policy.ts) to what it is asked to do:
 *
 * - deploy and sync, before anything is recorded (requestPolicyProblems):
 *   one McpError("invalid_argument") listing every problem;
 * - right before a container is created from a stored spec — start,
 *   restart, recovery, also after the policy was tightened
 *   (enforceStoredComponent);
 * - inside the allocator's critical section, for explicit host ports
 *   against the ports the registry holds (enforcePortClaims). The check at
 *   deploy/sync only gives the early, precise message; this one is the
 *   authority, because every route allocation runs in the same critical
 *   section and a deploy records its spec (hence its claims) before it
 *   allocates: of two deploys claiming one port, at most one gets through.
 */
import type { ComponentSpec, ServiceSpec } from "../../gen/mcp/v1/mcp.js";
import { at } from "../../util/checker.js";
import { serviceLabel } from "../../servicedef/spec.js";
import { McpError, formatProblem, type Problem } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { portHolders } from "../ports/book.js";
import { hostnameClashes, type ProxiedRoute } from "../../edge/hostnames.js";
import { routesOnNode } from "../edge/routes.js";
import { checkPortClaims, policyProblems, type PortHolder } from "./rules.js";

/** One McpError("invalid_argument") with a `service NAME: path: message` line per problem. */
export function policyError(service: string, problems: readonly Problem[]): McpError {
  const file = serviceLabel(service);
  return new McpError("invalid_argument", problems.map((p) => formatProblem(file, p)).join("\n"));
}

/**
 * The ports the registry holds, as they will be once `components` of
 * `spec.name` are replaced by their new specs: those components' explicit
 * mappings and their routes that the new spec drops are not counted (the new
 * spec's own mappings are checked against each other separately).
 */
function holdersAfterReplacing(
  ctx: AgentContext,
  service: string,
  components: readonly ComponentSpec[],
): PortHolder[] {
  const replaced = new Map(components.map((c) => [c.name, c]));
  return portHolders(ctx.registry).filter((h) => {
    const next = h.service === service ? replaced.get(h.component) : undefined;
    if (!next) return true;
    return h.route !== undefined && next.routes.some((r) => r.name === h.route);
  });
}

/**
 * The policy problems of a deploy (`components`: the selected ones) or a
 * sync (every component) of `spec`, port claims included.
 */
export function requestPolicyProblems(
  ctx: AgentContext,
  spec: ServiceSpec,
  components: readonly ComponentSpec[] = spec.components,
): Problem[] {
  return [
    ...policyProblems(spec, ctx.settings, {
      components,
      holders: holdersAfterReplacing(ctx, spec.name, components),
    }),
    ...proxyNameProblems(ctx, spec),
  ];
}

/**
 * Behind the proxy, two routes on one listener cannot answer to one name
 * (src/edge/hostnames.ts): within the service, or against the other
 * services' routes and the manual ones.
 */
function proxyNameProblems(ctx: AgentContext, spec: ServiceSpec): Problem[] {
  if (!ctx.edge) return [];
  const paths = new Map<ProxiedRoute, string>();
  const incoming = spec.components.flatMap((c, ci) =>
    c.routes.map((r, ri) => {
      const route: ProxiedRoute = {
        service: spec.name,
        component: c.name,
        route: r.name,
        port: r.port,
        hostname: r.hostname,
        protocol: r.protocol,
      };
      paths.set(route, at(at(at(at("", "components"), ci), "routes"), ri));
      return route;
    }),
  );
  return hostnameClashes(incoming, routesOnNode(ctx.registry), ctx.edge.domain).map((p) => ({
    path: `${paths.get(p.route) ?? ""}.hostname`,
    message: p.message,
  }));
}

/**
 * `components[N]` as the service's definition numbers it: `ord` when the
 * caller knows it (deploy), else the position the registry keeps.
 */
function componentPath(
  ctx: AgentContext,
  service: string,
  component: string,
  ord?: number,
): string {
  const position = ord ?? ctx.registry.components.get(service, component)?.ord;
  return position === undefined ? `components[name=${component}]` : at("components", position);
}

/**
 * Refuses to create a container from a stored component spec the current
 * policy forbids (recorded before the policy was tightened, or by an older
 * agent); deploy checks the spec it is about to record the same way. Async
 * so it fits a deploy step.
 */
export function enforceStoredComponent(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
  ord?: number,
): Promise<void> {
  const base = componentPath(ctx, service, component.name, ord);
  // A one-component spec whose only component sits at the stored position.
  const problems = policyProblems({ name: service, components: [component] }, ctx.settings).map(
    (p) => ({ ...p, path: p.path.replace(/^components\[0\]/, base) }),
  );
  return problems.length > 0 ? Promise.reject(policyError(service, problems)) : Promise.resolve();
}

/**
 * Call inside the allocator's critical section (PortAllocator.allocate's
 * `verify`): the component's explicit host ports against every holder the
 * registry knows now. Throws McpError("invalid_argument") naming the holders.
 */
export function enforcePortClaims(
  ctx: AgentContext,
  service: string,
  component: ComponentSpec,
): void {
  if (component.ports.length === 0) return;
  const base = componentPath(ctx, service, component.name);
  const problems = checkPortClaims(service, [{ component, path: base }], portHolders(ctx.registry));
  if (problems.length > 0) throw policyError(service, problems);
}
