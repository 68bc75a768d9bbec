/**
 * The `proxy_routes` table: what the agent's proxy serves, one row per
 * listener port and hostname (docs/ARCHITECTURE.md "Edge"). A service's
 * route owns its row while the component serves; a row with no service was
 * added by `mcp route add` and stays until `mcp route remove`. HAProxy's map
 * files are rendered from these rows, so an agent restart re-applies exactly
 * what they say, nothing twice.
 */
import type Database from "better-sqlite3";

export interface ProxyRouteRow {
  listener: number;
  hostname: string;
  mode: "l4" | "l7";
  backendHost: string;
  backendPort: number;
  proxyProtocol: boolean;
  /** "" = added by `mcp route add`. */
  service: string;
  component: string;
  /** The component's route name ("" for the unnamed one). */
  route: string;
}

interface Stored extends Omit<ProxyRouteRow, "proxyProtocol" | "mode"> {
  mode: string;
  proxyProtocol: number;
}

const COLUMNS = `listener, hostname, mode, backend_host AS backendHost, backend_port AS backendPort,
  proxy_protocol AS proxyProtocol, service, component, route`;

function fromStored(row: Stored): ProxyRouteRow {
  return { ...row, mode: row.mode === "l7" ? "l7" : "l4", proxyProtocol: row.proxyProtocol === 1 };
}

export class ProxyRouteStore {
  readonly #upsert: Database.Statement<[Stored & { createdAt: string }]>;
  readonly #list: Database.Statement<[], Stored>;
  readonly #owned: Database.Statement<[{ service: string; component: string | null }], Stored>;
  readonly #get: Database.Statement<[number, string], Stored>;
  readonly #delete: Database.Statement<[number, string]>;

  constructor(db: Database.Database) {
    this.#upsert = db.prepare(`
      INSERT INTO proxy_routes (listener, hostname, mode, backend_host, backend_port, proxy_protocol,
                                service, component, route, created_at)
      VALUES (@listener, @hostname, @mode, @backendHost, @backendPort, @proxyProtocol,
              @service, @component, @route, @createdAt)
      ON CONFLICT (listener, hostname) DO UPDATE SET
        mode = excluded.mode, backend_host = excluded.backend_host,
        backend_port = excluded.backend_port, proxy_protocol = excluded.proxy_protocol,
        service = excluded.service, component = excluded.component, route = excluded.route`);
    this.#list = db.prepare(`SELECT ${COLUMNS} FROM proxy_routes ORDER BY listener, hostname`);
    this.#owned = db.prepare(`
      SELECT ${COLUMNS} FROM proxy_routes
      WHERE service = @service AND (@component IS NULL OR component = @component)
      ORDER BY listener, hostname`);
    this.#get = db.prepare(
      `SELECT ${COLUMNS} FROM proxy_routes WHERE listener = ? AND hostname = ?`,
    );
    this.#delete = db.prepare("DELETE FROM proxy_routes WHERE listener = ? AND hostname = ?");
  }

  /** Adds the row, or replaces the one on the same listener and hostname. */
  put(row: ProxyRouteRow): void {
    this.#upsert.run({
      ...row,
      hostname: row.hostname.toLowerCase(),
      proxyProtocol: row.proxyProtocol ? 1 : 0,
      createdAt: new Date().toISOString(),
    });
  }

  get(listener: number, hostname: string): ProxyRouteRow | undefined {
    const row = this.#get.get(listener, hostname.toLowerCase());
    return row ? fromStored(row) : undefined;
  }

  /** Every row, by listener then hostname. */
  list(): ProxyRouteRow[] {
    return this.#list.all().map(fromStored);
  }

  /** The rows a service (or one of its components) owns; `""` lists the manual ones. */
  owned(service: string, component?: string): ProxyRouteRow[] {
    return this.#owned.all({ service, component: component ?? null }).map(fromStored);
  }

  /** Removes one row; whether it was there. */
  delete(listener: number, hostname: string): boolean {
    return this.#delete.run(listener, hostname.toLowerCase()).changes > 0;
  }
}
