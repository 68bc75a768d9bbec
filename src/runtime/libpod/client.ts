/**
 * A small HTTP client for Podman's API over its unix socket, on Node's own
 * `http`: JSON calls with a time bound, streaming calls (logs, exec output),
 * and the frame format those streams use. Every failure is a LibpodError
 * carrying podman's own message, which ../errors.ts classifies.
 */
import http from "node:http";
import { PassThrough, type Readable } from "node:stream";
import { LibpodError, libpodErrorFromBody } from "./errors.js";
import type { ApiRequest } from "./requests.js";

export interface LibpodClientOptions {
  /** The service's socket (`/run/…/podman.sock`; no `unix://`). */
  socketPath: string;
  /** Upper bound of a call that sets none; a wedged service must not hang the agent. */
  timeoutMs?: number;
}

export interface CallOptions {
  /** The operation, for messages (`start`, `create`…). */
  what: string;
  /** Upper bound of the whole call, answer read; 0 for none. */
  timeoutMs?: number;
}

export interface ApiResponse {
  status: number;
  body: string;
}

/** A streaming call: the body once the status says success, and a way to end it early. */
export interface ApiStream {
  /** Resolves with the answer's body (2xx/3xx); rejects with a LibpodError otherwise. */
  response: Promise<http.IncomingMessage>;
  /** Ends the call; the body ends (or `response` rejects) soon after. */
  abort(): void;
}

/** Idle connections kept open for the next calls (more run at once when needed). */
const MAX_IDLE_CONNECTIONS = 8;

/** Bodies above this are refused: the largest answer is a list of every container. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export class LibpodClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  // Kept alive: a call then costs no connect (measured in the final report of issue 9).
  // A few idle ones only: after 100 deploys at once the default (256) kept
  // 100 connections open for good, each costing memory here and in podman.
  private readonly agent = new http.Agent({
    keepAlive: true,
    maxFreeSockets: MAX_IDLE_CONNECTIONS,
  });

  constructor(opts: LibpodClientOptions) {
    this.socketPath = opts.socketPath;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** Closes idle connections; calls in flight are cut. */
  close(): void {
    this.agent.destroy();
  }

  /** One call, its whole answer read. Rejects with a LibpodError on HTTP >= 400 or no answer. */
  async call(req: ApiRequest, opts: CallOptions): Promise<ApiResponse> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const { request, response } = this.send(req, opts.what);
    const timer =
      timeoutMs > 0
        ? setTimeout(() => request.destroy(timeout(opts.what, timeoutMs)), timeoutMs)
        : undefined;
    try {
      const res = await response;
      const body = await readBody(res, opts.what);
      const status = res.statusCode ?? 0;
      if (status >= 400) throw libpodErrorFromBody(opts.what, status, body);
      return { status, body };
    } catch (err) {
      throw asLibpodError(err, opts.what);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A call answered with JSON. */
  async json(req: ApiRequest, opts: CallOptions): Promise<unknown> {
    const { status, body } = await this.call(req, opts);
    try {
      return body ? (JSON.parse(body) as unknown) : undefined;
    } catch (err) {
      throw new LibpodError({
        what: opts.what,
        status,
        reason: "the answer is not JSON",
        cause: err,
      });
    }
  }

  /**
   * A call whose answer is read as it comes (logs, exec). `timeoutMs` bounds
   * only the wait for the status line: a followed log has no end.
   */
  stream(req: ApiRequest, opts: CallOptions): ApiStream {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const { request, response: raw } = this.send(req, opts.what);
    const timer =
      timeoutMs > 0
        ? setTimeout(() => request.destroy(timeout(opts.what, timeoutMs)), timeoutMs)
        : undefined;
    const response = raw.then(
      async (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        if (status < 400) return res;
        throw libpodErrorFromBody(opts.what, status, await readBody(res, opts.what));
      },
      (err: unknown) => {
        clearTimeout(timer);
        throw asLibpodError(err, opts.what);
      },
    );
    return { response, abort: () => request.destroy() };
  }

  private send(req: ApiRequest, what: string) {
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: http.OutgoingHttpHeaders = {};
    if (payload) {
      headers["content-type"] = "application/json";
      headers["content-length"] = payload.length;
    }
    const request = http.request({
      socketPath: this.socketPath,
      agent: this.agent,
      method: req.method,
      path: req.path,
      // The socket has no host name; podman ignores this but HTTP/1.1 needs one.
      host: "podman",
      headers,
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      request.once("response", resolve);
      request.once("error", (err) => reject(asLibpodError(err, what)));
    });
    request.end(payload);
    return { request, response };
  }
}

