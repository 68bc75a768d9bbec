/**
 * The Runtime on Podman's libpod REST API (issue 9), the agent's only one:
 * each operation is one or a few calls on the service's socket (service.ts).
 * Requests come from requests.ts and answers are read by status.ts (both
 * pure, unit-tested); failures are LibpodErrors, which ../errors.ts classifies.
 */
import { PassThrough, type Readable } from "node:stream";
import type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  LogOptions,
  LogStream,
  Runtime,
} from "../types.js";
import { asLibpodError, demuxFrames, LibpodClient } from "./client.js";
import { isNoSuchContainer } from "../errors.js";
import { LibpodError } from "./errors.js";
import { parseInspectObject, parsePsJson } from "./status.js";
import {
  createRequest,
  execCreateRequest,
  execInspectRequest,
  execStartRequest,
  imageExistsRequest,
  infoRequest,
  inspectRequest,
  listRequest,
  logsRequest,
  parsePullStream,
  pullRequest,
  removeReportError,
  removeRequest,
  renameRequest,
  restartRequest,
  startRequest,
  stopRequest,
  versionRequest,
} from "./requests.js";

export interface PodmanApiOptions {
  /** The service's socket path (no `unix://`); ignored when `client` is given. */
  socketPath?: string;
  client?: LibpodClient;
  /** Seconds `stop`/`restart`/forced `remove` wait after SIGTERM before SIGKILL (podman's default is 10). */
  stopTimeoutSeconds?: number;
  /** Upper bound of a quick call (ps, inspect, create, start): a wedged podman must not hang the agent. */
  commandTimeoutMs?: number;
  /** Upper bound of `pull`. */
  pullTimeoutMs?: number;
}

/** Where podman keeps images and containers (graphRoot) and its run state (runRoot). */
export interface StorageInfo {
  graphRoot: string;
  runRoot: string;
}

type Json = Record<string, unknown>;

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null ? (v as Json)[key] : undefined;
}

