/**
 * The agent's exposure and volume policy: what a service definition may
 * publish on the host and mount from it. Validation (src/servicedef) says
 * whether a definition is well-formed; this says whether this agent lets it
 * run. Pure functions of a spec, the policy and (for volumes) a path
 * resolver, returning every problem with its field path; the agent applies
 * them at deploy and sync (nothing forbidden is recorded) and again right
 * before it creates a container from a stored spec, so a policy tightened
 * after a deploy still holds on start and recovery (policy-guard.ts).
 *
 * Exposure:
 * - an explicit `ports` mapping may publish only on one of `[ports]
 *   bind_addresses`; one without a host address is published on the first
 *   bind address (containerSpecFor rewrites it when it builds the container,
 *   the registry keeps it as written), never on every interface;
 * - no host port below 1024 unless `[policy] allow_low_ports`;
 * - no host port the registry holds for another route or mapping (checked
 *   here at deploy/sync for the message, and authoritatively inside the
 *   allocator's critical section, see policy-guard.ts);
 * - `network = "host"` only with `[policy] allow_host_network`, and never
 *   with routes or explicit ports: the container would listen on every
 *   interface while the registry records a port podman never published.
 *
 * Volumes:
 * - a host path must lie under the service's data directory
 *   (`<data_root>/<service>`) or a `[policy] volume_roots` entry, judged on
 *   its real path (symlinks resolved, see resolveHostPath), and must not
 *   reach a protected directory (`/`, `/etc`, `/proc`, `/sys`, `/dev`,
 *   `/run`, Podman's storage, the agent's own directories): neither be one,
 *   contain one, nor lie inside one;
 * - options come from an allow-list; `z`/`Z` (SELinux relabel of the host
 *   path) only under the service's own data directory.
 *
 * Data directory: no service's data directory may be or contain one of the
 * agent's directories (a service `mcp` under the defaults /srv and /srv/mcp
 * would get the CA key, the token and the registry), nor reach a system or
 * storage directory.
 */
import { lstatSync, realpathSync } from "node:fs";
import { isIPv6 } from "node:net";
import path from "node:path";
import { agentProtectedDirs, type AgentConfig } from "../../config/agent.js";
import type { ComponentSpec, ServiceSpec } from "../../gen/mcp/v1/mcp.js";
import {
  PODMAN_STORAGE_DIRS,
  SYSTEM_DIRS,
  describeReach,
  normalizeAbsolute,
  reach,
  type ProtectedDir,
} from "../../config/protected-dirs.js";
import { isInside } from "../../protocol/file-paths.js";
import { parsePortMapping } from "../../servicedef/ports.js";
import { splitVolume } from "../../servicedef/volumes.js";
import { at } from "../../util/checker.js";
import type { Problem } from "../../util/errors.js";

/** Host ports below this are privileged and need `[policy] allow_low_ports`. */
export const LOW_PORT_LIMIT = 1024;

export interface AgentPolicy {
  /** `[ports] bind_addresses`: explicit ports publish only here; the first is the default. */
  bindAddresses: string[];
  allowHostNetwork: boolean;
  allowLowPorts: boolean;
  /** `[policy] volume_roots`: absolute, normalised, already checked against protectedDirs. */
  volumeRoots: string[];
  /** Never mounted, never a data directory: the host's, Podman's and the agent's own. */
  protectedDirs: ProtectedDir[];
}

/** What the policy functions need of the agent's settings (AgentSettings has both). */
export interface PolicyTarget {
  /** Service data directories live at `<dataRoot>/<service>`. */
  dataRoot: string;
  policy: AgentPolicy;
}

/**
 * The strictest policy: nothing allowed beyond the defaults, the system
 * directories and Podman's default storage protected. The agent's own
 * directories are not known here (serve.ts adds them from the config).
 */
export function defaultPolicy(bindAddresses: string[] = ["127.0.0.1"]): AgentPolicy {
  return {
    bindAddresses: [...bindAddresses],
    allowHostNetwork: false,
    allowLowPorts: false,
    volumeRoots: [],
    protectedDirs: [...SYSTEM_DIRS, ...PODMAN_STORAGE_DIRS],
  };
}

/**
 * The policy an agent runs with: the config's `[policy]` and `[ports]
 * bind_addresses`, the system directories, Podman's storage (the defaults
 * and `storage`, what `podman info` reports) and the agent's own directories.
 */
