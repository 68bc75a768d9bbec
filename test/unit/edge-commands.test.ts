/**
 * The edge commands' pure parts and their agent side over a fake edge:
 * AddRoute's checks (each refusal's words), the listings (served from the
 * proxy's live maps, certificate expiry, DNS), RemoveRoute's refusals, and
 * the CLI's tables for `route list`, `cert list`, `dns list` and `status`'s
 * SERVED cell.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkManualRoute,
  removeManualRoute,
  addManualRoute,
} from "../../src/agent/edge/manual.js";
import {
  listCerts,
  listDnsRecords,
  listRoutes,
  routeServing,
  type EdgeView,
} from "../../src/agent/edge/listing.js";
import type { Edge, ProxyEntry } from "../../src/edge/edge.js";
import type { LiveRoute } from "../../src/edge/types.js";
import type { ProxiedRoute } from "../../src/edge/hostnames.js";
import type { DnsRecord, RouteCert } from "../../src/edge/types.js";
import {
  formatCertList,
  formatDnsList,
  formatRouteChange,
  formatRouteList,
  routeAddRequest,
  type NodeRoute,
} from "../../src/cli/commands/edge.js";
import { formatServed } from "../../src/cli/commands/status.js";
import type { AddRouteRequest } from "../../src/gen/mcp/v1/mcp.js";
import type { ProxyRouteRow, RouteRow } from "../../src/registry/index.js";
import { McpError } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import { agent } from "../helpers/fake-agent.js";

const DOMAIN = "svc.mcp.test";
const NOT_AFTER = new Date("2027-02-25T12:00:00Z");

function row(fields: Partial<ProxyRouteRow> = {}): ProxyRouteRow {
  return {
    listener: 8443,
    hostname: "app.example.test",
    mode: "l7",
    backendHost: "127.0.0.1",
    backendPort: 9000,
    proxyProtocol: false,
    service: "",
    component: "",
    route: "",
    ...fields,
  };
}

function req(fields: Partial<AddRouteRequest> = {}): AddRouteRequest {
  return {
    listener: 8443,
    hostname: "app.example.test",
    backend: "127.0.0.1:9000",
    mode: "l7",
    proxyProtocol: false,
    ...fields,
  };
}

const serviceRoute = (fields: Partial<ProxiedRoute> = {}): ProxiedRoute => ({
  service: "shop",
  component: "web",
  route: "",
  port: 8443,
  hostname: "",
  protocol: "tcp",
  ...fields,
});

/** The message of the McpError `fn` throws, with its code checked. */
function refusal(fn: () => unknown, code: McpError["code"]): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, code, err.message);
    return err.message;
  }
  assert.fail("expected a refusal");
}

