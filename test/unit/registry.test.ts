import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { ComponentSpec, type RouteSpec } from "../../src/gen/mcp/v1/mcp.js";
import {
  appliedMigrations,
  MIGRATIONS,
  migrate,
  openRegistry,
  type Registry,
} from "../../src/registry/index.js";
import { McpError } from "../../src/util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "mcp-registry-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh registry in its own real file. */
function fresh(): Registry {
  return openRegistry(join(dir, `r${++n}.db`));
}

function route(name: string, port: number, extra: Partial<RouteSpec> = {}): RouteSpec {
  return { name, port, mode: "l7", hostname: "", protocol: "", proxyProtocol: false, ...extra };
}

function spec(name: string, image: string, routes: RouteSpec[] = []): ComponentSpec {
  return ComponentSpec.fromPartial({
    name,
    image,
    network: "mcpnet",
    volumes: ["/srv/x:/srv/x"],
    cmd: ["server", "--config", "/srv/x/x.toml"],
    env: ["A=1"],
    routes,
  });
}

/** A registry holding service `web` with component `api` and routes http, grpc. */
function withApi(): Registry {
  const r = fresh();
  r.services.upsert({ name: "web", active: true });
  r.components.upsert({
    service: "web",
    name: "api",
    spec: spec("api", "localhost/api:v1", [route("http", 443), route("grpc", 9443)]),
    desiredState: "running",
  });
  return r;
}

function code(c: string) {
  return (err: unknown) => err instanceof McpError && err.code === c;
}

function db(path: string): Database.Database {
  return new Database(path, { readonly: true });
}

describe("open and migrate", () => {
  test("records migrations once and is idempotent", () => {
    const path = join(dir, "migrate.db");
    openRegistry(path).close();
    openRegistry(path).close();
    const raw = db(path);
    const rows = appliedMigrations(raw);
    assert.deepEqual(
      rows.map((m) => m.version),
      MIGRATIONS.map((m) => m.version),
    );
    assert.match(rows[0]?.appliedAt ?? "", /^\d{4}-\d\d-\d\dT.*Z$/);
    raw.close();
  });

  test("applies only the new migrations to an existing database", () => {
    const path = join(dir, "upgrade.db");
    openRegistry(path).close();
    const raw = new Database(path);
    const version = Math.max(...MIGRATIONS.map((m) => m.version)) + 1;
    const next = [...MIGRATIONS, { version, name: "t", sql: "CREATE TABLE t (x INTEGER)" }];
    assert.deepEqual(migrate(raw, next), [version]);
    assert.deepEqual(migrate(raw, next), []);
    raw.close();
  });

  test("a failing migration leaves nothing behind", () => {
    const raw = new Database(":memory:");
    const version = Math.max(...MIGRATIONS.map((m) => m.version)) + 1;
    const bad = [...MIGRATIONS, { version, name: "bad", sql: "CREATE TABLE u (x); nonsense" }];
    assert.throws(() => migrate(raw, bad));
    assert.deepEqual(
      appliedMigrations(raw).map((m) => m.version),
      MIGRATIONS.map((m) => m.version),
    );
    assert.equal(
      raw.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'u'").pluck().get(),
      0,
    );
    raw.close();
  });

  test("refuses a schema newer than the code", () => {
    const path = join(dir, "newer.db");
    openRegistry(path).close();
    const raw = new Database(path);
    raw
      .prepare("INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01T00:00:00.000Z')")
      .run();
    raw.close();
    assert.throws(() => openRegistry(path), code("failed_precondition"));
  });

  test("migration 7: revisions get kind and rollback_to, existing rows read as deploys", () => {
    const raw = new Database(":memory:");
    migrate(
      raw,
      MIGRATIONS.filter((m) => m.version <= 6),
    );
    raw
      .prepare(
        `INSERT INTO revisions VALUES ('s', 1, 'web', 'img:1', '{"name":"web","image":"img:1"}', 'ok', '', '2026-01-01T00:00:00.000Z')`,
      )
      .run();
    migrate(raw);
    assert.deepEqual(raw.prepare("SELECT kind, rollback_to FROM revisions").get(), {
      kind: "deploy",
      rollback_to: 0,
    });
    raw.close();
  });

  test("pragmas are in effect", () => {
    const path = join(dir, "pragmas.db");
    const r = openRegistry(path);
    assert.equal(r.path, path);
    // The journal mode is stored in the file; the connection pragmas are checked through behaviour.
    const raw = db(path);
    assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
    raw.close();
    // foreign_keys=ON: a component of an unknown service is refused.
    assert.throws(
      () =>
        r.components.upsert({
          service: "nope",
          name: "x",
          spec: spec("x", "img:1"),
          desiredState: "running",
        }),
      code("failed_precondition"),
    );
    r.close();
  });

  test("the file is created with mode 0600, and an existing file is tightened", () => {
    const path = join(dir, "sub", "mode.db");
    const r = openRegistry(path);
    r.services.upsert({ name: "s", active: true });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
    r.close();

    const loose = join(dir, "loose.db");
    new Database(loose).close();
    openRegistry(loose).close();
    assert.equal(statSync(loose).mode & 0o777, 0o600);
  });

  test(":memory: works", () => {
    const r = openRegistry(":memory:");
    r.services.upsert({ name: "s", active: false });
    assert.equal(r.services.get("s")?.active, false);
    r.close();
    r.close();
  });
});

