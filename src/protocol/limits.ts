/**
 * Transport limits shared by the agent's gRPC server and the CLI's client
 * (README "Transport limits"). Plain numbers: both sides import them, and the
 * CLI bundle must not pull grpc-js's server side in for them.
 */

/** Largest gRPC message either way, set explicitly on both sides (grpc-js's default is 4 MiB in, unlimited out). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The agent's limits per connection, with their defaults. Durations in milliseconds. */
export interface TransportLimits {
  /**
   * From TCP accept to the first authenticated call; the TLS handshake must
   * fit in it too. `[server] first_request_timeout` in mcp-agent.toml.
   */
  firstRequestTimeoutMs: number;
  /** An HTTP/2 session with no call in flight for this long is closed (GOAWAY). */
  idleTimeoutMs: number;
  /** Concurrent calls (HTTP/2 streams) per connection; a client queues the rest. */
  maxConcurrentStreams: number;
  /** Open connections, authenticated or not; more are refused at accept. */
  maxConnections: number;
  /** The agent pings each connection this often ... */
  keepaliveTimeMs: number;
  /** ... and drops it when a ping goes unanswered this long. */
  keepaliveTimeoutMs: number;
  /** Largest gRPC message either way (requests and answers). */
  maxMessageBytes: number;
}

export const DEFAULT_TRANSPORT_LIMITS: Readonly<TransportLimits> = Object.freeze({
  firstRequestTimeoutMs: 20_000,
  idleTimeoutMs: 5 * 60_000,
  maxConcurrentStreams: 100,
  maxConnections: 1000,
  keepaliveTimeMs: 2 * 60_000,
  keepaliveTimeoutMs: 20_000,
  maxMessageBytes: MAX_MESSAGE_BYTES,
});
