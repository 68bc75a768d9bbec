/**
 * Pure functions around Podman's libpod REST API (v4, Podman 4.3.1 here): the
 * create body (a SpecGenerator) for a ContainerSpec and the method, path and
 * query of every other call. A spec must give the container a person gets
 * from `podman run` with the same flags (the field docs of ../types.ts name
 * them), so each spec field has its part of the body, each with a unit test
 * (test/unit/libpod.test.ts); test/integration/libpod.test.ts compares the
 * two containers in `podman container inspect`: they differ only in ids,
 * names and the CLI's own bookkeeping (CreateCommand).
 */
import { envMap } from "../../servicedef/env.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { NETWORK_MODES } from "../../servicedef/publish.js";
import { splitVolume } from "../../servicedef/volumes.js";
import { McpError } from "../../util/errors.js";
import type { ContainerSpec, LogOptions } from "../types.js";

/** Every path starts here; v4.0.0 is the oldest libpod API this code speaks (4.3.1 accepts it). */
export const API_PREFIX = "/v4.0.0/libpod";

export interface ApiRequest {
  method: "GET" | "POST" | "DELETE";
  /** Path and query, under API_PREFIX already. */
  path: string;
  /** Sent as JSON. */
  body?: unknown;
}

// ------------------------------------------------------------------ the create body

/** `-p` as the API takes it; absent fields are podman's defaults (every address, tcp, a host port it picks). */
export interface ApiPortMapping {
  host_ip?: string;
  host_port?: number;
  container_port: number;
  protocol?: string;
}

export interface ApiMount {
  type: "bind";
  source: string;
  destination: string;
  options?: string[];
}

export interface ApiNamedVolume {
  Name: string;
  Dest: string;
  Options?: string[];
}

export interface ApiNamespace {
  nsmode: string;
  value?: string;
}

/** The subset of podman's SpecGenerator MCP sets; field names are podman's. */
export interface SpecGenerator {
  name: string;
  image: string;
  command?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  user?: string;
  restart_policy?: string;
  restart_tries?: number;
  netns?: ApiNamespace;
  Networks?: Record<string, Record<string, never>>;
  portmappings?: ApiPortMapping[];
  mounts?: ApiMount[];
  volumes?: ApiNamedVolume[];
  resource_limits?: {
    memory?: { limit: number };
    cpu?: { quota: number; period: number };
    pids?: { limit: number };
  };
  log_configuration?: { size: number };
}

function invalid(what: string, value: string, why: string): McpError {
  return new McpError("invalid_argument", `${what} ${JSON.stringify(value)}: ${why}`);
}

/**
 * The create body for `spec`: what `podman run` makes of its flags for the
 * same spec. It adds nothing of its own (no pull: the agent pulls in its own
 * step): podman's server fills in the same defaults from containers.conf as
 * the CLI (network, log driver, ulimits, memory swap = twice the limit), so
 * leaving a field out means "as the CLI".
 */
export function buildCreateBody(spec: ContainerSpec): SpecGenerator {
  const body: SpecGenerator = { name: spec.name, image: spec.image };
  if (spec.cmd.length > 0) body.command = [...spec.cmd];
  if (spec.env.length > 0) body.env = envMap(spec.env);
  if (Object.keys(spec.labels).length > 0) body.labels = { ...spec.labels };
  if (spec.user) body.user = spec.user;
  if (spec.restart) Object.assign(body, restartPolicy(spec.restart));
  if (spec.network) Object.assign(body, networkMode(spec.network));
  if (spec.ports.length > 0) body.portmappings = spec.ports.map(portMapping);
  for (const v of spec.volumes) {
    const m = volume(v);
    if ("type" in m) (body.mounts ??= []).push(m);
    else (body.volumes ??= []).push(m);
  }
  const limits: NonNullable<SpecGenerator["resource_limits"]> = {};
  if (spec.memory) limits.memory = { limit: ramInBytes(spec.memory) };
  if (spec.cpus) limits.cpu = cpuQuota(spec.cpus);
  if (spec.pids) limits.pids = { limit: spec.pids };
  if (Object.keys(limits).length > 0) body.resource_limits = limits;
  if (spec.logMaxSize) body.log_configuration = { size: humanSize(spec.logMaxSize) };
  return body;
}

