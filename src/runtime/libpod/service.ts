/**
 * `podman system service` as the agent runs it (issue 9): on a socket of its
 * own (the network-namespace test nodes share /run, so a fixed system path
 * would silently reach the host's podman), started, waited for, restarted
 * when it dies, stopped. Plus the check of which storage a socket serves,
 * through `/libpod/info`, for the caller to log and compare.
 */
import type { ChildProcess } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { McpError } from "../../util/errors.js";
import { spawnCommand } from "../../util/exec.js";
import type { Logger } from "../../util/log.js";
import { LibpodClient } from "./client.js";
import { LibpodError } from "./errors.js";
import { infoRequest, pingRequest } from "./requests.js";
import type { StorageInfo } from "./runtime.js";

/** argv (after `podman`) of the service: `--time=0` keeps it up however long nothing calls. */
export function buildServiceArgs(socketPath: string): string[] {
  return ["system", "service", "--time=0", `unix://${socketPath}`];
}

/** Where the service's pid is kept, beside its socket. */
export function pidFileOf(socketPath: string): string {
  return `${socketPath}.pid`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the service `pidFile` names if it still runs and serves `socketPath`. */
async function stopLeftover(pidFile: string, socketPath: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, "utf8")).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return;
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return; // gone meanwhile
  }
  if (!cmdline.split("\0").includes(`unix://${socketPath}`)) return;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

