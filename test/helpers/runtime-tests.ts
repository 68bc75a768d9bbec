/**
 * What the integration tests on the real runtime share (libpod.test.ts,
 * health.test.ts, examples.test.ts): a `podman system service` of the test's
 * own with the API runtime on it, container names unique to the test process
 * and remembered for clean-up, the test image's HTTP spec, waiting for it to
 * answer, a listener to hold a port, reading a stream to its end.
 */
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import {
  mcpLabels,
  PodmanApiRuntime,
  PodmanService,
  type ContainerSpec,
  type StorageInfo,
} from "../../src/runtime/index.js";
import { errorMessage } from "../../src/util/errors.js";
import { TEST_IMAGE } from "./live-agent.js";

/** A test's own podman service and the API runtime on it (startApiRuntime). */
export interface ApiRuntimeFixture {
  /** The temp dir holding the socket; gone after stop(). */
  dir: string;
  service: PodmanService;
  api: PodmanApiRuntime;
  /** The storage the service said it serves. */
  storage: StorageInfo;
  /** Removes `containers` (forced, no grace period), then closes the runtime, the service and the dir. */
  stop(containers?: Iterable<string>): Promise<void>;
}

/**
 * Starts a `podman system service` on a socket in a temp dir, as the agent
 * does (src/runtime/libpod/service.ts), and the API runtime on it; rejects
 * with the fix when the test image is missing. No skipping: a machine
 * without podman fails here, loudly.
 */
export async function startApiRuntime(
  opts: { stopTimeoutSeconds?: number } = {},
): Promise<ApiRuntimeFixture> {
  const dir = await mkdtemp(path.join(tmpdir(), "mcp-libpod-"));
  const service = new PodmanService({ socketPath: path.join(dir, "podman.sock") });
  const api = new PodmanApiRuntime({
    socketPath: service.socketPath,
    stopTimeoutSeconds: opts.stopTimeoutSeconds ?? 2,
  });
  const stop = async (containers: Iterable<string> = []): Promise<void> => {
    try {
      await Promise.all(
        [...containers].map((n) => api.remove(n, { force: true, timeoutSeconds: 0 })),
      );
    } finally {
      api.close();
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    const storage = await service.start();
    if (!(await api.imageExists(TEST_IMAGE))) {
      throw new Error(`test image ${TEST_IMAGE} is missing: run scripts/setup.sh`);
    }
    return { dir, service, api, storage, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Names `<service>-<pid>-<what>`, each remembered in `created` for the test's after(). */
export function runtimeTestNames(service: string) {
  const prefix = `${service}-${process.pid}-`;
  const created = new Set<string>();
  return {
    prefix,
    created,
    uniqueName: (what: string): string => {
      const name = `${prefix}${what}`;
      created.add(name);
      return name;
    },
    /** The test image serving $PORT on `port`, published on loopback, labelled as `service`'s. */
    httpSpec: (name: string, port: number, image = TEST_IMAGE): ContainerSpec => {
      return {
        name,
        image,
        labels: mcpLabels(service, name.slice(prefix.length), "local"),
        ports: [`127.0.0.1:${port}:${port}`],
        volumes: [],
        env: [`PORT=${port}`, "GREETING=hello world"],
        cmd: [],
      };
    },
  };
}

/** A listener on 127.0.0.1:`port` (0: any), e.g. to hold a port someone else wants. */
export function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** Polls until `url` answers 200, as a deploy's health wait would; its body. */
export async function waitForHttp(url: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return await res.text();
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${errorMessage(last)}`);
}

export async function readAll(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += String(chunk);
  return text;
}
