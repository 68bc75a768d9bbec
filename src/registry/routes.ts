/**
 * The `component_routes` table: a component's routes and the host port the
 * agent allocated for each. Routes mirror `spec.routes`; the host port is the
 * agent's own record and survives redeploys so that ports stay stable.
 */
import type Database from "better-sqlite3";
import { McpError } from "../util/errors.js";
import { isSqliteError } from "./sql.js";

export interface RouteRow {
  service: string;
  component: string;
  /** "" = the component's single unnamed route ($PORT). */
  name: string;
  /** Proxy listener port, not a container port. */
  port: number;
  mode: string;
  hostname: string;
  protocol: string;
  /** Allocated host port; 0 = none. */
  hostPort: number;
  /**
   * Behind the proxy: the second host port of the pair, where a start-first
   * redeploy starts the new version before the proxy swaps to it; 0 = none.
   */
  standbyPort: number;
}

export interface RouteInput {
  name: string;
  port: number;
  /** "" means l4. */
  mode: string;
  hostname: string;
  /** "" means tcp. */
  protocol: string;
}

export interface HeldPort {
  port: number;
  service: string;
  component: string;
  name: string;
  /** The route's standby port (behind the proxy), not its live one. */
  standby: boolean;
}

const COLUMNS =
  "service, component, name, port, mode, hostname, protocol, host_port AS hostPort, standby_port AS standbyPort";

interface Key {
  service: string;
  component: string;
  name: string;
}