function text(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** While an exec session's end is not yet recorded (its stream closed first), look again this often. */
const EXEC_POLL_MS = 10;

export class PodmanApiRuntime implements Runtime {
  readonly client: LibpodClient;
  private readonly stopTimeoutSeconds: number;
  private readonly commandTimeoutMs: number;
  private readonly pullTimeoutMs: number;

  constructor(opts: PodmanApiOptions) {
    const commandTimeoutMs = opts.commandTimeoutMs ?? 60_000;
    if (opts.client) this.client = opts.client;
    else if (opts.socketPath) {
      this.client = new LibpodClient({ socketPath: opts.socketPath, timeoutMs: commandTimeoutMs });
    } else throw new Error("PodmanApiRuntime: a socketPath or a client is required");
    this.stopTimeoutSeconds = opts.stopTimeoutSeconds ?? 10;
    this.commandTimeoutMs = commandTimeoutMs;
    this.pullTimeoutMs = opts.pullTimeoutMs ?? 15 * 60_000;
  }

  /** Stopping can legitimately take the whole grace period; allow for it on top of the usual bound. */
  private stopBudgetMs(seconds: number): number {
    return this.commandTimeoutMs + seconds * 1000;
  }

  async pull(image: string): Promise<void> {
    const { status, body } = await this.client.call(pullRequest(image), {
      what: "pull",
      timeoutMs: this.pullTimeoutMs,
    });
    const { error } = parsePullStream(body);
    if (error) throw new LibpodError({ what: "pull", status, apiMessage: error });
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.client.call(imageExistsRequest(image), { what: "image exists" });
      return true;
    } catch (err) {
      // 404 is the "no"; anything else is a real failure, as `image exists` exiting 125.
      if (err instanceof LibpodError && err.status === 404) return false;
      throw err;
    }
  }

  /**
   * create, then start. A start that fails (port taken, bad mount, failing
   * entrypoint) leaves the container Created, holding the name: it is
   * removed, by id, so a retry starts clean and the error is the start's. A
   * failed create leaves nothing (podman undoes it), and a name in use is
   * someone else's container: neither is touched.
   */
  async run(spec: ContainerSpec): Promise<string> {
    const id = await this.create(spec);
    try {
      await this.client.call(startRequest(id), { what: "start" });
      return id;
    } catch (err) {
      // The start error is what the caller needs; a failed cleanup must not replace it.
      await this.remove(id, { force: true, timeoutSeconds: 0 }).catch(() => {});
      throw err;
    }
  }

  /** The container, Created: no port is bound until `start`. */
  async create(spec: ContainerSpec): Promise<string> {
    const req = createRequest(spec); // an invalid spec throws here, before podman is asked
    const created = await this.client.json(req, { what: "create" });
    const id = text(field(created, "Id"));
    if (!id)
      throw new LibpodError({ what: "create", status: 0, reason: "no container id in the answer" });
    return id;
  }

  async stop(name: string, timeoutSeconds = this.stopTimeoutSeconds): Promise<void> {
    await this.client.call(stopRequest(name, timeoutSeconds), {
      what: "stop",
      timeoutMs: this.stopBudgetMs(timeoutSeconds),
    });
  }

  async start(name: string): Promise<void> {
    await this.client.call(startRequest(name), { what: "start" });
  }

  async remove(
    name: string,
    opts: { force?: boolean; timeoutSeconds?: number } = {},
  ): Promise<void> {
    const seconds = opts.timeoutSeconds ?? this.stopTimeoutSeconds;
    const { status, body } = await this.client.call(
      removeRequest(name, { force: opts.force, timeoutSeconds: seconds }),
      { what: "remove", timeoutMs: this.stopBudgetMs(opts.force ? seconds : 0) },
    );
    const failure = removeReportError(body);
    if (failure) throw new LibpodError({ what: "remove", status, apiMessage: failure });
  }

  async restart(name: string, timeoutSeconds = this.stopTimeoutSeconds): Promise<void> {
    await this.client.call(restartRequest(name, timeoutSeconds), {
      what: "restart",
      timeoutMs: this.stopBudgetMs(timeoutSeconds),
    });
  }

  /**
   * An exec session: create, start (its output streams back until the
   * command ends), then its exit code from the session's inspect. At the
   * timeout the call is cut and the result says so; the command itself may
   * run on inside the container (as with a killed `podman exec`). A missing
   * or stopped container throws, as the CLI's exit 125 does.
   */
  async exec(name: string, cmd: readonly string[], timeoutMs: number): Promise<ExecResult> {
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    let created: unknown;
    try {
      created = await this.client.json(execCreateRequest(name, cmd), {
        what: "exec",
        timeoutMs: left(),
      });
    } catch (err) {
      // Out of time before the command even ran: a timed-out check, as with the CLI.
      if (err instanceof LibpodError && err.timedOut)
        return { exitCode: null, output: "", timedOut: true };
      throw err;
    }
    const id = text(field(created, "Id"));
    if (!id)
      throw new LibpodError({ what: "exec", status: 0, reason: "no session id in the answer" });

    const call = this.client.stream(execStartRequest(id), { what: "exec", timeoutMs: left() });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      call.abort();
    }, left());
    try {
      const res = await call.response;
      const streams = demuxFrames(res);
      streams.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
      streams.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
      await streams.ended;
    } catch (err) {
      // The client's own bound on the answer may fire first: the same timeout.
      if (err instanceof LibpodError && err.timedOut) timedOut = true;
      if (!timedOut) throw asLibpodError(err, "exec");
    } finally {
      clearTimeout(timer);
    }
    const output = stdout + stderr;
    if (timedOut) return { exitCode: null, output, timedOut: true };

    for (;;) {
      const session = await this.client.json(execInspectRequest(id), {
        what: "exec inspect",
        timeoutMs: this.commandTimeoutMs,
      });
      const exitCode = field(session, "ExitCode");
      if (field(session, "Running") !== true && typeof exitCode === "number") {
        return { exitCode, output, timedOut: false };
      }
      if (Date.now() >= deadline) return { exitCode: null, output, timedOut: true };
      await new Promise((r) => setTimeout(r, EXEC_POLL_MS));
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.client.call(renameRequest(from, to), { what: "rename" });
  }

  async inspect(name: string): Promise<ContainerStatus | undefined> {
    try {
      return parseInspectObject(await this.client.json(inspectRequest(name), { what: "inspect" }));
    } catch (err) {
      // A container being removed meanwhile is a 500 "does not exist in database: no such container".
      if (err instanceof LibpodError && (err.status === 404 || isNoSuchContainer(err))) {
        return undefined;
      }
      throw err;
    }
  }

  async list(): Promise<ContainerStatus[]> {
    const { body } = await this.client.call(listRequest(), { what: "list" });
    return parsePsJson(body);
  }

  /**
   * The log call as a LogStream. Its streams exist at once (the call is
   * asynchronous); a failure to start (no such container, a bad `since`)
   * ends them and rejects `done`, as a failing `podman logs` would.
   */
  logs(name: string, opts: LogOptions): LogStream {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    // Only the wait for the answer is bounded: a followed log has no end.
    const call = this.client.stream(logsRequest(name, opts), {
      what: "logs",
      timeoutMs: this.commandTimeoutMs,
    });
    let killed = false;
    const done = (async () => {
      try {
        const res = await call.response;
        const streams = demuxFrames(res);
        pipeInto(streams.stdout, stdout);
        pipeInto(streams.stderr, stderr);
        await streams.ended;
      } catch (err) {
        if (!killed) throw asLibpodError(err, "logs");
      } finally {
        stdout.end();
        stderr.end();
      }
    })();
    return {
      stdout,
      stderr,
      done,
      kill: () => {
        killed = true;
        call.abort();
      },
    };
  }

  /** The service's podman version (one binary here: the CLI's `Client.Version` is the same). */
  async version(): Promise<string> {
    return text(field(await this.client.json(versionRequest(), { what: "version" }), "Version"));
  }

  /** graphRoot and runRoot of the storage the socket serves. */
  async storage(): Promise<StorageInfo> {
    const store = field(await this.client.json(infoRequest(), { what: "info" }), "store");
    return { graphRoot: text(field(store, "graphRoot")), runRoot: text(field(store, "runRoot")) };
  }

  /** graphRoot and runRoot as paths: what the volume policy never lets a service mount. */
  async storagePaths(): Promise<string[]> {
    const { graphRoot, runRoot } = await this.storage();
    return [graphRoot, runRoot].filter((p) => p.startsWith("/"));
  }

  /** Closes the client's idle connections (the service itself is service.ts's). */
  close(): void {
    this.client.close();
  }
}

/** Copies without ending `to` (the caller ends it once, after success or failure). */
function pipeInto(from: Readable, to: PassThrough): void {
  from.pipe(to, { end: false });
}
