/**
 * An in-memory Runtime for unit tests of the agent's logic: it keeps
 * containers and images in maps, records every call (and every ContainerSpec
 * it was asked to run or create), and can be told to fail the next call(s)
 * of an operation with the LibpodError podman's API would have answered. It
 * behaves like the real runtime (PodmanApiRuntime) where the agent relies on it: `remove` of a missing container
 * succeeds, a failed `run` leaves nothing behind, `run` and `create` refuse a
 * taken name, a created container binds no port until `start`, and `run` or
 * `start` report "address already in use" when another running container
 * publishes one of its host ports; `start` of a running container is a no-op.
 *
 * Never the only test of a feature (DESIGN.md "Testing on these machines").
 */
import { PassThrough } from "node:stream";
import { setImmediate as yieldTurn } from "node:timers/promises";
import type {
  ContainerSpec,
  ContainerStatus,
  ExecResult,
  LogOptions,
  LogStream,
  Runtime,
} from "../../src/runtime/types.js";
import { parsePortMapping } from "../../src/servicedef/ports.js";
import { LibpodError } from "../../src/runtime/libpod/errors.js";

export type FakeOp =
  | "pull"
  | "imageExists"
  | "run"
  | "create"
  | "stop"
  | "start"
  | "remove"
  | "restart"
  | "rename"
  | "exec"
  | "inspect"
  | "list"
  | "logs"
  | "version";

/** One recorded call: the operation and its main argument (image or container name). */
export interface FakeCall {
  op: FakeOp;
  arg: string;
  /** For `run` and `create`: the spec as given (a copy). */
  spec?: ContainerSpec;
}

/** A failure to inject: an error, or a function of the call's argument that builds one. */
export type FakeFailure = Error | ((arg: string, spec?: ContainerSpec) => Error);

/** A container the fake holds: podman's view plus the spec it was run from (if any). */
export interface FakeContainer extends ContainerStatus {
  spec?: ContainerSpec;
}

// ------------------------------------------------------------ podman's errors
// As PodmanApiRuntime raises them: the message and cause podman 4.3.1's API
// answers on these machines (bodies captured in test/unit/libpod.test.ts).

/** A LibpodError as the API answers call `what` (`create`, `start`, `stop`…). */
export function apiError(what: string, status: number, message: string, cause = ""): LibpodError {
  return new LibpodError({ what, status, apiMessage: message, apiCause: cause });
}

/** A run whose start cannot publish `port`: something holds it. */
export function addressInUse(port: number, host = "127.0.0.1"): LibpodError {
  return apiError(
    "start",
    500,
    `cannot listen on the TCP port: listen tcp4 ${host}:${port}: bind: address already in use`,
    "address already in use",
  );
}

/**
 * `start` / `restart` of a stopped container whose published port something
 * else took meanwhile (the container stays exited).
 */
export function startAddressInUse(what: string, id: string, port: number): LibpodError {
  const prefix = what === "start" ? `unable to start container "${id}": ` : "";
  return apiError(
    what,
    500,
    `${prefix}cannot listen on the TCP port: listen tcp4 127.0.0.1:${port}: bind: address already in use`,
    "address already in use",
  );
}

/** A pull of an image the registry cannot serve: an error inside the pull's 200 answer. */
export function pullRefused(image: string): LibpodError {
  const host = image.split("/")[0] ?? "localhost";
  const msg = `initializing source docker://${image}: pinging container registry ${host}: Get "https://${host}/v2/": dial tcp 127.0.0.1:443: connect: connection refused`;
  return apiError("pull", 200, msg);
}

/** A create from an image that is not in local storage (create never pulls). */
export function imageNotKnown(image: string): LibpodError {
  return apiError("create", 500, `${image}: image not known`, "image not known");
}

/** A call (`stop`, `start`, `logs`…) on a container that does not exist. */
export function noSuchContainer(what: string, name: string): LibpodError {
  return apiError(
    what,
    404,
    `no container with name or ID "${name}" found: no such container`,
    "no such container",
  );
}

/** A create with a name some container already has. */
export function nameInUse(name: string): LibpodError {
  return apiError(
    "create",
    500,
    `creating container storage: the container name "${name}" is already in use by 0123456789abcdef. You have to remove that container to be able to reuse that name: that name is already in use`,
    "that name is already in use",
  );
}

