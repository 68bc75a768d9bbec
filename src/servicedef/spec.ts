/**
 * ServiceDef ⇄ ServiceSpec (the wire form sent to the agent).
 *
 * The conversion is exact for valid definitions: absent optional fields
 * become "" / [] / undefined `active` in the spec, and those map back to
 * absent. `path` and `build` are CLI-side only (where the source is and how
 * to build it); ServiceSpec does not carry them, so toServiceSpec drops them.
 */
import {
  ServiceSpec,
  type ComponentSpec,
  type HealthSpec,
  type RouteSpec,
} from "../gen/mcp/v1/mcp.js";
import { ECHO_MAX, quote } from "../util/checker.js";
import type { Problem } from "../util/errors.js";
import { BUILTIN_LIMITS, formatBytes } from "./limits.js";
import type {
  ComponentDef,
  HealthDef,
  HealthType,
  RouteDef,
  RouteMode,
  RouteProtocol,
  ServiceDef,
  ServiceDefOptions,
  Strategy,
} from "./types.js";
import { compact, validateServiceDef } from "./validate.js";

export function toServiceSpec(def: ServiceDef): ServiceSpec {
  return {
    name: def.name,
    node: def.node,
    active: def.active,
    comment: def.comment ?? "",
    components: def.components.map(componentSpec),
  };
}

function componentSpec(c: ComponentDef): ComponentSpec {
  return {
    name: c.name,
    image: c.image,
    network: c.network ?? "",
    user: c.user ?? "",
    restart: c.restart ?? "",
    memory: c.memory ?? "",
    cpus: c.cpus ?? 0,
    pids: c.pids ?? 0,
    ports: [...(c.ports ?? [])],
    volumes: [...(c.volumes ?? [])],
    cmd: [...(c.cmd ?? [])],
    env: [...(c.env ?? [])],
    routes: (c.routes ?? []).map(routeSpec),
    health: c.health && healthSpec(c.health),
    strategy: c.strategy ?? "",
  };
}

function healthSpec(h: HealthDef): HealthSpec {
  return {
    type: h.type,
    route: h.route ?? "",
    path: h.path ?? "",
    cmd: [...(h.cmd ?? [])],
    interval: h.interval ?? "",
    timeout: h.timeout ?? "",
    retries: h.retries ?? 0,
    startPeriod: h.start_period ?? "",
    deadline: h.deadline ?? "",
  };
}

function healthDef(h: HealthSpec): HealthDef {
  return compact({
    type: h.type as HealthType,
    route: h.route,
    path: h.path,
    cmd: [...h.cmd],
    interval: h.interval,
    timeout: h.timeout,
    // 0 is the proto default: absent (a valid definition never says 0).
    retries: h.retries === 0 ? undefined : h.retries,
    start_period: h.startPeriod,
    deadline: h.deadline,
  });
}

function routeSpec(r: RouteDef): RouteSpec {
  return {
    name: r.name ?? "",
    port: r.port,
    mode: r.mode ?? "",
    hostname: r.hostname ?? "",
    protocol: r.protocol ?? "",
    proxyProtocol: r.proxy_protocol ?? false,
  };
}

/**
 * The definition a spec describes. It does not validate: check the spec with
 * validateServiceSpec first (an invalid spec gives an invalid definition).
 */
export function fromServiceSpec(spec: ServiceSpec): ServiceDef {
  return compact({
    name: spec.name,
    node: spec.node,
    active: spec.active,
    comment: spec.comment,
    components: spec.components.map((c) =>
      compact({
        name: c.name,
        image: c.image,
        network: c.network,
        user: c.user,
        restart: c.restart,
        memory: c.memory,
        // 0 is the proto default: absent (a valid definition never says 0).
        cpus: c.cpus === 0 ? undefined : c.cpus,
        pids: c.pids === 0 ? undefined : c.pids,
        ports: [...c.ports],
        volumes: [...c.volumes],
        cmd: [...c.cmd],
        env: [...c.env],
        routes: c.routes.map((r) =>
          compact({
            name: r.name,
            port: r.port,
            mode: r.mode as RouteMode,
            hostname: r.hostname,
            protocol: r.protocol as RouteProtocol,
            // false is the proto default: absent.
            proxy_protocol: r.proxyProtocol ? (true as const) : undefined,
          }),
        ),
        health: c.health && healthDef(c.health),
        strategy: c.strategy as Strategy,
      }),
    ),
  });
}

/**
 * The same rules as for a file, on a spec received by the agent, and the
 * same size limit on the spec as encoded on the wire.
 */
export function validateServiceSpec(spec: ServiceSpec, opts?: ServiceDefOptions): Problem[] {
  const max = (opts?.limits ?? BUILTIN_LIMITS).maxDefinitionBytes;
  const size = encodedSize(spec);
  const tooBig: Problem[] =
    size > max
      ? [
          {
            path: "",
            message: `expected a spec of at most ${formatBytes(max)} encoded, got ${size} bytes`,
          },
        ]
      : [];
  return validateServiceDef(fromServiceSpec(spec), opts, tooBig).problems;
}

/**
 * Bytes of the spec on the wire. A spec built in-process may hold a number
 * the wire cannot (a fractional or out-of-range int32), which encode()
 * throws on; its field checks report that number, so it counts as 0 here.
 */
function encodedSize(spec: ServiceSpec): number {
  try {
    return ServiceSpec.encode(spec).finish().length;
  } catch {
    return 0;
  }
}

const PLAIN_NAME = new RegExp(`^[\\x21-\\x7e]{1,${ECHO_MAX}}$`);

/**
 * `service web` for the problem lines of a received spec. The name has not
 * been validated yet, so one that is long or not plain printable ASCII is
 * quoted and cut short.
 */
export function serviceLabel(name: string): string {
  if (!name) return "service";
  return PLAIN_NAME.test(name) ? `service ${name}` : `service ${quote(name)}`;
}