/** `--restart`: `on-failure:N` is the policy plus its retry count. */
export function restartPolicy(restart: string): { restart_policy: string; restart_tries?: number } {
  const m = /^(no|always|unless-stopped|on-failure)(?::([0-9]+))?$/.exec(restart);
  if (!m?.[1] || (m[2] !== undefined && m[1] !== "on-failure")) {
    throw invalid(
      "restart policy",
      restart,
      "expected no, always, on-failure[:N] or unless-stopped",
    );
  }
  return m[2] === undefined
    ? { restart_policy: m[1] }
    : { restart_policy: m[1], restart_tries: Number(m[2]) };
}

/**
 * `--network`: a mode (`host`, `none`, `bridge` = the default network, …),
 * `container:<id>`, `ns:<path>`, or network names (comma-separated), as podman
 * parses the flag. Measured: `--network host` and `{nsmode: host}` give the
 * same container; `--network podman` and `{nsmode: bridge, Networks: {podman}}` too.
 */
export function networkMode(network: string): Pick<SpecGenerator, "netns" | "Networks"> {
  if (NETWORK_MODES.has(network)) return { netns: { nsmode: network } };
  const colon = network.indexOf(":");
  if (colon > 0) {
    const mode = network.slice(0, colon);
    const value = network.slice(colon + 1);
    if (mode === "container" || mode === "ns") return { netns: { nsmode: mode, value: value } };
    if (mode === "slirp4netns" || mode === "pasta") return { netns: { nsmode: mode } };
    throw invalid("network", network, "unknown network mode");
  }
  const Networks: Record<string, Record<string, never>> = {};
  for (const name of network.split(",")) {
    if (!name) throw invalid("network", network, "empty network name");
    Networks[name] = {};
  }
  return { netns: { nsmode: "bridge" }, Networks };
}

/** One `-p` value; ranges and forms parsePortMapping does not know are refused, never guessed. */
export function portMapping(p: string): ApiPortMapping {
  const m = parsePortMapping(p);
  if (!m) throw invalid("port mapping", p, "expected [ip:][hostPort:]containerPort[/tcp|/udp]");
  const out: ApiPortMapping = { container_port: m.containerPort, protocol: m.protocol };
  if (m.hostIp !== undefined) out.host_ip = m.hostIp;
  if (m.hostPort !== undefined) out.host_port = m.hostPort;
  return out;
}

/**
 * One `-v src:dst[:opts]`: an absolute source is a bind mount (podman adds
 * rbind and rprivate itself, as for the CLI), anything else a named volume.
 * `O` (an overlay over the source) has another shape in the API; nothing in
 * MCP asks for it, so it is refused.
 */
export function volume(v: string): ApiMount | ApiNamedVolume {
  const { source, destination, options: opts, extra } = splitVolume(v);
  if (!source || !destination.startsWith("/") || extra.length > 0) {
    throw invalid("volume", v, "expected source:/container/path[:options]");
  }
  const options = opts ? opts.split(",") : [];
  if (options.includes("O")) throw invalid("volume", v, "overlay volumes (O) are not supported");
  if (source.startsWith("/")) {
    const m: ApiMount = { type: "bind", source, destination };
    if (options.length > 0) m.options = options;
    return m;
  }
  const n: ApiNamedVolume = { Name: source, Dest: destination };
  if (options.length > 0) n.Options = options;
  return n;
}

const SIZE_RE = /^([0-9]+(?:\.[0-9]+)?) ?([kmgtp])?i?b?$/i;
const UNIT_POWER: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5 };

function parseUnits(s: string, base: number, what: string): number {
  const m = SIZE_RE.exec(s);
  if (!m?.[1]) throw invalid(what, s, "expected a number with an optional unit (256m)");
  const power = m[2] ? (UNIT_POWER[m[2].toLowerCase()] ?? 0) : 0;
  return Math.trunc(Number(m[1]) * base ** power);
}

