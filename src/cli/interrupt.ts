/**
 * Ctrl-C during a command that waits for the agent (deploy, rollback). A
 * minimal, self-contained mechanism: the `cli` branch brings a shared one,
 * which can replace `processInterrupts` without touching its callers.
 */

/** Calls `stop` on an interruption; returns the unsubscribe. */
export type InterruptSource = (stop: () => void) => () => void;

/** SIGINT (Ctrl-C) of this process. While subscribed, it no longer kills the process. */
export const processInterrupts: InterruptSource = (stop) => {
  const onSignal = () => stop();
  process.on("SIGINT", onSignal);
  return () => process.off("SIGINT", onSignal);
};

/** For in-process runs (tests): nothing interrupts. */
export const noInterrupts: InterruptSource = () => () => undefined;
