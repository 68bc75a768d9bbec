/**
 * The `components` table: what the agent was asked to run (spec, desired
 * state) next to what it last saw (observed state, container id).
 */
import type Database from "better-sqlite3";
import type { ProxyRouteRow } from "./proxy-routes.js";
import { ComponentSpec } from "../gen/mcp/v1/mcp.js";
import type { HealthStatus } from "../health/state.js";
import type { DesiredState } from "../servicedef/types.js";
import { imageVersion } from "../servicedef/image.js";
import { McpError } from "../util/errors.js";
import type { RouteStore } from "./routes.js";
import { isSqliteError, now } from "./sql.js";

/** Host port of one route, as recorded. */
export interface RoutePort {
  name: string;
  hostPort: number;
}

/**
 * An operation on a component that has begun and not finished (migration 3).
 * `previous` is the component as the registry held it before; null when the
 * operation creates the component.
 */
export interface PendingOperation {
  kind: string;
  startedAt: string;
  /**
   * The new version must pass its health check before it counts (deploy,
   * rollback): an agent that died before the commit undoes it, even when the
   * new container runs.
   */
  gated?: boolean;
  /** The old container was running: undoing the operation starts it again. */
  wasRunning?: boolean;
  /** Host ports of the trial container (start-first), held until it is removed. */
  trial?: RoutePort[];
  previous: {
    spec: ComponentSpec;
    desiredState: DesiredState;
    deployedAt: string | null;
    /** The container that ran before (its id), "" if none. */
    containerId: string;
    routes: RoutePort[];
    /** Its entries on the proxy (absent: recorded before the proxy existed, or none). */
    proxyRoutes?: ProxyRouteRow[];
  } | null;
}

/** What the monitor's health checks last concluded (migration 5). */
export interface ComponentHealth {
  status: HealthStatus;
  /** The last check's output ("" when not checked). */
  output: string;
  /** When the last check ran; null if none since the status was last reset. */
  checkedAt: string | null;
}

/** The health of a component nothing has checked. */
export const NO_HEALTH: Readonly<ComponentHealth> = { status: "", output: "", checkedAt: null };

export interface ComponentRow {
  service: string;
  name: string;
  image: string;
  /** The image tag (or short digest), for display. */
  version: string;
  spec: ComponentSpec;
  desiredState: DesiredState;
  /** running | stopped | exited | removed | unknown (whatever the runtime reports). */
  observedState: string;
  containerId: string;
  startedAt: string | null;
  /** When the agent last ran a container from the stored spec; null if never (synced, adopted) or undeployed. */
  deployedAt: string | null;
  /** Position in the service definition. */
  ord: number;
  /** An operation in progress (or interrupted by a crash), else null. */
  pending: PendingOperation | null;
  health: ComponentHealth;
  createdAt: string;
  updatedAt: string;
}

export interface ComponentInput {
  service: string;
  name: string;
  spec: ComponentSpec;
  desiredState: DesiredState;
  /** Position in the service definition; absent keeps the stored one (0 for a new row). */
  ord?: number;
}

export interface ObservedInput {
  state: string;
  /** Absent keeps the stored id. */
  containerId?: string;
  /** Absent keeps the stored time; null clears it. */
  startedAt?: string | null;
}

type Raw = Omit<ComponentRow, "spec" | "pending" | "health"> & {
  spec: string;
  pending: string | null;
  health: HealthStatus;
  healthOutput: string;
  healthCheckedAt: string | null;
};

interface HealthParams {
  service: string;
  name: string;
  containerId: string;
  status: HealthStatus;
  output: string;
  checkedAt: string | null;
}

interface UpsertParams {
  service: string;
  name: string;
  image: string;
  version: string;
  spec: string;
  desired: string;
  ord: number | null;
  now: string;
}

interface ObservedParams {
  service: string;
  name: string;
  state: string;
  containerId: string | null;
  keepStarted: number;
  startedAt: string | null;
  now: string;
}

const COLUMNS = `service, name, image, version, spec, desired_state AS desiredState,
  observed_state AS observedState, container_id AS containerId, started_at AS startedAt,
  deployed_at AS deployedAt, ord, pending, health, health_output AS healthOutput,
  health_checked_at AS healthCheckedAt, created_at AS createdAt, updated_at AS updatedAt`;