/** `--memory`: binary units (`256m` = 256 MiB), as podman's parser (go-units RAMInBytes). */
export function ramInBytes(s: string): number {
  return parseUnits(s, 1024, "memory");
}

/**
 * `--log-opt max-size`: decimal units (`10m` = 10 000 000 bytes), as podman's
 * parser (go-units FromHumanSize); inspect shows both containers' `Size: 10MB`.
 */
export function humanSize(s: string): number {
  return parseUnits(s, 1000, "log max-size");
}

/** CFS period podman uses for `--cpus`. */
export const CPU_PERIOD = 100_000;

/** `--cpus`: a quota per 100 ms period, truncated as podman's Go conversion does. */
export function cpuQuota(cpus: number): { quota: number; period: number } {
  return { quota: Math.trunc(cpus * CPU_PERIOD), period: CPU_PERIOD };
}

// ------------------------------------------------------------------ the other calls

function containerPath(name: string, rest = ""): string {
  return `${API_PREFIX}/containers/${encodeURIComponent(name)}${rest}`;
}

/** An image reference in a path: its `/` stay separators (podman's route takes them), the rest is encoded. */
function imagePath(image: string, rest: string): string {
  return `${API_PREFIX}/images/${image.split("/").map(encodeURIComponent).join("/")}${rest}`;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function createRequest(spec: ContainerSpec): ApiRequest {
  return { method: "POST", path: `${API_PREFIX}/containers/create`, body: buildCreateBody(spec) };
}

/** 204 started, 304 already running (the CLI's `start` succeeds then too). */
export function startRequest(name: string): ApiRequest {
  return { method: "POST", path: containerPath(name, "/start") };
}

/** 204 stopped, 304 already stopped; `timeout` is the grace period before SIGKILL. */
export function stopRequest(name: string, timeoutSeconds: number): ApiRequest {
  return {
    method: "POST",
    path: containerPath(name, `/stop${query({ timeout: timeoutSeconds })}`),
  };
}

/**
 * The grace period goes in `timeout`: podman 4.3.1 ignores the `t` its API
 * documentation names (measured: `t=2` on a container ignoring SIGTERM
 * restarts at once, `timeout=2` after 2 s, as `podman restart -t 2`).
 */
export function restartRequest(name: string, timeoutSeconds: number): ApiRequest {
  return {
    method: "POST",
    path: containerPath(name, `/restart${query({ timeout: timeoutSeconds })}`),
  };
}

/**
 * `ignore`: a missing container is a success, as `rm --ignore`. The timeout
 * only goes with `force`, as buildRemoveArgs (an unforced remove of a running
 * container fails either way).
 */
export function removeRequest(
  name: string,
  opts: { force?: boolean; timeoutSeconds: number },
): ApiRequest {
  const q = opts.force
    ? query({ force: true, timeout: opts.timeoutSeconds, ignore: true })
    : query({ ignore: true });
  return { method: "DELETE", path: containerPath(name, q) };
}

export function renameRequest(from: string, to: string): ApiRequest {
  return { method: "POST", path: containerPath(from, `/rename${query({ name: to })}`) };
}

/** The same JSON as one entry of `podman container inspect` (parsed by status.ts). */
export function inspectRequest(name: string): ApiRequest {
  return { method: "GET", path: containerPath(name, "/json") };
}

/**
 * Every container, stopped ones too: the same JSON as `podman ps -a --format
 * json` for every field parsePsJson reads. `labels` (`key` or `key=value`,
 * all must match) narrows it on podman's side.
 */
export function listRequest(opts: { labels?: readonly string[] } = {}): ApiRequest {
  const filters = opts.labels?.length ? JSON.stringify({ label: opts.labels }) : undefined;
  return { method: "GET", path: `${API_PREFIX}/containers/json${query({ all: true, filters })}` };
}

/**
 * Podman's event stream for the containers carrying every one of `labels`
 * (`key=value`; none: every container): one JSON object a line, for as long
 * as the request is open.
 */
export function eventsRequest(opts: { labels: readonly string[] }): ApiRequest {
  const filters = JSON.stringify({
    type: ["container"],
    ...(opts.labels.length > 0 ? { label: opts.labels } : {}),
  });
  return { method: "GET", path: `${API_PREFIX}/events${query({ stream: true, filters })}` };
}

/**
 * A stream of JSON objects, one a line; a failure arrives as `{"error": …}`
 * inside a 200 answer. `quiet` leaves out the progress, as `pull --quiet`.
 */
export function pullRequest(image: string): ApiRequest {
  return {
    method: "POST",
    path: `${API_PREFIX}/images/pull${query({ reference: image, quiet: true })}`,
  };
}

/** 204 yes, 404 no. */
export function imageExistsRequest(image: string): ApiRequest {
  return { method: "GET", path: imagePath(image, "/exists") };
}

/**
 * Both streams, multiplexed (frames, see client.ts). `since` takes what
 * `podman logs --since` takes (timestamps, durations); with timestamps the
 * API prints whole seconds (`2026-12-01T16:20:57Z`) where the CLI prints nanoseconds.
 */
export function logsRequest(name: string, opts: LogOptions): ApiRequest {
  const q = query({
    stdout: true,
    stderr: true,
    follow: opts.follow ? true : undefined,
    tail: opts.tail,
    timestamps: opts.timestamps ? true : undefined,
    since: opts.since || undefined,
  });
  return { method: "GET", path: containerPath(name, `/logs${q}`) };
}

/** Creates an exec session (answer `{Id}`); only a running container takes one. */
export function execCreateRequest(name: string, cmd: readonly string[]): ApiRequest {
  return {
    method: "POST",
    path: containerPath(name, "/exec"),
    body: { Cmd: [...cmd], AttachStdout: true, AttachStderr: true },
  };
}

/** Runs the session and answers with its output, multiplexed, until it ends. */
export function execStartRequest(id: string): ApiRequest {
  return {
    method: "POST",
    path: `${API_PREFIX}/exec/${encodeURIComponent(id)}/start`,
    body: { Detach: false, Tty: false },
  };
}

/** The session's `ExitCode` and `Running` once it has ended. */
export function execInspectRequest(id: string): ApiRequest {
  return { method: "GET", path: `${API_PREFIX}/exec/${encodeURIComponent(id)}/json` };
}

export function versionRequest(): ApiRequest {
  return { method: "GET", path: `${API_PREFIX}/version` };
}

/** `store.graphRoot` and `store.runRoot` say which storage the socket serves. */
export function infoRequest(): ApiRequest {
  return { method: "GET", path: `${API_PREFIX}/info` };
}

/** `OK` as soon as the service accepts calls. */
export function pingRequest(): ApiRequest {
  return { method: "GET", path: "/libpod/_ping" };
}

// ------------------------------------------------------------------ answers

/**
 * The outcome of a pull from its stream of JSON lines: the image id, or the
 * error podman reported in the stream (its answer is a 200 either way).
 */
export function parsePullStream(body: string): { id?: string; error?: string } {
  const out: { id?: string; error?: string } = {};
  for (const line of body.split("\n")) {
    if (!line.trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue; // a progress line cut short: nothing to learn from it
    }
    if (typeof v !== "object" || v === null) continue;
    const o = v as Record<string, unknown>;
    if (typeof o.error === "string" && o.error) out.error = o.error;
    if (typeof o.id === "string" && o.id) out.id = o.id;
  }
  return out;
}

/**
 * The first failure in a remove's answer: a 200 with one report per
 * container (`[{Id, Err?, RawInput}]`), where `Err` says what went wrong.
 */
export function removeReportError(body: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  for (const r of v as unknown[]) {
    if (typeof r !== "object" || r === null) continue;
    const err = (r as Record<string, unknown>).Err;
    if (typeof err === "string" && err) return err;
  }
  return undefined;
}
