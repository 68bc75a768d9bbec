/**
 * The Runtime on top of the podman CLI (4.3.1 on these machines). Each method
 * is one podman command. Its argv comes from a pure builder in args.ts
 * (`build*Args`, unit-tested on its exact output) and its JSON is parsed there
 * too; this file only spawns podman and holds no argv of its own.
 */
import { CommandError, runCommand, spawnCommand, type CommandResult } from "../util/exec.js";
import {
  buildExecArgs,
  buildImageExistsArgs,
  buildInspectArgs,
  buildListArgs,
  buildLogsArgs,
  buildPullArgs,
  buildRemoveArgs,
  buildRenameArgs,
  buildRestartArgs,
  buildRunArgs,
  buildStartArgs,
  buildStopArgs,
  buildStoragePathsArgs,
  buildVersionArgs,
  isNameInUse,
  isNoSuchContainer,
  parseInspectJson,
  parsePsJson,
} from "./args.js";
import type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  LogOptions,
  LogStream,
  Runtime,
} from "./types.js";

export interface PodmanOptions {
  /** The podman binary (default `podman`, found on PATH). */
  podmanPath?: string;
  /** Extra environment for podman, over this process's (e.g. XDG_RUNTIME_DIR for rootless). */
  env?: Record<string, string>;
  /** Seconds `stop`/`restart`/forced `rm` wait after SIGTERM before SIGKILL (podman's default is 10). */
  stopTimeoutSeconds?: number;
  /** Upper bound for quick commands (ps, inspect, run); a wedged podman must not hang the agent. */
  commandTimeoutMs?: number;
  /** Upper bound for `pull`. */
  pullTimeoutMs?: number;
}

export class PodmanRuntime implements Runtime {
  private readonly podmanPath: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly stopTimeoutSeconds: number;
  private readonly commandTimeoutMs: number;
  private readonly pullTimeoutMs: number;

  constructor(opts: PodmanOptions = {}) {
    this.podmanPath = opts.podmanPath ?? "podman";
    this.env = { ...process.env, ...opts.env };
    this.stopTimeoutSeconds = opts.stopTimeoutSeconds ?? 10;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 60_000;
    this.pullTimeoutMs = opts.pullTimeoutMs ?? 15 * 60_000;
  }

  private podman(args: string[], timeoutMs = this.commandTimeoutMs): Promise<CommandResult> {
    return runCommand([this.podmanPath, ...args], { env: this.env, timeoutMs });
  }

  /** Stopping can legitimately take the whole grace period; allow for it on top of the usual bound. */
  private stopBudgetMs(seconds: number): number {
    return this.commandTimeoutMs + seconds * 1000;
  }

  async pull(image: string): Promise<void> {
    await this.podman(buildPullArgs(image), this.pullTimeoutMs);
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.podman(buildImageExistsArgs(image));
      return true;
    } catch (err) {
      // `image exists` answers "no" with exit 1; anything else is a real failure.
      if (err instanceof CommandError && err.exitCode === 1) return false;
      throw err;
    }
  }

  async run(spec: ContainerSpec): Promise<string> {
    try {
      const { stdout } = await this.podman(buildRunArgs(spec));
      return lastLine(stdout);
    } catch (err) {
      // A run that fails after creating the container (port taken, bad mount,
      // failing entrypoint) leaves it in Created state, holding the name. Remove
      // it so a retry starts clean. Not when the name was already taken: that
      // container is someone else's.
      if (!isNameInUse(err)) {
        // The run error is what the caller needs; a failed cleanup must not replace it.
        await this.remove(spec.name, { force: true, timeoutSeconds: 0 }).catch(() => {});
      }
      throw err;
    }
  }

  async create(spec: ContainerSpec): Promise<string> {
    // `podman create` takes the flags of `run` but `-d`.
    const { stdout } = await this.podman(["create", ...buildRunArgs(spec).slice(2)]);
    return lastLine(stdout);
  }

  async stop(name: string, timeoutSeconds = this.stopTimeoutSeconds): Promise<void> {
    await this.podman(buildStopArgs(name, timeoutSeconds), this.stopBudgetMs(timeoutSeconds));
  }

  async start(name: string): Promise<void> {
    await this.podman(buildStartArgs(name));
  }

  async remove(
    name: string,
    opts: { force?: boolean; timeoutSeconds?: number } = {},
  ): Promise<void> {
    const seconds = opts.timeoutSeconds ?? this.stopTimeoutSeconds;
    // A missing container is a success (`--ignore`); only a forced rm waits out the grace period.
    await this.podman(
      buildRemoveArgs(name, { force: opts.force, timeoutSeconds: seconds }),
      this.stopBudgetMs(opts.force ? seconds : 0),
    );
  }

  async restart(name: string, timeoutSeconds = this.stopTimeoutSeconds): Promise<void> {
    await this.podman(buildRestartArgs(name, timeoutSeconds), this.stopBudgetMs(timeoutSeconds));
  }

  async exec(name: string, cmd: readonly string[], timeoutMs: number): Promise<ExecResult> {
    try {
      const { stdout, stderr } = await this.podman(buildExecArgs(name, cmd), timeoutMs);
      return { exitCode: 0, output: stdout + stderr, timedOut: false };
    } catch (err) {
      if (!(err instanceof CommandError) || isNoSuchContainer(err)) throw err;
      // 125: podman itself failed (e.g. the container is not running): not the check's answer.
      if (err.exitCode === 125) throw err;
      return { exitCode: err.exitCode, output: err.stdout + err.stderr, timedOut: err.timedOut };
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.podman(buildRenameArgs(from, to));
  }

  async inspect(name: string): Promise<ContainerStatus | undefined> {
    try {
      const { stdout } = await this.podman(buildInspectArgs(name));
      return parseInspectJson(stdout)[0];
    } catch (err) {
      if (isNoSuchContainer(err)) return undefined;
      throw err;
    }
  }

  async list(): Promise<ContainerStatus[]> {
    const { stdout } = await this.podman(buildListArgs());
    return parsePsJson(stdout);
  }

  logs(name: string, opts: LogOptions): LogStream {
    const argv = [this.podmanPath, ...buildLogsArgs(name, opts)];
    const child = spawnCommand(argv, { env: this.env });
    // spawnCommand always gives pipes; the checks satisfy the types.
    if (!child.stdout || !child.stderr) throw new Error("podman logs: no output pipes");
    let killed = false;
    // Keep the end of stderr for the error message; podman's own errors arrive there.
    let stderrTail = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString("utf8")).slice(-4096);
    });
    const done = new Promise<void>((resolve, reject) => {
      child.on("error", (err) =>
        reject(new CommandError({ argv, exitCode: null, reason: err.message, cause: err })),
      );
      child.on("close", (code, signal) => {
        if (code === 0 || killed) return resolve();
        reject(new CommandError({ argv, exitCode: code, signal, stderr: stderrTail }));
      });
    });
    return {
      stdout: child.stdout,
      stderr: child.stderr,
      done,
      kill: () => {
        killed = true;
        child.kill("SIGTERM");
      },
    };
  }

  async version(): Promise<string> {
    const { stdout } = await this.podman(buildVersionArgs());
    return stdout.trim();
  }

  /**
   * Where this podman keeps images and containers (graphRoot) and its run
   * state (runRoot): the volume policy never lets a service mount them.
   */
  async storagePaths(): Promise<string[]> {
    const { stdout } = await this.podman(buildStoragePathsArgs(), 10_000);
    return stdout
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.startsWith("/"));
  }
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop()?.trim() ?? "";
}
