/**
 * The `revisions` table (migrations 4, 6 and 7): every `mcp deploy` or
 * `mcp rollback` of a service is one revision number, with a row per
 * component it touched: the spec and image it deployed, when, how it ended,
 * and for a rollback the revision whose spec it deployed again. `mcp history`
 * reads it, `mcp rollback` and recovery pick specs from it; the agent keeps
 * the newest `keep` revisions of each service (and each component's newest
 * good row, which rollback and recovery need).
 */
import type Database from "better-sqlite3";
import { ComponentSpec } from "../gen/mcp/v1/mcp.js";
import { now } from "./sql.js";

/**
 * How a component's part of a revision ended: "rolled back" = the new
 * version failed after the old one stopped, and the old one runs again.
 */
export type RevisionOutcome = "ok" | "failed" | "rolled back";

/** What made the revision. */
export type RevisionKind = "deploy" | "rollback";

export interface RevisionRow {
  service: string;
  revision: number;
  component: string;
  image: string;
  spec: ComponentSpec;
  outcome: RevisionOutcome;
  /** Why it failed ("<step>: <reason>"), "" when ok. */
  message: string;
  deployedAt: string;
  kind: RevisionKind;
  /** A rollback: the revision whose spec it deployed again; 0 otherwise. */
  rollbackTo: number;
}

export type RevisionInput = Omit<RevisionRow, "image" | "deployedAt" | "kind" | "rollbackTo"> & {
  deployedAt?: string;
  kind?: RevisionKind;
  rollbackTo?: number;
};

interface Raw {
  service: string;
  revision: number;
  component: string;
  image: string;
  spec: string;
  outcome: RevisionOutcome;
  message: string;
  deployedAt: string;
  kind: RevisionKind;
  rollbackTo: number;
}

const COLUMNS = `service, revision, component, image, spec, outcome, message,
  deployed_at AS deployedAt, kind, rollback_to AS rollbackTo`;

export class RevisionStore {
  readonly #next: Database.Statement<[string], number>;
  readonly #add: Database.Statement<[Raw]>;
  readonly #list: Database.Statement<[string], Raw>;
  readonly #prune: Database.Statement<[{ service: string; keep: number }]>;

  constructor(db: Database.Database) {
    this.#next = db
      .prepare<[string], number>(
        "SELECT coalesce(max(revision), 0) + 1 FROM revisions WHERE service = ?",
      )
      .pluck();
    this.#add = db.prepare(`
      INSERT INTO revisions (service, revision, component, image, spec, outcome, message,
                             deployed_at, kind, rollback_to)
      VALUES (@service, @revision, @component, @image, @spec, @outcome, @message,
              @deployedAt, @kind, @rollbackTo)
      ON CONFLICT (service, revision, component) DO UPDATE SET
        image = excluded.image, spec = excluded.spec, outcome = excluded.outcome,
        message = excluded.message, deployed_at = excluded.deployed_at,
        kind = excluded.kind, rollback_to = excluded.rollback_to`);
    this.#list = db.prepare(
      `SELECT ${COLUMNS} FROM revisions WHERE service = ? ORDER BY revision DESC, component`,
    );
    // Each component's newest ok row stays however old it is: it is the spec
    // recovery recreates the component from and what "current" means to
    // rollback (a component nobody redeployed for `keep` revisions).
    this.#prune = db.prepare(`
      DELETE FROM revisions WHERE service = @service AND revision <= (
        SELECT coalesce(max(revision), 0) - @keep FROM revisions WHERE service = @service)
      AND NOT (outcome = 'ok' AND revision = (
        SELECT max(r.revision) FROM revisions r
        WHERE r.service = revisions.service AND r.component = revisions.component
          AND r.outcome = 'ok'))`);
  }

  /** The number the service's next revision gets. */
  next(service: string): number {
    return this.#next.get(service) ?? 1;
  }

  /** Records one component's part of a revision (again: its latest outcome wins). */
  record(r: RevisionInput): void {
    this.#add.run({
      service: r.service,
      revision: r.revision,
      component: r.component,
      image: r.spec.image,
      spec: JSON.stringify(ComponentSpec.toJSON(r.spec)),
      outcome: r.outcome,
      message: r.message,
      deployedAt: r.deployedAt ?? now(),
      kind: r.kind ?? "deploy",
      rollbackTo: r.rollbackTo ?? 0,
    });
  }

  /** The service's revisions, newest first, components in name order. */
  list(service: string): RevisionRow[] {
    return this.#list
      .all(service)
      .map((r) => ({ ...r, spec: ComponentSpec.fromJSON(JSON.parse(r.spec)) }));
  }

  /**
   * Keeps the newest `keep` revisions of `service`, and each component's
   * newest ok row; returns how many rows went.
   */
  prune(service: string, keep: number): number {
    return this.#prune.run({ service, keep }).changes;
  }
}
