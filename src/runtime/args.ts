/**
 * Pure functions around the podman CLI: the argv we send, the names and labels
 * we give containers, the JSON we read back, and what podman's error messages
 * mean. Everything here is tested on its outputs; podman.ts only spawns.
 */
import { McpError } from "../util/errors.js";
import { CommandError } from "../util/exec.js";
import { LibpodError } from "./libpod/errors.js";
import type { ContainerSpec, ContainerStatus, LogOptions } from "./types.js";

/**
 * argv (after `podman`) for starting a component. Exactly what a person would
 * type, nothing more: no `--pull` (the agent pulls in its own step) and no
 * extra defaults, so the hot path is a plain `podman run`.
 */
export function buildRunArgs(spec: ContainerSpec): string[] {
  const args = ["run", "-d", "--name", spec.name];
  if (spec.network) args.push("--network", spec.network);
  if (spec.user) args.push("--user", spec.user);
  if (spec.restart) args.push("--restart", spec.restart);
  if (spec.memory) args.push("--memory", spec.memory);
  if (spec.cpus) args.push("--cpus", String(spec.cpus));
  if (spec.pids) args.push("--pids-limit", String(spec.pids));
  if (spec.logMaxSize) args.push("--log-opt", `max-size=${spec.logMaxSize}`);
  // Sorted so the same spec always gives the same argv (stable tests and logs).
  for (const key of Object.keys(spec.labels).sort()) {
    args.push("--label", `${key}=${spec.labels[key]}`);
  }
  for (const p of spec.ports) args.push("-p", p);
  for (const v of spec.volumes) args.push("-v", v);
  for (const e of spec.env) args.push("-e", e);
  args.push(spec.image, ...spec.cmd);
  return args;
}

/** argv (after `podman`) for running `cmd` inside a container (health checks). */
export function buildExecArgs(name: string, cmd: readonly string[]): string[] {
  return ["exec", name, ...cmd];
}

/** argv (after `podman`) for `logs`. */
export function buildLogsArgs(name: string, opts: LogOptions): string[] {
  const args = ["logs"];
  if (opts.tail !== undefined) args.push("--tail", String(opts.tail));
  if (opts.follow) args.push("--follow");
  if (opts.timestamps) args.push("--timestamps");
  if (opts.since) args.push("--since", opts.since);
  args.push(name);
  return args;
}

/** argv (after `podman`) for `pull`; `--quiet` keeps the progress bars out of the captured output. */
export function buildPullArgs(image: string): string[] {
  return ["pull", "--quiet", image];
}

/** argv (after `podman`) for asking whether an image is in local storage (exit 1: no). */
export function buildImageExistsArgs(image: string): string[] {
  return ["image", "exists", image];
}

/** argv (after `podman`) for `stop`, waiting `timeoutSeconds` after SIGTERM before SIGKILL. */
export function buildStopArgs(name: string, timeoutSeconds: number): string[] {
  return ["stop", "-t", String(timeoutSeconds), name];
}

/** argv (after `podman`) for `start`. */
export function buildStartArgs(name: string): string[] {
  return ["start", name];
}

/**
 * argv (after `podman`) for `rm`. `--ignore` makes a missing container a
 * success; podman 4.3.1 refuses `-t` without `-f`, so the timeout only goes
 * with `force`.
 */
export function buildRemoveArgs(
  name: string,
  opts: { force?: boolean; timeoutSeconds: number },
): string[] {
  return opts.force
    ? ["rm", "-f", "-t", String(opts.timeoutSeconds), "--ignore", name]
    : ["rm", "--ignore", name];
}

/** argv (after `podman`) for `restart`, with the same grace period as `stop`. */
export function buildRestartArgs(name: string, timeoutSeconds: number): string[] {
  return ["restart", "-t", String(timeoutSeconds), name];
}

/** argv (after `podman`) for renaming a container. */
export function buildRenameArgs(from: string, to: string): string[] {
  return ["rename", from, to];
}

