/**
 * AdoptContainers: take a service's existing containers (started by hand, by
 * another tool, or by an agent whose registry was lost) into the registry
 * (reference §8.8, §6.3).
 *
 * Which containers: those labelled `mcp.service=<service>` first (component
 * from `mcp.component`); then, among containers without our service label,
 * those whose name reads as `<service>` or `<service>-<component>` when
 * resolved against the services the registry knows (longest match, so with
 * `mc-proxy` known a container `mc-proxy` is never taken as service `mc`).
 * Containers labelled for another node (`mcp.node`) belong to another agent
 * sharing this podman and are left alone.
 *
 * What is taken over (a deliberate minimum):
 * - image, and every published port as an explicit `ports` mapping
 *   (`[ip:]host:container[/udp]`), so the allocator never hands those host
 *   ports to a route (RegistryPortBook holds every explicit mapping);
 * - observed state, container id and start time; desired = running when the
 *   container runs, else stopped.
 * Not taken over: env, volumes, cmd, user, network, restart. `podman inspect`
 * mixes the image's own defaults (PATH, HOSTNAME, the image CMD) into what
 * was given on the command line, so copying them would pin image defaults in
 * the spec and could store secrets the operator never wrote into a
 * definition. The operator's definition stays the source of truth: `mcp
 * deploy` (or `mcp sync`) of the service replaces the adopted spec with the
 * full one. Until then the adopted spec recreates the container only as
 * `podman run -p ... <image>` (e.g. `mcp start` after the container is gone).
 *
 * Outcome per container: adopted; skipped (its component is already in the
 * registry: managed already); error (a name that is not a valid component
 * name, a host port the registry holds for another component, two
 * containers for one component).
 */
import { ComponentSpec, type AdoptResult } from "../../gen/mcp/v1/mcp.js";
import {
  LABEL_COMPONENT,
  LABEL_NODE,
  LABEL_SERVICE,
  splitContainerName,
} from "../../runtime/names.js";
import type { ContainerStatus } from "../../runtime/types.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { NAME_RE } from "../../servicedef/validate.js";
import { McpError } from "../../util/errors.js";
import type { AgentContext } from "../context.js";

export interface AdoptCandidate {
  container: ContainerStatus;
  /** Component name as derived (may be invalid; adopt then reports an error). */
  component: string;
  via: "label" | "name";
}

/**
 * The containers of `service` among `containers`, each with its component.
 * Pure. `knownServices` are the registry's service names (the requested one
 * is added): they decide how names containing `-` are read.
 */
export function selectContainers(
  containers: readonly ContainerStatus[],
  service: string,
  knownServices: readonly string[],
  node: string,
): AdoptCandidate[] {
  const known = [...new Set([...knownServices, service])];
  const out: AdoptCandidate[] = [];
  for (const container of containers) {
    const labelNode = container.labels[LABEL_NODE];
    if (labelNode && labelNode !== node) continue;
    const labelService = container.labels[LABEL_SERVICE];
    if (labelService) {
      if (labelService !== service) continue;
      const byLabel = container.labels[LABEL_COMPONENT];
      const component =
        byLabel || splitContainerName(container.name, known)?.component || container.name;
      out.push({ container, component, via: "label" });
      continue;
    }
    const split = splitContainerName(container.name, known);
    if (split?.service === service) {
      out.push({ container, component: split.component, via: "name" });
    }
  }
  return out.sort((a, b) => a.component.localeCompare(b.component));
}

/**
 * A published port as a `-p` mapping the servicedef parser accepts: podman
 * lists IPv6 host addresses without brackets; "0.0.0.0"/"" (every address)
 * become no address. undefined for anything that cannot be expressed.
 */
export function mappingOf(published: string): string | undefined {
  const direct = parsePortMapping(published);
  if (direct) return published;
  // `::1:8080:80` / `::1:8080:80/udp`: the last two fields are the ports.
  const [body = "", proto] = published.split("/");
  const parts = body.split(":");
  if (parts.length < 4) return undefined;
  const containerPort = parts.pop();
  const hostPort = parts.pop();
  const host = parts.join(":");
  const candidate = `[${host}]:${hostPort}:${containerPort}${proto ? `/${proto}` : ""}`;
  return parsePortMapping(candidate) ? candidate : undefined;
}

