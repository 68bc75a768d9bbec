/**
 * Transport limits of the agent's gRPC listener: what one connection may
 * cost the agent before it has proved it is an operator.
 *
 * grpc-js bounds nothing of this by default: an idle HTTP/2 session lives
 * forever (`grpc.max_connection_idle_ms` is unset), a TLS client that
 * completes the handshake and then says nothing is never cut (measured: still
 * open after 150 s here, after 540 s in the original report), and a TCP
 * client that never starts TLS is cut only by Node's 120 s TLS handshake
 * timeout. So unauthenticated clients could hold the agent's file descriptors.
 *
 * The agent therefore owns its TCP listener and hands each accepted socket to
 * grpc-js (`Server.createConnectionInjector`, public API since 1.11). Every
 * socket gets a timer at accept; the first call that passes the bearer-token
 * guard clears it (`firstRequestInterceptor`, placed after the guard); a
 * socket whose timer fires first is destroyed, wherever it is: still in the
 * TCP or TLS phase, an HTTP/2 session with no stream, or a session whose
 * calls were all refused. After that first call, grpc-js's own limits apply
 * (idle timeout, keepalive, streams per connection, message size).
 */
import type { Socket } from "node:net";
import { ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import type { TransportLimits } from "../../protocol/limits.js";
import type { Logger } from "../../util/log.js";

/** The grpc-js Server options that express `limits` (everything but the gate and the cap). */
export function grpcServerOptions(limits: TransportLimits): Record<string, number> {
  return {
    "grpc.max_receive_message_length": limits.maxMessageBytes,
    "grpc.max_send_message_length": limits.maxMessageBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc.max_connection_idle_ms": limits.idleTimeoutMs,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
  };
}

/** Both ends of a connection, as a socket and a call (`getConnectionInfo`) see it. */
interface ConnectionEnds {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}

function connectionKey(c: ConnectionEnds): string {
  return `${c.remoteAddress}|${c.remotePort}|${c.localAddress}|${c.localPort}`;
}

/**
 * Accepted sockets that have not yet made an authenticated call, each with
 * the timer that destroys it.
 */
export class ConnectionGate {
  private readonly pending = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  private readonly open = new Set<Socket>();

  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /** Starts the clock for a socket just accepted. */
  admit(socket: Socket): void {
    this.open.add(socket);
    const key = connectionKey(socket);
    const timer = setTimeout(() => {
      this.pending.delete(key);
      this.logger.info(
        { peer: `${socket.remoteAddress}:${socket.remotePort}`, timeoutMs: this.timeoutMs },
        "connection closed: no authenticated call in time",
      );
      socket.destroy();
    }, this.timeoutMs);
    timer.unref();
    this.pending.set(key, { socket, timer });
    socket.once("close", () => {
      this.open.delete(socket);
      const entry = this.pending.get(key);
      if (entry?.socket === socket) {
        clearTimeout(entry.timer);
        this.pending.delete(key);
      }
    });
  }

  /** The connection made an authenticated call: it stays (grpc-js's limits apply from now on). */
  authenticated(info: ConnectionEnds): void {
    const key = connectionKey(info);
    const entry = this.pending.get(key);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(key);
  }

  /** Connections still waiting for their first authenticated call. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Destroys every socket still open (shutdown, after grpc-js had its grace). */
  destroyAll(): void {
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }
}

/**
 * Tells the gate that a call got through. Must come after the auth guard in
 * the Server's `interceptors` (grpc-js passes received metadata from the first
 * interceptor to the last, and the guard passes it on only for an accepted
 * token), so a refused call never clears the timer.
 */
export function firstRequestInterceptor(gate: ConnectionGate): ServerInterceptor {
  return (_method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, mdNext) => {
            gate.authenticated(call.getConnectionInfo());
            mdNext(md);
          },
        });
      },
    });
}
