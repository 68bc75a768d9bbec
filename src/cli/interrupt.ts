/**
 * Ctrl-C (SIGINT) while any command runs: one line on stderr, exit 130
 * (128 + SIGINT, the shell's convention, so `set -e` scripts and loops see
 * the interruption). src/bin/mcp-cli.ts installs the one process handler; a
 * command that has more to say (deploy: the agent finishes or rolls back)
 * or something to do first (logs: cancel the stream) registers with
 * `onInterrupt` for as long as it runs:
 *
 * ```ts
 * const off = onInterrupt(() => `interrupted; the agent finishes deploying ${name}: check with "mcp status ${name}"`);
 * try { ... } finally { off(); }
 * ```
 *
 * The handler registered last wins; it runs synchronously, may cancel calls,
 * and returns the line to print after `mcp: ` (undefined: `interrupted`).
 * The process then exits 130 without waiting for the command: whatever it
 * sent the agent is the agent's to finish (the CLI never undoes work on
 * Ctrl-C). Nothing here runs unless installInterruptHandler was called, so
 * in-process tests (runCli) never touch process signals.
 */
import { EXIT } from "./outcome.js";

/** What to print on Ctrl-C (after `mcp: `); undefined keeps `interrupted`. */
export type InterruptHandler = () => string | undefined | void;

export const INTERRUPTED_MESSAGE = "interrupted";

const handlers: InterruptHandler[] = [];
let interrupted = false;

/** Whether Ctrl-C was pressed (the exit code is then 130, whatever the command returns). */
export function wasInterrupted(): boolean {
  return interrupted;
}

/**
 * Makes `handler` what Ctrl-C runs until the returned function is called
 * (registrations nest: the latest one wins, removing it restores the one
 * before).
 */
export function onInterrupt(handler: InterruptHandler): () => void {
  handlers.push(handler);
  return () => {
    const at = handlers.lastIndexOf(handler);
    if (at >= 0) handlers.splice(at, 1);
  };
}

/**
 * The line Ctrl-C prints now, running the current handler (its failure
 * must not keep the CLI from stopping: the default line then).
 */
export function interruptLine(): string {
  const handler = handlers[handlers.length - 1];
  let message: string | undefined;
  try {
    message = handler?.() ?? undefined;
  } catch {
    message = undefined;
  }
  return `mcp: ${message || INTERRUPTED_MESSAGE}\n`;
}

/** How long `exit` may take to flush output after Ctrl-C (a stalled stdout reader). */
const EXIT_GRACE_MS = 1000;

/**
 * Installs the process's SIGINT handler: print the line, then `exit(130)`
 * (which flushes output first; at most EXIT_GRACE_MS). A second Ctrl-C
 * exits at once.
 */
export function installInterruptHandler(
  exit: (code: number) => unknown,
  write: (text: string) => void = (text) => void process.stderr.write(text),
): void {
  process.on("SIGINT", () => {
    if (interrupted) process.exit(EXIT.interrupted);
    interrupted = true;
    process.exitCode = EXIT.interrupted;
    write(interruptLine());
    setTimeout(() => process.exit(EXIT.interrupted), EXIT_GRACE_MS).unref();
    void exit(EXIT.interrupted);
  });
}