function toRow(raw: Raw): ComponentRow {
  const { health, healthOutput, healthCheckedAt, ...r } = raw;
  // fromJSON fills fields added to the proto after the row was written.
  return {
    ...r,
    spec: ComponentSpec.fromJSON(JSON.parse(r.spec)),
    pending: r.pending === null ? null : pendingFromJson(r.pending),
    health: { status: health, output: healthOutput, checkedAt: healthCheckedAt },
  };
}

function pendingToJson(op: PendingOperation): string {
  const previous = op.previous && { ...op.previous, spec: ComponentSpec.toJSON(op.previous.spec) };
  return JSON.stringify({ ...op, previous });
}

function pendingFromJson(text: string): PendingOperation {
  const raw = JSON.parse(text) as Omit<PendingOperation, "previous"> & {
    previous: (Omit<NonNullable<PendingOperation["previous"]>, "spec"> & { spec: unknown }) | null;
  };
  const previous = raw.previous && {
    ...raw.previous,
    spec: ComponentSpec.fromJSON(raw.previous.spec),
  };
  return { ...raw, previous };
}

export class ComponentStore {
  readonly #routes: RouteStore;
  readonly #upsert: Database.Statement<[UpsertParams]>;
  readonly #get: Database.Statement<[string, string], Raw>;
  readonly #list: Database.Statement<[], Raw>;
  readonly #listService: Database.Statement<[string], Raw>;
  readonly #setObserved: Database.Statement<[ObservedParams]>;
  readonly #setDesired: Database.Statement<[string, string, string, string]>;
  readonly #setDesiredForService: Database.Statement<
    [{ service: string; state: string; now: string }]
  >;
  readonly #serviceExists: Database.Statement<[string], number>;
  readonly #delete: Database.Statement<[string, string]>;
  readonly #deleteProxyRows: Database.Statement<[string, string]>;
  readonly #setDeployed: Database.Statement<[string | null, string, string, string]>;
  readonly #upsertWithRoutes: (c: ComponentInput) => void;
  readonly #setPending: Database.Statement<[string | null, string, string, string]>;
  readonly #setHealth: Database.Statement<[HealthParams]>;

