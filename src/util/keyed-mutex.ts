import { Mutex } from "./mutex.js";

/**
 * One Mutex per key (e.g. per service), created on demand and dropped when
 * idle, so operations on one service are serialised while different services
 * proceed in parallel.
 */
export class KeyedMutex {
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();
  private readonly idleListeners: ((key: string) => void)[] = [];

  /** Calls `listener` each time a key's last operation ends (the monitor catches up then). */
  onIdle(listener: (key: string) => void): void {
    this.idleListeners.push(listener);
  }

  /** Whether an operation holds or awaits the key's lock right now. */
  isLocked(key: string): boolean {
    return this.locks.has(key);
  }

  async runExclusive<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    let entry = this.locks.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.locks.set(key, entry);
    }
    entry.users++;
    try {
      return await entry.mutex.runExclusive(fn);
    } finally {
      entry.users--;
      if (entry.users === 0) {
        this.locks.delete(key);
        for (const listener of this.idleListeners) listener(key);
      }
    }
  }
}
