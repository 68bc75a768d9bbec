/**
 * Podman's container JSON read into ContainerStatus: the list call's entries
 * (what `podman ps -a --format json` prints too) and the inspect call's
 * object. Pure, tested on captured answers (test/unit/runtime.test.ts).
 */
import { McpError } from "../../util/errors.js";
import type { ContainerStatus } from "../types.js";

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
    throw new McpError("runtime", `${what}: answer is not JSON`, { cause: err });
  }
  // podman answers `null` instead of `[]` in some versions when nothing matches.
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

/** The list call's answer (`podman ps -a --format json` prints the same); `Labels` may be null. */
export function parsePsJson(json: string): ContainerStatus[] {
  return parseJsonArray(json, "podman API list").filter(isObject).map(parsePsEntry);
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
 * One container's inspect object, as the API answers it (`podman container
 * inspect` prints the same objects in an array); undefined when it is not an
 * object.
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
