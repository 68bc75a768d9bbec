/**
 * Host directories no service may mount or have as its data directory,
 * whatever the agent config says. Shared by the config check (a `[policy]
 * volume_roots` entry that reaches one is a config error) and the agent's
 * volume policy (src/agent/policy/rules.ts), which adds the agent's own directories
 * and the Podman storage `podman info` reports.
 */
import path from "node:path";
import { isInside } from "../protocol/file-paths.js";

export type ProtectedKind = "system" | "storage" | "agent";

export interface ProtectedDir {
  /** Absolute and normalised. */
  path: string;
  kind: ProtectedKind;
  /** Why it is protected, for messages: "host configuration". */
  what: string;
}

/** The host's own directories: a read-write mount of any of them as uid 0 owns the host. */
export const SYSTEM_DIRS: readonly ProtectedDir[] = [
  { path: "/", kind: "system", what: "the host's root directory" },
  { path: "/etc", kind: "system", what: "the host's configuration directory" },
  { path: "/proc", kind: "system", what: "the kernel's process filesystem" },
  { path: "/sys", kind: "system", what: "the kernel's sysfs" },
  { path: "/dev", kind: "system", what: "the host's device directory" },
  { path: "/run", kind: "system", what: "the host's runtime directory" },
];

/** Podman's default storage (rootful); the agent adds what `podman info` reports. */
export const PODMAN_STORAGE_DIRS: readonly ProtectedDir[] = [
  { path: "/var/lib/containers", kind: "storage", what: "Podman's storage" },
  { path: "/run/containers", kind: "storage", what: "Podman's run root" },
];

/** What the agent's own directories are called in messages. */
export const AGENT_DIR_WHAT = "the agent's own directory";

/**
 * How `p` reaches the protected directory `d`: "is" (the same), "contains"
 * (mounting `p` mounts `d` too) or "inside" (below it); undefined when the two
 * are apart. Being below `/` is not reaching it: everything is.
 */
export function reach(p: string, d: string): "is" | "contains" | "inside" | undefined {
  if (p === d) return "is";
  if (isInside(p, d)) return "contains";
  if (d !== "/" && isInside(d, p)) return "inside";
  return undefined;
}

/**
 * How `p` reaches `d`, to follow `p` in a message: `is the agent's own
 * directory /srv/mcp`, `contains Podman's storage /var/lib/containers`.
 */
export function describeReach(how: "is" | "contains" | "inside", d: ProtectedDir): string {
  const verb = how === "is" ? "is" : how === "contains" ? "contains" : "is inside";
  return `${verb} ${d.what} ${d.path}`;
}

/**
 * An absolute path without `..`, normalised lexically (`//a/./b/` → `/a/b`);
 * undefined for anything else. Lexical normalisation is exact here because
 * `..` is refused: only symlinks can make the real path differ.
 */
export function normalizeAbsolute(p: string): string | undefined {
  if (!p.startsWith("/") || p.includes("\0")) return undefined;
  if (p.split("/").includes("..")) return undefined;
  return path.posix.resolve(p);
}
