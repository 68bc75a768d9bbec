/**
 * TOML text → validated ServiceDef. Bad input never throws anything but a
 * ValidationError listing every problem (DESIGN.md "Service definitions").
 */
import { open } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import { McpError, ValidationError, type Problem } from "../util/errors.js";
import { BUILTIN_LIMITS, formatBytes } from "./limits.js";
import type { ServiceDef, ServiceDefOptions } from "./types.js";
import { validateServiceDef } from "./validate.js";

export { validateServiceDef };

/** smol-toml's message without its "Invalid TOML document:" prefix and code frame. */
function syntaxProblem(err: TomlError): Problem {
  const short = err.message.replace(/^Invalid TOML document: /, "").split("\n\n")[0] ?? "";
  return { path: "", message: `invalid TOML: ${short}`, line: err.line, column: err.column };
}

/** The whole-file problem of a definition over the size limit. */
function sizeProblem(size: number, max: number): Problem {
  return { path: "", message: `expected a file of at most ${formatBytes(max)}, got ${size} bytes` };
}

/**
 * Parses and validates a definition; `file` only names it in problems. The
 * size comes first: a file over the limit is not parsed at all.
 */
export function parseServiceDef(text: string, file: string, opts?: ServiceDefOptions): ServiceDef {
  const max = (opts?.limits ?? BUILTIN_LIMITS).maxDefinitionBytes;
  // UTF-8 takes at most 3 bytes per UTF-16 unit: short texts skip the count.
  const size = text.length * 3 > max ? Buffer.byteLength(text) : 0;
  if (size > max) throw new ValidationError("invalid_definition", file, [sizeProblem(size, max)]);
  let value: unknown;
  try {
    // `__proto__` and friends would be unknown fields anyway; refuse them early.
    value = parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (err) {
    if (err instanceof TomlError)
      throw new ValidationError("invalid_definition", file, [syntaxProblem(err)]);
    throw err;
  }
  const { def, problems } = validateServiceDef(value, opts);
  if (!def) throw new ValidationError("invalid_definition", file, problems);
  return def;
}

/**
 * Reads a definition file as UTF-8, refusing one over the size limit before
 * reading it (a ValidationError, as from parseServiceDef). Errors from the
 * file system are thrown as they are.
 */
export async function readServiceDefFile(path: string, opts?: ServiceDefOptions): Promise<string> {
  const max = (opts?.limits ?? BUILTIN_LIMITS).maxDefinitionBytes;
  const fh = await open(path, "r");
  try {
    // A pipe or device says 0 here; parseServiceDef measures the text again.
    const { size } = await fh.stat();
    if (size > max) throw new ValidationError("invalid_definition", path, [sizeProblem(size, max)]);
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

/** Reads and parses a definition file; a missing file is `not_found`. */
export async function loadServiceDefFile(
  path: string,
  opts?: ServiceDefOptions,
): Promise<ServiceDef> {
  let text: string;
  try {
    text = await readServiceDefFile(path, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new McpError("not_found", `${path}: no such service definition file`, { cause: err });
    }
    throw err;
  }
  return parseServiceDef(text, path, opts);
}