describe("services", () => {
  test("CRUD", () => {
    const r = fresh();
    r.services.upsert({ name: "b", active: true, comment: "second" });
    r.services.upsert({ name: "a", active: false });
    const a = r.services.get("a");
    assert.ok(a);
    assert.equal(a.active, false);
    assert.equal(a.comment, "");
    assert.equal(a.createdAt, a.updatedAt);
    assert.deepEqual(
      r.services.list().map((s) => s.name),
      ["a", "b"],
    );

    // An upsert without a comment keeps it; with one, replaces it.
    const created = r.services.get("b")?.createdAt;
    r.services.upsert({ name: "b", active: false });
    assert.equal(r.services.get("b")?.comment, "second");
    r.services.upsert({ name: "b", active: true, comment: "" });
    assert.equal(r.services.get("b")?.comment, "");
    assert.equal(r.services.get("b")?.createdAt, created);

    r.services.setActive("a", true);
    assert.equal(r.services.get("a")?.active, true);
    assert.throws(() => r.services.setActive("zzz", true), code("not_found"));

    assert.equal(r.services.delete("a"), true);
    assert.equal(r.services.delete("a"), false);
    assert.equal(r.services.get("a"), undefined);
    r.close();
  });
});

describe("components", () => {
  test("CRUD, with the whole spec round-tripped", () => {
    const r = withApi();
    const c = r.components.get("web", "api");
    assert.ok(c);
    assert.equal(c.image, "localhost/api:v1");
    assert.equal(c.version, "v1");
    assert.equal(c.desiredState, "running");
    assert.equal(c.observedState, "unknown");
    assert.equal(c.containerId, "");
    assert.equal(c.startedAt, null);
    assert.deepEqual(
      c.spec,
      spec("api", "localhost/api:v1", [route("http", 443), route("grpc", 9443)]),
    );
    assert.equal(r.components.get("web", "nope"), undefined);

    r.services.upsert({ name: "db", active: true });
    r.components.upsert({
      service: "db",
      name: "pg",
      spec: spec("pg", "pg@sha256:0123456789abcdef0123"),
      desiredState: "stopped",
    });
    r.components.upsert({
      service: "web",
      name: "ui",
      spec: spec("", "ui:2"),
      desiredState: "ignore",
    });
    assert.equal(r.components.get("db", "pg")?.version, "0123456789ab");
    assert.deepEqual(
      r.components.list().map((x) => `${x.service}/${x.name}`),
      ["db/pg", "web/api", "web/ui"],
    );
    assert.deepEqual(
      r.components.list("web").map((x) => x.name),
      ["api", "ui"],
    );

    r.components.setDesired("web", "api", "stopped");
    assert.equal(r.components.get("web", "api")?.desiredState, "stopped");
    assert.throws(() => r.components.setDesired("web", "nope", "running"), code("not_found"));

    assert.equal(r.components.delete("web", "ui"), true);
    assert.equal(r.components.delete("web", "ui"), false);
    r.close();
  });

  test("definition order and deployed_at", () => {
    const r = withApi();
    r.components.upsert({
      service: "web",
      name: "zeta",
      spec: spec("zeta", "z:1"),
      desiredState: "running",
      ord: 0,
    });
    r.components.upsert({
      service: "web",
      name: "api",
      spec: spec("api", "a:1"),
      desiredState: "running",
      ord: 1,
    });
    assert.deepEqual(
      r.components.list("web").map((x) => x.name),
      ["zeta", "api"],
    );
    // An upsert without ord keeps the stored position.
    r.components.upsert({
      service: "web",
      name: "zeta",
      spec: spec("zeta", "z:2"),
      desiredState: "running",
    });
    assert.equal(r.components.get("web", "zeta")?.ord, 0);

    assert.equal(r.components.get("web", "api")?.deployedAt, null);
    r.components.setDeployed("web", "api", "2026-11-27T10:00:00.000Z");
    assert.equal(r.components.get("web", "api")?.deployedAt, "2026-11-27T10:00:00.000Z");
    r.components.setDeployed("web", "api", null);
    assert.equal(r.components.get("web", "api")?.deployedAt, null);
    assert.throws(() => r.components.setDeployed("web", "nope", null), code("not_found"));
    r.close();
  });

  test("refuses a spec for another component", () => {
    const r = withApi();
    assert.throws(
      () =>
        r.components.upsert({
          service: "web",
          name: "api",
          spec: spec("other", "x:1"),
          desiredState: "running",
        }),
      code("invalid_argument"),
    );
    r.close();
  });

  test("the CHECK constraint guards desired_state", () => {
    const r = withApi();
    assert.throws(() => r.components.setDesired("web", "api", "bogus" as unknown as "running"));
    r.close();
  });

  test("setObserved keeps or clears container id and start time as asked", () => {
    const r = withApi();
    r.components.setObserved("web", "api", {
      state: "running",
      containerId: "abc123",
      startedAt: "2025-01-02T03:04:05.000Z",
    });
    r.components.setObserved("web", "api", { state: "exited" });
    let c = r.components.get("web", "api");
    assert.equal(c?.observedState, "exited");
    assert.equal(c?.containerId, "abc123");
    assert.equal(c?.startedAt, "2025-01-02T03:04:05.000Z");

    r.components.setObserved("web", "api", { state: "removed", containerId: "", startedAt: null });
    c = r.components.get("web", "api");
    assert.equal(c?.containerId, "");
    assert.equal(c?.startedAt, null);
    assert.throws(
      () => r.components.setObserved("web", "x", { state: "running" }),
      code("not_found"),
    );
    r.close();
  });

  test("upsert keeps observed state, container and start time", () => {
    const r = withApi();
    r.components.setObserved("web", "api", {
      state: "running",
      containerId: "abc123",
      startedAt: "2025-01-02T03:04:05.000Z",
    });
    const before = r.components.get("web", "api");
    r.components.upsert({
      service: "web",
      name: "api",
      spec: spec("api", "localhost/api:v2", [route("http", 443)]),
      desiredState: "stopped",
    });
    const c = r.components.get("web", "api");
    assert.ok(c && before);
    assert.equal(c.image, "localhost/api:v2");
    assert.equal(c.version, "v2");
    assert.equal(c.desiredState, "stopped");
    assert.equal(c.observedState, "running");
    assert.equal(c.containerId, "abc123");
    assert.equal(c.startedAt, "2025-01-02T03:04:05.000Z");
    assert.equal(c.createdAt, before.createdAt);
    r.close();
  });

  test("setDesiredForService leaves ignored components alone", () => {
    const r = withApi();
    r.components.upsert({
      service: "web",
      name: "ui",
      spec: spec("ui", "ui:1"),
      desiredState: "ignore",
    });
    r.components.setDesiredForService("web", "stopped");
    assert.equal(r.components.get("web", "api")?.desiredState, "stopped");
    assert.equal(r.components.get("web", "ui")?.desiredState, "ignore");
    r.components.setDesiredForService("web", "ignore");
    assert.equal(r.components.get("web", "api")?.desiredState, "ignore");

    r.services.upsert({ name: "empty", active: true });
    r.components.setDesiredForService("empty", "running");
    assert.throws(() => r.components.setDesiredForService("nope", "running"), code("not_found"));
    r.close();
  });

  test("cascade delete: service → components → routes, component → routes", () => {
    const r = withApi();
    r.components.upsert({
      service: "web",
      name: "ui",
      spec: spec("ui", "ui:1", [route("", 8443)]),
      desiredState: "running",
    });
    assert.equal(r.routes.list({ service: "web" }).length, 3);

    r.components.delete("web", "api");
    assert.deepEqual(
      r.routes.list().map((x) => `${x.component}/${x.name}`),
      ["ui/"],
    );

    r.services.delete("web");
    assert.deepEqual(r.components.list(), []);
    assert.deepEqual(r.routes.list(), []);
    r.close();
  });
});

