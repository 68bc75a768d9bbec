/** The `services` table: one row per deployed service. */
import type Database from "better-sqlite3";
import { McpError } from "../util/errors.js";
import { now } from "./sql.js";

export interface ServiceRow {
  name: string;
  active: boolean;
  comment: string;
  createdAt: string;
  updatedAt: string;
}

export interface ServiceInput {
  name: string;
  active: boolean;
  /** Absent keeps the stored comment ("" for a new service). */
  comment?: string;
}

interface Raw {
  name: string;
  active: number;
  comment: string;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS = "name, active, comment, created_at AS createdAt, updated_at AS updatedAt";

function toRow(r: Raw): ServiceRow {
  return { ...r, active: r.active !== 0 };
}

export class ServiceStore {
  readonly #upsert: Database.Statement<
    [{ name: string; active: number; comment: string | null; now: string }]
  >;
  readonly #get: Database.Statement<[string], Raw>;
  readonly #list: Database.Statement<[], Raw>;
  readonly #delete: Database.Statement<[string]>;
  readonly #setActive: Database.Statement<[number, string, string]>;

  constructor(db: Database.Database) {
    this.#upsert = db.prepare(`
      INSERT INTO services (name, active, comment, created_at, updated_at)
      VALUES (@name, @active, coalesce(@comment, ''), @now, @now)
      ON CONFLICT (name) DO UPDATE SET
        active = excluded.active,
        comment = coalesce(@comment, comment),
        updated_at = excluded.updated_at`);
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM services WHERE name = ?`);
    this.#list = db.prepare(`SELECT ${COLUMNS} FROM services ORDER BY name`);
    this.#delete = db.prepare("DELETE FROM services WHERE name = ?");
    this.#setActive = db.prepare("UPDATE services SET active = ?, updated_at = ? WHERE name = ?");
  }

  /** Creates the service or updates its flags; components are untouched. */
  upsert(s: ServiceInput): void {
    this.#upsert.run({
      name: s.name,
      active: s.active ? 1 : 0,
      comment: s.comment ?? null,
      now: now(),
    });
  }

  get(name: string): ServiceRow | undefined {
    const r = this.#get.get(name);
    return r && toRow(r);
  }

  /** All services, by name. */
  list(): ServiceRow[] {
    return this.#list.all().map(toRow);
  }

  /** Deletes the service with its components and their routes (cascade). */
  delete(name: string): boolean {
    return this.#delete.run(name).changes > 0;
  }

  /** Sets the flag only; the caller decides what it means for desired state. */
  setActive(name: string, active: boolean): void {
    if (this.#setActive.run(active ? 1 : 0, now(), name).changes === 0) {
      throw new McpError("not_found", `service ${name} is not registered`);
    }
  }
}
