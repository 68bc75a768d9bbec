/**
 * Registry and runtime rows → the status messages of ListServices, LiveCheck
 * and GetServiceStatus. Pure functions over rows.
 */
import type {
  ComponentInfo,
  ContainerInfo,
  DriftInfo,
  EventInfo,
  RevisionInfo,
  RouteStatus,
  ServiceInfo,
} from "../gen/mcp/v1/mcp.js";
import {
  NO_HEALTH,
  type ComponentRow,
  type EventRow,
  type RevisionRow,
  type RouteRow,
  type ServiceRow,
} from "../registry/index.js";
import { containerName } from "../runtime/names.js";
import type { ContainerStatus } from "../runtime/types.js";
import { imageVersion } from "../servicedef/image.js";
import { isDrift } from "../protocol/drift.js";
import { componentKey, observedStateOf } from "./observed/refresh.js";

/** Whether the proxy serves a route now; undefined: not a proxy route (edge/listing.ts). */
export type RouteServing = (route: RouteRow) => boolean | undefined;

export function routeStatuses(rows: RouteRow[], serving?: RouteServing): RouteStatus[] {
  return rows.map((r) => ({
    name: r.name,
    port: r.port,
    mode: r.mode,
    hostname: r.hostname,
    protocol: r.protocol,
    hostPort: r.hostPort,
    // Absent (not undefined) without a proxy view, so the messages keep their old shape.
    ...(serving ? { served: serving(r) } : {}),
  }));
}

export interface ServiceInfoOptions {
  /** Containers as podman reports them now (LiveCheck). */
  live?: Map<string, ContainerStatus> | undefined;
  /** The node the spec is held on. */
  node?: string;
  /**
   * Carry the spec and the comment the agent holds (service show/export).
   * Listings leave both out: one large definition must never make every
   * listing of the node exceed the message limit.
   */
  withSpec?: boolean;
  /** Fill each route's `served` (GetServiceStatus on a node with a proxy). */
  serving?: RouteServing | undefined;
  /** Sent with the spec: where the agent publishes route ports (service export). */
  bindAddress?: string;
}

/**
 * One ServiceInfo per service, components in registry order, with the spec
 * the agent holds for it when asked. With `live` containers (LiveCheck),
 * image, version and start time come from the container actually running,
 * not from the recorded spec.
 */
export function serviceInfos(
  services: ServiceRow[],
  components: ComponentRow[],
  routes: RouteRow[],
  opts: ServiceInfoOptions = {},
): ServiceInfo[] {
  const { live, node = "", withSpec = false, serving, bindAddress = "" } = opts;
  const routesByKey = groupBy(routes, (r) => componentKey(r.service, r.component));
  const componentsByService = groupBy(components, (c) => c.service);
  return services.map((s) => ({
    name: s.name,
    active: s.active,
    comment: withSpec ? s.comment : "",
    spec: withSpec
      ? {
          name: s.name,
          active: s.active,
          comment: s.comment,
          node,
          components: (componentsByService.get(s.name) ?? []).map((c) => c.spec),
        }
      : undefined,
    bindAddress: withSpec ? bindAddress : "",
    components: (componentsByService.get(s.name) ?? []).map((c): ComponentInfo => {
      const key = componentKey(c.service, c.name);
      const container = live?.get(key);
      const image = container?.image ?? c.image;
      const startedAt = container?.startedAt ?? (c.startedAt ? new Date(c.startedAt) : undefined);
      const observedState = live ? observedStateOf(container) : c.observedState;
      const health = healthShown(observedState, c.health);
      return {
        name: c.name,
        image,
        version: imageVersion(image),
        desiredState: c.desiredState,
        observedState,
        startedAt: startedAt ?? undefined,
        routes: routeStatuses(routesByKey.get(key) ?? [], serving),
        container: containerName(c.service, c.name),
        ports: [...c.spec.ports],
        health: health.status,
        healthOutput: health.output,
        healthCheckedAt: health.checkedAt ? new Date(health.checkedAt) : undefined,
      };
    }),
  }));
}

/** Health is about a running container: none is shown for one that is not. */
export function healthShown(
  observedState: string,
  health: ComponentRow["health"],
): ComponentRow["health"] {
  return observedState === "running" ? health : NO_HEALTH;
}

export function driftOf(components: ComponentRow[]): DriftInfo[] {
  return components
    .filter((c) => isDrift(c.desiredState, c.observedState))
    .map((c) => ({
      service: c.service,
      component: c.name,
      desired: c.desiredState,
      observed: c.observedState,
    }));
}

export function eventInfos(rows: EventRow[]): EventInfo[] {
  return rows.map((e) => ({
    id: e.id,
    service: e.service,
    component: e.component,
    prevState: e.prevState,
    newState: e.newState,
    timestamp: new Date(e.timestamp),
    kind: e.kind,
    message: e.message,
  }));
}

export function containerInfos(containers: ContainerStatus[]): ContainerInfo[] {
  return containers.map((c) => ({
    name: c.name,
    image: c.image,
    state: c.state,
    startedAt: c.startedAt ?? undefined,
  }));
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

export function revisionInfos(rows: RevisionRow[]): RevisionInfo[] {
  return rows.map((r) => ({
    revision: r.revision,
    component: r.component,
    image: r.image,
    deployedAt: new Date(r.deployedAt),
    outcome: r.outcome,
    message: r.message,
    kind: r.kind,
    rollbackTo: r.rollbackTo,
  }));
}