describe("routes", () => {
  test("mirror spec.routes, in definition order, with defaults filled in", () => {
    const r = withApi();
    assert.deepEqual(r.routes.list({ service: "web", component: "api" }), [
      {
        service: "web",
        component: "api",
        name: "http",
        port: 443,
        mode: "l7",
        hostname: "",
        protocol: "tcp",
        hostPort: 0,
        standbyPort: 0,
      },
      {
        service: "web",
        component: "api",
        name: "grpc",
        port: 9443,
        mode: "l7",
        hostname: "",
        protocol: "tcp",
        hostPort: 0,
        standbyPort: 0,
      },
    ]);
    r.routes.replaceForComponent("web", "api", [
      { name: "", port: 53, mode: "", hostname: "dns.example", protocol: "udp" },
    ]);
    const [only] = r.routes.list();
    assert.equal(only?.mode, "l4");
    assert.equal(only?.protocol, "udp");
    assert.equal(only?.hostname, "dns.example");
    r.close();
  });

  test("list filters", () => {
    const r = withApi();
    r.services.upsert({ name: "db", active: true });
    r.components.upsert({
      service: "db",
      name: "api",
      spec: spec("api", "pg:1", [route("", 5432)]),
      desiredState: "running",
    });
    assert.deepEqual(
      r.routes.list().map((x) => `${x.service}/${x.component}/${x.name}`),
      ["db/api/", "web/api/http", "web/api/grpc"],
    );
    assert.equal(r.routes.list({ service: "db" }).length, 1);
    assert.equal(r.routes.list({ component: "api" }).length, 3);
    assert.equal(r.routes.list({ service: "web", component: "nope" }).length, 0);
    r.close();
  });

  test("setHostPort records a port; a missing route is a failed precondition", () => {
    const r = withApi();
    r.routes.setHostPort("web", "api", "http", 20001);
    assert.equal(r.routes.list().find((x) => x.name === "http")?.hostPort, 20001);
    r.routes.setHostPort("web", "api", "http", 20001); // same port again: fine
    assert.throws(
      () => r.routes.setHostPort("web", "api", "nope", 20002),
      code("failed_precondition"),
    );
    assert.throws(
      () => r.routes.setHostPort("web", "api", "http", 70000),
      code("invalid_argument"),
    );
    assert.throws(() => r.routes.setHostPort("web", "api", "http", 1.5), code("invalid_argument"));
    r.close();
  });

  test("a host port can be recorded only once", () => {
    const r = withApi();
    r.routes.setHostPort("web", "api", "http", 20001);
    assert.throws(
      () => r.routes.setHostPort("web", "api", "grpc", 20001),
      (err: unknown) =>
        err instanceof McpError &&
        err.code === "failed_precondition" &&
        err.message.includes('web/api route "http"'),
    );
    // The database refuses it even when the API is bypassed.
    const raw = new Database(r.path);
    assert.throws(
      () => raw.prepare("UPDATE component_routes SET host_port = 20001 WHERE name = 'grpc'").run(),
      /UNIQUE/,
    );
    raw.close();
    // Many routes may have no port (0).
    assert.equal(r.routes.list().filter((x) => x.hostPort === 0).length, 1);
    r.close();
  });

  test("host ports are stable across replaceForComponent and component upsert", () => {
    const r = withApi();
    r.routes.setHostPort("web", "api", "http", 20001);
    r.routes.setHostPort("web", "api", "grpc", 20002);

    // Redeploy: grpc moves first and changes its listener, http vanishes, admin appears.
    r.components.upsert({
      service: "web",
      name: "api",
      spec: spec("api", "localhost/api:v2", [route("grpc", 9444), route("admin", 8080)]),
      desiredState: "running",
    });
    assert.deepEqual(
      r.routes.list().map((x) => [x.name, x.port, x.hostPort]),
      [
        ["grpc", 9444, 20002],
        ["admin", 8080, 0],
      ],
    );
    // The vanished route's port is free again.
    r.routes.setHostPort("web", "api", "admin", 20001);

    r.routes.replaceForComponent("web", "api", [route("admin", 8080), route("grpc", 9444)]);
    assert.deepEqual(
      r.routes.list().map((x) => [x.name, x.hostPort]),
      [
        ["admin", 20001],
        ["grpc", 20002],
      ],
    );
    r.routes.replaceForComponent("web", "api", []);
    assert.deepEqual(r.routes.list(), []);
    r.close();
  });

  test("replaceForComponent is atomic and checks its input", () => {
    const r = withApi();
    r.routes.setHostPort("web", "api", "http", 20001);
    assert.throws(
      () => r.routes.replaceForComponent("web", "api", [route("x", 1), route("x", 2)]),
      code("invalid_argument"),
    );
    assert.deepEqual(
      r.routes.list().map((x) => [x.name, x.hostPort]),
      [
        ["http", 20001],
        ["grpc", 0],
      ],
    );
    assert.throws(
      () => r.routes.replaceForComponent("web", "nope", [route("x", 1)]),
      code("failed_precondition"),
    );
    r.close();
  });

  test("clearHostPorts and heldHostPorts", () => {
    const r = withApi();
    r.components.upsert({
      service: "web",
      name: "ui",
      spec: spec("ui", "ui:1", [route("", 8443)]),
      desiredState: "running",
    });
    r.routes.setHostPort("web", "api", "http", 30000);
    r.routes.setHostPort("web", "api", "grpc", 20002);
    r.routes.setHostPort("web", "ui", "", 25000);
    assert.deepEqual(r.routes.heldHostPorts(), [
      { port: 20002, service: "web", component: "api", name: "grpc", standby: false },
      { port: 25000, service: "web", component: "ui", name: "", standby: false },
      { port: 30000, service: "web", component: "api", name: "http", standby: false },
    ]);

    assert.equal(r.routes.clearHostPorts("web", "api"), 2);
    assert.equal(r.routes.clearHostPorts("web", "api"), 0);
    assert.deepEqual(
      r.routes.heldHostPorts().map((h) => h.port),
      [25000],
    );
    assert.equal(r.routes.clearHostPorts("web"), 1);
    assert.deepEqual(r.routes.heldHostPorts(), []);
    // Routes themselves remain.
    assert.equal(r.routes.list().length, 3);
    r.close();
  });

  test("a proxied route's pair: both ports held, swapped in one write, released together", () => {
    const r = withApi();
    r.routes.setPorts("web", "api", "http", { hostPort: 30000, standbyPort: 30001 });
    assert.deepEqual(
      r.routes.heldHostPorts().filter((h) => h.name === "http"),
      [
        { port: 30000, service: "web", component: "api", name: "http", standby: false },
        { port: 30001, service: "web", component: "api", name: "http", standby: true },
      ],
    );
    r.routes.setPorts("web", "api", "http", { hostPort: 30001, standbyPort: 30000 });
    const http = r.routes.list({ service: "web", component: "api" }).find((x) => x.name === "http");
    assert.deepEqual([http?.hostPort, http?.standbyPort], [30001, 30000]);
    r.routes.clearHostPorts("web", "api");
    assert.deepEqual(r.routes.heldHostPorts(), []);
    r.close();
  });
});