/** A rename of container `id` to a name some container already has. */
export function renameTaken(id: string, to: string): LibpodError {
  const short = id.slice(0, 12);
  return apiError(
    "rename",
    409,
    `renaming container ${short}: name ${to} already in use, cannot rename container ${short}: container already exists`,
    "container already exists",
  );
}

/** A run whose start fails otherwise: neither a port clash nor an image problem. */
export function runFailed(message = "crun: executable file `/bin/httpenv` not found"): LibpodError {
  return apiError(
    "start",
    500,
    `${message}: OCI runtime attempted to invoke a command that was not found`,
  );
}

/** A call the service did not answer (it died, its socket is gone). */
export function noAnswer(what: string): LibpodError {
  return new LibpodError({ what, status: 0, reason: "connect ECONNREFUSED podman.sock" });
}

export interface FakeRuntimeOptions {
  /** Images present in local storage from the start. */
  images?: string[];
  /** What `version()` answers. */
  version?: string;
  /** The clock used for startedAt (default: real time). */
  now?: () => Date;
}

export class FakeRuntime implements Runtime {
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  /** Containers by name. */
  readonly containers = new Map<string, FakeContainer>();
  /** Images in local storage. */
  readonly images: Set<string>;
  /** Host ports held by processes outside podman: `run` fails on them like podman would. */
  readonly hostBusy = new Set<number>();
  versionString: string;
  private readonly now: () => Date;
  private readonly failures = new Map<FakeOp, FakeFailure[]>();
  private nextId = 1;

  constructor(opts: FakeRuntimeOptions = {}) {
    this.images = new Set(opts.images ?? []);
    this.versionString = opts.version ?? "4.3.1";
    this.now = opts.now ?? (() => new Date());
  }

  // ------------------------------------------------------------ test controls

  /** Makes the next `times` calls of `op` fail with `failure` (queued after earlier ones). */
  failNext(op: FakeOp, failure: FakeFailure, times = 1): this {
    const queue = this.failures.get(op) ?? [];
    for (let i = 0; i < times; i++) queue.push(failure);
    this.failures.set(op, queue);
    return this;
  }

  /** Failures injected but not consumed yet. */
  pendingFailures(op: FakeOp): number {
    return this.failures.get(op)?.length ?? 0;
  }

  /** Forgets the recorded calls (containers and images stay). */
  clearCalls(): void {
    this.calls.length = 0;
  }

  /** Calls as `op arg` strings, e.g. `["remove hello-web", "run hello-web"]`. */
  ops(): string[] {
    return this.calls.map((c) => `${c.op} ${c.arg}`);
  }

