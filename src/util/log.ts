/**
 * Structured JSON logs to stdout (pino). No worker-thread transports: they
 * break inside a bundle and add a thread for no benefit; pipe through
 * `pino-pretty` when a human wants to read them.
 */
import { pino, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Creates a logger named `name` (e.g. "mcp-agent"). Writes are synchronous so
 * the last lines before a crash or exit are not lost.
 */
export function createLogger(level: LogLevel = "info", name = "mcp"): Logger {
  return pino(
    { level, name, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: true }),
  );
}

/** A logger that drops everything, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