describe("proxy routes", () => {
  const row = (listener: number, hostname: string, service = "web", component = "api") => ({
    listener,
    hostname,
    mode: "l7" as const,
    backendHost: "127.0.0.1",
    backendPort: 20001,
    proxyProtocol: false,
    service,
    component,
    route: "",
  });

  test("one row per listener and name, lower-cased; owned by a component or manual", () => {
    const r = withApi();
    r.proxyRoutes.put(row(443, "Web.Example.test"));
    r.proxyRoutes.put({ ...row(443, "web.example.test"), backendPort: 20002 });
    r.proxyRoutes.put(row(8443, "web.example.test"));
    r.proxyRoutes.put(row(443, "legacy.example.test", "", ""));
    assert.deepEqual(
      r.proxyRoutes.list().map((x) => [x.listener, x.hostname, x.backendPort, x.service]),
      [
        [443, "legacy.example.test", 20001, ""],
        [443, "web.example.test", 20002, "web"],
        [8443, "web.example.test", 20001, "web"],
      ],
    );
    assert.equal(r.proxyRoutes.owned("web", "api").length, 2);
    assert.equal(r.proxyRoutes.owned("").length, 1);
    assert.equal(r.proxyRoutes.get(443, "WEB.example.test")?.backendPort, 20002);
    assert.equal(r.proxyRoutes.delete(8443, "web.example.test"), true);
    assert.equal(r.proxyRoutes.delete(8443, "web.example.test"), false);
    // A component that goes takes its rows along; the manual ones stay.
    r.components.delete("web", "api");
    assert.deepEqual(
      r.proxyRoutes.list().map((x) => x.hostname),
      ["legacy.example.test"],
    );
    r.close();
  });
});

