/**
 * Shared plumbing for MCP's TOML files (agent config, CLI config, tokens):
 * read with a clear "missing file" error, parse with line:col syntax errors,
 * report every problem a TableChecker found with its key path, write atomically.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import type { TableChecker } from "../util/checker.js";
import { McpError, ValidationError } from "../util/errors.js";

/** Reads a file as UTF-8; ENOENT becomes McpError(code) with `missingHint`. */
export async function readTextFile(
  file: string,
  missingHint: string,
  code: "invalid_config" | "not_found" = "invalid_config",
): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new McpError(code, `${file} does not exist: ${missingHint}`, { cause: err });
    }
    throw new McpError("invalid_config", `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Parses TOML; a syntax error becomes a ValidationError with line and column. */
export function parseToml(file: string, text: string): Record<string, unknown> {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      // smol-toml's message carries a code frame after the first line; keep one line.
      const first = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
      throw new ValidationError("invalid_config", file, [
        { path: "", message: `TOML syntax error: ${first}`, line: err.line, column: err.column },
      ]);
    }
    throw err;
  }
}

/** Throws a ValidationError listing every problem `checker` found in `file`, if any. */
export function throwProblems(file: string, checker: TableChecker): void {
  if (checker.problems.length > 0) {
    throw new ValidationError("invalid_config", file, checker.problems);
  }
}

/** Expands a leading `~/` and resolves relative paths against `baseDir`. */
export function resolvePath(baseDir: string, p: string): string {
  if (p === "~" || p.startsWith("~/")) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/**
 * Writes a file atomically (temp file in the same directory, then rename), so a
 * crash never leaves half a config or tokens file behind. `mode` applies from
 * the first byte: secrets are never briefly world-readable.
 */
export async function writeFileAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(text, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
