/**
 * The agent's registry: one SQLite file that the agent alone writes. All
 * calls are synchronous (better-sqlite3) and every statement is prepared
 * once, so recording a deploy costs microseconds, not a round trip.
 */
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { ComponentStore } from "./components.js";
import { EventStore } from "./events.js";
import { migrate } from "./migrations.js";
import { ProxyRouteStore } from "./proxy-routes.js";
import { RevisionStore } from "./revisions.js";
import { RouteStore } from "./routes.js";
import { ServiceStore } from "./services.js";

export class Registry {
  readonly services: ServiceStore;
  readonly components: ComponentStore;
  readonly routes: RouteStore;
  readonly events: EventStore;
  readonly revisions: RevisionStore;
  readonly proxyRoutes: ProxyRouteStore;
  readonly path: string;
  readonly #db: Database.Database;

  constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.path = path;
    this.services = new ServiceStore(db);
    this.routes = new RouteStore(db);
    this.components = new ComponentStore(db, this.routes);
    this.events = new EventStore(db);
    this.revisions = new RevisionStore(db);
    this.proxyRoutes = new ProxyRouteStore(db);
  }

  /**
   * Runs `fn` atomically: all its writes land, or none do if it throws.
   * Nests (as a savepoint). `fn` must be synchronous: a transaction cannot
   * stay open across an await.
   */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** Closes the database; safe to call twice. */
  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/** Opens (creating and migrating as needed) the registry at `path`, or ":memory:". */
export function openRegistry(path: string): Registry {
  if (path !== ":memory:") createPrivateFile(path);
  const db = new Database(path);
  try {
    // busy_timeout first, so the switch to WAL waits for a lock instead of failing.
    db.pragma("busy_timeout = 5000");
    db.pragma("journal_mode = WAL");
    // WAL makes NORMAL crash-safe for the database; a power cut may lose the last commits only.
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    migrate(db);
    return new Registry(db, path);
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Creates the file as 0600 before SQLite opens it: it holds the node's whole
 * deployment (images, env, volumes), and SQLite gives its -wal and -shm files
 * the database file's mode.
 */
function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, "a", 0o600));
  try {
    // The mode above applies only to a new file; tighten an existing one too.
    chmodSync(path, 0o600);
  } catch {
    // Best effort: a file we do not own, or a filesystem without modes, still opens.
  }
}