export function policyFromConfig(
  config: AgentConfig,
  configDir: string,
  storage: readonly string[] = [],
): AgentPolicy {
  const extraStorage: ProtectedDir[] = storage.flatMap((p) => {
    const n = normalizeAbsolute(p);
    return n ? [{ path: n, kind: "storage" as const, what: "Podman's storage" }] : [];
  });
  return {
    bindAddresses: [...config.ports.bindAddresses],
    allowHostNetwork: config.policy.allowHostNetwork,
    allowLowPorts: config.policy.allowLowPorts,
    volumeRoots: [...config.policy.volumeRoots],
    protectedDirs: [
      ...SYSTEM_DIRS,
      ...PODMAN_STORAGE_DIRS,
      ...extraStorage,
      ...agentProtectedDirs(config, configDir),
    ],
  };
}

/**
 * The config check of volume_roots once more, on real paths and with
 * everything only known at run time (Podman's storage as `podman info`
 * reports it): problems at `policy.volume_roots[i]`.
 */
export function volumeRootProblems(
  policy: AgentPolicy,
  resolve: PathResolver = resolveHostPath,
): Problem[] {
  const problems: Problem[] = [];
  const protectedDirs = protectedWithReal(policy.protectedDirs, resolve);
  policy.volumeRoots.forEach((root, i) => {
    const real = resolve(root);
    const p = at("policy.volume_roots", i);
    if (real === undefined) {
      problems.push({
        path: p,
        message: `${root} cannot be resolved (a dangling symlink or a loop)`,
      });
      return;
    }
    for (const d of protectedDirs) {
      const how = reach(real, d.path);
      if (how === undefined) continue;
      const shown = real === root ? root : `${root} (resolving to ${real})`;
      problems.push({
        path: p,
        message: `${shown} ${describeReach(how, d)}: never allowed as a volume root`,
      });
      return;
    }
  });
  return problems;
}

/** Resolves a host path to its real path; undefined when it cannot be resolved safely. */
export type PathResolver = (p: string) => string | undefined;

/**
 * The real path of an absolute, normalised path: the longest prefix that
 * exists is resolved with realpath (every symlink in it followed) and the
 * missing rest appended, since podman (or the agent's mkdir) creates it
 * there. A dangling symlink or a loop gives undefined: where it would lead
 * cannot be judged, so the caller refuses it.
 */
