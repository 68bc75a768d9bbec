/**
 * The built-in limits on a service definition, in one place.
 *
 * Every input of a definition is bounded, so no definition can exhaust the
 * agent (10 000 routes reserving 10 000 ports) or fail late (a 1 MB env value
 * passing validation and failing as spawn E2BIG). The CLI checks these
 * numbers when it reads a file (its size first, before parsing); the agent
 * checks them again on every spec it receives, with its own `[limits]`,
 * which may only be stricter (src/config/agent.ts).
 *
 * Why these numbers: Linux refuses any single argv or environment string
 * over MAX_ARG_STRLEN (128 KiB) and the whole of them over ARG_MAX (2 MiB
 * with the default 8 MiB stack), and the container's process is started
 * with its env and cmd. One env entry or cmd argument is capped well below
 * the first; env and cmd together well below the second; and a whole
 * definition, which bounds every container the agent makes of it (TOML
 * escapes only ever shrink), at half of it.
 */

/** The limits validation applies; the agent's `[limits]` table names each in snake_case. */
export interface Limits {
  /** A definition file, and a ServiceSpec as encoded on the wire (bytes). */
  maxDefinitionBytes: number;
  /** `comment` (bytes). */
  maxCommentBytes: number;
  /** Any other string that is not a name: image, network, user, volume, port, path (bytes). */
  maxFieldBytes: number;
  maxComponents: number;
  maxRoutesPerComponent: number;
  maxPortsPerComponent: number;
  maxVolumesPerComponent: number;
  /** Entries of `env` per component. */
  maxEnvPerComponent: number;
  /** One `KEY=VALUE` entry (bytes). */
  maxEnvEntryBytes: number;
  /** Arguments of `cmd`. */
  maxCmdArgs: number;
  /** One `cmd` argument (bytes). */
  maxCmdArgBytes: number;
  /** Every env entry and cmd argument of one component together (bytes). */
  maxEnvCmdBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const BUILTIN_LIMITS: Readonly<Limits> = Object.freeze({
  maxDefinitionBytes: 1 * MiB,
  maxCommentBytes: 4 * KiB,
  maxFieldBytes: 4 * KiB,
  maxComponents: 16,
  maxRoutesPerComponent: 64,
  maxPortsPerComponent: 64,
  maxVolumesPerComponent: 64,
  maxEnvPerComponent: 256,
  maxEnvEntryBytes: 32 * KiB,
  maxCmdArgs: 256,
  maxCmdArgBytes: 32 * KiB,
  maxEnvCmdBytes: 256 * KiB,
});

/** The key of each limit in the agent config's `[limits]` table. */
export const LIMIT_KEYS: Readonly<Record<keyof Limits, string>> = Object.freeze({
  maxDefinitionBytes: "max_definition_bytes",
  maxCommentBytes: "max_comment_bytes",
  maxFieldBytes: "max_field_bytes",
  maxComponents: "max_components",
  maxRoutesPerComponent: "max_routes_per_component",
  maxPortsPerComponent: "max_ports_per_component",
  maxVolumesPerComponent: "max_volumes_per_component",
  maxEnvPerComponent: "max_env_per_component",
  maxEnvEntryBytes: "max_env_entry_bytes",
  maxCmdArgs: "max_cmd_args",
  maxCmdArgBytes: "max_cmd_arg_bytes",
  maxEnvCmdBytes: "max_env_cmd_bytes",
});

/**
 * Names (service, node, component, route) are at most 63 characters: they
 * end up in container names and DNS labels. Part of their patterns in
 * validate.ts, so not configurable.
 */
export const MAX_NAME_LENGTH = 63;

/** At most this many problems are listed for one definition; the rest are counted. */
export const MAX_PROBLEMS = 100;

// ------------------------------------------------------------------ resources

/** `memory`: podman refuses less than 6 MiB; 1 TiB is more than any node here has. */
export const MIN_MEMORY_BYTES = 6 * MiB;
export const MAX_MEMORY_BYTES = 1024 * 1024 * MiB;
/** `cpus`: podman's CFS quota must be at least 1 ms per 100 ms period. */
export const MIN_CPUS = 0.01;
export const MAX_CPUS = 1024;
/** `pids`: the kernel's PID_MAX_LIMIT on 64-bit. */
export const MAX_PIDS = 4_194_304;

/** The container log size cap when the agent config sets none (`[containers] log_max_size`). */
export const DEFAULT_LOG_MAX_SIZE = "10m";
export const MIN_LOG_MAX_BYTES = 64 * KiB;
export const MAX_LOG_MAX_BYTES = 1024 * 1024 * MiB;

const SIZE_RE = /^([1-9][0-9]{0,15})([bkmg])$/i;
const UNIT: Record<string, number> = { b: 1, k: KiB, m: MiB, g: 1024 * MiB };

/**
 * Bytes of a podman size (`256m`: a number and one of b, k, m, g), or
 * undefined when `s` is not one. Deliberately narrower than podman's own
 * parser: no fractions, no spaces, a unit always.
 */
export function parseSize(s: string): number | undefined {
  const m = SIZE_RE.exec(s);
  if (!m?.[1] || !m[2]) return undefined;
  return Number(m[1]) * (UNIT[m[2].toLowerCase()] ?? 1);
}

/** `32768 bytes (32 KiB)`: a byte count as the limit messages say it. */
export function formatBytes(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n} bytes (${n / MiB} MiB)`;
  if (n >= KiB && n % KiB === 0) return `${n} bytes (${n / KiB} KiB)`;
  return `${n} bytes`;
}