describe("events", () => {
  test("add and list, newest first, with filters", () => {
    const r = fresh();
    const t = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();
    const id1 = r.events.add({
      service: "web",
      component: "api",
      kind: "state",
      prevState: "running",
      newState: "exited",
      timestamp: t(1),
    });
    const id2 = r.events.add({ service: "web", kind: "deploy", message: "v2", timestamp: t(2) });
    r.events.add({ service: "db", component: "pg", kind: "state", timestamp: t(3) });
    assert.ok(id2 > id1);

    const all = r.events.list();
    assert.deepEqual(
      all.map((e) => e.timestamp),
      [t(3), t(2), t(1)],
    );
    assert.deepEqual(all[2], {
      id: id1,
      service: "web",
      component: "api",
      kind: "state",
      prevState: "running",
      newState: "exited",
      message: "",
      timestamp: t(1),
    });
    assert.equal(all[1]?.component, "");
    assert.equal(r.events.list({ service: "web" }).length, 2);
    assert.equal(r.events.list({ service: "web", component: "" })[0]?.kind, "deploy");
    assert.equal(r.events.list({ service: "web", component: "api" }).length, 1);
    assert.equal(r.events.list({ since: t(2) }).length, 2);
    assert.deepEqual(
      r.events.list({ limit: 1 }).map((e) => e.timestamp),
      [t(3)],
    );
    assert.equal(r.events.list({ service: "web", since: t(2), limit: 5 }).length, 1);
    assert.throws(() => r.events.list({ limit: -1 }), code("invalid_argument"));
    assert.throws(() => r.events.list({ since: "yesterday" }), code("invalid_argument"));

    // Default timestamp is now; another format of the same instant is normalised.
    const before = new Date().toISOString();
    r.events.add({ service: "x", kind: "k" });
    assert.ok((r.events.list({ service: "x" })[0]?.timestamp ?? "") >= before);
    r.events.add({ service: "y", kind: "k", timestamp: "2025-01-01T00:00:01Z" });
    assert.equal(r.events.list({ service: "y", since: t(1) })[0]?.timestamp, t(1));
    r.close();
  });

  test("countTransitions counts state events since a time", () => {
    const r = fresh();
    const t = (m: number) => new Date(Date.UTC(2025, 0, 1, 0, m)).toISOString();
    for (let m = 0; m < 6; m++)
      r.events.add({ service: "web", component: "api", kind: "state", timestamp: t(m) });
    r.events.add({ service: "web", component: "api", kind: "deploy", timestamp: t(5) });
    r.events.add({ service: "web", component: "ui", kind: "state", timestamp: t(5) });
    assert.equal(r.events.countTransitions("web", "api", t(3)), 3);
    assert.equal(r.events.countTransitions("web", "api", t(10)), 0);
    assert.equal(r.events.countTransitions("web", "ui", t(0)), 1);
    r.close();
  });

  test("prune deletes older events only", () => {
    const r = fresh();
    r.events.add({ service: "a", kind: "k", timestamp: "2025-01-01T00:00:00.000Z" });
    r.events.add({ service: "a", kind: "k", timestamp: "2025-01-02T00:00:00.000Z" });
    r.events.add({ service: "a", kind: "k", timestamp: "2025-01-03T00:00:00.000Z" });
    assert.equal(r.events.prune("2025-01-02T00:00:00.000Z"), 1);
    assert.equal(r.events.list().length, 2);
    assert.equal(r.events.prune("2025-01-01"), 0);
    r.close();
  });
});

