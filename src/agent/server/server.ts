/**
 * The agent's gRPC server: McpAgentService over TLS 1.3 only, every call
 * through the bearer-token guard, every method present (UNIMPLEMENTED when the
 * agent has no handler for it yet), every connection within the transport
 * limits of transport.ts.
 */
import {
  Server,
  status,
  type sendUnaryData,
  type ServerErrorResponse,
  type ServerWritableStream,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { createServer, type AddressInfo } from "node:net";
import { authInterceptor } from "../../auth/guard.js";
import type { MetricsRecorder } from "../metrics/recorder.js";
import { rpcMetricsInterceptor } from "../metrics/rpc.js";
import type { TokenValidator } from "../../auth/tokens.js";
import { McpAgentServiceService, type McpAgentServiceServer } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { Logger } from "../../util/log.js";
import { parseHostPort } from "../../config/address.js";
import { toServiceError } from "./rpc.js";
import { tls13ServerCredentials } from "./tls.js";
import { DEFAULT_TRANSPORT_LIMITS, type TransportLimits } from "../../protocol/limits.js";
import { ConnectionGate, firstRequestInterceptor, grpcServerOptions } from "./transport.js";

export interface AgentServerOptions {
  /** `host:port`; port 0 picks a free port (see AgentServer.port). */
  listen: string;
  /** PEM contents (not paths) of the server certificate and key. */
  tls: { cert: string; key: string };
  impl: Partial<McpAgentServiceServer>;
  validator: TokenValidator;
  logger: Logger;
  /** Transport limits; any not given keeps its default (DEFAULT_TRANSPORT_LIMITS, src/protocol/limits.ts). */
  limits?: Partial<TransportLimits>;
  /** Told every call's method, status and latency (`[metrics]`); absent: not counted. */
  rpcMetrics?: Pick<MetricsRecorder, "rpcEnded"> | undefined;
}

export interface AgentServer {
  port: number;
  /** Stops accepting calls, waits up to `graceMs` for running ones, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

type MethodName = keyof typeof McpAgentServiceService;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === "function";
}

type UnaryHandler = (
  call: ServerUnaryCall<unknown, unknown>,
  cb: sendUnaryData<unknown>,
) => unknown;
type StreamHandler = (call: ServerWritableStream<unknown, unknown>) => unknown;

/**
 * Wraps a unary handler so a throw or a rejected promise (async handlers)
 * answers the call with a proper status instead of crashing the agent with an
 * unhandled rejection or leaving the client hanging.
 */
function unary(name: string, handler: UnaryHandler | undefined, logger: Logger): UnaryHandler {
  if (!handler) {
    return (_call, cb) =>
      cb({ code: status.UNIMPLEMENTED, details: `${name} is not implemented by this agent` });
  }
  return (call, cb) => {
    let answered = false;
    const answer: sendUnaryData<unknown> = (...args) => {
      answered = true;
      cb(...args);
    };
    const fail = (err: unknown) => {
      if (answered) logger.error({ method: name, err }, "handler failed after answering");
      else answer(toServiceError(err));
    };
    try {
      const result = handler(call, answer);
      if (isThenable(result)) result.then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  };
}

/** Same for server-streaming handlers: failures end the stream with a status. */
function streaming(
  name: string,
  handler: StreamHandler | undefined,
  logger: Logger,
): StreamHandler {
  const end = (call: ServerWritableStream<unknown, unknown>, err: ServerErrorResponse) => {
    if (call.writableEnded || call.destroyed) {
      logger.error({ method: name, err }, "handler failed after ending the stream");
    } else {
      // grpc-js turns an 'error' event on the call into the final status.
      call.emit("error", err);
    }
  };
  if (!handler) {
    return (call) =>
      end(
        call,
        Object.assign(new Error("unimplemented"), {
          code: status.UNIMPLEMENTED,
          details: `${name} is not implemented by this agent`,
        }),
      );
  }
  return (call) => {
    const fail = (err: unknown) => end(call, toServiceError(err));
    try {
      const result = handler(call);
      if (isThenable(result)) result.then(undefined, fail);
    } catch (err) {
      fail(err);
    }
  };
}

/** A full service implementation: the given handlers, hardened, and stubs for the rest. */
export function completeService(
  impl: Partial<McpAgentServiceServer>,
  logger: Logger,
): McpAgentServiceServer {
  const out: UntypedServiceImplementation = {};
  for (const name of Object.keys(McpAgentServiceService) as MethodName[]) {
    const def = McpAgentServiceService[name];
    const handler: unknown = impl[name];
    if (def.requestStream) {
      // No client-streaming RPCs exist today; fail loudly rather than mis-serve one.
      throw new Error(`client-streaming method ${name} is not supported by completeService`);
    }
    out[name] = def.responseStream
      ? streaming(name, handler as StreamHandler | undefined, logger)
      : unary(name, handler as UnaryHandler | undefined, logger);
  }
  return out as McpAgentServiceServer;
}

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const { host, port: wantedPort } = parseHostPort(opts.listen); // a clear error beats grpc-js's
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT_LIMITS, ...opts.limits };
  const { logger } = opts;
  const gate = new ConnectionGate(limits.firstRequestTimeoutMs, logger);
  const server = new Server({
    // The guard: one interceptor, applied by grpc-js to every call of every
    // method. The gate's comes after it, so only accepted calls reach it.
    // The metrics' comes first: grpc-js nests the list, the first innermost,
    // so it sees the statuses the guard sends too (metrics/rpc.ts).
    interceptors: [
      ...(opts.rpcMetrics ? [rpcMetricsInterceptor(opts.rpcMetrics)] : []),
      authInterceptor(opts.validator, logger),
      firstRequestInterceptor(gate),
    ],
    ...grpcServerOptions(limits),
  });
  server.addService(McpAgentServiceService, completeService(opts.impl, logger));
  const injector = server.createConnectionInjector(
    tls13ServerCredentials(opts.tls, { handshakeTimeoutMs: limits.firstRequestTimeoutMs }),
  );

  // Our own TCP listener (see transport.ts): every socket is admitted to the
  // gate, then handed to grpc-js, which does TLS, HTTP/2 and the calls.
  const tcp = createServer();
  tcp.maxConnections = limits.maxConnections;
  let lastDropLog = 0;
  let dropped = 0;
  tcp.on("drop", (data) => {
    dropped += 1;
    // A flood must not flood the log too: one line per 10 s at most.
    if (Date.now() - lastDropLog < 10_000) return;
    lastDropLog = Date.now();
    logger.warn(
      { peer: `${data?.remoteAddress}:${data?.remotePort}`, dropped, max: limits.maxConnections },
      "connection refused: too many open connections",
    );
    dropped = 0;
  });
  tcp.on("connection", (socket) => {
    // The TLS socket wrapping it reports errors; this only keeps a reset
    // during the first bytes from being an unhandled 'error'.
    socket.on("error", () => {});
    gate.admit(socket);
    injector.injectConnection(socket);
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    const failed = (err: Error) =>
      reject(new McpError("unavailable", `cannot listen on ${opts.listen}: ${err.message}`));
    tcp.once("error", failed);
    tcp.listen({ host, port: wantedPort }, () => {
      tcp.off("error", failed);
      resolvePort((tcp.address() as AddressInfo).port);
    });
  });
  // After listening, accept errors (EMFILE ...) are logged, never fatal.
  tcp.on("error", (err) => logger.error({ err }, "accepting a connection failed"));
  logger.info(
    {
      listen: opts.listen,
      port,
      firstRequestTimeoutMs: limits.firstRequestTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      maxConnections: limits.maxConnections,
      maxConcurrentStreams: limits.maxConcurrentStreams,
    },
    "agent listening (TLS 1.3)",
  );

  const close = (graceMs = 5000) =>
    new Promise<void>((done) => {
      tcp.close();
      const finish = () => {
        clearTimeout(timer);
        // Sockets that never became a gRPC session (mid-handshake, silent).
        gate.destroyAll();
        done();
      };
      // Streaming calls (logs --follow) may never end on their own.
      const timer = setTimeout(() => {
        server.forceShutdown();
        finish();
      }, graceMs);
      server.tryShutdown(finish);
    });
  return { port, close };
}