export class RouteStore {
  readonly #upsert: Database.Statement<[Key & Omit<RouteInput, "name"> & { ord: number }]>;
  readonly #names: Database.Statement<[string, string], string>;
  readonly #deleteOne: Database.Statement<[string, string, string]>;
  /**
   * One statement per filter shape (all, a service, a component): a plain
   * `service = ?` lets SQLite use the key's index, `(? IS NULL OR …)` made
   * every per-component lookup a scan of every route on the node.
   */
  readonly #lists: {
    all: Database.Statement<[], RouteRow>;
    service: Database.Statement<[{ service: string }], RouteRow>;
    component: Database.Statement<[{ service: string; component: string }], RouteRow>;
  };
  readonly #setHostPort: Database.Statement<[Key & { hostPort: number }]>;
  readonly #setPorts: Database.Statement<[Key & { hostPort: number; standbyPort: number }]>;
  readonly #holder: Database.Statement<[number], Key>;
  readonly #clear: Database.Statement<[{ service: string; component: string | null }]>;
  readonly #held: Database.Statement<[], Omit<HeldPort, "standby"> & { standby: number }>;
  readonly #replace: (service: string, component: string, routes: readonly RouteInput[]) => void;

  constructor(db: Database.Database) {
    // host_port is deliberately absent from the update: a kept route keeps its port.
    this.#upsert = db.prepare(`
      INSERT INTO component_routes (service, component, name, ord, port, mode, hostname, protocol)
      VALUES (@service, @component, @name, @ord, @port, @mode, @hostname, @protocol)
      ON CONFLICT (service, component, name) DO UPDATE SET
        ord = excluded.ord, port = excluded.port, mode = excluded.mode,
        hostname = excluded.hostname, protocol = excluded.protocol`);
    this.#names = db
      .prepare<[string, string], string>(
        "SELECT name FROM component_routes WHERE service = ? AND component = ?",
      )
      .pluck();
    this.#deleteOne = db.prepare(
      "DELETE FROM component_routes WHERE service = ? AND component = ? AND name = ?",
    );
    const order = "ORDER BY service, component, ord, rowid";
    this.#lists = {
      all: db.prepare(`SELECT ${COLUMNS} FROM component_routes ${order}`),
      service: db.prepare(
        `SELECT ${COLUMNS} FROM component_routes WHERE service = @service ${order}`,
      ),
      component: db.prepare(
        `SELECT ${COLUMNS} FROM component_routes
         WHERE service = @service AND component = @component ${order}`,
      ),
    };
    this.#setHostPort = db.prepare(`
      UPDATE component_routes SET host_port = @hostPort
      WHERE service = @service AND component = @component AND name = @name`);
    this.#setPorts = db.prepare(`
      UPDATE component_routes SET host_port = @hostPort, standby_port = @standbyPort
      WHERE service = @service AND component = @component AND name = @name`);
    this.#holder = db.prepare(
      "SELECT service, component, name FROM component_routes WHERE host_port = ?",
    );
    this.#clear = db.prepare(`
      UPDATE component_routes SET host_port = 0, standby_port = 0
      WHERE service = @service AND (@component IS NULL OR component = @component)
        AND (host_port <> 0 OR standby_port <> 0)`);
    this.#held = db.prepare(`
      SELECT host_port AS port, service, component, name, 0 AS standby
        FROM component_routes WHERE host_port <> 0
      UNION ALL
      SELECT standby_port, service, component, name, 1
        FROM component_routes WHERE standby_port <> 0
      ORDER BY 1`);

    this.#replace = db.transaction(
      (service: string, component: string, routes: readonly RouteInput[]) => {
        const keep = new Set<string>();
        routes.forEach((r, ord) => {
          if (keep.has(r.name)) {
            throw new McpError(
              "invalid_argument",
              `${service}/${component}: route ${JSON.stringify(r.name)} is defined twice`,
            );
          }
          keep.add(r.name);
          this.#upsert.run({
            service,
            component,
            name: r.name,
            ord,
            port: r.port,
            mode: r.mode || "l4",
            hostname: r.hostname,
            protocol: r.protocol || "tcp",
          });
        });
        for (const name of this.#names.all(service, component)) {
          if (!keep.has(name)) this.#deleteOne.run(service, component, name);
        }
      },
    );
  }

  /**
   * Makes the component's routes exactly `routes`, in that order. A route
   * whose name is kept keeps its host port (the allocator re-checks that it
   * is still free); a vanished route is deleted and its port released.
   */
  replaceForComponent(service: string, component: string, routes: readonly RouteInput[]): void {
    try {
      this.#replace(service, component, routes);
    } catch (err) {
      if (isSqliteError(err, "SQLITE_CONSTRAINT_FOREIGNKEY")) {
        throw new McpError(
          "failed_precondition",
          `component ${service}/${component} is not registered`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Routes ordered by service, component, then definition order. */
  list(filter: { service?: string; component?: string } = {}): RouteRow[] {
    const { service, component } = filter;
    if (service === undefined) {
      // A component without its service names nothing in particular: every route, filtered.
      const all = this.#lists.all.all();
      return component === undefined ? all : all.filter((r) => r.component === component);
    }
    return component === undefined
      ? this.#lists.service.all({ service })
      : this.#lists.component.all({ service, component });
  }

  /** Records an allocated host port (0 releases it). */
  setHostPort(service: string, component: string, name: string, hostPort: number): void {
    if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) {
      throw new McpError("invalid_argument", `host port ${hostPort} is out of range`);
    }
    let changes: number;
    try {
      changes = this.#setHostPort.run({ service, component, name, hostPort }).changes;
    } catch (err) {
      if (!isSqliteError(err, "SQLITE_CONSTRAINT_UNIQUE")) throw err;
      const h = this.#holder.get(hostPort);
      const by = h ? ` by ${h.service}/${h.component} route ${JSON.stringify(h.name)}` : "";
      throw new McpError("failed_precondition", `host port ${hostPort} is already held${by}`, {
        cause: err,
      });
    }
    if (changes === 0) {
      throw new McpError(
        "failed_precondition",
        `no route ${JSON.stringify(name)} on component ${service}/${component}`,
      );
    }
  }

  /**
   * Records both ports of a proxied route's pair at once (the swap behind the
   * proxy exchanges them); 0 releases one.
   */
  setPorts(
    service: string,
    component: string,
    name: string,
    ports: { hostPort: number; standbyPort: number },
  ): void {
    for (const port of [ports.hostPort, ports.standbyPort]) {
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new McpError("invalid_argument", `host port ${port} is out of range`);
      }
    }
    try {
      this.#setPorts.run({ service, component, name, ...ports });
    } catch (err) {
      if (!isSqliteError(err, "SQLITE_CONSTRAINT_UNIQUE")) throw err;
      throw new McpError("failed_precondition", `host port ${ports.hostPort} is already held`, {
        cause: err,
      });
    }
  }

  /** Releases the host ports of a service (or one component); returns how many were held. */
  clearHostPorts(service: string, component?: string): number {
    return this.#clear.run({ service, component: component ?? null }).changes;
  }

  /** Every recorded host port (live and standby), ascending: seeds the allocator after an agent restart. */
  heldHostPorts(): HeldPort[] {
    return this.#held.all().map((h) => ({ ...h, standby: Boolean(h.standby) }));
  }
}