function timeout(what: string, ms: number): LibpodError {
  return new LibpodError({ what, status: 0, timedOut: true, reason: `no answer after ${ms} ms` });
}

/** Transport failures (ECONNREFUSED: no service; ECONNRESET: it died) as LibpodErrors with status 0. */
export function asLibpodError(err: unknown, what: string): LibpodError {
  if (err instanceof LibpodError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new LibpodError({ what, status: 0, reason, cause: err });
}

async function readBody(res: Readable, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) {
      res.destroy();
      throw new LibpodError({ what, status: 0, reason: `answer over ${MAX_BODY_BYTES} bytes` });
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}

// ------------------------------------------------------------------ frames

/** Which stream a frame carries: podman writes 1 (stdout) and 2 (stderr); 0 would be stdin. */
export type FrameStream = 0 | 1 | 2 | 3;

export interface Frame {
  stream: FrameStream;
  data: Buffer;
}

/**
 * The multiplexed stream of logs and exec output without a TTY: frames of an
 * 8-byte header (stream type, three zero bytes, big-endian uint32 length)
 * and that many bytes. Measured on 4.3.1: libpod's logs are framed even for a
 * container with a TTY. Chunks may split a frame anywhere; `push` returns the
 * frames completed so far and keeps the rest.
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const frames: Frame[] = [];
    while (this.buffer.length >= 8) {
      const type = this.buffer[0] ?? 1;
      const length = this.buffer.readUInt32BE(4);
      if (this.buffer.length < 8 + length) break;
      const stream: FrameStream = type <= 3 ? (type as FrameStream) : 1;
      frames.push({ stream, data: this.buffer.subarray(8, 8 + length) });
      this.buffer = this.buffer.subarray(8 + length);
    }
    return frames;
  }

  /** Bytes of an incomplete frame still held (0 at a clean end). */
  get pending(): number {
    return this.buffer.length;
  }
}

/**
 * Splits a framed body into stdout and stderr streams (stdin frames, which
 * podman never sends, go to stdout; its error frames, type 3, to stderr).
 * Both end when the body ends, fails or is destroyed; backpressure on either
 * pauses the body. `ended` settles then: resolves at a clean end, rejects with
 * the body's error (a cut connection, an incomplete last frame).
 */
export function demuxFrames(body: Readable): {
  stdout: PassThrough;
  stderr: PassThrough;
  ended: Promise<void>;
} {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const decoder = new FrameDecoder();
  const resume = () => body.resume();
  stdout.on("drain", resume);
  stderr.on("drain", resume);
  body.on("data", (chunk: Buffer) => {
    let ok = true;
    for (const f of decoder.push(chunk)) {
      ok = (f.stream >= 2 ? stderr : stdout).write(f.data) && ok;
    }
    if (!ok) body.pause();
  });
  const ended = new Promise<void>((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      stdout.end();
      stderr.end();
      if (err) reject(err);
      else if (decoder.pending > 0) reject(new Error(`stream cut inside a frame`));
      else resolve();
    };
    body.once("end", () => finish());
    body.once("error", (err) => finish(err));
    // Destroyed without an error (an abort): whatever arrived is all there is.
    body.once("close", () =>
      finish(body.readableEnded ? undefined : new Error("stream closed early")),
    );
  });
  return { stdout, stderr, ended };
}
