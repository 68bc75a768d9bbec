/**
 * Running external programs (podman) with an argv array, never through a
 * shell: service and component names end up in argv, and a shell would turn
 * them into an injection surface.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { basename } from "node:path";
import { McpError } from "./errors.js";

export interface RunOptions {
  /** Kill the command (SIGTERM) after this many milliseconds. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** The command's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** A command that could not start, exited non-zero, or was killed. */
export class CommandError extends McpError {
  readonly argv: string[];
  /** Exit status; null when the command did not start or was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;

  constructor(fields: {
    argv: string[];
    exitCode: number | null;
    signal?: string | null;
    timedOut?: boolean;
    stdout?: string;
    stderr?: string;
    reason?: string;
    cause?: unknown;
  }) {
    const stderr = fields.stderr ?? "";
    const detail = lastLine(stderr) || fields.reason || "";
    super(
      "runtime",
      `${commandLabel(fields.argv)} ${outcome(fields)}${detail ? `: ${detail}` : ""}`,
      {
        cause: fields.cause,
      },
    );
    this.name = "CommandError";
    this.argv = fields.argv;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal ?? null;
    this.timedOut = fields.timedOut ?? false;
    this.stdout = fields.stdout ?? "";
    this.stderr = stderr;
  }
}

/** `podman run`: the program's base name and its subcommand, for messages. */
function commandLabel(argv: string[]): string {
  const [program = "?", sub] = argv;
  return sub === undefined ? basename(program) : `${basename(program)} ${sub}`;
}

function outcome(f: { exitCode: number | null; signal?: string | null; timedOut?: boolean }) {
  if (f.timedOut) return "timed out";
  if (f.exitCode !== null) return `exited ${f.exitCode}`;
  if (f.signal) return `killed by ${f.signal}`;
  return "failed";
}

/** The last non-empty line: podman puts its `Error: …` summary there. */
function lastLine(text: string): string {
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]?.trim();
    if (line) return line;
  }
  return "";
}

/** `podman ps` JSON for many containers can be large; execFile's 1 MiB default is not enough. */
const MAX_BUFFER = 64 * 1024 * 1024;

/** Runs argv to completion and returns its output; rejects with a CommandError. */
export function runCommand(argv: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [program, ...args] = argv;
  if (program === undefined) return Promise.reject(new Error("runCommand: empty argv"));
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      args,
      {
        encoding: "utf8",
        maxBuffer: MAX_BUFFER,
        timeout: opts.timeoutMs ?? 0,
        env: opts.env ?? process.env,
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        // execFile's error: `code` is the exit status (number) or a spawn errno
        // string such as "ENOENT"; `killed` is set when our timeout fired.
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
        const exitCode = typeof e.code === "number" ? e.code : null;
        const timedOut = Boolean(e.killed) && exitCode === null && (opts.timeoutMs ?? 0) > 0;
        let reason = e.message.split("\n")[0];
        if (e.syscall?.startsWith("spawn")) reason = `cannot run ${program}: ${e.code}`;
        else if (timedOut) reason = `no result after ${opts.timeoutMs} ms`;
        reject(
          new CommandError({
            argv,
            exitCode,
            signal: e.signal ?? null,
            timedOut,
            stdout,
            stderr,
            reason,
            cause: err,
          }),
        );
      },
    );
    // Without input, close stdin at once so a command that reads it cannot hang.
    child.stdin?.on("error", () => {}); // EPIPE when the command exits without reading
    child.stdin?.end(opts.input ?? "");
  });
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Write stdout and stderr to this open file descriptor, in its own process
   * group: a process meant to outlive the agent (its HAProxy), which a pipe
   * to a gone parent or the terminal's Ctrl-C must not take down.
   */
  outputFd?: number;
}

/**
 * Starts argv with stdout and stderr as pipes, for long-running output such
 * as `podman logs -f`. The caller reads the streams and owns the process.
 */
export function spawnCommand(argv: string[], opts: SpawnOptions = {}): ChildProcess {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error("spawnCommand: empty argv");
  const fd = opts.outputFd;
  return spawn(program, args, {
    stdio: fd === undefined ? ["ignore", "pipe", "pipe"] : ["ignore", fd, fd],
    detached: fd !== undefined,
    env: opts.env ?? process.env,
  });
}
