/**
 * Schema migrations. They run in order, each in its own transaction, and are
 * recorded in `schema_migrations`. A migration that has shipped is never
 * edited: change the schema by appending a new one, so every agent's database
 * ends up identical whatever version it started from.
 */
import type Database from "better-sqlite3";
import { McpError } from "../util/errors.js";

export interface Migration {
  /** 1, 2, 3, ... with no gaps. */
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
  {
    version: 5,
    name: "components: health",
    sql: `
      -- What the monitor's health checks last concluded (src/health/state.ts):
      -- '' not checked, starting, healthy, unhealthy, none (no check defined);
      -- the last check's output and when it ran. Consecutive failures are
      -- kept in memory only.
      ALTER TABLE components ADD COLUMN health TEXT NOT NULL DEFAULT ''
        CHECK (health IN ('', 'starting', 'healthy', 'unhealthy', 'none'));
      ALTER TABLE components ADD COLUMN health_output TEXT NOT NULL DEFAULT '';
      ALTER TABLE components ADD COLUMN health_checked_at TEXT;
    `,
  },
  {
    version: 6,
    name: "revisions: rolled back",
    sql: `
      -- A health-gated deploy whose new version failed after the old one had
      -- stopped, and the old one runs again, is "rolled back" (README,
      -- "History and rollback"). SQLite cannot change a CHECK: the table is
      -- rebuilt.
      CREATE TABLE revisions_new (
        service     TEXT NOT NULL,
        revision    INTEGER NOT NULL CHECK (revision > 0),
        component   TEXT NOT NULL,
        image       TEXT NOT NULL,
        spec        TEXT NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'rolled back')),
        message     TEXT NOT NULL DEFAULT '',
        deployed_at TEXT NOT NULL,
        PRIMARY KEY (service, revision, component)
      );
      INSERT INTO revisions_new SELECT service, revision, component, image, spec, outcome, message, deployed_at FROM revisions;
      DROP TABLE revisions;
      ALTER TABLE revisions_new RENAME TO revisions;
      `,
  },
  {
    version: 7,
    name: "revisions: kind, rollback_to",
    sql: `
      -- A revision made by mcp rollback says so, and names the revision
      -- whose spec it deployed again (src/agent/operations/rollback.ts).
      ALTER TABLE revisions ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy'
        CHECK (kind IN ('deploy', 'rollback'));
      ALTER TABLE revisions ADD COLUMN rollback_to INTEGER NOT NULL DEFAULT 0
        CHECK (rollback_to >= 0);
    `,
  },
  {
    version: 8,
    name: "edge: proxy routes, standby ports",
    sql: `
      -- What the agent's proxy serves (docs/ARCHITECTURE.md "Edge"): one row
      -- per listener port and hostname, the backend it goes to, and who owns
      -- it: a service's route, or (service '') one added by mcp route add.
      -- HAProxy's map files are rendered from these rows.
      CREATE TABLE proxy_routes (
        listener       INTEGER NOT NULL CHECK (listener BETWEEN 1 AND 65535),
        hostname       TEXT NOT NULL,
        mode           TEXT NOT NULL CHECK (mode IN ('l4', 'l7')),
        backend_host   TEXT NOT NULL DEFAULT '127.0.0.1',
        backend_port   INTEGER NOT NULL CHECK (backend_port BETWEEN 1 AND 65535),
        proxy_protocol INTEGER NOT NULL DEFAULT 0 CHECK (proxy_protocol IN (0, 1)),
        service        TEXT NOT NULL DEFAULT '',
        component      TEXT NOT NULL DEFAULT '',
        route          TEXT NOT NULL DEFAULT '',
        created_at     TEXT NOT NULL,
        PRIMARY KEY (listener, hostname)
      );
      CREATE INDEX proxy_routes_owner ON proxy_routes (service, component);
      -- A route behind the proxy keeps a second host port, the standby one a
      -- start-first redeploy starts the new version on before the proxy
      -- swaps to it (0 = none yet).
      ALTER TABLE component_routes ADD COLUMN standby_port INTEGER NOT NULL DEFAULT 0
        CHECK (standby_port BETWEEN 0 AND 65535);
    `,
  },
  {
    version: 9,
    name: "events: indexes by service and time, by kind",
    sql: `
      -- mcp status <service> asks for a service's newest events: without an
      -- index by (service, timestamp) SQLite sorted every event the service
      -- kept (retention, 30 days) on each call.
      CREATE INDEX events_service_time ON events(service, timestamp);
      -- Flap detection counts one kind (state) per component and window on
      -- every monitor pass: the kind in the index spares reading the others
      -- (health, deploy, drift events) of the window.
      CREATE INDEX events_service_component_kind_time
        ON events(service, component, kind, timestamp);
    `,
  },
];

/**
 * Brings the database up to the newest migration and returns the versions
 * applied now (empty when it was already current).
 */
export function migrate(db: Database.Database, migrations = MIGRATIONS): number[] {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new McpError("internal", `migration #${i} has version ${m.version}, expected ${i + 1}`);
    }
  });

  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const current = db.prepare("SELECT coalesce(max(version), 0) FROM schema_migrations").pluck();
  const record = db.prepare(
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
  );

  const have = current.get() as number;
  // An older agent must not write to a schema it does not understand.
  if (have > migrations.length) {
    throw new McpError(
      "failed_precondition",
      `registry schema is at version ${have}, newer than this agent knows (${migrations.length})`,
    );
  }

  const applied: number[] = [];
  for (const m of migrations.slice(have)) {
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
