/**
 * `mcp push <local> <service> [path]` and `mcp pull <service> <path> [local]`:
 * one file to or from the service's data directory on its node
 * (`<data_root>/<service>`, default /srv/<service>). The agent decides what
 * paths are allowed (see src/agent/operations/files.ts); the CLI checks the size limit
 * before sending or writing anything, and keeps the file mode both ways.
 *
 * - push: `path` defaults to the local file's base name; the local
 *   permission bits are sent and applied (0 is sent as "unset": the agent
 *   then uses 0644);
 * - pull: `local` defaults to the remote base name in the current
 *   directory; an existing directory receives the file under its base name;
 *   `-` writes the bytes to stdout. The file is written through a temp file
 *   and renamed, with the remote mode applied.
 */
import { randomBytes } from "node:crypto";
import { chmod, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { checkFileSize, formatBytes, formatMode } from "../../protocol/file-paths.js";
import { McpError, errorMessage } from "../../util/errors.js";
import { processIO, type CliContext } from "../context.js";
import { nodeOfService } from "./deploy.js";

export interface FileCommandOptions {
  /** Node to ask when the service's definition file is not at hand. */
  node?: string;
}

function localFailure(err: unknown, what: string): McpError {
  const code = (err as NodeJS.ErrnoException).code;
  return new McpError(
    code === "ENOENT" ? "not_found" : "invalid_argument",
    `${what}: ${errorMessage(err)}`,
    { cause: err },
  );
}

export async function pushCommand(
  ctx: CliContext,
  local: string,
  service: string,
  remotePath: string | undefined,
  opts: FileCommandOptions = {},
): Promise<number> {
  let content: Buffer;
  let mode: number;
  try {
    const st = await stat(local);
    if (!st.isFile()) throw new McpError("invalid_argument", `${local} is not a regular file`);
    checkFileSize(st.size, local, "invalid_argument");
    content = await readFile(local);
    mode = st.mode & 0o777;
  } catch (err) {
    if (err instanceof McpError) throw err;
    throw localFailure(err, `cannot read ${local}`);
  }
  checkFileSize(content.length, local, "invalid_argument"); // it may have grown
  const dest = remotePath ?? path.basename(local);
  const node = await nodeOfService(ctx, service, opts.node);
  const res = await ctx.withClient(node, (client) =>
    client.call("pushFile", { service, path: dest, content, mode }),
  );
  ctx.io.out(
    `${local} -> ${node.name}:${service}/${dest} (${formatBytes(res.bytesWritten)}, mode ${formatMode(mode || 0o644)})\n`,
  );
  return 0;
}

/** Writes `content` to `dest` via a temp file in the same directory, then sets `mode`. */
export async function writeLocalFile(
  dest: string,
  content: Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = path.join(
    path.dirname(dest),
    `.${path.basename(dest)}.mcp-pull-${randomBytes(6).toString("hex")}`,
  );
  let renamed = false;
  try {
    await writeFile(tmp, content, { flag: "wx", mode: 0o600 });
    await chmod(tmp, mode & 0o777); // explicit: the create mode is filtered by the umask
    await rename(tmp, dest);
    renamed = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new McpError(
        "not_found",
        `cannot write ${dest}: directory ${path.dirname(dest)} does not exist`,
        { cause: err },
      );
    }
    throw localFailure(err, `cannot write ${dest}`);
  } finally {
    if (!renamed) {
      await unlink(tmp).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT")
          throw localFailure(err, `cannot remove ${tmp}`);
      });
    }
  }
}

/** Where a pulled file goes: `local`, or inside it when it is a directory; default the base name. */
export async function pullDestination(
  remotePath: string,
  local: string | undefined,
): Promise<string> {
  const name = path.basename(remotePath);
  if (local === undefined) return name;
  try {
    if ((await stat(local)).isDirectory()) return path.join(local, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw localFailure(err, `cannot use ${local}`);
  }
  return local;
}

export async function pullCommand(
  ctx: CliContext,
  service: string,
  remotePath: string,
  local: string | undefined,
  opts: FileCommandOptions = {},
): Promise<number> {
  const node = await nodeOfService(ctx, service, opts.node);
  const res = await ctx.withClient(node, (client) =>
    client.call("pullFile", { service, path: remotePath }),
  );
  checkFileSize(res.content.length, `${node.name}:${service}/${remotePath}`, "failed_precondition");
  if (local === "-") {
    if (ctx.io === processIO) process.stdout.write(res.content);
    else ctx.io.out(Buffer.from(res.content).toString("utf8"));
    return 0;
  }
  const dest = await pullDestination(remotePath, local);
  await writeLocalFile(dest, res.content, res.mode);
  ctx.io.out(
    `${node.name}:${service}/${remotePath} -> ${dest} (${formatBytes(res.content.length)}, mode ${formatMode(res.mode)})\n`,
  );
  return 0;
}
