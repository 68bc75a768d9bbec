/**
 * What `mcp service export --format kube|compose` starts from: the spec the
 * agent holds, the host ports its routes got and the agent's bind address
 * (ListServices with the spec), resolved per component into what MCP's
 * container gets: the same ports and env as the agent builds
 * (servicedef/publish.ts), the volumes, and the health check as the monitor
 * runs it (health/plan.ts). Pure; kube.ts and compose.ts map it to their
 * formats and say what they cannot express.
 */
import type { ComponentSpec, ServiceInfo, ServiceSpec } from "../../gen/mcp/v1/mcp.js";
import { healthPlan, type HealthPlan } from "../../health/plan.js";
import { envMap } from "../../servicedef/env.js";
import { parsePortMapping, type PortMapping } from "../../servicedef/ports.js";
import { splitVolume } from "../../servicedef/volumes.js";
import {
  containerEnv,
  publishedPorts,
  routedPorts,
  type RoutedPort,
} from "../../servicedef/publish.js";
import { McpError } from "../../util/errors.js";

/** The bind address of agents that do not send theirs: the config's default (README, "Ports"). */
export const DEFAULT_BIND_ADDRESS = "127.0.0.1";

export interface ExportSource {
  node: string;
  spec: ServiceSpec;
  /** Where route ports are published; DEFAULT_BIND_ADDRESS when the agent did not say. */
  bindAddress: string;
  /** False when the agent sent no bind address (older than this field) and the default was assumed. */
  bindAddressKnown: boolean;
  /** Component → route name → allocated host port. */
  hostPorts: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Component → desired state (running | stopped | ignore). */
  desiredStates: ReadonlyMap<string, string>;
}

/** One `-v source:destination[:options]` of a component. */
export interface ExportedVolume {
  text: string;
  source: string;
  destination: string;
  options: string[];
}

/** One published port: podman's `-p` text and what it says. */
export interface ExportedPort {
  text: string;
  mapping: PortMapping;
}

/** A component as MCP's container runs it. */
export interface ExportedComponent {
  spec: ComponentSpec;
  routed: RoutedPort[];
  ports: ExportedPort[];
  /** KEY → value, the user's env then the port variables; a later entry for a key wins. */
  env: [string, string][];
  volumes: ExportedVolume[];
  health: HealthPlan;
}

/** The spec the agent sent with `include_spec`; refused when it sent none. */
export function heldSpec(info: ServiceInfo): ServiceSpec {
  if (!info.spec) {
    throw new McpError(
      "failed_precondition",
      `the agent sent no spec for ${info.name}; is it older than the CLI?`,
    );
  }
  return info.spec;
}

/**
 * The source of an export from what the agent answered. Refuses a service
 * whose spec did not come (an older agent) or one of whose routes has no
 * host port (never deployed): the file would lack its port variables.
 */
export function exportSource(node: string, info: ServiceInfo): ExportSource {
  const spec = heldSpec(info);
  const hostPorts = new Map<string, Map<string, number>>();
  for (const c of info.components) {
    hostPorts.set(
      c.name,
      new Map(c.routes.filter((r) => r.hostPort > 0).map((r) => [r.name, r.hostPort])),
    );
  }
  for (const c of spec.components) {
    const missing = c.routes.filter((r) => !hostPorts.get(c.name)?.has(r.name));
    if (missing.length > 0) {
      const names = missing.map((r) => (r.name ? `"${r.name}"` : "the unnamed route")).join(", ");
      throw new McpError(
        "failed_precondition",
        `${info.name}/${c.name}: no host port allocated for ${names} on node ${node} (deploy the service first)`,
      );
    }
  }
  return {
    node,
    spec,
    bindAddress: info.bindAddress || DEFAULT_BIND_ADDRESS,
    bindAddressKnown: info.bindAddress !== "",
    hostPorts,
    desiredStates: new Map(info.components.map((c) => [c.name, c.desiredState])),
  };
}

function exportedVolume(text: string): ExportedVolume {
  const { source, destination, options } = splitVolume(text);
  return { text, source, destination, options: options ? options.split(",") : [] };
}

/** `component` as MCP's container runs it, with the source's host ports and bind address. */
export function exportedComponent(
  source: ExportSource,
  component: ComponentSpec,
): ExportedComponent {
  const hostPorts = source.hostPorts.get(component.name) ?? new Map<string, number>();
  const routed = routedPorts(component, hostPorts);
  const ports = publishedPorts(component, routed, source.bindAddress).map((text) => {
    const mapping = parsePortMapping(text);
    if (!mapping) {
      throw new McpError(
        "invalid_definition",
        `${component.name}: port mapping "${text}" not understood`,
      );
    }
    return { text, mapping };
  });
  return {
    spec: component,
    routed,
    ports,
    env: Object.entries(envMap(containerEnv(component, routed))),
    volumes: component.volumes.map(exportedVolume),
    health: healthPlan(component, hostPorts, source.bindAddress),
  };
}

/**
 * What no exported file holds, whatever its format: MCP's proxy in front of
 * the routes, its deploys and its monitor, and the states the agent records.
 */
export function mcpOnlyNotes(source: ExportSource): string[] {
  const notes = [
    "MCP's deploys (pull, health gate within `deadline`, strategy, rollback) and its monitor (drift, flap and unhealthy alerts, recovery when the agent starts) do not apply to what this file runs.",
  ];
  if (!source.bindAddressKnown) {
    notes.push(
      `node ${source.node}'s agent did not say its bind address (it is older than the CLI): ports are published on ${DEFAULT_BIND_ADDRESS}, the default.`,
    );
  }
  if (source.spec.active === false) {
    notes.push(
      `the service is inactive in MCP (active = false: desired stopped); this file starts it.`,
    );
  }
  for (const c of source.spec.components) {
    const desired = source.desiredStates.get(c.name);
    if (desired !== undefined && desired !== "running") {
      notes.push(`${c.name}: desired ${desired} in MCP; this file starts it.`);
    }
    for (const r of c.routes) {
      if (r.protocol === "udp") continue;
      const port = source.hostPorts.get(c.name)?.get(r.name);
      const what = [`listener ${r.port}/${r.mode || "l4"}`];
      if (r.hostname) what.push(`hostname ${r.hostname}`);
      if (r.proxyProtocol) what.push("PROXY protocol v2 header");
      notes.push(
        `${c.name}: ${r.name ? `route "${r.name}"` : "the unnamed route"} (${what.join(", ")}) is served by MCP's proxy, which is not part of this file; host port ${port} is published directly.`,
      );
    }
  }
  return notes;
}
