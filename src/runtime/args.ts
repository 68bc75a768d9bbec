/**
 * Pure functions around podman: the names and labels we give containers, the
 * JSON the API answers, and what podman's errors mean. Everything here is
 * tested on its outputs.
 */
import { McpError } from "../util/errors.js";
import { LibpodError } from "./libpod/errors.js";
import type { ContainerStatus } from "./types.js";

/** `<service>-<component>`, or just `<service>` for a component named like its service. */
export function containerName(service: string, component: string): string {
  return service === component ? service : `${service}-${component}`;
}

/**
 * The name a component's old container carries while its replacement starts
 * (src/agent/operations/deploy.ts, "set aside"). Component names cannot contain ".", so
 * this never names another component's container.
 */
export function setAsideName(container: string): string {
  return `${container}.prev`;
}

export function isSetAsideName(name: string): boolean {
  return name.endsWith(".prev");
}

/**
 * The name of a new version's trial container, started beside the old one
 * on temporary host ports to prove itself (start-first deploys).
 */
export function trialName(container: string): string {
  return `${container}.next`;
}

export function isTrialName(name: string): boolean {
  return name.endsWith(".next");
}

/** A set-aside or trial container: it carries a component's labels but is not the component. */
export function isSideContainer(name: string): boolean {
  return isSetAsideName(name) || isTrialName(name);
}

/**
 * Reads a container name back into service and component. Known services win
 * (longest first), so `mc-proxy` stays one service instead of `mc` + `proxy`;
 * an unknown name is split at its first `-`, and a name without `-` is a
 * component named like its service.
 */
export function splitContainerName(
  name: string,
  knownServices: readonly string[],
): { service: string; component: string } | undefined {
  const known = [...knownServices].sort((a, b) => b.length - a.length);
  for (const service of known) {
    if (!service) continue;
    if (name === service) return { service, component: service };
    if (name.startsWith(`${service}-`) && name.length > service.length + 1) {
      return { service, component: name.slice(service.length + 1) };
    }
  }
  const dash = name.indexOf("-");
  if (dash < 0) return name ? { service: name, component: name } : undefined;
  const service = name.slice(0, dash);
  const component = name.slice(dash + 1);
  return service && component ? { service, component } : undefined;
}

export const LABEL_SERVICE = "mcp.service";
export const LABEL_COMPONENT = "mcp.component";
export const LABEL_NODE = "mcp.node";

/** Labels that tie a container to its component, so adoption never has to parse names. */
export function mcpLabels(
  service: string,
  component: string,
  node: string,
): Record<string, string> {
  return { [LABEL_SERVICE]: service, [LABEL_COMPONENT]: component, [LABEL_NODE]: node };
}

// ---------------------------------------------------------------- JSON output

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObject(v)) for (const [k, val] of Object.entries(v)) out[k] = str(val);
  return out;
}

function parseJsonArray(json: string, what: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new McpError("runtime", `${what}: output is not JSON`, { cause: err });
  }
  // podman prints `null` instead of `[]` in some versions when nothing matches.
  if (value === null) return [];
  if (!Array.isArray(value)) throw new McpError("runtime", `${what}: expected a JSON array`);
  return value as unknown[];
}

/** A port in `-p` syntax; tcp is podman's default and is left implicit. */
function formatPort(hostIp: string, hostPort: number, containerPort: number, protocol: string) {
  const host = hostIp ? `${hostIp}:${hostPort}` : `${hostPort}`;
  const proto = protocol && protocol !== "tcp" ? `/${protocol}` : "";
  return `${host}:${containerPort}${proto}`;
}

/** Sorted by host port so `list` and `inspect` agree for the same container. */
function sortPorts(ports: string[]): string[] {
  const hostPort = (p: string) => {
    const parts = p.split("/")[0]?.split(":") ?? [];
    return Number(parts[parts.length - 2] ?? 0);
  };
  return ports.sort((a, b) => hostPort(a) - hostPort(b) || a.localeCompare(b));
}

/** Go's zero time (year 1) and unset values mean "never started". */
function dateOrNull(d: Date): Date | null {
  return Number.isNaN(d.getTime()) || d.getTime() <= 0 ? null : d;
}

function hasExited(state: string): boolean {
  return state === "exited" || state === "stopped";
}

/** `podman ps -a --format json`. Note: `Command` is an array there, and `Labels` may be null. */
export function parsePsJson(json: string): ContainerStatus[] {
  return parseJsonArray(json, "podman ps").filter(isObject).map(parsePsEntry);
}

