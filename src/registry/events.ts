/**
 * The `events` table: an append-only log of state changes and other
 * happenings, read by `mcp` and by flap detection, pruned by the monitor.
 */
import type Database from "better-sqlite3";
import { McpError } from "../util/errors.js";
import { isoTime, now } from "./sql.js";

/** The kind of event the monitor writes when an observed state changes. */
export const STATE_EVENT = "state";

export interface EventRow {
  id: number;
  service: string;
  /** "" for an event about the whole service. */
  component: string;
  kind: string;
  prevState: string;
  newState: string;
  message: string;
  timestamp: string;
}

export interface EventInput {
  service: string;
  component?: string;
  kind: string;
  prevState?: string;
  newState?: string;
  message?: string;
  /** Default: now. */
  timestamp?: string;
}

export interface EventFilter {
  service?: string;
  /** "" selects service-level events. */
  component?: string;
  limit?: number;
  /** Inclusive. */
  since?: string;
}

const COLUMNS = `id, service, component, kind, prev_state AS prevState, new_state AS newState,
  message, timestamp`;

type ListParams = { service?: string; component?: string; since?: string; limit: number };

export class EventStore {
  readonly #db: Database.Database;
  readonly #add: Database.Statement<[Required<EventInput>]>;
  readonly #count: Database.Statement<[string, string, string, string], number>;
  readonly #prune: Database.Statement<[string]>;
  /**
   * One statement per filter shape, prepared on first use: a plain
   * `service = ?` lets SQLite use the index, `(? IS NULL OR ...)` does not.
   */
  readonly #lists = new Map<string, Database.Statement<[ListParams], EventRow>>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.#add = db.prepare(`
      INSERT INTO events (service, component, kind, prev_state, new_state, message, timestamp)
      VALUES (@service, @component, @kind, @prevState, @newState, @message, @timestamp)`);
    this.#count = db
      .prepare<[string, string, string, string], number>(
        `SELECT count(*) FROM events
         WHERE service = ? AND component = ? AND kind = ? AND timestamp >= ?`,
      )
      .pluck();
    this.#prune = db.prepare("DELETE FROM events WHERE timestamp < ?");
  }

  /** Appends an event and returns its id. */
  add(e: EventInput): number {
    const info = this.#add.run({
      service: e.service,
      component: e.component ?? "",
      kind: e.kind,
      prevState: e.prevState ?? "",
      newState: e.newState ?? "",
      message: e.message ?? "",
      timestamp: e.timestamp === undefined ? now() : isoTime(e.timestamp, "event timestamp"),
    });
    return Number(info.lastInsertRowid);
  }

  /** Matching events, newest first. */
  list(f: EventFilter = {}): EventRow[] {
    if (f.limit !== undefined && (!Number.isInteger(f.limit) || f.limit < 0)) {
      throw new McpError("invalid_argument", `event limit ${f.limit} is not a count`);
    }
    const params: ListParams = { limit: f.limit ?? -1 };
    const where: string[] = [];
    if (f.service !== undefined) {
      where.push("service = @service");
      params.service = f.service;
    }
    if (f.component !== undefined) {
      where.push("component = @component");
      params.component = f.component;
    }
    if (f.since !== undefined) {
      where.push("timestamp >= @since");
      params.since = isoTime(f.since, "since");
    }
    const key = where.join(" AND ");
    let stmt = this.#lists.get(key);
    if (!stmt) {
      stmt = this.#db.prepare(
        `SELECT ${COLUMNS} FROM events ${key && `WHERE ${key}`}
         ORDER BY timestamp DESC, id DESC LIMIT @limit`,
      );
      this.#lists.set(key, stmt);
    }
    return stmt.all(params);
  }

  /** How many state changes the component had since `sinceIso` (flap detection). */
  countTransitions(service: string, component: string, sinceIso: string): number {
    return this.#count.get(service, component, STATE_EVENT, isoTime(sinceIso, "since")) ?? 0;
  }

  /** Deletes events older than `beforeIso`; returns how many. */
  prune(beforeIso: string): number {
    return this.#prune.run(isoTime(beforeIso, "before")).changes;
  }
}