export function resolveHostPath(p: string): string | undefined {
  const missing: string[] = [];
  let head = p;
  for (;;) {
    try {
      const real = realpathSync.native(head);
      return missing.length === 0 ? real : path.join(real, ...missing.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") return undefined; // ELOOP, EACCES, ...
      if (existsUnresolved(head) || head === "/") return undefined;
      missing.push(path.basename(head));
      head = path.dirname(head);
    }
  }
}

/** Something is there (a dangling symlink) although realpath says it is not. */
function existsUnresolved(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** `<dataRoot>/<service>`, absolute. */
export function dataDirectory(dataRoot: string, service: string): string {
  return path.join(path.resolve(dataRoot), service);
}

/**
 * Every protected directory, plus its real path when a symlink leads
 * elsewhere (a /var/lib/containers that is a link to /data/containers
 * protects both).
 */
function protectedWithReal(dirs: readonly ProtectedDir[], resolve: PathResolver): ProtectedDir[] {
  const out: ProtectedDir[] = [];
  for (const d of dirs) {
    out.push(d);
    const real = resolve(d.path);
    if (real !== undefined && real !== d.path) out.push({ ...d, path: real });
  }
  return out;
}

// ------------------------------------------------------------------ data directory

/**
 * The service's data directory must not be or contain one of the agent's
 * directories, nor reach a system or storage directory. Lying *below* an
 * agent directory is allowed (data_root = `<agent dir>/data`, as the tests
 * use): such a directory holds none of the agent's files, and data_root
 * being the agent directory itself is a config error.
 */
export function checkDataDirectory(
  service: string,
  target: PolicyTarget,
  resolve: PathResolver = resolveHostPath,
): Problem[] {
  const dir = dataDirectory(target.dataRoot, service);
  const real = resolve(dir);
  if (real === undefined) {
    return [
      {
        path: "name",
        message: `its data directory ${dir} cannot be resolved (a dangling symlink or a symlink loop)`,
      },
    ];
  }
  const shown = real === dir ? dir : `${dir} (resolving to ${real})`;
  for (const d of protectedWithReal(target.policy.protectedDirs, resolve)) {
    const how = reach(real, d.path) ?? reach(dir, d.path);
    if (how === undefined || (d.kind === "agent" && how === "inside")) continue;
    return [
      {
        path: "name",
        message: `its data directory ${shown} ${describeReach(how, d)}; rename the service or set [agent] data_root`,
      },
    ];
  }
  return [];
}

// ------------------------------------------------------------------ exposure

/** An IP in one spelling per address (`0:0::1` and `::1` compare equal). */
function canonicalIp(ip: string): string {
  if (!isIPv6(ip)) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

function describeAddress(ip: string): string {
  const c = canonicalIp(ip);
  if (c === "0.0.0.0") return `${ip} (every IPv4 interface)`;
  if (c === "::") return `${ip} (every interface)`;
  return ip;
}

/**
 * Explicit ports and host networking of one component; `base` is its field
 * path (`components[0]`).
 */
export function checkExposure(
  component: ComponentSpec,
  policy: AgentPolicy,
  base: string,
): Problem[] {
  const problems: Problem[] = [];
  const fail = (p: string, message: string) => problems.push({ path: p, message });
  if (component.network.toLowerCase() === "host") {
    const p = at(base, "network");
    if (!policy.allowHostNetwork) {
      fail(
        p,
        'network = "host" is refused: the container would bind the host\'s interfaces directly, outside [ports] bind_addresses and the port registry; set [policy] allow_host_network = true to allow it',
      );
    }
    if (component.routes.length > 0) {
      fail(
        p,
        'network = "host" cannot be combined with routes: the container would listen on every interface on $PORT while the registry records a host port podman never published',
      );
    }
    if (component.ports.length > 0) {
      fail(
        p,
        'network = "host" cannot be combined with ports: host networking publishes nothing, the container binds the host\'s interfaces itself',
      );
    }
  }
  // Podman drops every -p of a container without a network ("port mappings
  // have been discarded"): the registry would hold ports nothing publishes.
  if (
    component.network.toLowerCase() === "none" &&
    component.routes.length + component.ports.length > 0
  ) {
    fail(
      at(base, "network"),
      'network = "none" cannot be combined with routes or ports: a container without a network publishes nothing, so its host ports would be reserved and never reachable',
    );
  }
  const binds = policy.bindAddresses.map(canonicalIp);
  component.ports.forEach((mapping, i) => {
    const p = at(at(base, "ports"), i);
    const m = parsePortMapping(mapping);
    if (m?.hostPort === undefined) {
      fail(
        p,
        `expected "[ip:]hostPort:containerPort[/tcp|/udp]" with a host port, got ${JSON.stringify(mapping)}`,
      );
      return;
    }
    if (m.hostIp !== undefined && !binds.includes(canonicalIp(m.hostIp))) {
      fail(
        p,
        `publishes on ${describeAddress(m.hostIp)}, but this agent publishes only on [ports] bind_addresses (${policy.bindAddresses.join(", ")}); leave the address out to publish on ${policy.bindAddresses[0] ?? "the first of them"}`,
      );
    }
    if (m.hostPort < LOW_PORT_LIMIT && !policy.allowLowPorts) {
      fail(
        p,
        `host port ${m.hostPort} is below ${LOW_PORT_LIMIT} (a privileged port); set [policy] allow_low_ports = true to allow it`,
      );
    }
  });
  return problems;
}

/** One component and its field path, e.g. `{ component, path: "components[1]" }`. */
export interface PlacedComponent {
  component: ComponentSpec;
  path: string;
}

/** Two explicit mappings of one definition on the same host port and protocol. */
export function checkDuplicatePorts(components: readonly PlacedComponent[]): Problem[] {
  const problems: Problem[] = [];
  const seen = new Map<string, string>();
  for (const { component, path: base } of components) {
    component.ports.forEach((mapping, i) => {
      const m = parsePortMapping(mapping);
      if (m?.hostPort === undefined) return;
      const key = `${m.hostPort}/${m.protocol}`;
      const p = at(at(base, "ports"), i);
      const first = seen.get(key);
      if (first === undefined) seen.set(key, p);
      else problems.push({ path: p, message: `host port ${key} is also published by ${first}` });
    });
  }
  return problems;
}

/** A host port the registry holds: a route's (`route` set, "" when unnamed) or an explicit mapping's. */
export interface PortHolder {
  port: number;
  service: string;
  component: string;
  /** The route's name ("" for the unnamed one); absent for an explicit `ports` mapping. */
  route?: string;
}

/** `route svc/web/rest`, `route svc/web ($PORT)`, `the ports of svc/legacy`. */
export function describeHolder(h: PortHolder): string {
  const owner = `${h.service}/${h.component}`;
  if (h.route === undefined) return `the ports of ${owner}`;
  return h.route === "" ? `route ${owner} ($PORT)` : `route ${owner}/${h.route}`;
}

/**
 * Explicit host ports that the registry holds for something else: another
 * service's or component's route or mapping, or a route of the same
 * component (it keeps its host port). The component's own mappings are its
 * own. Protocols are not told apart, as the allocator does not.
 */
export function checkPortClaims(
  service: string,
  components: readonly PlacedComponent[],
  holders: readonly PortHolder[],
): Problem[] {
  const problems: Problem[] = [];
  for (const { component, path: base } of components) {
    component.ports.forEach((mapping, i) => {
      const hostPort = parsePortMapping(mapping)?.hostPort;
      if (hostPort === undefined) return;
      const others = holders.filter(
        (h) =>
          h.port === hostPort &&
          !(h.service === service && h.component === component.name && h.route === undefined),
      );
      if (others.length === 0) return;
      const who = [...new Set(others.map(describeHolder))].join(", ");
      problems.push({
        path: at(at(base, "ports"), i),
        message: `port ${hostPort} is held by ${who}`,
      });
    });
  }
  return problems;
}

// ------------------------------------------------------------------ volumes

/** Option groups: at most one option of each. */
const VOLUME_OPTIONS: Record<string, string> = {
  ro: "access",
  rw: "access",
  z: "relabel",
  Z: "relabel",
  bind: "bind",
  rbind: "bind",
  private: "propagation",
  rprivate: "propagation",
  slave: "propagation",
  rslave: "propagation",
  nocopy: "nocopy",
  nosuid: "nosuid",
  nodev: "nodev",
  noexec: "noexec",
};

/** Options refused with a reason (others are refused as unknown). */
const REFUSED_OPTIONS: Record<string, string> = {
  U: "it chowns the host path to the container's user",
  O: "an overlay mount is not a plain bind mount",
  shared: "it propagates the container's mounts to the host",
  rshared: "it propagates the container's mounts to the host",
  suid: "it honours setuid binaries from the host path",
  dev: "it honours device nodes from the host path",
  idmap: "id-mapped mounts are not supported",
};

/** `outsideDataDir`: the host path is not under the data directory (named here), so no relabel. */
function checkVolumeOptions(
  options: string,
  p: string,
  outsideDataDir: string | undefined,
  fail: (p: string, message: string) => void,
): void {
  const seen = new Map<string, string>();
  for (const option of options.split(",")) {
    const group = Object.hasOwn(VOLUME_OPTIONS, option) ? VOLUME_OPTIONS[option] : undefined;
    if (group === undefined) {
      const why = Object.hasOwn(REFUSED_OPTIONS, option) ? REFUSED_OPTIONS[option] : undefined;
      fail(
        p,
        why
          ? `option "${option}" is refused: ${why}`
          : `unknown option ${JSON.stringify(option)} (allowed: ${Object.keys(VOLUME_OPTIONS).join(", ")})`,
      );
      continue;
    }
    const other = seen.get(group);
    if (other !== undefined) {
      fail(p, `options "${other}" and "${option}" conflict (one ${group} option at most)`);
      continue;
    }
    seen.set(group, option);
    if (group === "relabel" && outsideDataDir !== undefined) {
      fail(
        p,
        `option "${option}" relabels the host path for SELinux: only allowed under the service's data directory ${outsideDataDir}`,
      );
    }
  }
}

/**
 * Every volume of one component: the host path (symlinks resolved) under an
 * allowed root and apart from every protected directory, and its options.
 */
export function checkVolumes(
  service: string,
  component: ComponentSpec,
  target: PolicyTarget,
  base: string,
  resolve: PathResolver = resolveHostPath,
): Problem[] {
  const problems: Problem[] = [];
  const fail = (p: string, message: string) => problems.push({ path: p, message });
  if (component.volumes.length === 0) return problems;
  const dataDir = dataDirectory(target.dataRoot, service);
  const realDataDir = resolve(dataDir);
  const roots = [
    ...(realDataDir === undefined ? [] : [realDataDir]),
    ...target.policy.volumeRoots.flatMap((r) => resolve(r) ?? []),
  ];
  const protectedDirs = protectedWithReal(target.policy.protectedDirs, resolve);
  const rootsText =
    target.policy.volumeRoots.length > 0
      ? ` and the [policy] volume_roots (${target.policy.volumeRoots.join(", ")})`
      : "; other roots must be listed in [policy] volume_roots";

  component.volumes.forEach((volume, i) => {
    const p = at(at(base, "volumes"), i);
    const { source: host, destination: container, options, extra } = splitVolume(volume);
    const lexical = normalizeAbsolute(host);
    if (lexical === undefined || !container.startsWith("/") || extra.length > 0) {
      fail(
        p,
        `expected "/host/path:/container/path[:options]" with absolute paths and no ".." segments, got ${JSON.stringify(volume)}`,
      );
      return;
    }
    const real = resolve(lexical);
    if (real === undefined) {
      fail(p, `host path ${lexical} cannot be resolved (a dangling symlink or a symlink loop)`);
      return;
    }
    const shown = real === lexical ? lexical : `${lexical} (resolving to ${real})`;
    const inDataDir = realDataDir !== undefined && isInside(realDataDir, real);
    if (!roots.some((r) => isInside(r, real))) {
      fail(p, `host path ${shown} is outside the service's data directory ${dataDir}${rootsText}`);
    } else {
      for (const d of protectedDirs) {
        const how = reach(real, d.path);
        // Below an agent directory is fine for the data directory's contents
        // (data_root inside the agent's directory; see checkDataDirectory).
        if (how === undefined || (d.kind === "agent" && how === "inside" && inDataDir)) continue;
        fail(p, `host path ${shown} ${describeReach(how, d)}, which no volume may reach`);
        break;
      }
    }
    if (options !== undefined)
      checkVolumeOptions(options, p, inDataDir ? undefined : dataDir, fail);
  });
  return problems;
}

// ------------------------------------------------------------------ all together

export interface PolicyOptions {
  /** The components to check (deploy of one component); default every component of the spec. */
  components?: readonly ComponentSpec[];
  /** Host ports the registry holds; absent: claims are not checked. */
  holders?: readonly PortHolder[];
  resolve?: PathResolver;
}

/**
 * Every policy problem of a service spec, with field paths as validation
 * gives them (`components[0].ports[1]`; `name` for the data directory).
 * Pure apart from the path resolver. This is what deploy and sync apply, and
 * what a caller recreating a container from a stored spec may apply to the
 * one component (pass `components: [component]`).
 */
export function policyProblems(
  spec: Pick<ServiceSpec, "name" | "components">,
  target: PolicyTarget,
  opts: PolicyOptions = {},
): Problem[] {
  const resolve = opts.resolve ?? resolveHostPath;
  const selected = opts.components ?? spec.components;
  const placed: PlacedComponent[] = selected.map((component) => {
    const i = spec.components.indexOf(component);
    return {
      component,
      path: i >= 0 ? at("components", i) : `components[name=${component.name}]`,
    };
  });
  const problems = checkDataDirectory(spec.name, target, resolve);
  for (const { component, path: base } of placed) {
    problems.push(...checkExposure(component, target.policy, base));
    problems.push(...checkVolumes(spec.name, component, target, base, resolve));
  }
  problems.push(...checkDuplicatePorts(placed));
  if (opts.holders) problems.push(...checkPortClaims(spec.name, placed, opts.holders));
  return problems;
}

/**
 * Validation problems first, then the policy's, leaving out policy problems
 * at (or below) a field validation already reported: a malformed mapping is
 * reported once.
 */
export function mergeProblems(validation: Problem[], policy: Problem[]): Problem[] {
  const covered = (p: string) =>
    validation.some(
      (v) =>
        v.path !== "" && (p === v.path || p.startsWith(`${v.path}.`) || p.startsWith(`${v.path}[`)),
    );
  return [...validation, ...policy.filter((p) => !covered(p.path))];
}
