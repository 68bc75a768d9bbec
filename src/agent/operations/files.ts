/**
 * PushFile / PullFile (reference §8.10): one file at a time, confined to the
 * service's data directory `<data_root>/<service>` (agent config `data_root`,
 * default `/srv`). The service must be known to this agent's registry.
 *
 * Confinement, in order (the path syntax rules are in file-paths.ts):
 * 0. the data directory must pass the policy's rule (policy.ts
 *    checkDataDirectory), as at deploy: a service `mcp` under the defaults
 *    (/srv, /srv/mcp) would otherwise reach the CA key, the token and the registry;
 * 1. the request path is checked (relative, no `..`, no NUL) and split;
 * 2. the data directory is resolved with realpath once and opened: it and
 *    data_root are the operator's, so a symlinked /srv is fine; everything
 *    below it may have been written by a container and is not trusted;
 * 3. the path is walked one component at a time holding an open descriptor of
 *    the directory reached so far, and each next name is looked up in that
 *    directory as `/proc/self/fd/<fd>/<name>` with O_NOFOLLOW: Node 20 has no
 *    openat/mkdirat/renameat/unlinkat, and a path through /proc/self/fd starts
 *    at the opened directory itself, not at whatever its name means now. So
 *    once a directory is checked, renaming it or swapping a symlink in above
 *    it changes nothing for this call;
 * 4. a symlink met on the way is resolved with realpath and must stay inside
 *    the data directory, otherwise the call is refused (FAILED_PRECONDITION)
 *    and nothing is read or written; the resolved path is then walked again
 *    from the data directory with O_NOFOLLOW, so what is used is what was
 *    checked (a symlink appearing on that walk means the tree changed: refused);
 * 5. push creates missing directories, its temp file (O_EXCL|O_NOFOLLOW), the
 *    rename over the target and, on failure, the unlink of the temp file, all
 *    through the held descriptor of the target's directory; nothing is ever
 *    named by a path string that could have been redirected meanwhile;
 * 6. a file with more than one hard link is refused either way: a link made
 *    on the host can lead anywhere (/etc/shadow), and the name says nothing.
 * What the walk cannot see is a held directory being moved out of the data
 * directory (only someone on the host can: a container's bind mount stops a
 * rename at its edge); so the opened file's /proc/self/fd path is checked
 * against the data directory too, and push's temp file is then removed again.
 *
 * Push replaces the target with a fresh file (mode set, fsynced) by rename:
 * a symlink at the target is never written through unless it resolves inside
 * (then its target is replaced), and readers never see half a file. Push
 * creates missing parent directories (mode 0750, like the bind-mount sources
 * deploy creates) inside the data directory, and the data directory itself.
 * Modes: push applies the request's permission bits (0 = 0644,
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
} from "../../gen/mcp/v1/mcp.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { checkDataDirectory } from "../policy/rules.js";
import { policyError } from "../policy/guard.js";
import {
  checkFileSize,
  checkMode,
  checkRelativePath,
  isInside,
} from "../../protocol/file-paths.js";

/** Mode of directories push creates. */
const DIR_MODE = 0o750;

/** How often one component is looked up again when it keeps changing under us. */
const MAX_LOOKUPS = 4;

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
  // The same rule as deploy's: a data directory that is (or contains) the
  // agent's own directory would hand out the CA key, the token and the registry.
  const problems = checkDataDirectory(service, ctx.settings);
  if (problems.length > 0) {
    throw policyError(
      service,
      problems.map((x) => ({ ...x, path: "" })),
    );
  }
  const dataDir = path.join(path.resolve(ctx.settings.dataRoot), service);
  return { service, dataDir, segments, shown: p };
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * A filesystem failure as a typed one-line error. `walk` turns the
 * /proc/self/fd/N paths of its descriptors back into data-directory paths.
 */
function fsFailure(err: unknown, what: string, walk?: Walk): McpError {
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
            "ENOTEMPTY",
          ].includes(code)
        ? "failed_precondition"
        : "internal";
  const message = walk ? walk.unproc(errorMessage(err)) : errorMessage(err);
  return new McpError(kind, `${what}: ${message}`, { cause: err });
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

