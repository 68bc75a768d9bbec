/** Crash points for unit tests of operations cut short (src/agent/operations/crash-points.ts). */
import { parseCrashAt, type CrashPoint } from "../../src/agent/operations/crash-points.js";

/**
 * A crash point that stops the operation for good at `point@component`:
 * the promise never settles, as nothing runs after a SIGKILL. Resolves
 * `reached` when it gets there.
 */
export function hangAt(at: string): { crashPoint: CrashPoint; reached: Promise<void> } {
  const target = parseCrashAt(at);
  let hit!: () => void;
  const reached = new Promise<void>((resolve) => (hit = resolve));
  const crashPoint: CrashPoint = (point, component) => {
    if (point !== target?.point || (target.component && target.component !== component)) {
      return Promise.resolve();
    }
    hit();
    return new Promise<void>(() => {});
  };
  return { crashPoint, reached };
}