describe("AddRoute's checks (checkManualRoute)", () => {
  const state = { httpPort: 80, domain: DOMAIN, rows: [], routes: [] };
  const refused = (r: Partial<AddRouteRequest>, code: McpError["code"] = "invalid_argument") =>
    refusal(() => checkManualRoute(req(r), state), code);

  test("a good route becomes a manual row (lower-cased name, no service)", () => {
    assert.deepEqual(
      checkManualRoute(req({ hostname: "App.Example.TEST", proxyProtocol: true }), state),
      {
        row: row({ proxyProtocol: true }),
        replaces: undefined,
      },
    );
    assert.equal(
      checkManualRoute(req({ backend: "[::1]:9000", mode: "l4" }), state).row.backendHost,
      "::1",
    );
  });

  test("each bad argument says what was expected", () => {
    assert.equal(refused({ listener: 0 }), "listener: expected a port 1-65535, got 0");
    assert.equal(refused({ listener: 65536 }), "listener: expected a port 1-65535, got 65536");
    assert.equal(
      refused({ listener: 80 }),
      "listener: port 80 is the proxy's plain HTTP port ([proxy] http_port); choose another listener port",
    );
    assert.equal(
      refused({ hostname: "bad_name.test" }),
      'hostname: expected a DNS name such as app.example.com, got "bad_name.test"',
    );
    assert.equal(
      refused({ hostname: "" }),
      'hostname: expected a DNS name such as app.example.com, got ""',
    );
    assert.equal(refused({ mode: "l5" }), 'mode: expected l4 or l7, got "l5"');
    assert.equal(
      refused({ backend: "127.0.0.1" }),
      'backend: expected host:port such as 127.0.0.1:8080, got "127.0.0.1" (IPv6 as [::1]:8080)',
    );
    assert.equal(
      refused({ backend: "10.0.0.5:9000" }),
      'backend: address "10.0.0.5" is not this node\'s loopback; the proxy reaches backends on 127.0.0.1 only (its maps carry just a port), so use 127.0.0.1, localhost or ::1',
    );
    assert.match(refused({ backend: "db.internal:5432" }), /^backend: host "db.internal" is not/);
    assert.equal(
      refused({ backend: "127.0.0.1:0" }),
      'backend port: expected a port 1-65535, got "0"',
    );
    assert.equal(
      refused({ backend: "localhost:70000" }),
      'backend port: expected a port 1-65535, got "70000"',
    );
  });

  test("a service's published route keeps its name", () => {
    const rows = [row({ service: "shop", component: "web", route: "admin" })];
    assert.equal(
      refusal(() => checkManualRoute(req(), { ...state, rows }), "failed_precondition"),
      "app.example.test on port 8443 is already a route of shop/web/admin: it goes with mcp stop/undeploy of that service",
    );
  });

  test("another manual route's name: refused for another backend, replaced for the same", () => {
    const rows = [row({ backendPort: 9001 })];
    assert.equal(
      refusal(() => checkManualRoute(req(), { ...state, rows }), "failed_precondition"),
      "app.example.test on port 8443 is already a manual route to 127.0.0.1:9001: remove it first (mcp route remove 8443 app.example.test)",
    );
    const same = [row({ mode: "l4" })];
    const plan = checkManualRoute(req(), { ...state, rows: same });
    assert.deepEqual(plan.replaces, same[0]);
    assert.equal(plan.row.mode, "l7");
  });

  test("a service's recorded route keeps its name while not on the proxy (default and explicit)", () => {
    const byDefault = [serviceRoute({ service: "shop" })];
    assert.equal(
      refusal(
        () =>
          checkManualRoute(req({ hostname: `shop.${DOMAIN}` }), { ...state, routes: byDefault }),
        "failed_precondition",
      ),
      `shop.${DOMAIN} on port 8443 is the name of route shop/web (it answers to it whenever the service runs): choose another hostname or listener`,
    );
    const named = [serviceRoute({ route: "api", hostname: "app.example.test" })];
    assert.match(
      refusal(() => checkManualRoute(req(), { ...state, routes: named }), "failed_precondition"),
      /is the name of route shop\/web\/api/,
    );
  });

  test("what does not clash: another listener, a udp route, a manual route's entry in routesOnNode", () => {
    const routes = [
      serviceRoute({ hostname: "app.example.test", port: 9443 }),
      serviceRoute({ hostname: "app.example.test", protocol: "udp" }),
      serviceRoute({ service: "a route added with mcp route add", component: "" }),
    ];
    assert.equal(checkManualRoute(req(), { ...state, routes }).row.hostname, "app.example.test");
  });
});

/** A fake edge: certificates by name, the proxy's live entries, an optional DNS zone. */
function fakeEdge(
  opts: {
    certs?: Record<string, Partial<RouteCert>>;
    live?: LiveRoute[] | Error;
    dns?: DnsRecord[];
  } = {},
): EdgeView {
  return {
    routeCaPem: "CA",
    dns: opts.dns
      ? { zone: "example.test", list: () => Promise.resolve(opts.dns ?? []) }
      : undefined,
    currentCert: (hostname: string) => {
      const c = opts.certs?.[hostname];
      return Promise.resolve(
        c
          ? { hostname, pem: "", issuer: "local", notAfter: NOT_AFTER, serial: "0A", ...c }
          : undefined,
      );
    },
    driver: {
      liveRoutes: () =>
        opts.live instanceof Error ? Promise.reject(opts.live) : Promise.resolve(opts.live ?? []),
    },
  };
}

