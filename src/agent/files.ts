/**
 * PushFile / PullFile (reference §8.10): one file at a time, confined to the
 * service's data directory `<data_root>/<service>` (agent config `data_root`,
 * default `/srv`). The service must be known to this agent's registry.
 *
 * Confinement, in order (the path syntax rules are in file-paths.ts):
 * 1. the request path is checked (relative, no `..`, no NUL) and split;
 * 2. the data directory is resolved with realpath once: it and data_root are
 *    the operator's, so a symlinked /srv is fine; everything below it may have
 *    been written by a container and is not trusted;
 * 3. every component is lstat'ed in turn; a symlink is resolved with realpath
 *    and must stay inside the data directory, otherwise the call is refused
 *    (FAILED_PRECONDITION) and nothing is read or written;
 * 4. the file is then opened with O_NOFOLLOW and the opened descriptor's real
 *    path (/proc/self/fd) is checked again, so a component swapped for a
 *    symlink between the checks and the open cannot lead out either;
 * 5. push writes a fresh temp file (O_EXCL|O_NOFOLLOW) in the target's
 *    directory, sets the mode, fsyncs, and renames it over the target: a
 *    symlink at the target is never written through unless it resolves
 *    inside (then its target is replaced), and readers never see half a file.
 *
 * Push creates missing parent directories (mode 0750, like the bind-mount
 * sources deploy creates) inside the data directory, and the data directory
 * itself. Modes: push applies the request's permission bits (0 = 0644,
 * setuid/setgid/sticky refused); pull returns the file's permission bits.
 * Files belong to the agent's user (the reference has them owned by `mcp`).
 * Size: at most MAX_FILE_BYTES either way.
 */
import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import {
  lstat,
  mkdir,
  open,
  readlink,
  realpath,
  rename,
  stat,
  unlink,
  type FileHandle,
} from "node:fs/promises";
import path from "node:path";
import type {
  PullFileRequest,
  PullFileResponse,
  PushFileRequest,
  PushFileResponse,
} from "../gen/mcp/v1/mcp.js";
import { McpError, errorMessage } from "../util/errors.js";
import type { AgentContext } from "./context.js";
import { checkFileSize, checkMode, checkRelativePath, isInside } from "../protocol/file-paths.js";

/** Mode of directories push creates. */
const DIR_MODE = 0o750;

/** What a request names: the service's data directory and the checked path inside it. */
interface Target {
  service: string;
  /** `<data_root>/<service>`, as configured (not resolved). */
  dataDir: string;
  segments: string[];
  /** The path as the operator gave it, for messages. */
  shown: string;
}

function target(ctx: AgentContext, service: string, p: string): Target {
  if (!service) throw new McpError("invalid_argument", "no service given");
  if (!ctx.registry.services.get(service)) {
    throw new McpError(
      "not_found",
      `unknown service "${service}" on node ${ctx.settings.node} (deploy it first)`,
    );
  }
  const segments = checkRelativePath(p);
  const dataDir = path.join(path.resolve(ctx.settings.dataRoot), service);
  return { service, dataDir, segments, shown: p };
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A filesystem failure as a typed one-line error. */
function fsFailure(err: unknown, what: string): McpError {
  if (err instanceof McpError) return err;
  const code = errnoOf(err);
  const kind =
    code === "ENOENT" || code === "ENOTDIR"
      ? "not_found"
      : code &&
          [
            "EACCES",
            "EPERM",
            "EROFS",
            "ELOOP",
            "EISDIR",
            "ENOSPC",
            "EDQUOT",
            "EEXIST",
            "ENAMETOOLONG",
          ].includes(code)
        ? "failed_precondition"
        : "internal";
  return new McpError(kind, `${what}: ${errorMessage(err)}`, { cause: err });
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

/** Resolves the symlink at `p` and insists it stays inside `base`. */
async function followInside(base: string, p: string, t: Target, part: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(p);
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") {
      const to = await readlink(p).catch(() => "?");
      throw new McpError(
        "failed_precondition",
        `path "${t.shown}" is refused: "${part}" is a symlink that does not resolve (to ${to})`,
      );
    }
    throw err;
  }
  if (!isInside(base, real)) {
    throw new McpError(
      "failed_precondition",
      `path "${t.shown}" is refused: "${part}" is a symlink leading out of the data directory ${t.dataDir} (to ${real})`,
    );
  }
  return real;
}

/**
 * Walks the directories of `t.segments` (all but the last) from `base`,
 * following only symlinks that stay inside; with `create`, missing ones are
 * made. Returns the real path of the file's directory.
 */
