/**
 * TOML text → validated ServiceDef. Bad input never throws anything but a
 * ValidationError listing every problem (DESIGN.md "Service definitions").
 */
import { readFile } from "node:fs/promises";
import { parse, TomlError } from "smol-toml";
import { McpError, ValidationError, type Problem } from "../util/errors.js";
import type { ServiceDef, ServiceDefOptions } from "./types.js";
import { validateServiceDef } from "./validate.js";

export { validateServiceDef };

/** smol-toml's message without its "Invalid TOML document:" prefix and code frame. */
function syntaxProblem(err: TomlError): Problem {
  const short = err.message.replace(/^Invalid TOML document: /, "").split("\n\n")[0] ?? "";
  return { path: "", message: `invalid TOML: ${short}`, line: err.line, column: err.column };
}

/** Parses and validates a definition; `file` only names it in problems. */
export function parseServiceDef(text: string, file: string, opts?: ServiceDefOptions): ServiceDef {
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

/** Reads and parses a definition file; a missing file is `not_found`. */
export async function loadServiceDefFile(
  path: string,
  opts?: ServiceDefOptions,
): Promise<ServiceDef> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new McpError("not_found", `${path}: no such service definition file`, { cause: err });
    }
    throw err;
  }
  return parseServiceDef(text, path, opts);
}