const live = (r: ProxyRouteRow, port = r.backendPort): LiveRoute => ({
  listener: r.listener,
  hostname: r.hostname,
  mode: r.mode,
  proxyProtocol: r.proxyProtocol,
  hostPort: port,
});

describe("the listings", () => {
  const l7 = row();
  const l4 = row({
    hostname: "db.example.test",
    mode: "l4",
    backendHost: "::1",
    backendPort: 5432,
  });
  const moved = row({ hostname: "moved.example.test", service: "shop", component: "web" });

  test("ListRoutes: served only when the live map has the name, in its map, to its port", async () => {
    const edge = fakeEdge({
      certs: { "app.example.test": {} },
      live: [live(l7), live(l4), live(moved, 1234)],
    });
    const infos = await listRoutes(edge, [l7, l4, moved], silentLogger());
    assert.deepEqual(
      infos.map((i) => [i.hostname, i.backend, i.served, i.certNotAfter]),
      [
        ["app.example.test", "127.0.0.1:9000", true, NOT_AFTER],
        ["db.example.test", "[::1]:5432", true, undefined],
        ["moved.example.test", "127.0.0.1:9000", false, undefined],
      ],
    );
    assert.equal(infos[2]?.service, "shop");
    // The same name in the other PROXY-protocol map is not this route.
    const pp = await listRoutes(
      fakeEdge({ live: [{ ...live(l7), proxyProtocol: true }] }),
      [l7],
      silentLogger(),
    );
    assert.equal(pp[0]?.served, false);
  });

  test("ListRoutes: a proxy that does not answer serves nothing, the rows still show", async () => {
    const infos = await listRoutes(
      fakeEdge({ live: new Error("ECONNREFUSED") }),
      [l7],
      silentLogger(),
    );
    assert.deepEqual(
      infos.map((i) => [i.hostname, i.served]),
      [["app.example.test", false]],
    );
  });

  test("ListCerts: each L7 name with a certificate once, by name", async () => {
    const edge = fakeEdge({
      certs: {
        "app.example.test": { serial: "01" },
        "b.example.test": { issuer: "acme", serial: "02" },
      },
    });
    const certs = await listCerts(edge, [
      row({ hostname: "b.example.test" }),
      l7,
      row({ listener: 9443 }),
      l4,
      row({ hostname: "nocert.example.test" }),
    ]);
    assert.deepEqual(certs, [
      { hostname: "app.example.test", issuer: "local", notAfter: NOT_AFTER, serial: "01" },
      { hostname: "b.example.test", issuer: "acme", notAfter: NOT_AFTER, serial: "02" },
    ]);
  });

  test("ListDnsRecords: by name; without [dns] a failed precondition", async () => {
    const records: DnsRecord[] = [
      { name: "b.example.test", type: "A", address: "192.0.2.1", ttl: 60 },
      { name: "a.example.test", type: "AAAA", address: "2001:db8::1", ttl: 300 },
    ];
    assert.deepEqual(await listDnsRecords(fakeEdge({ dns: records })), {
      zone: "example.test",
      records: [records[1], records[0]],
    });
    for (const edge of [fakeEdge(), undefined]) {
      await assert.rejects(listDnsRecords(edge), {
        code: "failed_precondition",
        message: "this node has no [dns] configured",
      });
    }
  });

  test("status's served: on the proxy or not; undefined for udp and without a proxy", async () => {
    const recorded = (fields: Partial<RouteRow>): RouteRow => ({
      service: "shop",
      component: "web",
      name: "",
      port: 8443,
      mode: "l7",
      hostname: "",
      protocol: "tcp",
      hostPort: 9000,
      standbyPort: 0,
      ...fields,
    });
    const published = row({ service: "shop", component: "web" });
    const serving = await routeServing(
      fakeEdge({ live: [live(published)] }),
      [published],
      silentLogger(),
    );
    assert.ok(serving);
    assert.equal(serving(recorded({})), true);
    assert.equal(serving(recorded({ name: "admin" })), false);
    assert.equal(serving(recorded({ protocol: "udp" })), undefined);
    assert.equal(serving(recorded({ port: 0 })), undefined);
    assert.equal(await routeServing(undefined, [published], silentLogger()), undefined);
  });
});