/** Resolves once `/libpod/_ping` answers OK; rejects with the last failure after `timeoutMs`. */
export async function waitForPing(
  client: LibpodClient,
  timeoutMs: number,
  stillWorth: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  let last: unknown;
  while (stillWorth()) {
    try {
      await client.call(pingRequest(), { what: "ping", timeoutMs: 1000 });
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() + delay > deadline) break;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
  throw last instanceof LibpodError
    ? last
    : new LibpodError({ what: "ping", status: 0, reason: `no answer after ${timeoutMs} ms` });
}

/** graphRoot and runRoot of the storage the socket serves (`/libpod/info`). */
export async function checkStorage(client: LibpodClient): Promise<StorageInfo> {
  const info = await client.json(infoRequest(), { what: "info", timeoutMs: 10_000 });
  const store =
    typeof info === "object" && info !== null ? (info as Record<string, unknown>).store : undefined;
  const get = (k: string) => {
    const v =
      typeof store === "object" && store !== null ? (store as Record<string, unknown>)[k] : "";
    return typeof v === "string" ? v : "";
  };
  const storage = { graphRoot: get("graphRoot"), runRoot: get("runRoot") };
  if (!storage.graphRoot || !storage.runRoot) {
    throw new McpError("runtime", "podman API info: no store.graphRoot/runRoot in the answer");
  }
  return storage;
}

export interface PodmanServiceOptions {
  /** Where the socket goes (its directory must exist); a stale file there is replaced. */
  socketPath: string;
  /** The podman binary (default `podman`). */
  podmanPath?: string;
  /** Extra environment for podman, over this process's (e.g. XDG_RUNTIME_DIR for rootless). */
  env?: Record<string, string>;
  /** How long a (re)start may take before the socket answers (default 15 s). */
  readyTimeoutMs?: number;
  /** First wait before restarting a service that died; doubles up to 10 s while it keeps dying. */
  restartDelayMs?: number;
  logger?: Logger;
}

/** The running service: its socket, and what it said when it failed to come up. */
export class PodmanService {
  readonly socketPath: string;
  private readonly podmanPath: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly readyTimeoutMs: number;
  private readonly restartDelayMs: number;
  private readonly logger: Logger | undefined;
  private readonly client: LibpodClient;
  private child: ChildProcess | undefined;
  private stopping = false;
  /** Set once a start succeeded: only then is a dead service restarted. */
  private supervising = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private delay: number;
  /** The last of podman's own output, for messages when it does not come up. */
  private outputTail = "";
  /** How many times the service was restarted after dying. */
  restarts = 0;

  constructor(opts: PodmanServiceOptions) {
    this.socketPath = opts.socketPath;
    this.podmanPath = opts.podmanPath ?? "podman";
    this.env = { ...process.env, ...opts.env };
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    this.restartDelayMs = opts.restartDelayMs ?? 200;
    this.delay = this.restartDelayMs;
    this.logger = opts.logger;
    this.client = new LibpodClient({ socketPath: opts.socketPath, timeoutMs: 10_000 });
  }

  /** The service's process id, while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Starts the service and waits until it answers; returns the storage it
   * serves. Rejects (and leaves nothing running) when it does not come up.
   */
  async start(): Promise<StorageInfo> {
    this.stopping = false;
    await this.spawn();
    try {
      const storage = await checkStorage(this.client);
      this.supervising = true;
      return storage;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async spawn(): Promise<void> {
    // A service an agent killed outright left behind still serves this
    // socket: stop it, one service per socket (its pid file says which).
    await stopLeftover(pidFileOf(this.socketPath), this.socketPath);
    // A socket file left by a service that died would make the new one fail to bind.
    await rm(this.socketPath, { force: true });
    const argv = [this.podmanPath, ...buildServiceArgs(this.socketPath)];
    const child = spawnCommand(argv, { env: this.env });
    this.child = child;
    if (child.pid !== undefined) {
      await writeFile(pidFileOf(this.socketPath), `${child.pid}\n`, { mode: 0o600 });
    }
    const keep = (chunk: Buffer) => {
      this.outputTail = (this.outputTail + chunk.toString("utf8")).slice(-4096);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let exited = false;
    const spawnError = new Promise<never>((_, reject) => {
      child.once("error", (err) =>
        reject(
          new McpError("runtime", `cannot run ${this.podmanPath}: ${err.message}`, { cause: err }),
        ),
      );
    });
    spawnError.catch(() => {}); // raced below; unobserved otherwise
    // `close`, not `exit`: a binary that cannot be spawned emits only `error` and `close`.
    child.once("close", (code, signal) => {
      exited = true;
      if (this.child === child) this.child = undefined;
      this.onExit(code, signal);
    });
    try {
      await Promise.race([
        waitForPing(this.client, this.readyTimeoutMs, () => !exited),
        spawnError,
      ]);
      if (exited) throw new Error("it exited");
    } catch (err) {
      const said = lastLine(this.outputTail);
      if (!exited) child.kill("SIGTERM");
      throw new McpError(
        "runtime",
        `podman system service on ${this.socketPath} did not come up${said ? `: ${said}` : ""}`,
        { cause: err },
      );
    }
    this.delay = this.restartDelayMs;
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || !this.supervising) return;
    this.logger?.warn(
      { socket: this.socketPath, code, signal, output: lastLine(this.outputTail) },
      "podman service exited, restarting it",
    );
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, 10_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.restarts++;
      this.spawn().then(
        () => this.logger?.info({ socket: this.socketPath }, "podman service restarted"),
        (err: unknown) =>
          // Its exit handler schedules the next try; this one only says why.
          this.logger?.error({ socket: this.socketPath, err }, "podman service restart failed"),
      );
    }, delay);
  }

  /**
   * Resolves once the socket answers again (after a restart, say); rejects
   * after `timeoutMs`. For callers that saw a connection refused.
   */
  ready(timeoutMs = this.readyTimeoutMs): Promise<void> {
    return waitForPing(this.client, timeoutMs, () => !this.stopping);
  }

  /** Stops the service (SIGTERM, SIGKILL after `graceMs`) and its supervision. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    this.supervising = false;
    clearTimeout(this.restartTimer);
    this.client.close();
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.once("close", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
    await rm(this.socketPath, { force: true });
    await rm(pidFileOf(this.socketPath), { force: true });
  }
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim());
  return lines.filter(Boolean).pop() ?? "";
}
