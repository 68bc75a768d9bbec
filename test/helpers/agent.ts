/**
 * A real agent gRPC server for tests: `mcp-agent init` in a temp dir, then
 * startAgentServer on loopback with TLS 1.3 and the init's tokens file.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { initAgentDir, type InitOptions, type InitResult } from "../../src/agent/server/init.js";
import {
  startAgentServer,
  type AgentServer,
  type AgentServerOptions,
} from "../../src/agent/server/server.js";
import { FileTokenStore } from "../../src/auth/tokens.js";
import type { McpAgentServiceServer } from "../../src/gen/mcp/v1/mcp.js";
import type { TransportLimits } from "../../src/protocol/limits.js";
import type { Logger } from "../../src/util/log.js";

/** A port that was free a moment ago (the agent config needs a concrete one). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A fresh temp dir; remove it with `rm(dir, { recursive: true, force: true })`. */
export function tempDir(prefix = "mcp-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A logger that keeps its JSON lines in memory, to assert on audit logs. */
export function memoryLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void raw.push(s) });
  return { logger, lines: () => raw.map((s) => JSON.parse(s) as Record<string, unknown>) };
}

export interface TestAgent {
  init: InitResult;
  /** The operator token init wrote. */
  token: string;
  caCertPem: string;
  port: number;
  address: string;
  server: AgentServer;
  close(): Promise<void>;
}

export async function startTestAgent(opts: {
  impl: Partial<McpAgentServiceServer>;
  node?: string;
  logger?: Logger;
  init?: Partial<InitOptions>;
  /** Transport limits for the server (defaults: src/protocol/limits.ts). */
  limits?: Partial<TransportLimits>;
  /** Told every call's method, status and latency (the agent's `[metrics]`). */
  rpcMetrics?: AgentServerOptions["rpcMetrics"];
}): Promise<TestAgent> {
  const dir = await tempDir();
  const port = await freePort();
  const init = await initAgentDir({
    dir,
    node: opts.node ?? "test-node",
    listen: `127.0.0.1:${port}`,
    dataRoot: join(dir, "data"),
    proxy: false,
    ...opts.init,
  });
  const [cert, key, caCertPem, token] = await Promise.all(
    [init.cert, init.key, init.caCert, init.tokenFile].map((f) => readFile(f, "utf8")),
  );
  const server = await startAgentServer({
    listen: `127.0.0.1:${port}`,
    tls: { cert: cert!, key: key! },
    impl: opts.impl,
    validator: await FileTokenStore.open(init.tokensFile),
    logger: opts.logger ?? pino({ level: "silent" }),
    ...(opts.limits ? { limits: opts.limits } : {}),
    rpcMetrics: opts.rpcMetrics,
  });
  return {
    init,
    token: token!.trim(),
    caCertPem: caCertPem!,
    port: server.port,
    address: `127.0.0.1:${server.port}`,
    server,
    close: async () => {
      await server.close(1000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