/** An Edge whose proxy only records what it is asked (the agent's calls). */
function recordingEdge(fail?: "apply"): { edge: Edge; calls: string[] } {
  const calls: string[] = [];
  const name = (e: ProxyEntry) => `${e.listener} ${e.hostname} ${e.mode}`;
  const fake = {
    domain: DOMAIN,
    driver: { httpPort: 0 },
    certFor: (hostname: string) =>
      Promise.resolve({
        cert: { hostname, pem: "PEM", issuer: "local", notAfter: NOT_AFTER, serial: "01" },
        fresh: true,
      }),
    listenFor: (entries: ProxyEntry[]) => {
      calls.push(`listen ${entries.map((e) => e.listener).join(",")}`);
      return Promise.resolve();
    },
    apply: (e: ProxyEntry, pem?: string) => {
      calls.push(`apply ${name(e)}${pem ? " +cert" : ""}`);
      return fail === "apply" ? Promise.reject(new Error("haproxy said no")) : Promise.resolve();
    },
    remove: (e: ProxyEntry) => {
      calls.push(`remove ${name(e)}`);
      return Promise.resolve();
    },
  };
  return { edge: fake as unknown as Edge, calls };
}

describe("AddRoute and RemoveRoute on the agent", () => {
  test("add: row, listener, entry with its new certificate; remove: row, entry, listener", async () => {
    const { ctx, registry } = agent();
    const { edge, calls } = recordingEdge();
    ctx.edge = edge;
    const info = await addManualRoute(ctx, req());
    assert.equal(info.certNotAfter, NOT_AFTER);
    assert.deepEqual(registry.proxyRoutes.owned(""), [row()]);
    assert.deepEqual(calls, ["listen 8443", "apply 8443 app.example.test l7 +cert"]);
    calls.length = 0;
    const removed = await removeManualRoute(ctx, 8443, "APP.example.test");
    assert.equal(removed.backend, "127.0.0.1:9000");
    assert.deepEqual(registry.proxyRoutes.list(), []);
    assert.deepEqual(calls, ["remove 8443 app.example.test l7", "listen "]);
  });

  test("add that the proxy refuses leaves no row", async () => {
    const { ctx, registry } = agent();
    const { edge } = recordingEdge("apply");
    ctx.edge = edge;
    await assert.rejects(addManualRoute(ctx, req({ mode: "l4" })), {
      code: "internal",
      message: "the proxy refused the route: haproxy said no",
    });
    assert.deepEqual(registry.proxyRoutes.list(), []);
  });

  test("remove: a service's route is refused, a missing one is not found", async () => {
    const { ctx, registry } = agent();
    ctx.edge = recordingEdge().edge;
    registry.proxyRoutes.put(row({ service: "shop", component: "web" }));
    await assert.rejects(removeManualRoute(ctx, 8443, "app.example.test"), {
      code: "failed_precondition",
      message: "app.example.test on port 8443 is owned by shop/web: it goes with mcp stop/undeploy",
    });
    await assert.rejects(removeManualRoute(ctx, 8443, "other.example.test"), {
      code: "not_found",
      message: "no route for other.example.test on port 8443 on node local (see mcp route list)",
    });
  });

  test("without [proxy]: a failed precondition", async () => {
    const { ctx } = agent();
    await assert.rejects(addManualRoute(ctx, req()), {
      code: "failed_precondition",
      message: "this node has no [proxy] configured",
    });
  });
});

