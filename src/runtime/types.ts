/**
 * The container runtime as the agent sees it. Podman is the only
 * implementation today; the interface keeps the agent testable with a fake and
 * leaves room for another runtime later (the original grew a unikernel one).
 */
import type { Readable } from "node:stream";

/**
 * One component's container, in `podman run`'s terms: each field means what
 * the flag it names means (libpod/requests.ts makes the API's create body of it).
 */
export interface ContainerSpec {
  /** `--name`. */
  name: string;
  image: string;
  /** `--network`. */
  network?: string;
  /** `--user`. */
  user?: string;
  /** `--restart`. */
  restart?: string;
  /** `--memory`, podman's syntax (`256m`). */
  memory?: string;
  /** `--cpus` (`0.5`). */
  cpus?: number;
  /** `--pids-limit`. */
  pids?: number;
  /** `--log-opt max-size=…` (`10m`): the k8s-file log driver truncates the log there. */
  logMaxSize?: string;
  /** `--label` each. */
  labels: Record<string, string>;
  /** `-p` mappings, verbatim (`127.0.0.1:12345:12345`). */
  ports: string[];
  /** `-v` mappings, verbatim (`/srv/svc:/srv/svc`). */
  volumes: string[];
  /** `-e KEY=VALUE` entries. */
  env: string[];
  /** Arguments after the image. */
  cmd: string[];
}

export interface ContainerStatus {
  id: string;
  name: string;
  image: string;
  /** Podman's lowercase state: running, exited, created, paused, stopped, … */
  state: string;
  /** null when the container never started. */
  startedAt: Date | null;
  labels: Record<string, string>;
  /** Published ports in `-p` syntax: `[hostIp:]hostPort:containerPort[/udp]`, one per port. */
  ports: string[];
  /** Set once the container has exited. */
  exitCode?: number;
}

/** What a command run inside a container did. */
export interface ExecResult {
  /** null when it was killed (e.g. at the timeout). */
  exitCode: number | null;
  /** stdout then stderr, as printed. */
  output: string;
  timedOut: boolean;
}

export interface LogOptions {
  /** Only the last N lines. */
  tail?: number;
  follow?: boolean;
  timestamps?: boolean;
  /** Podman's `--since`: a timestamp or a duration such as `10m`. */
  since?: string;
}

/** A running `logs` command: read the streams, await `done`, or `kill()` to stop following. */
export interface LogStream {
  /** The container's stdout. */
  stdout: Readable;
  /** The container's stderr (podman's own errors arrive here too). */
  stderr: Readable;
  /**
   * Settles when the command ends: resolves on success or after kill(),
   * rejects with the runtime's error otherwise (a LibpodError; e.g. no such
   * container).
   */
  done: Promise<void>;
  kill(): void;
}

export interface Runtime {
  pull(image: string): Promise<void>;
  imageExists(image: string): Promise<boolean>;
  /** Creates and starts the container; returns its id. Leaves nothing behind on failure. */
  run(spec: ContainerSpec): Promise<string>;
  /**
   * Creates the container without starting it (it binds no ports yet);
   * returns its id. `start` runs it, and fails with "address already in use"
   * when one of its ports is taken then.
   */
  create(spec: ContainerSpec): Promise<string>;
  stop(name: string, timeoutSeconds?: number): Promise<void>;
  /** Starts a created or stopped container; one already running is left as it is. */
  start(name: string): Promise<void>;
  /** A missing container is not an error. */
  remove(name: string, opts?: { force?: boolean; timeoutSeconds?: number }): Promise<void>;
  restart(name: string, timeoutSeconds?: number): Promise<void>;
  /**
   * Runs `cmd` inside a running container. A command that exits non-zero is
   * a result, not an error; a missing container or a podman failure throws.
   */
  exec(name: string, cmd: readonly string[], timeoutMs: number): Promise<ExecResult>;
  /** Renames a container (running or not); fails if `to` is taken. */
  rename(from: string, to: string): Promise<void>;
  /** undefined when there is no such container. */
  inspect(name: string): Promise<ContainerStatus | undefined>;
  /** Every container, running or not. */
  list(): Promise<ContainerStatus[]>;
  logs(name: string, opts: LogOptions): LogStream;
  version(): Promise<string>;
}