async function resolveParent(base: string, t: Target, create: boolean): Promise<string> {
  let dir = base;
  const parents = t.segments.slice(0, -1);
  for (let i = 0; i < parents.length; i++) {
    const part = parents.slice(0, i + 1).join("/");
    const next = path.join(dir, parents[i] ?? "");
    let st = await lstatOrUndefined(next);
    if (!st) {
      if (!create) {
        throw new McpError(
          "not_found",
          `no file "${t.shown}" in the data directory of ${t.service}: ${part}/ does not exist`,
        );
      }
      try {
        await mkdir(next, { mode: DIR_MODE });
      } catch (err) {
        if (errnoOf(err) !== "EEXIST") throw err; // created meanwhile: checked below
      }
      st = await lstat(next);
    }
    if (st.isSymbolicLink()) {
      dir = await followInside(base, next, t, part);
      if (!(await stat(dir)).isDirectory()) {
        throw new McpError("failed_precondition", `path "${t.shown}": ${part} is not a directory`);
      }
    } else if (st.isDirectory()) {
      dir = next;
    } else {
      throw new McpError("failed_precondition", `path "${t.shown}": ${part} is not a directory`);
    }
  }
  return dir;
}

/** The opened file's real path must be inside `base` (closes the check/open race). */
async function checkOpenedInside(fh: FileHandle, base: string, t: Target): Promise<void> {
  const real = await readlink(`/proc/self/fd/${fh.fd}`);
  if (!isInside(base, real)) {
    throw new McpError(
      "failed_precondition",
      `path "${t.shown}" is refused: it resolved out of the data directory ${t.dataDir} (to ${real}) while being opened`,
    );
  }
}

export async function pullFile(ctx: AgentContext, req: PullFileRequest): Promise<PullFileResponse> {
  const t = target(ctx, req.service, req.path);
  const what = `pull ${t.service}:${t.shown}`;
  try {
    let base: string;
    try {
      base = await realpath(t.dataDir);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") {
        throw new McpError(
          "not_found",
          `no file "${t.shown}" in the data directory of ${t.service}: ${t.dataDir} does not exist`,
        );
      }
      throw err;
    }
    const dir = await resolveParent(base, t, false);
    let file = path.join(dir, t.segments[t.segments.length - 1] ?? "");
    const st = await lstatOrUndefined(file);
    if (!st) {
      throw new McpError(
        "not_found",
        `no file "${t.shown}" in the data directory of ${t.service} (${t.dataDir})`,
      );
    }
    if (st.isSymbolicLink()) file = await followInside(base, file, t, t.segments.join("/"));
    // O_NONBLOCK: opening a FIFO must not hang the agent (it is refused below).
    const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      await checkOpenedInside(fh, base, t);
      const fst = await fh.stat();
      if (fst.isDirectory()) {
        throw new McpError("failed_precondition", `path "${t.shown}" is a directory, not a file`);
      }
      if (!fst.isFile()) {
        throw new McpError("failed_precondition", `path "${t.shown}" is not a regular file`);
      }
      checkFileSize(fst.size, `"${t.shown}"`, "failed_precondition");
      const content = await fh.readFile();
      checkFileSize(content.length, `"${t.shown}"`, "failed_precondition"); // it may have grown
      return { content, mode: fst.mode & 0o777 };
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fsFailure(err, what);
  }
}

export async function pushFile(ctx: AgentContext, req: PushFileRequest): Promise<PushFileResponse> {
  const t = target(ctx, req.service, req.path);
  const mode = checkMode(req.mode);
  checkFileSize(req.content.length, `the content for "${t.shown}"`, "invalid_argument");
  const what = `push ${t.service}:${t.shown}`;
  try {
    await mkdir(t.dataDir, { recursive: true, mode: DIR_MODE });
    const base = await realpath(t.dataDir);
    const dir = await resolveParent(base, t, true);
    let file = path.join(dir, t.segments[t.segments.length - 1] ?? "");
    let st = await lstatOrUndefined(file);
    if (st?.isSymbolicLink()) {
      file = await followInside(base, file, t, t.segments.join("/"));
      st = await stat(file);
    }
    if (st?.isDirectory()) {
      throw new McpError("failed_precondition", `path "${t.shown}" is a directory, not a file`);
    }
    if (st && !st.isFile()) {
      throw new McpError("failed_precondition", `path "${t.shown}" is not a regular file`);
    }
    // A temp name of our own next to the target (short: the target's name may be NAME_MAX).
    const tmp = path.join(path.dirname(file), `.mcp-push-${randomBytes(8).toString("hex")}.tmp`);
    const fh = await open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    let renamed = false;
    try {
      try {
        await checkOpenedInside(fh, base, t);
        await fh.writeFile(req.content);
        await fh.chmod(mode); // explicit: open's mode is filtered by the umask
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      renamed = true;
    } finally {
      if (!renamed) {
        await unlink(tmp).catch((err: unknown) => {
          if (errnoOf(err) !== "ENOENT") {
            ctx.logger.warn({ err: errorMessage(err), file: tmp }, "push: cannot remove temp file");
          }
        });
      }
    }
    ctx.logger.info(
      { service: t.service, path: t.segments.join("/"), bytes: req.content.length, mode },
      "file pushed",
    );
    return { bytesWritten: req.content.length };
  } catch (err) {
    throw fsFailure(err, what);
  }
}
