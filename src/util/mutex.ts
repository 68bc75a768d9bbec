/**
 * A minimal async mutex: callers queue on a promise chain, so critical
 * sections run one at a time in call (FIFO) order. No timeouts and no
 * re-entrancy: calling runExclusive from inside fn on the same Mutex deadlocks.
 */
export class Mutex {
  /** Settles when the last queued critical section has finished. */
  private tail: Promise<void> = Promise.resolve();

  runExclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.tail.then(() => fn());
    // The next caller waits for this one to settle either way, so a throwing
    // fn releases the lock instead of wedging every later caller.
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