/** `name` inside the directory open as `dir`, whatever that directory is called now. */
function at(dir: FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`;
}

/** Opens the directory `name` in `dir`; a symlink there is an error (ENOTDIR), not followed. */
function openDirAt(dir: FileHandle, name: string): Promise<FileHandle> {
  return open(at(dir, name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

/** Without /proc every lookup below would fail as "does not exist": say what is missing. */
let procChecked = false;
async function checkProc(): Promise<void> {
  if (procChecked) return;
  try {
    await stat("/proc/self/fd");
  } catch (err) {
    throw new McpError(
      "internal",
      `push/pull need /proc mounted (they work through /proc/self/fd): ${errorMessage(err)}`,
      { cause: err },
    );
  }
  procChecked = true;
}

/**
 * One request's walk below the data directory: the descriptors it holds (all
 * closed by close()) and, for messages, where each one was found.
 */
class Walk {
  private readonly handles: FileHandle[] = [];
  /** fd → the data-directory path it was opened as. */
  private readonly shownAt = new Map<number, string>();

  private constructor(
    readonly t: Target,
    /** The data directory, resolved. */
    readonly base: string,
    readonly root: FileHandle,
  ) {
    this.keep(root, t.dataDir);
  }

  /** Opens the data directory; undefined when it does not exist. */
  static async open(t: Target): Promise<Walk | undefined> {
    await checkProc();
    let base: string;
    try {
      base = await realpath(t.dataDir);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return undefined;
      throw err;
    }
    // realpath has resolved every link: O_NOFOLLOW only makes sure it stays so.
    const root = await open(
      base,
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    );
    return new Walk(t, base, root);
  }

  private keep(fh: FileHandle, shown: string): FileHandle {
    this.handles.push(fh);
    this.shownAt.set(fh.fd, shown);
    return fh;
  }

  /** Closes every descriptor (again is harmless: FileHandle.close is idempotent). */
  async close(): Promise<void> {
    // Every handle is closed even when one close fails; the first failure is reported.
    const results = await Promise.allSettled(this.handles.map((h) => h.close()));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  /** `/proc/self/fd/N/x` in a system error's message → `<data dir>/…/x`. */
  unproc(message: string): string {
    return message.replace(/\/proc\/self\/fd\/(\d+)/g, (m, fd: string) => {
      return this.shownAt.get(Number(fd)) ?? m;
    });
  }

  private changed(part: string): McpError {
    return new McpError(
      "failed_precondition",
      `path "${this.t.shown}" is refused: "${part}" changed while it was being checked; try again`,
    );
  }

  private notADirectory(part: string): McpError {
    return new McpError(
      "failed_precondition",
      `path "${this.t.shown}": ${part} is not a directory`,
    );
  }

  /**
   * Opens the directory that will hold the file: every component of the path
   * but the last, from the data directory, following only symlinks that stay
   * inside; with `create`, missing ones are made.
   */
  async parent(create: boolean): Promise<FileHandle> {
    let dir = this.root;
    const parents = this.t.segments.slice(0, -1);
    for (let i = 0; i < parents.length; i++) {
      dir = await this.enter(dir, parents[i] ?? "", parents.slice(0, i + 1).join("/"), create);
    }
    return dir;
  }

  /** The directory `name` in `dir` (`part` is the path so far, for messages). */
  private async enter(
    dir: FileHandle,
    name: string,
    part: string,
    create: boolean,
  ): Promise<FileHandle> {
    const shown = path.join(this.shownAt.get(dir.fd) ?? "", name);
    for (let lookup = 0; lookup < MAX_LOOKUPS; lookup++) {
      try {
        return this.keep(await openDirAt(dir, name), shown);
      } catch (err) {
        // ENOTDIR is also the answer for a symlink (O_NOFOLLOW): lstat tells them apart.
        if (errnoOf(err) !== "ENOENT" && errnoOf(err) !== "ENOTDIR") throw err;
      }
      const st = await lstatOrUndefined(at(dir, name));
      if (!st) {
        if (!create) {
          throw new McpError(
            "not_found",
            `no file "${this.t.shown}" in the data directory of ${this.t.service}: ${part}/ does not exist`,
          );
        }
        try {
          await mkdir(at(dir, name), { mode: DIR_MODE });
        } catch (err) {
          if (errnoOf(err) !== "EEXIST") throw err; // made meanwhile: looked up again
        }
      } else if (st.isSymbolicLink()) {
        const real = await this.followInside(dir, name, part);
        if (real === undefined) continue; // no longer a symlink: looked up again
        const rel = path.relative(this.base, real);
        return this.walkResolved(rel === "" ? [] : rel.split(path.sep), part, true);
      } else if (!st.isDirectory()) {
        throw this.notADirectory(part);
      }
      // A directory after all: it was swapped back between open and lstat; again.
    }
    throw this.changed(part);
  }

  /**
   * Resolves the symlink `name` in `dir` and insists it stays inside the data
   * directory; undefined when `name` is no longer a symlink.
   */
  private async followInside(
    dir: FileHandle,
    name: string,
    part: string,
  ): Promise<string | undefined> {
    let real: string;
    try {
      real = await realpath(at(dir, name));
    } catch (err) {
      const code = errnoOf(err);
      if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") {
        let to: string;
        try {
          to = await readlink(at(dir, name));
        } catch (linkErr) {
          // Renamed or replaced since the lstat: not a dangling link, a change.
          if (errnoOf(linkErr) === "ENOENT" || errnoOf(linkErr) === "EINVAL") return undefined;
          throw linkErr;
        }
        throw new McpError(
          "failed_precondition",
          `path "${this.t.shown}" is refused: "${part}" is a symlink that does not resolve (to ${to})`,
        );
      }
      throw err;
    }
    if (!isInside(this.base, real)) {
      throw new McpError(
        "failed_precondition",
        `path "${this.t.shown}" is refused: "${part}" is a symlink leading out of the data directory ${this.t.dataDir} (to ${real})`,
      );
    }
    return real;
  }

  /**
   * Opens the directories `segments` (a realpath below the data directory, so
   * free of symlinks) from the data directory. realpath read names, not
   * descriptors: walking them again with O_NOFOLLOW makes sure the directory
   * used is the one checked. Anything but a directory on the way means the
   * tree changed since; `lastIsDir` says the last one was asked for as a directory.
   */
  private async walkResolved(
    segments: string[],
    part: string,
    lastIsDir: boolean,
  ): Promise<FileHandle> {
    let dir = this.root;
    for (let i = 0; i < segments.length; i++) {
      const name = segments[i] ?? "";
      const shown = path.join(this.shownAt.get(dir.fd) ?? "", name);
      try {
        dir = this.keep(await openDirAt(dir, name), shown);
      } catch (err) {
        if (errnoOf(err) !== "ENOENT" && errnoOf(err) !== "ENOTDIR") throw err;
        const st = await lstatOrUndefined(at(dir, name));
        // The link resolved to a file where a directory was wanted.
        if (
          lastIsDir &&
          i === segments.length - 1 &&
          st &&
          !st.isSymbolicLink() &&
          !st.isDirectory()
        ) {
          throw this.notADirectory(part);
        }
        throw this.changed(part);
      }
    }
    return dir;
  }

  /**
   * The file the request names, as its directory and name in it: the last
   * component, or where it leads when it is a symlink that stays inside.
   * `st` is its lstat (undefined: it does not exist; never a symlink).
   */
  async file(dir: FileHandle): Promise<{ dir: FileHandle; name: string; st: Stats | undefined }> {
    const name = this.t.segments[this.t.segments.length - 1] ?? "";
    const part = this.t.segments.join("/");
    for (let lookup = 0; lookup < MAX_LOOKUPS; lookup++) {
      const st = await lstatOrUndefined(at(dir, name));
      if (!st?.isSymbolicLink()) return { dir, name, st };
      const real = await this.followInside(dir, name, part);
      if (real === undefined) continue; // no longer a symlink: looked up again
      const rel = path.relative(this.base, real);
      if (rel === "") {
        throw new McpError(
          "failed_precondition",
          `path "${this.t.shown}" is a directory, not a file`,
        );
      }
      const segments = rel.split(path.sep);
      const last = segments.pop() ?? "";
      const realDir = await this.walkResolved(segments, part, false);
      const realSt = await lstatOrUndefined(at(realDir, last));
      // realpath found it a moment ago: gone or a symlink now means it changed.
      if (!realSt || realSt.isSymbolicLink()) throw this.changed(part);
      return { dir: realDir, name: last, st: realSt };
    }
    throw this.changed(part);
  }

  /** Refuses what is not a plain file with one link. */
  checkRegular(st: Stats): void {
    if (st.isDirectory()) {
      throw new McpError(
        "failed_precondition",
        `path "${this.t.shown}" is a directory, not a file`,
      );
    }
    if (!st.isFile()) {
      throw new McpError("failed_precondition", `path "${this.t.shown}" is not a regular file`);
    }
    if (st.nlink > 1) {
      throw new McpError(
        "failed_precondition",
        `path "${this.t.shown}" has ${st.nlink} hard links; push/pull refuse files with more than one link, since a link can lead out of the data directory`,
      );
    }
  }

  /**
   * The opened file's real path must be inside the data directory: the walk
   * guarantees it unless someone on the host moved a held directory out.
   */
  async checkOpenedInside(fh: FileHandle): Promise<void> {
    const real = await readlink(`/proc/self/fd/${fh.fd}`);
    if (!isInside(this.base, real)) {
      throw new McpError(
        "failed_precondition",
        `path "${this.t.shown}" is refused: it resolved out of the data directory ${this.t.dataDir} (to ${real}) while being opened`,
      );
    }
  }
}

/** Closes a failed request's walk; a close failure is logged, the request's own error is the one reported. */
async function closeAfterFailure(ctx: AgentContext, walk: Walk | undefined): Promise<void> {
  await walk?.close().catch((err: unknown) => {
    ctx.logger.warn({ err: errorMessage(err) }, "push/pull: cannot close a directory");
  });
}

export async function pullFile(ctx: AgentContext, req: PullFileRequest): Promise<PullFileResponse> {
  const t = target(ctx, req.service, req.path);
  const what = `pull ${t.service}:${t.shown}`;
  let walk: Walk | undefined;
  try {
    walk = await Walk.open(t);
    if (!walk) {
      throw new McpError(
        "not_found",
        `no file "${t.shown}" in the data directory of ${t.service}: ${t.dataDir} does not exist`,
      );
    }
    const { dir, name, st } = await walk.file(await walk.parent(false));
    if (!st) {
      throw new McpError(
        "not_found",
        `no file "${t.shown}" in the data directory of ${t.service} (${t.dataDir})`,
      );
    }
    // Before opening: opening a device or FIFO can have effects of its own.
    walk.checkRegular(st);
    // O_NONBLOCK: should a FIFO have been swapped in, opening it must not hang the agent.
    const fh = await open(
      at(dir, name),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    try {
      await walk.checkOpenedInside(fh);
      const fst = await fh.stat();
      walk.checkRegular(fst); // what was opened, not what was looked at
      checkFileSize(fst.size, `"${t.shown}"`, "failed_precondition");
      const content = await fh.readFile();
      checkFileSize(content.length, `"${t.shown}"`, "failed_precondition"); // it may have grown
      await walk.close();
      return { content, mode: fst.mode & 0o777 };
    } finally {
      await fh.close();
    }
  } catch (err) {
    await closeAfterFailure(ctx, walk);
    throw fsFailure(err, what, walk);
  }
}

export async function pushFile(ctx: AgentContext, req: PushFileRequest): Promise<PushFileResponse> {
  const t = target(ctx, req.service, req.path);
  const mode = checkMode(req.mode);
  checkFileSize(req.content.length, `the content for "${t.shown}"`, "invalid_argument");
  const what = `push ${t.service}:${t.shown}`;
  let walk: Walk | undefined;
  try {
    await mkdir(t.dataDir, { recursive: true, mode: DIR_MODE });
    walk = await Walk.open(t);
    if (!walk) throw new McpError("not_found", `${t.dataDir} vanished after it was created`);
    const { dir, name, st } = await walk.file(await walk.parent(true));
    // An existing target must be a plain file with one link; it is replaced, never written to.
    if (st) walk.checkRegular(st);
    // A temp name of our own next to the target (short: the target's name may be NAME_MAX).
    const tmp = `.mcp-push-${randomBytes(8).toString("hex")}.tmp`;
    const fh = await open(
      at(dir, tmp),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    let renamed = false;
    try {
      try {
        await walk.checkOpenedInside(fh);
        await fh.writeFile(req.content);
        await fh.chmod(mode); // explicit: open's mode is filtered by the umask
        await fh.sync();
      } finally {
        await fh.close();
      }
      // rename replaces a name in the held directory; it does not follow a symlink put there meanwhile.
      await rename(at(dir, tmp), at(dir, name));
      renamed = true;
    } finally {
      if (!renamed) {
        // Through the held directory: the temp file is removed where it was made.
        await unlink(at(dir, tmp)).catch((err: unknown) => {
          if (errnoOf(err) !== "ENOENT") {
            ctx.logger.warn(
              { err: walk?.unproc(errorMessage(err)), file: tmp },
              "push: cannot remove temp file",
            );
          }
        });
      }
    }
    await walk.close();
    ctx.logger.info(
      { service: t.service, path: t.segments.join("/"), bytes: req.content.length, mode },
      "file pushed",
    );
    return { bytesWritten: req.content.length };
  } catch (err) {
    await closeAfterFailure(ctx, walk);
    throw fsFailure(err, what, walk);
  }
}