/** The spec recorded for an adopted container: image and explicit port mappings only. */
export function adoptedSpec(container: ContainerStatus, component: string): ComponentSpec {
  const ports: string[] = [];
  for (const p of container.ports) {
    const mapping = mappingOf(p);
    if (mapping && !ports.includes(mapping)) ports.push(mapping);
  }
  return ComponentSpec.fromPartial({ name: component, image: container.image, ports });
}

/** Every host port the registry holds, with its holder (`svc/comp`). */
function heldByOthers(ctx: AgentContext): Map<number, string> {
  const held = new Map<number, string>();
  for (const r of ctx.registry.routes.heldHostPorts()) {
    held.set(r.port, `${r.service}/${r.component}`);
  }
  for (const c of ctx.registry.components.list()) {
    for (const m of c.spec.ports) {
      const port = parsePortMapping(m)?.hostPort;
      if (port !== undefined && !held.has(port)) held.set(port, `${c.service}/${c.name}`);
    }
  }
  return held;
}

export async function adoptContainers(ctx: AgentContext, service: string): Promise<AdoptResult[]> {
  if (!NAME_RE.test(service)) {
    throw new McpError(
      "invalid_argument",
      `adopt: ${JSON.stringify(service)} is not a service name (lowercase letters, digits and "-")`,
    );
  }
  const containers = await ctx.runtime.list();
  return ctx.serviceLocks.runExclusive(service, () => {
    const { registry } = ctx;
    const known = registry.services.list().map((s) => s.name);
    const candidates = selectContainers(containers, service, known, ctx.settings.node);
    if (candidates.length === 0) {
      throw new McpError(
        "not_found",
        `no containers of service "${service}" on node ${ctx.settings.node} (looked for label mcp.service=${service} and names ${service}, ${service}-<component>)`,
      );
    }
    const held = heldByOthers(ctx);
    const taken = new Set<string>();
    const results: AdoptResult[] = [];
    const result = (c: AdoptCandidate, outcome: string, error = ""): AdoptResult => ({
      container: c.container.name,
      component: c.component,
      success: outcome !== "error",
      error,
      outcome,
    });
    for (const c of candidates) {
      if (!NAME_RE.test(c.component)) {
        results.push(result(c, "error", `"${c.component}" is not a valid component name`));
        continue;
      }
      if (taken.has(c.component)) {
        results.push(
          result(c, "error", `another container of ${service} already maps to ${c.component}`),
        );
        continue;
      }
      taken.add(c.component);
      const row = registry.components.get(service, c.component);
      if (row) {
        results.push(result(c, "skipped", `${service}/${c.component} is already managed`));
        continue;
      }
      const spec = adoptedSpec(c.container, c.component);
      const clash = spec.ports
        .map((m) => parsePortMapping(m)?.hostPort)
        .find((p) => p !== undefined && held.has(p));
      if (clash !== undefined) {
        results.push(
          result(c, "error", `host port ${clash} is held by ${held.get(clash)} in the registry`),
        );
        continue;
      }
      const running = c.container.state === "running";
      registry.transaction(() => {
        if (!registry.services.get(service)) {
          registry.services.upsert({ name: service, active: running, comment: "" });
        } else if (running && !registry.services.get(service)?.active) {
          // A running adopted component means the service is wanted up.
          registry.services.setActive(service, true);
        }
        registry.components.upsert({
          service,
          name: c.component,
          spec,
          desiredState: running ? "running" : "stopped",
        });
        registry.components.setObserved(service, c.component, {
          state: c.container.state,
          containerId: c.container.id,
          startedAt: c.container.startedAt ? c.container.startedAt.toISOString() : null,
        });
        registry.events.add({
          service,
          component: c.component,
          kind: "adopt",
          newState: c.container.state,
          message: `adopted container ${c.container.name} (${c.container.image}${spec.ports.length > 0 ? `, ports ${spec.ports.join(" ")}` : ""}) by ${c.via}`,
        });
      });
      for (const m of spec.ports) {
        const port = parsePortMapping(m)?.hostPort;
        if (port !== undefined) held.set(port, `${service}/${c.component}`);
      }
      ctx.logger.info(
        { service, component: c.component, container: c.container.name, ports: spec.ports },
        "adopted",
      );
      results.push(result(c, "adopted"));
    }
    return results;
  });
}
