/** Small helpers shared by the table modules. */
import Database from "better-sqlite3";
import { McpError } from "../util/errors.js";

/** Now, as the ISO-8601 UTC string every timestamp column holds. */
export function now(): string {
  return new Date().toISOString();
}

/**
 * Normalises a caller's timestamp to `toISOString()` form. Timestamps are
 * compared as strings, which is only chronological when they all share one
 * format (`...:00Z` would sort after `...:00.000Z`).
 */
export function isoTime(value: string, what: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new McpError("invalid_argument", `${what}: not a timestamp: ${value}`);
  return new Date(ms).toISOString();
}

/** True if `err` is a SQLite error with this extended code, e.g. SQLITE_CONSTRAINT_UNIQUE. */
export function isSqliteError(err: unknown, code: string): boolean {
  return err instanceof Database.SqliteError && err.code === code;
}
