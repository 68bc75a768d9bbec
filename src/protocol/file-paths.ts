/**
 * Pure rules for `mcp push` / `mcp pull` (PushFile / PullFile, reference
 * §8.10), shared by the agent (the authority) and the CLI (which checks sizes
 * before sending anything): the path syntax accepted inside a service's data
 * directory, containment of a resolved path, the size limit and file modes.
 *
 * The reference only says absolute paths, `..` traversal and symlink escapes
 * are refused; the exact rules are ours:
 * - the path is relative to `<data_root>/<service>`; a leading `/` is refused
 *   rather than silently re-rooted, so `/etc/passwd` can never mean anything
 *   but a mistake;
 * - any `..` segment is refused, even one that would stay inside (`a/../b`):
 *   there is no reason to write one, and refusing is simpler to trust;
 * - `.` and empty segments (`a//b`, `./a`) are dropped; a path that names the
 *   data directory itself is refused;
 * - NUL bytes and over-long paths/segments are refused (the kernel would);
 * - symlinks are followed only while they stay inside (checked by the agent on
 *   the resolved path of every component, see files.ts);
 * - a file with more than one hard link is refused (by the agent, files.ts).
 */
import path from "node:path";
import { McpError } from "../util/errors.js";

/** Largest file push or pull moves (both sides check; gRPC's own limit is 64 MiB). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Mode for a pushed file when the request carries none (mode 0). */
export const DEFAULT_FILE_MODE = 0o644;

/** Linux PATH_MAX and NAME_MAX. */
const MAX_PATH_CHARS = 4095;
const MAX_SEGMENT_BYTES = 255;

/**
 * Checks a path given relative to a service's data directory and returns its
 * segments (never empty, never `.`/`..`). Throws invalid_argument with the
 * reason otherwise.
 */
export function checkRelativePath(p: string): string[] {
  const refuse = (why: string) =>
    new McpError(
      "invalid_argument",
      `path "${p}" is refused: ${why} (paths are relative to the service's data directory)`,
    );
  if (p === "") throw refuse("it is empty");
  if (p.includes("\0")) throw refuse("it contains a NUL byte");
  if (p.length > MAX_PATH_CHARS) throw refuse(`it is longer than ${MAX_PATH_CHARS} characters`);
  if (p.startsWith("/")) throw refuse("absolute paths are not allowed");
  const segments: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") throw refuse('".." segments are not allowed');
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) {
      throw refuse(`a name is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
    segments.push(seg);
  }
  if (segments.length === 0) throw refuse("it names the data directory itself, not a file");
  return segments;
}

/** Whether `target` is `base` or below it (both absolute and already resolved). */
export function isInside(base: string, target: string): boolean {
  const rel = path.relative(base, target);
  // `..foo` is a name inside; only `..` itself or `../…` leaves.
  return rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

/** A pushed file's permission bits: 0 → DEFAULT_FILE_MODE; anything beyond 0777 is refused. */
export function checkMode(mode: number): number {
  if (mode === 0) return DEFAULT_FILE_MODE;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new McpError(
      "invalid_argument",
      `mode ${mode.toString(8)} is refused: only permission bits (0000-0777) can be set; setuid, setgid and sticky bits are not carried`,
    );
  }
  return mode;
}

/** `file.bin is 16.0 MiB, over the 16 MiB limit` style sizes. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Throws when `size` is over MAX_FILE_BYTES; `what` names the file in the message. */
export function checkFileSize(
  size: number,
  what: string,
  code: "invalid_argument" | "failed_precondition",
): void {
  if (size > MAX_FILE_BYTES) {
    throw new McpError(
      code,
      `${what} is ${formatBytes(size)} (${size} bytes), over the ${formatBytes(MAX_FILE_BYTES)} limit for push/pull`,
    );
  }
}

/** `0640` */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}