  constructor(db: Database.Database, routes: RouteStore) {
    this.#routes = routes;
    // The update leaves observed_state, container_id and started_at alone:
    // redefining a component does not change what is running.
    this.#upsert = db.prepare(`
      INSERT INTO components (service, name, image, version, spec, desired_state, ord, created_at, updated_at)
      VALUES (@service, @name, @image, @version, @spec, @desired, coalesce(@ord, 0), @now, @now)
      ON CONFLICT (service, name) DO UPDATE SET
        image = excluded.image, version = excluded.version, spec = excluded.spec,
        desired_state = excluded.desired_state, ord = coalesce(@ord, ord),
        updated_at = excluded.updated_at`);
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM components WHERE service = ? AND name = ?`);
    this.#list = db.prepare(`SELECT ${COLUMNS} FROM components ORDER BY service, ord, name`);
    this.#listService = db.prepare(
      `SELECT ${COLUMNS} FROM components WHERE service = ? ORDER BY ord, name`,
    );
    this.#setDeployed = db.prepare(
      "UPDATE components SET deployed_at = ?, updated_at = ? WHERE service = ? AND name = ?",
    );
    this.#setObserved = db.prepare(`
      UPDATE components SET
        observed_state = @state,
        container_id = coalesce(@containerId, container_id),
        started_at = CASE WHEN @keepStarted THEN started_at ELSE @startedAt END,
        updated_at = @now
      WHERE service = @service AND name = @name`);
    this.#setDesired = db.prepare(
      "UPDATE components SET desired_state = ?, updated_at = ? WHERE service = ? AND name = ?",
    );
    // 'ignore' marks containers the agent does not manage; starting or
    // stopping the service must not quietly turn them into managed ones.
    this.#setDesiredForService = db.prepare(`
      UPDATE components SET desired_state = @state, updated_at = @now
      WHERE service = @service AND (desired_state <> 'ignore' OR @state = 'ignore')`);
    this.#serviceExists = db
      .prepare<[string], number>("SELECT count(*) FROM services WHERE name = ?")
      .pluck();
    this.#delete = db.prepare("DELETE FROM components WHERE service = ? AND name = ?");
    // Not a foreign key: rows of `mcp route add` have no component.
    this.#deleteProxyRows = db.prepare(
      "DELETE FROM proxy_routes WHERE service = ? AND component = ? AND service <> ''",
    );
    this.#setPending = db.prepare(
      "UPDATE components SET pending = ?, updated_at = ? WHERE service = ? AND name = ?",
    );
    // Not updated_at: health is the monitor's note about a row, not a change
    // of it (refreshObserved leaves rows updated during its podman call alone).
    this.#setHealth = db.prepare(`
      UPDATE components SET
        health = @status, health_output = @output, health_checked_at = @checkedAt
      WHERE service = @service AND name = @name AND container_id = @containerId`);

    this.#upsertWithRoutes = db.transaction((c: ComponentInput) => {
      this.#upsert.run({
        service: c.service,
        name: c.name,
        image: c.spec.image,
        version: imageVersion(c.spec.image),
        spec: JSON.stringify(ComponentSpec.toJSON(c.spec)),
        desired: c.desiredState,
        ord: c.ord ?? null,
        now: now(),
      });
      this.#routes.replaceForComponent(c.service, c.name, c.spec.routes);
    });
  }

  /**
   * Creates or redefines a component and makes its routes match
   * `spec.routes`, in one transaction. Observed state, container id and the
   * host ports of routes that keep their name survive.
   */
  upsert(c: ComponentInput): void {
    if (c.spec.name !== "" && c.spec.name !== c.name) {
      throw new McpError(
        "invalid_argument",
        `component ${c.service}/${c.name}: spec is for ${JSON.stringify(c.spec.name)}`,
      );
    }
    try {
      this.#upsertWithRoutes(c);
    } catch (err) {
      if (isSqliteError(err, "SQLITE_CONSTRAINT_FOREIGNKEY")) {
        throw new McpError("failed_precondition", `service ${c.service} is not registered`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  get(service: string, name: string): ComponentRow | undefined {
    const r = this.#get.get(service, name);
    return r && toRow(r);
  }

  /** All components, or one service's, ordered by service then definition order. */
  list(service?: string): ComponentRow[] {
    const rows = service === undefined ? this.#list.all() : this.#listService.all(service);
    return rows.map(toRow);
  }

  setObserved(service: string, name: string, o: ObservedInput): void {
    const changes = this.#setObserved.run({
      service,
      name,
      state: o.state,
      containerId: o.containerId ?? null,
      keepStarted: o.startedAt === undefined ? 1 : 0,
      startedAt: o.startedAt ?? null,
      now: now(),
    }).changes;
    if (changes === 0) throw notFound(service, name);
  }

  setDesired(service: string, name: string, state: DesiredState): void {
    if (this.#setDesired.run(state, now(), service, name).changes === 0) {
      throw notFound(service, name);
    }
  }

  /**
   * Sets the desired state of every component of the service, except that
   * components marked 'ignore' stay ignored (unless `state` is 'ignore').
   */
  setDesiredForService(service: string, state: DesiredState): void {
    const changes = this.#setDesiredForService.run({ service, state, now: now() }).changes;
    if (changes === 0 && !this.#serviceExists.get(service)) {
      throw new McpError("not_found", `service ${service} is not registered`);
    }
  }

  /** Records that a container was started from the stored spec (`at`), or clears it (undeploy). */
  setDeployed(service: string, name: string, at: string | null): void {
    if (this.#setDeployed.run(at, now(), service, name).changes === 0) {
      throw notFound(service, name);
    }
  }

  /** Marks an operation on the component as begun (`op`) or over (null). */
  setPending(service: string, name: string, op: PendingOperation | null): void {
    const json = op === null ? null : pendingToJson(op);
    if (this.#setPending.run(json, now(), service, name).changes === 0) {
      throw notFound(service, name);
    }
  }

  /**
   * Records what the health checks concluded about the container
   * `containerId`; returns false (nothing written) when the component is gone
   * or now runs another container: the result is about one that was replaced.
   */
  setHealth(service: string, name: string, containerId: string, h: ComponentHealth): boolean {
    return (
      this.#setHealth.run({
        service,
        name,
        containerId,
        status: h.status,
        output: h.output,
        checkedAt: h.checkedAt,
      }).changes > 0
    );
  }

  /** Deletes the component, its routes (cascade) and its proxy rows. */
  delete(service: string, name: string): boolean {
    this.#deleteProxyRows.run(service, name);
    return this.#delete.run(service, name).changes > 0;
  }
}

function notFound(service: string, name: string): McpError {
  return new McpError("not_found", `component ${service}/${name} is not registered`);
}