describe("transactions and durability", () => {
  test("transaction rolls back everything when fn throws, and returns fn's value", () => {
    const r = fresh();
    assert.equal(
      r.transaction(() => {
        r.services.upsert({ name: "a", active: true });
        return 42;
      }),
      42,
    );
    assert.throws(() =>
      r.transaction(() => {
        r.services.upsert({ name: "b", active: true });
        r.events.add({ service: "b", kind: "k" });
        throw new Error("boom");
      }),
    );
    assert.equal(r.services.get("b"), undefined);
    assert.deepEqual(r.events.list(), []);
    r.close();
  });

  test("everything survives close and reopen", () => {
    const path = join(dir, "reopen.db");
    let r = openRegistry(path);
    r.services.upsert({ name: "web", active: false, comment: "hello" });
    r.components.upsert({
      service: "web",
      name: "api",
      spec: spec("api", "api:v1", [route("http", 443)]),
      desiredState: "stopped",
    });
    r.components.setObserved("web", "api", { state: "running", containerId: "c1" });
    r.routes.setHostPort("web", "api", "http", 41000);
    r.events.add({ service: "web", component: "api", kind: "state", newState: "running" });
    r.close();

    r = openRegistry(path);
    assert.equal(r.services.get("web")?.comment, "hello");
    assert.equal(r.services.get("web")?.active, false);
    const c = r.components.get("web", "api");
    assert.equal(c?.observedState, "running");
    assert.equal(c?.containerId, "c1");
    assert.deepEqual(c?.spec, spec("api", "api:v1", [route("http", 443)]));
    assert.deepEqual(r.routes.heldHostPorts(), [
      { port: 41000, service: "web", component: "api", name: "http", standby: false },
    ]);
    assert.equal(r.events.list()[0]?.newState, "running");
    r.close();
  });
});
