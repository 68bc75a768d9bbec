/**
 * The CLI's V8 compile cache: what `dist/mcp.mjs` (src/bin/mcp.ts) uses to
 * start the bundled CLI (`dist/mcp-cli.cjs`) without parsing and compiling it
 * again on every command.
 *
 * Node 20 has no `module.enableCompileCache()` (Node 22 does), so the bundle
 * is run through `vm.Script` with V8's `cachedData`: the cache is made after
 * a command ran (`createCachedData()` then holds the bytecode of every
 * function that command compiled, not only the top level), so the next run
 * of that command compiles almost nothing. Measured (bench/README "CLI
 * start-up"): `mcp ps` ≈ 210 → ≈ 135 ms of CPU.
 *
 * The cache is recorded when a command runs for the first time since the
 * bundle was built (or when V8 rejected the cache: another Node, other
 * flags), so it grows to cover the commands the operator uses and is then
 * only read. It lives under `$XDG_CACHE_HOME/mcp` (else `~/.cache/mcp`),
 * 0700/0600; `MCP_CLI_CACHE=off` runs without it.
 */
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { Script } from "node:vm";

/** Global options whose value is the next argument (src/cli/program.ts). */
const OPTIONS_WITH_VALUE = new Set(["--config", "--timeout"]);
/** Commands recorded at most: past it the cache is only read (a typo is a "command" too). */
export const MAX_RECORDED_COMMANDS = 64;

export interface CompileCacheFiles {
  /** V8's cached data for the bundle. */
  data: string;
  /** JSON list of the commands that contributed to `data` (`CacheManifest`). */
  manifest: string;
  /** The directory they live in, and the prefix every build's files share there. */
  dir: string;
  prefix: string;
}

export interface CacheManifest {
  commands: string[];
}

/**
 * Where the cache of one build of the bundle lives. The build is identified
 * by the bundle's size and modification time: a rebuilt bundle never reads
 * the cache of the previous one (V8 itself also refuses data made from other
 * source, another V8 version or other flags).
 */
export function compileCacheFiles(
  env: NodeJS.ProcessEnv,
  home: string,
  bundle: { size: number; mtimeMs: number },
): CompileCacheFiles {
  const base =
    env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)
      ? env.XDG_CACHE_HOME
      : path.join(home, ".cache");
  const dir = path.join(base, "mcp");
  const prefix = "cli-";
  const stem = path.join(dir, `${prefix}${bundle.size}-${Math.trunc(bundle.mtimeMs)}`);
  return { data: `${stem}.v8`, manifest: `${stem}.json`, dir, prefix };
}

/** Whether the cache is off (`MCP_CLI_CACHE=off`, `0` or `false`). */
export function compileCacheDisabled(env: NodeJS.ProcessEnv): boolean {
  return ["off", "0", "false"].includes((env.MCP_CLI_CACHE ?? "").toLowerCase());
}

/**
 * The command a run is about, for the cache's bookkeeping: the first word
 * that is neither an option nor a global option's value (`mcp --config f ps`
 * → "ps"); "--version" / "--help" for those; "" for a bare `mcp`.
 */
export function commandKey(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (OPTIONS_WITH_VALUE.has(arg)) {
      i++;
      continue;
    }
    if (arg === "--version" || arg === "-V") return "--version";
    if (arg === "--help" || arg === "-h") return "--help";
    if (!arg.startsWith("-")) return arg;
  }
  return "";
}

/** Reads a manifest's text; anything unreadable counts as no command recorded. */
export function parseManifest(text: string | undefined): CacheManifest {
  if (text === undefined) return { commands: [] };
  try {
    const value: unknown = JSON.parse(text);
    const commands = (value as { commands?: unknown }).commands;
    if (Array.isArray(commands) && commands.every((c) => typeof c === "string"))
      return { commands };
  } catch {
    // A torn or foreign file: the run records a fresh one.
  }
  return { commands: [] };
}

/**
 * What this run does with the cache: the manifest to write with fresh data
 * after the command ran, or null when the cache already covers it.
 */
export function manifestToRecord(
  manifest: CacheManifest,
  command: string,
  cacheAccepted: boolean,
): CacheManifest | null {
  if (!cacheAccepted) return { commands: [command] };
  if (manifest.commands.includes(command)) return null;
  if (manifest.commands.length >= MAX_RECORDED_COMMANDS) return null;
  return { commands: [...manifest.commands, command] };
}

/**
 * The function source V8 compiles: Node's own CommonJS wrapper around the
 * bundle (its shebang removed), on a line of its own so the bundle's line
 * numbers stay right (`lineOffset: -1`); a shebang becomes a comment.
 */
export function wrapCommonJs(source: string): string {
  const body = source.startsWith("#!") ? `//${source.slice(2)}` : source;
  return `(function (exports, require, module, __filename, __dirname) {\n${body}\n})`;
}

type CommonJsMain = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
) => void;

function readOrUndefined(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    // Missing (first run, another build) or unreadable: compile from source.
    return undefined;
  }
}

/**
 * Writes the cache files of this build (each through a temporary name, so a
 * concurrent run reads the old file or the new one, never half of one) and
 * removes other builds' files.
 */
function recordCache(files: CompileCacheFiles, data: Buffer, manifest: CacheManifest): void {
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const tmp = `.${process.pid}.tmp`;
  writeFileSync(files.data + tmp, data, { mode: 0o600 });
  renameSync(files.data + tmp, files.data);
  writeFileSync(files.manifest + tmp, JSON.stringify(manifest), { mode: 0o600 });
  renameSync(files.manifest + tmp, files.manifest);
  const ours = new Set([path.basename(files.data), path.basename(files.manifest)]);
  for (const name of readdirSync(files.dir)) {
    if (name.startsWith(files.prefix) && !ours.has(name) && !name.endsWith(".tmp")) {
      rmSync(path.join(files.dir, name), { force: true });
    }
  }
}

/**
 * Runs the CommonJS bundle at `bundle` as Node would (`require(bundle)`),
 * compiled with this build's cached data when there is some, and records
 * the cache when the process exits if this command is new to it.
 */
export function runBundleWithCompileCache(
  bundle: string,
  env: NodeJS.ProcessEnv,
  args: readonly string[],
): void {
  const source = readFileSync(bundle, "utf8");
  const files = compileCacheDisabled(env)
    ? null
    : compileCacheFiles(env, os.homedir(), statSync(bundle));
  const cachedData = files ? readOrUndefined(files.data) : undefined;
  const script = new Script(wrapCommonJs(source), { filename: bundle, lineOffset: -1, cachedData });
  if (files) {
    const accepted = cachedData !== undefined && !script.cachedDataRejected;
    const manifest = accepted
      ? parseManifest(readOrUndefined(files.manifest)?.toString("utf8"))
      : { commands: [] };
    const next = manifestToRecord(manifest, commandKey(args), accepted);
    if (next) {
      // At exit the script has compiled what this command needed. The CLI
      // ends with process.exit (src/bin/mcp-cli.ts), which runs this handler.
      process.once("exit", () => {
        try {
          recordCache(files, script.createCachedData(), next);
        } catch {
          // A cache that cannot be written (read-only home, full disk) only
          // means the next run compiles from source, as without one.
        }
      });
    }
  }
  const main = script.runInThisContext() as CommonJsMain;
  const module = { exports: {} };
  main.call(
    module.exports,
    module.exports,
    createRequire(bundle),
    module,
    bundle,
    path.dirname(bundle),
  );
}
