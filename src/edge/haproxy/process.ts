/**
 * The agent's own HAProxy, in master-worker mode (`-W -S <master socket>`):
 * started from the files under `[proxy] dir` (config.ts), reloaded hitlessly
 * through the master socket when the set of listener ports changes, and
 * started again when it dies (the caller records an event; the files being
 * the source of truth, it comes back with every route).
 */
import type { ChildProcess } from "node:child_process";
import { McpError, errorMessage } from "../../util/errors.js";
import { spawnCommand } from "../../util/exec.js";
import { proxyFiles } from "./config.js";
import { runtimeCommand, socketCommand } from "./runtime-api.js";

/** How long a start may take before HAProxy's admin socket answers. */
const READY_TIMEOUT_MS = 10_000;
/** Between restarts of an HAProxy that keeps dying. */
const RESTART_DELAY_MS = 500;

/** The argv that runs HAProxy from `dir` (pure). */
export function haproxyArgv(dir: string, binary = "haproxy"): string[] {
  const files = proxyFiles(dir);
  // -db: stay in the foreground, so the agent is the parent that notices a death.
  return [binary, "-W", "-db", "-S", `${files.masterSocket},mode,600`, "-f", files.config];
}

export interface HaproxyEvents {
  /** HAProxy exited without being asked to, and is being started again. */
  died?: (reason: string) => void;
  /** A log line HAProxy printed (stderr). */
  log?: (line: string) => void;
}

export class HaproxyProcess {
  #child: ChildProcess | undefined;
  #stopping = false;
  #stderrTail = "";

  constructor(
    private readonly dir: string,
    private readonly events: HaproxyEvents = {},
    private readonly binary = "haproxy",
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts HAProxy and resolves once its admin socket answers. */
  async start(): Promise<void> {
    this.#stopping = false;
    this.#spawn();
    await this.#waitReady();
  }

  #spawn(): void {
    const child = spawnCommand(haproxyArgv(this.dir, this.binary));
    this.#child = child;
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#stderrTail = (this.#stderrTail + chunk).slice(-2000);
      for (const line of chunk.split("\n")) if (line.trim()) this.events.log?.(line);
    });
    child.once("exit", (code, signal) => {
      if (this.#child !== child || this.#stopping) return;
      const reason = `haproxy exited (${signal ?? `code ${code}`}): ${this.#stderrTail.trim().split("\n").at(-1) ?? ""}`;
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
        throw new McpError(
          "internal",
          `haproxy did not start: ${this.#stderrTail.trim() || `exit ${this.#child.exitCode}`}`,
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

  /** Stops HAProxy (SIGTERM to the master stops its workers). */
  async stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }
}