/**
 * argv (after `podman`) for inspecting a container as JSON (parseInspectJson).
 * `container inspect`, not `inspect`: the latter also matches images of that name.
 */
export function buildInspectArgs(name: string): string[] {
  return ["container", "inspect", "--format", "json", name];
}

/** argv (after `podman`) for listing all containers, stopped ones too, as JSON (parsePsJson). */
export function buildListArgs(): string[] {
  return ["ps", "-a", "--format", "json"];
}

/** argv (after `podman`) printing just the client version. */
export function buildVersionArgs(): string[] {
  return ["version", "--format", "{{.Client.Version}}"];
}

/** argv (after `podman`) printing the storage graphRoot and runRoot, one a line. */
export function buildStoragePathsArgs(): string[] {
  return ["info", "--format", "{{.Store.GraphRoot}}\n{{.Store.RunRoot}}"];
}

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
 * component named like its service. Only the name's own prefixes are looked
 * up, so a caller matching many containers passes the services as a Set
 * once (no scan, no sort of every service per container).
 */
export function splitContainerName(
  name: string,
  knownServices: readonly string[] | ReadonlySet<string>,
): { service: string; component: string } | undefined {
  const known: ReadonlySet<string> =
    knownServices instanceof Set ? knownServices : new Set(knownServices);
  // The longest candidate is the name itself, then the prefixes before each `-`, right to left.
  if (name && known.has(name)) return { service: name, component: name };
  for (let dash = name.lastIndexOf("-"); dash > 0; dash = name.lastIndexOf("-", dash - 1)) {
    if (dash === name.length - 1) continue;
    const service = name.slice(0, dash);
    if (known.has(service)) return { service, component: name.slice(dash + 1) };
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

/** `podman container inspect --format json` (an array, one entry per name asked for). */
export function parseInspectJson(json: string): ContainerStatus[] {
  return parseJsonArray(json, "podman inspect").filter(isObject).map(parseInspectEntry);
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
// Matched against the stderr podman 4.3.1 prints, or the message and cause its
// API answers (src/runtime/libpod/): the same words, since both come from the
// same Go errors. Examples of both are in the unit tests.

function stderrMatches(err: unknown, pattern: RegExp): boolean {
  if (err instanceof CommandError) return pattern.test(err.stderr);
  if (err instanceof LibpodError) return pattern.test(`${err.apiMessage}\n${err.apiCause}`);
  return false;
}

/** `-p` asked for a host port something else holds (podman exits 126, container left Created). */
export function isAddressInUse(err: unknown): boolean {
  return stderrMatches(err, /address already in use/i);
}

/** The image is not in local storage (`--pull=never`, rmi, image inspect) or the registry lacks it. */
export function isNoSuchImage(err: unknown): boolean {
  return stderrMatches(err, /image not known|manifest unknown|name unknown|no such image/i);
}

/** A pull (explicit, or implied by `run`) failed: registry unreachable, unknown, refused. */
export function isPullFailure(err: unknown): boolean {
  return stderrMatches(
    err,
    /initializing source|pinging container registry|reading manifest|unable to pull|manifest unknown/i,
  );
}

/** stop/start/rm/logs/container inspect named a container that does not exist. */
export function isNoSuchContainer(err: unknown): boolean {
  return stderrMatches(err, /no such container/i);
}

/**
 * `logs --since` got a value podman cannot read (the CLI: `parsing --since
 * "x"`; the API: `failed to parse query parameter 'since'`).
 */
export function isInvalidSince(err: unknown): boolean {
  return stderrMatches(err, /parsing --since|parse query parameter 'since'/i);
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
 * `run --name` clashed with an existing container (which run must leave
 * alone), or `rename` to a taken name (`name X already in use, cannot rename`).
 */
export function isNameInUse(err: unknown): boolean {
  return stderrMatches(
    err,
    /name "[^"]*" is already in use|that name is already in use|already in use, cannot rename/i,
  );
}