function parsePsEntry(c: Json): ContainerStatus {
  const names = Array.isArray(c.Names) ? c.Names : [];
  const state = str(c.State).toLowerCase();
  const ports: string[] = [];
  for (const p of Array.isArray(c.Ports) ? (c.Ports as unknown[]) : []) {
    if (!isObject(p)) continue;
    const host = num(p.host_port);
    const container = num(p.container_port);
    if (host === undefined || container === undefined) continue;
    // `range` > 1 when a range was published (`-p 8000-8001:8000-8001`): one entry per port.
    const range = Math.max(1, num(p.range) ?? 1);
    for (let i = 0; i < range; i++) {
      ports.push(formatPort(str(p.host_ip), host + i, container + i, str(p.protocol)));
    }
  }
  const startedAt = num(c.StartedAt);
  const status: ContainerStatus = {
    id: str(c.Id),
    name: str(names[0]),
    image: str(c.Image),
    state,
    startedAt: startedAt === undefined ? null : dateOrNull(new Date(startedAt * 1000)),
    labels: stringMap(c.Labels),
    ports: sortPorts(ports),
  };
  const exitCode = num(c.ExitCode);
  if (hasExited(state) && exitCode !== undefined) status.exitCode = exitCode;
  return status;
}

/**
 * One container's inspect object, as the API answers it (the CLI prints the
 * same objects in an array); undefined when it is not an object.
 */
export function parseInspectObject(value: unknown): ContainerStatus | undefined {
  return isObject(value) ? parseInspectEntry(value) : undefined;
}

function parseInspectEntry(c: Json): ContainerStatus {
  const state = isObject(c.State) ? c.State : {};
  const config = isObject(c.Config) ? c.Config : {};
  const hostConfig = isObject(c.HostConfig) ? c.HostConfig : {};
  const stateName = str(state.Status).toLowerCase();
  // HostConfig.PortBindings holds what was asked for, in every state (NetworkSettings
  // only reflects a running network namespace). Keys look like `8080/tcp`.
  const ports: string[] = [];
  const bindings = isObject(hostConfig.PortBindings) ? hostConfig.PortBindings : {};
  for (const [key, list] of Object.entries(bindings)) {
    const [containerPort = "", protocol = "tcp"] = key.split("/");
    for (const b of Array.isArray(list) ? (list as unknown[]) : []) {
      if (!isObject(b)) continue;
      ports.push(formatPort(str(b.HostIp), Number(b.HostPort), Number(containerPort), protocol));
    }
  }
  const startedAt = str(state.StartedAt);
  const status: ContainerStatus = {
    id: str(c.Id),
    name: str(c.Name).replace(/^\//, ""),
    image: str(c.ImageName) || str(config.Image),
    state: stateName,
    startedAt: startedAt ? dateOrNull(new Date(startedAt)) : null,
    labels: stringMap(config.Labels),
    ports: sortPorts(ports),
  };
  const exitCode = num(state.ExitCode);
  if (hasExited(stateName) && exitCode !== undefined) status.exitCode = exitCode;
  return status;
}

// ---------------------------------------------------------------- error classifiers
// Matched against the message and cause podman's API answers (LibpodError,
// src/runtime/libpod/): the words of podman's own Go errors, which its CLI
// prints too. The captured bodies are in test/unit/libpod.test.ts.

function podmanSays(err: unknown, pattern: RegExp): boolean {
  return err instanceof LibpodError && pattern.test(`${err.apiMessage}\n${err.apiCause}`);
}

/** A port mapping asked for a host port something else holds (the start failed). */
export function isAddressInUse(err: unknown): boolean {
  return podmanSays(err, /address already in use/i);
}

/** The image is not in local storage (create never pulls) or the registry lacks it. */
export function isNoSuchImage(err: unknown): boolean {
  return podmanSays(err, /image not known|manifest unknown|name unknown|no such image/i);
}

/** A pull failed: registry unreachable, unknown, refused. */
export function isPullFailure(err: unknown): boolean {
  return podmanSays(
    err,
    /initializing source|pinging container registry|reading manifest|unable to pull|manifest unknown/i,
  );
}

/** stop/start/restart/rename/exec/logs named a container that does not exist. */
export function isNoSuchContainer(err: unknown): boolean {
  return podmanSays(err, /no such container/i);
}

/** Logs were asked `since` a value podman cannot read (`failed to parse query parameter 'since'`). */
export function isInvalidSince(err: unknown): boolean {
  return podmanSays(err, /parse query parameter 'since'/i);
}

/**
 * Runs a container operation whose goal is met when the container does not
 * exist (stop, restart-or-recreate): resolves false instead of failing then.
 */
export async function ifContainerExists(op: Promise<void>): Promise<boolean> {
  try {
    await op;
    return true;
  } catch (err) {
    if (isNoSuchContainer(err)) return false;
    throw err;
  }
}

/**
 * A create whose name an existing container has (which run must leave
 * alone), or a rename to a taken name (`name X already in use, cannot rename`).
 */
export function isNameInUse(err: unknown): boolean {
  return podmanSays(
    err,
    /name "[^"]*" is already in use|that name is already in use|already in use, cannot rename/i,
  );
}
