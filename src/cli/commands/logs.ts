/**
 * `mcp logs <service>[/<component>] [-n N] [-f] [-t] [--since T]`: the Logs
 * server stream, written to stdout byte for byte as it arrives.
 *
 * Ending:
 * - the stream ends (all lines shown; with -f: the container stopped) → 0;
 * - Ctrl-C (SIGINT) or SIGTERM → the call is cancelled (the agent kills its
 *   `podman logs`), exit 130 (128 + SIGINT) or 143; Ctrl-C prints
 *   `mcp: interrupted` on stderr, like every command (../interrupt.ts).
 *   We chose the shell's convention for a program stopped by a signal over 0
 *   so that a script or loop running `mcp logs -f` sees the interruption
 *   (e.g. `set -e`), as it would for `tail -f`;
 * - the reader of stdout goes away (`mcp logs x | head -1`) → the call is
 *   cancelled, exit 0;
 * - any failure (unknown service, refused token, unreachable node, podman
 *   error) → one line on stderr, exit 1.
 */
import type { ClientReadableStream } from "@grpc/grpc-js";
import { checkSince, parseTail } from "../../protocol/logs-options.js";
import type { LogsRequest, LogsResponse } from "../../gen/mcp/v1/mcp.js";
import type { AgentClient } from "../client.js";
import { processIO, type CliContext } from "../context.js";
import { onInterrupt } from "../interrupt.js";
import { EXIT } from "../outcome.js";
import { nodeOfService, parseTarget } from "./deploy.js";

export interface LogsOptions {
  tail?: string;
  follow?: boolean;
  timestamps?: boolean;
  since?: string;
  node?: string;
}

/** Where the bytes go and where interruptions come from (process stdout and signals by default). */
export interface LogsSink {
  /** Writes one chunk; resolves when more may be written (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** Calls `stop(code)` on an interruption (exit code) or when the reader went away (0); returns an unsubscribe. */
  onStop(stop: (code: number) => void): () => void;
}

/** SIGTERM stops a stream with 128 + its number; SIGINT goes through onInterrupt (130). */
const SIGTERM_EXIT = 143;

/** stdout with backpressure; SIGINT/SIGTERM and a closed stdout stop the stream. */
export const processSink: LogsSink = {
  write(chunk) {
    const out = process.stdout;
    if (out.destroyed || out.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        out.off("drain", done);
        out.off("close", done);
        resolve();
      };
      out.once("drain", done);
      out.once("close", done);
    });
  },
  onStop(stop) {
    // Ctrl-C: cancel the call, then the CLI prints "interrupted" and exits 130.
    const offInterrupt = onInterrupt(() => {
      stop(EXIT.interrupted);
    });
    const onTerm = () => stop(SIGTERM_EXIT);
    process.on("SIGTERM", onTerm);
    // EPIPE: whoever read our stdout is gone; stop quietly (not an uncaught error).
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") stop(0);
    };
    process.stdout.on("error", onError);
    return () => {
      offInterrupt();
      process.off("SIGTERM", onTerm);
      // Keep a listener for late EPIPEs so they are never thrown as uncaught errors.
      process.stdout.off("error", onError);
      process.stdout.on("error", () => {});
    };
  },
};

/** A sink for an in-process CliIO (tests): text through io.out, no signals. */
function ioSink(ctx: CliContext): LogsSink {
  return {
    write: (chunk) => Promise.resolve(ctx.io.out(Buffer.from(chunk).toString("utf8"))),
    onStop: () => () => {},
  };
}

/** Builds the request from the command line (everything checked before dialling). */
export function logsRequest(target: string, opts: LogsOptions): LogsRequest {
  const { service, component } = parseTarget(target);
  return {
    service,
    component,
    tail: opts.tail !== undefined ? parseTail(opts.tail) : 0,
    follow: opts.follow ?? false,
    timestamps: opts.timestamps ?? false,
    since: opts.since !== undefined ? checkSince(opts.since) : "",
  };
}

/** Streams one Logs call into `sink`; resolves to the exit code. */
export async function streamToSink(
  client: AgentClient,
  req: LogsRequest,
  sink: LogsSink,
): Promise<number> {
  const call: ClientReadableStream<LogsResponse> = client.raw.logs(req);
  let stopped: number | undefined;
  const unsubscribe = sink.onStop((code) => {
    stopped ??= code;
    call.cancel();
  });
  try {
    for await (const msg of call as AsyncIterable<LogsResponse>) {
      if (stopped !== undefined) break;
      await sink.write(msg.data);
    }
    return stopped ?? 0;
  } catch (err) {
    if (stopped !== undefined) return stopped;
    throw await client.explain(err, "logs");
  } finally {
    unsubscribe();
    // After a normal end this is a no-op; after a break it tells the agent to stop podman.
    call.on("error", () => {});
    call.cancel();
  }
}

export async function logsCommand(
  ctx: CliContext,
  target: string,
  opts: LogsOptions,
  sink: LogsSink = ctx.io === processIO ? processSink : ioSink(ctx),
): Promise<number> {
  const req = logsRequest(target, opts);
  const node = await nodeOfService(ctx, req.service, opts.node);
  return ctx.withClient(node, (client) => streamToSink(client, req, sink));
}
