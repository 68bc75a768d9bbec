/**
 * The agent's own HAProxy, in master-worker mode (`-W -S <master socket>`):
 * started from the files under `[proxy] dir` (config.ts), reloaded hitlessly
 * through the master socket when the set of listener ports changes, and
 * started again when it dies (the caller records an event; the files being
 * the source of truth, it comes back with every route).
 *
 * An agent killed outright leaves its HAProxy serving (a child survives its
 * parent's SIGKILL). The next start adopts that master (its pid file, its
 * command line naming our config) instead of binding the listeners twice:
 * it reloads it onto the current config and watches its pid.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { McpError, errorMessage } from "../../util/errors.js";
import { spawnCommand } from "../../util/exec.js";
import { proxyFiles } from "./config.js";
import { runtimeCommand, socketCommand } from "./runtime-api.js";

/** How long a start may take before HAProxy's admin socket answers. */
const READY_TIMEOUT_MS = 10_000;
/** Between restarts of an HAProxy that keeps dying. */
const RESTART_DELAY_MS = 500;
/** How often an adopted master (not our child: no exit event) is checked for life. */
const ADOPTED_POLL_MS = 500;

/** The argv that runs HAProxy from `dir` (pure). */
export function haproxyArgv(dir: string, binary = "haproxy"): string[] {
  const files = proxyFiles(dir);
  // -db: stay in the foreground, so the agent is the parent that notices a death.
  return [
    binary,
    "-W",
    "-db",
    "-S",
    `${files.masterSocket},mode,600`,
    "-p",
    files.pidFile,
    "-f",
    files.config,
  ];
}

export interface HaproxyEvents {
  /** HAProxy exited without being asked to, and is being started again. */
  died?: (reason: string) => void;
}

/** ": <the last line of HAProxy's log>", or "" (for messages). */
function lastLine(logFile: string): string {
  try {
    const text = readFileSync(logFile, "utf8").slice(-4000).trim();
    const line = text.split("\n").at(-1)?.trim();
    return line ? `: ${line}` : "";
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of a master an earlier agent started from `dir`, if one still runs. */
async function leftoverMaster(dir: string): Promise<number | undefined> {
  const { pidFile, config } = proxyFiles(dir);
  try {
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return undefined;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    return cmdline.includes(config) && cmdline.some((a) => a.endsWith("haproxy")) ? pid : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export class HaproxyProcess {
  #child: ChildProcess | undefined;
  /** A master left by an earlier agent, adopted at start. */
  #adopted: number | undefined;
  #watch: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(
    private readonly dir: string,
    private readonly events: HaproxyEvents = {},
    private readonly binary = "haproxy",
  ) {}

  get pid(): number | undefined {
    return this.#adopted ?? this.#child?.pid;
  }

  /**
   * Starts HAProxy (or adopts and reloads one an earlier agent left
   * running) and resolves once its admin socket answers.
   */
  async start(): Promise<void> {
    this.#stopping = false;
    const leftover = await leftoverMaster(this.dir);
    if (leftover !== undefined) {
      this.#adopted = leftover;
      await this.reload();
      this.#watchAdopted(leftover);
      return;
    }
    this.#spawn();
    await this.#waitReady();
  }

  /** Whether the running HAProxy was adopted from an earlier agent. */
  get adopted(): boolean {
    return this.#adopted !== undefined;
  }

  #watchAdopted(pid: number): void {
    this.#watch = setInterval(() => {
      if (alive(pid) || this.#stopping) return;
      clearInterval(this.#watch);
      this.#adopted = undefined;
      this.events.died?.(`haproxy (pid ${pid}, started by an earlier agent) is gone`);
      this.#spawn();
    }, ADOPTED_POLL_MS);
    this.#watch.unref();
  }

  #spawn(): void {
    const { logFile } = proxyFiles(this.dir);
    // Its output goes to a file, not a pipe: HAProxy outlives an agent that stops.
    const fd = openSync(logFile, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawnCommand(haproxyArgv(this.dir, this.binary), { outputFd: fd });
    } finally {
      closeSync(fd);
    }
    this.#child = child;
    child.once("exit", (code, signal) => {
      if (this.#child !== child || this.#stopping) return;
      const reason = `haproxy exited (${signal ?? `code ${code}`})${lastLine(logFile)}`;
      this.events.died?.(reason);
      setTimeout(() => {
        if (!this.#stopping) this.#spawn();
      }, RESTART_DELAY_MS);
    });
  }

  async #waitReady(accept: (workerPid: string) => boolean = () => true): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = "";
    while (Date.now() < deadline) {
      if (this.#child?.exitCode !== null && this.#child?.exitCode !== undefined) {
        const why = lastLine(proxyFiles(this.dir).logFile);
        throw new McpError(
          "internal",
          `haproxy did not start (exit ${this.#child.exitCode})${why}`,
        );
      }
      try {
        const pid = await this.#workerPid();
        if (accept(pid)) return;
        last = `still the old worker (pid ${pid})`;
      } catch (err) {
        last = errorMessage(err);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new McpError("internal", `haproxy did not answer within ${READY_TIMEOUT_MS} ms: ${last}`);
  }

  /**
   * Hitless reload through the master socket: new workers take over the
   * listeners (the config must be valid: check it first with `haproxy -c`).
   */
  async reload(): Promise<void> {
    const before = await this.#workerPid();
    await socketCommand(proxyFiles(this.dir).masterSocket, "reload");
    // `reload` answers at once: done when a new worker serves the admin socket.
    await this.#waitReady((pid) => pid !== before);
  }

  async #workerPid(): Promise<string> {
    const info = await runtimeCommand(proxyFiles(this.dir).adminSocket, "show info");
    return /^Pid: (\d+)$/m.exec(info)?.[1] ?? "";
  }

  /**
   * Stops supervising without stopping HAProxy: it keeps serving its routes
   * until the next agent adopts it (start()).
   */
  release(): void {
    this.#stopping = true;
    clearInterval(this.#watch);
    this.#child?.unref();
  }

  /** Stops HAProxy (SIGTERM to the master stops its workers). */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#watch);
    const adopted = this.#adopted;
    if (adopted !== undefined) {
      this.#adopted = undefined;
      process.kill(adopted, "SIGTERM");
      while (alive(adopted)) await new Promise((r) => setTimeout(r, 20));
      return;
    }
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }
}
