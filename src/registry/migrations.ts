/**
 * Schema migrations. They run in order, each in its own transaction, and are
 * recorded in `schema_migrations`. A migration that has shipped is never
 * edited: change the schema by appending a new one, so every agent's database
 * ends up identical whatever version it started from.
 */
import type Database from "better-sqlite3";
import { McpError } from "../util/errors.js";

export interface Migration {
  /**
   * 1, 2, 3, ... in increasing order. A gap is tolerated (a migration being
   * written on another branch keeps its number): whatever is not recorded as
   * applied runs, in order, so a database that got 6 before 5 gets 5 later.
   * Migrations are therefore written so they do not depend on a neighbour
   * they could be swapped with (additive columns, not table rebuilds).
   */
  version: number;
  name: string;
  /**
   * Runs inside a transaction. SQLite ignores `PRAGMA foreign_keys` there, so
   * a migration that rebuilds a table must not rely on toggling it.
   */
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "services, components, component_routes, events",
    sql: `
      CREATE TABLE services (
        name       TEXT PRIMARY KEY,
        active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        comment    TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );

      CREATE TABLE components (
        service        TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        name           TEXT NOT NULL,
        image          TEXT NOT NULL,
        version        TEXT NOT NULL DEFAULT '',
        -- The complete ComponentSpec (proto3 JSON): enough to recreate the container.
        spec           TEXT NOT NULL,
        desired_state  TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped', 'ignore')),
        observed_state TEXT NOT NULL DEFAULT 'unknown',
        container_id   TEXT NOT NULL DEFAULT '',
        started_at     TEXT,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        PRIMARY KEY (service, name)
      );

      CREATE TABLE component_routes (
        service   TEXT NOT NULL,
        component TEXT NOT NULL,
        name      TEXT NOT NULL DEFAULT '',
        -- Position in the definition: rowid alone would keep first-insert order
        -- after a redeploy reorders the routes.
        ord       INTEGER NOT NULL DEFAULT 0,
        port      INTEGER NOT NULL,
        mode      TEXT NOT NULL,
        hostname  TEXT NOT NULL DEFAULT '',
        protocol  TEXT NOT NULL DEFAULT 'tcp',
        host_port INTEGER NOT NULL DEFAULT 0 CHECK (host_port BETWEEN 0 AND 65535),
        PRIMARY KEY (service, component, name),
        FOREIGN KEY (service, component) REFERENCES components(service, name) ON DELETE CASCADE
      );
      -- A host port is recorded at most once: the database itself guards the
      -- allocator's invariant (0 = none allocated).
      CREATE UNIQUE INDEX component_routes_host_port
        ON component_routes(host_port) WHERE host_port <> 0;

      CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        service    TEXT NOT NULL,
        component  TEXT NOT NULL DEFAULT '',
        kind       TEXT NOT NULL,
        prev_state TEXT NOT NULL DEFAULT '',
        new_state  TEXT NOT NULL DEFAULT '',
        message    TEXT NOT NULL DEFAULT '',
        timestamp  TEXT NOT NULL
      );
      CREATE INDEX events_service_component_time ON events(service, component, timestamp);
      CREATE INDEX events_time ON events(timestamp);
    `,
  },
  {
    version: 2,
    name: "components: definition order, deployed_at",
    sql: `
      -- Position in the service definition, so listings and exports keep the
      -- operator's order rather than the alphabet's.
      ALTER TABLE components ADD COLUMN ord INTEGER NOT NULL DEFAULT 0;
      -- When the agent last started a container from the stored spec (deploy,
      -- start, recover); NULL for components only synced or adopted, or
      -- undeployed. Recovery at start recreates only components that have one.
      ALTER TABLE components ADD COLUMN deployed_at TEXT;
    `,
  },
  {
    version: 3,
    name: "components: pending operation",
    sql: `
      -- A deploy, start or recovery of this component that has begun and not
      -- yet finished: JSON with the registry state to go back to. Written
      -- before the component's container is touched and cleared when the
      -- operation commits or rolls back, so an agent killed in between knows
      -- at start which components to finish or undo (src/agent/operations/interrupted.ts).
      ALTER TABLE components ADD COLUMN pending TEXT;
    `,
  },
  {
    version: 4,
    name: "revisions",
    sql: `
      -- One revision per deploy of a service, a row per component it touched
      -- (src/registry/revisions.ts). Not tied to components by a foreign key:
      -- the history outlives an undeploy or purge.
      CREATE TABLE revisions (
        service     TEXT NOT NULL,
        revision    INTEGER NOT NULL CHECK (revision > 0),
        component   TEXT NOT NULL,
        image       TEXT NOT NULL,
        spec        TEXT NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
        message     TEXT NOT NULL DEFAULT '',
        deployed_at TEXT NOT NULL,
        PRIMARY KEY (service, revision, component)
      );
    `,
  },
  // 5 is being written on another branch; see Migration.version.
  {
    version: 6,
    name: "revisions: kind, rollback_to, restored",
    sql: `
      -- A revision made by mcp rollback says so, and names the revision
      -- whose spec it deployed again (src/agent/operations/rollback.ts).
      ALTER TABLE revisions ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy'
        CHECK (kind IN ('deploy', 'rollback'));
      ALTER TABLE revisions ADD COLUMN rollback_to INTEGER NOT NULL DEFAULT 0
        CHECK (rollback_to >= 0);
      -- outcome 'failed' with restored = 1 is "rolled back": the component's
      -- new version failed and the one it replaced serves again. A column
      -- rather than a third outcome: widening the CHECK above would mean
      -- rebuilding the table.
      ALTER TABLE revisions ADD COLUMN restored INTEGER NOT NULL DEFAULT 0
        CHECK (restored IN (0, 1));
    `,
  },
];

/**
 * Brings the database up to the newest migration and returns the versions
 * applied now (empty when it was already current).
 */
export function migrate(db: Database.Database, migrations = MIGRATIONS): number[] {
  migrations.forEach((m, i) => {
    const before = i === 0 ? 0 : (migrations[i - 1]?.version ?? 0);
    if (!Number.isInteger(m.version) || m.version <= before) {
      throw new McpError(
        "internal",
        `migration #${i} has version ${m.version}, expected a number above ${before}`,
      );
    }
  });

  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const record = db.prepare(
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
  );

  const have = new Set(
    db.prepare("SELECT version FROM schema_migrations").pluck().all() as number[],
  );
  const known = new Set(migrations.map((m) => m.version));
  // An older agent must not write to a schema it does not understand.
  const unknown = [...have].filter((v) => !known.has(v)).sort((a, b) => a - b);
  if (unknown.length > 0) {
    throw new McpError(
      "failed_precondition",
      `registry schema has migration ${unknown.join(", ")}, which this agent does not know (it knows up to ${Math.max(0, ...known)})`,
    );
  }

  const applied: number[] = [];
  for (const m of migrations.filter((m) => !have.has(m.version))) {
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    })();
    applied.push(m.version);
  }
  return applied;
}

/** The applied migrations, oldest first. */
export function appliedMigrations(
  db: Database.Database,
): { version: number; name: string; appliedAt: string }[] {
  return db
    .prepare(
      "SELECT version, name, applied_at AS appliedAt FROM schema_migrations ORDER BY version",
    )
    .all() as { version: number; name: string; appliedAt: string }[];
}