describe("the CLI's edge tables", () => {
  const base: NodeRoute = {
    node: "n1",
    listener: 8443,
    hostname: "app.example.test",
    mode: "l7",
    backend: "127.0.0.1:9000",
    service: "",
    component: "",
    route: "",
    proxyProtocol: false,
    certNotAfter: NOT_AFTER,
    served: true,
  };

  test("route list: owner, served, certificate expiry (L7 only), PROXY protocol marked", () => {
    const text = formatRouteList([
      base,
      {
        ...base,
        hostname: "shop.svc.mcp.test",
        backend: "127.0.0.1:20001",
        service: "shop",
        component: "web",
        route: "admin",
        served: false,
        certNotAfter: undefined,
      },
      {
        ...base,
        node: "n2",
        listener: 5432,
        hostname: "db.example.test",
        mode: "l4",
        proxyProtocol: true,
        certNotAfter: undefined,
      },
    ]);
    assert.equal(
      text,
      [
        "NODE  LISTENER  HOSTNAME           MODE   BACKEND          SERVICE         SERVED  CERT-EXPIRES",
        "n1    8443      app.example.test   l7     127.0.0.1:9000   -               yes     2027-02-25",
        "n1    8443      shop.svc.mcp.test  l7     127.0.0.1:20001  shop/web/admin  no      -",
        "n2    5432      db.example.test    l4+pp  127.0.0.1:9000   -               yes     -",
        "",
      ].join("\n"),
    );
    assert.equal(formatRouteList([]), "no routes\n");
  });

  test("cert list and dns list", () => {
    assert.equal(
      formatCertList([
        { hostname: "app.example.test", issuer: "local", notAfter: NOT_AFTER, serial: "3F2A" },
      ]),
      "HOSTNAME          ISSUER  EXPIRES               SERIAL\napp.example.test  local   2027-02-25 12:00:00Z  3F2A\n",
    );
    assert.equal(formatCertList([]), "no certificates\n");
    assert.equal(
      formatDnsList([
        { name: "app.example.test", type: "A", address: "192.0.2.1", ttl: 60 },
        { name: "app.example.test", type: "AAAA", address: "2001:db8::1", ttl: 300 },
      ]),
      [
        "NAME              TYPE  ADDRESS      TTL",
        "app.example.test  A     192.0.2.1    60",
        "app.example.test  AAAA  2001:db8::1  300",
        "",
      ].join("\n"),
    );
    assert.equal(formatDnsList([]), "no records\n");
  });

  test("route add/remove: one line saying what changed where", () => {
    assert.equal(
      formatRouteChange("n1", { ...base, proxyProtocol: true }, "added"),
      "route app.example.test on port 8443 → 127.0.0.1:9000 (l7, PROXY protocol) added on node n1\n",
    );
  });

  test("route add's arguments are checked before dialling", () => {
    assert.deepEqual(
      routeAddRequest("8443", "App.Example.Test", "LOCALHOST:9000", { mode: "l4" }),
      {
        listener: 8443,
        hostname: "app.example.test",
        backend: "localhost:9000",
        mode: "l4",
        proxyProtocol: false,
      },
    );
    const bad = (listener: string, backend: string, mode: string) =>
      refusal(() => routeAddRequest(listener, "a.test", backend, { mode }), "invalid_argument");
    assert.equal(bad("84x3", "127.0.0.1:1", "l4"), 'listener: expected a port 1-65535, got "84x3"');
    assert.equal(bad("8443", "127.0.0.1:1", "tcp"), 'mode: expected l4 or l7, got "tcp"');
    assert.match(bad("8443", "192.0.2.1:1", "l4"), /is not this node's loopback/);
  });

  test("status's SERVED cell: one entry per route, - off the proxy", () => {
    assert.equal(formatServed([]), "-");
    assert.equal(
      formatServed([{ served: true }, { served: false }, { served: undefined }]),
      "yes,no,-",
    );
  });
});
