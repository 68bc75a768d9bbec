/**
 * What the runtime integration tests share (test/integration/podman.test.ts
 * for the CLI runtime, libpod.test.ts for the API one): container names
 * unique to the test process and remembered for clean-up, the test image's
 * HTTP spec, waiting for it to answer, a listener to hold a port, reading a
 * stream to its end.
 */
import net from "node:net";
import type { Readable } from "node:stream";
import { mcpLabels, type ContainerSpec } from "../../src/runtime/index.js";
import { errorMessage } from "../../src/util/errors.js";
import { TEST_IMAGE } from "./live-agent.js";

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