  /** The calls of one operation. */
  callsOf(op: FakeOp): FakeCall[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** Every ContainerSpec `run` or `create` was given, in order (failed attempts included). */
  get runs(): ContainerSpec[] {
    return this.calls.flatMap((c) => (c.op === "run" || c.op === "create" ? [c.spec!] : []));
  }

  /** The ContainerSpec of the last run of `name`. */
  lastRun(name: string): ContainerSpec | undefined {
    return this.runs.filter((s) => s.name === name).pop();
  }

  /**
   * A failure for `failNext("start", …)`: the created container's first
   * published port is taken (something bound it after the agent's probe).
   */
  readonly portTakenAtStart: FakeFailure = (name) => {
    const c = this.containers.get(name);
    const port = parsePortMapping(c?.ports[0] ?? "")?.hostPort ?? 0;
    return startAddressInUse("start", c?.id ?? name, port);
  };

  /** Adds a container as if created outside the agent (by hand, or by another tool). */
  addContainer(c: Partial<FakeContainer> & Pick<FakeContainer, "name" | "image">): FakeContainer {
    const container: FakeContainer = {
      id: c.id ?? this.newId(),
      state: "running",
      startedAt: this.now(),
      labels: {},
      ports: [],
      ...c,
    };
    this.containers.set(container.name, container);
    return container;
  }

  /** Changes a container's state behind the agent's back (it crashed, was stopped by hand...). */
  setState(name: string, state: string, exitCode?: number): void {
    const c = this.mustGet(name, "setState");
    c.state = state;
    if (exitCode !== undefined) c.exitCode = exitCode;
  }

  /** Host ports published by running or stopping containers (what the kernel would say is taken). */
  publishedPorts(): Set<number> {
    const ports = new Set<number>();
    for (const c of this.containers.values()) {
      // A stopping container holds its ports until it has stopped.
      if (c.state !== "running" && c.state !== "stopping") continue;
      for (const p of c.ports) {
        const hostPort = parsePortMapping(p)?.hostPort;
        if (hostPort !== undefined) ports.add(hostPort);
      }
    }
    return ports;
  }

  /**
   * A probe for PortAllocator that answers like the OS would here: a port is
   * taken when a running container publishes it or `hostBusy` holds it.
   */
  readonly probe = (port: number): Promise<boolean> =>
    Promise.resolve(!this.hostBusy.has(port) && !this.publishedPorts().has(port));

  // ------------------------------------------------------------ Runtime

  async pull(image: string): Promise<void> {
    await this.enter("pull", image);
    this.images.add(image);
  }

  async imageExists(image: string): Promise<boolean> {
    await this.enter("imageExists", image);
    return this.images.has(image);
  }

  async run(spec: ContainerSpec): Promise<string> {
    const copy = structuredClone(spec);
    await this.enter("run", spec.name, copy);
    if (this.containers.has(spec.name)) throw nameInUse(spec.name);
    if (!this.images.has(spec.image)) throw imageNotKnown(spec.image);
    const taken = this.publishedPorts();
    for (const p of spec.ports) {
      const hostPort = parsePortMapping(p)?.hostPort;
      if (hostPort !== undefined && (taken.has(hostPort) || this.hostBusy.has(hostPort))) {
        // Podman leaves a Created container behind; PodmanApiRuntime removes it.
        throw addressInUse(hostPort);
      }
    }
    return this.store(copy, "running");
  }

  async create(spec: ContainerSpec): Promise<string> {
    const copy = structuredClone(spec);
    await this.enter("create", spec.name, copy);
    if (this.containers.has(spec.name)) throw nameInUse(spec.name);
    if (!this.images.has(spec.image)) throw imageNotKnown(spec.image);
    return this.store(copy, "created");
  }

  /** Keeps a container made from `spec`, running or only created; returns its id. */
  private store(spec: ContainerSpec, state: "running" | "created"): string {
    const id = this.newId();
    this.containers.set(spec.name, {
      id,
      name: spec.name,
      image: spec.image,
      state,
      startedAt: state === "running" ? this.now() : null,
      labels: { ...spec.labels },
      ports: [...spec.ports],
      spec,
    });
    return id;
  }

  async stop(name: string): Promise<void> {
    // Podman says "stopping" until the stop has ended (a held stop shows it).
    const before = this.containers.get(name);
    const wasRunning = before?.state === "running";
    if (before && wasRunning) before.state = "stopping";
    try {
      await this.enter("stop", name);
    } catch (err) {
      if (before && wasRunning && before.state === "stopping") before.state = "running";
      throw err;
    }
    const c = this.containers.get(name);
    if (!c) throw noSuchContainer("stop", name);
    if (c.state === "running" || c.state === "stopping") {
      c.state = "exited";
      c.exitCode = 0;
    }
  }

  async start(name: string): Promise<void> {
    await this.enter("start", name);
    const c = this.containers.get(name);
    if (!c) throw noSuchContainer("start", name);
    if (c.state === "running") return;
    if (c.state === "stopping") {
      throw apiError(
        "start",
        500,
        `container ${c.id} is stopping: container state improper`,
        "container state improper",
      );
    }
    this.checkPortsFree(c, "start");
    c.state = "running";
    c.startedAt = this.now();
    delete c.exitCode;
  }

  async remove(name: string): Promise<void> {
    await this.enter("remove", name);
    this.containers.delete(name);
  }

  async restart(name: string): Promise<void> {
    await this.enter("restart", name);
    const c = this.containers.get(name);
    if (!c) throw noSuchContainer("restart", name);
    if (c.state !== "running") this.checkPortsFree(c, "restart");
    c.state = "running";
    c.startedAt = this.now();
    delete c.exitCode;
  }

  /** Exit codes `exec` answers with, by container name (default 0). */
  readonly execExitCodes = new Map<string, number>();

  async exec(name: string, cmd: readonly string[]): Promise<ExecResult> {
    await this.enter("exec", `${name} ${cmd.join(" ")}`);
    const c = this.containers.get(name);
    if (!c) throw noSuchContainer("exec", name);
    return { exitCode: this.execExitCodes.get(name) ?? 0, output: "", timedOut: false };
  }

  async rename(from: string, to: string): Promise<void> {
    await this.enter("rename", `${from}>${to}`);
    const c = this.containers.get(from);
    if (!c) throw noSuchContainer("rename", from);
    if (this.containers.has(to)) throw renameTaken(c.id, to);
    this.containers.delete(from);
    c.name = to;
    this.containers.set(to, c);
  }

  async inspect(name: string): Promise<ContainerStatus | undefined> {
    await this.enter("inspect", name);
    const c = this.containers.get(name);
    return c && status(c);
  }

  async list(): Promise<ContainerStatus[]> {
    await this.enter("list", "");
    return [...this.containers.values()].map(status);
  }

  logs(name: string, _opts: LogOptions): LogStream {
    this.calls.push({ op: "logs", arg: name });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const failure = this.takeFailure("logs", name);
    const missing = !this.containers.has(name);
    stdout.end();
    stderr.end();
    return {
      stdout,
      stderr,
      done: failure
        ? Promise.reject(failure)
        : missing
          ? Promise.reject(noSuchContainer("logs", name))
          : Promise.resolve(),
      kill: () => {},
    };
  }

  async version(): Promise<string> {
    await this.enter("version", "");
    return this.versionString;
  }

  // ------------------------------------------------------------ internals

  /**
   * Records the call, yields a turn (so concurrent operations interleave as
   * they would around a real call to podman), then throws an injected failure.
   */
  private readonly holds: { op: FakeOp; arg: string; until: Promise<void> }[] = [];

  /**
   * Makes the next `op` on `arg` wait until the returned function is called
   * (a podman call that takes long), so tests can see what else goes on
   * meanwhile.
   */
  hold(op: FakeOp, arg: string): () => void {
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    this.holds.push({ op, arg, until });
    return release;
  }

  private async enter(op: FakeOp, arg: string, spec?: ContainerSpec): Promise<void> {
    this.calls.push(spec ? { op, arg, spec } : { op, arg });
    await yieldTurn();
    const held = this.holds.findIndex((h) => h.op === op && h.arg === arg);
    if (held >= 0) {
      const [hold] = this.holds.splice(held, 1);
      await hold?.until;
    }
    const failure = this.takeFailure(op, arg, spec);
    if (failure) throw failure;
  }

  private takeFailure(op: FakeOp, arg: string, spec?: ContainerSpec): Error | undefined {
    const failure = this.failures.get(op)?.shift();
    if (failure === undefined) return undefined;
    return typeof failure === "function" ? failure(arg, spec) : failure;
  }

  /** Starting a stopped container binds its ports again; podman fails if one was taken meanwhile. */
  private checkPortsFree(c: FakeContainer, sub: string): void {
    const taken = new Set([...this.publishedPorts(), ...this.hostBusy]);
    for (const p of c.ports) {
      const hostPort = parsePortMapping(p)?.hostPort;
      if (hostPort !== undefined && taken.has(hostPort))
        throw startAddressInUse(sub, c.id, hostPort);
    }
  }

  private mustGet(name: string, what: string): FakeContainer {
    const c = this.containers.get(name);
    if (!c) throw new Error(`FakeRuntime.${what}: no container ${name}`);
    return c;
  }

  private newId(): string {
    return (this.nextId++).toString(16).padStart(12, "0").padEnd(64, "f");
  }
}

/** A copy without the fake's bookkeeping, as podman's JSON would give it. */
function status(c: FakeContainer): ContainerStatus {
  const s: ContainerStatus = {
    id: c.id,
    name: c.name,
    image: c.image,
    state: c.state,
    startedAt: c.startedAt,
    labels: { ...c.labels },
    ports: [...c.ports],
  };
  if (c.exitCode !== undefined) s.exitCode = c.exitCode;
  return s;
}
