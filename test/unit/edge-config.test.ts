/**
 * The HAProxy configuration and map files (src/edge/haproxy/config.ts), on
 * their exact output. test/integration/haproxy.test.ts runs them in HAProxy.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { initAgentDir } from "../../src/agent/server/init.js";
import { loadAgentConfig } from "../../src/config/agent.js";
import { challengeToken } from "../../src/edge/certs/http01.js";
import {
  listenerFiles,
  proxyFiles,
  renderHaproxyConfig,
  renderMap,
} from "../../src/edge/haproxy/config.js";
import {
  addCertCommands,
  addMapCommand,
  renewCertCommands,
  delMapCommand,
  parseShowMap,
  runtimeError,
  setMapCommand,
  showMapCommand,
} from "../../src/edge/haproxy/runtime-api.js";
import { parseMapFile } from "../../src/edge/haproxy/driver.js";
import { hostnameClashes, routeHostname, type ProxiedRoute } from "../../src/edge/hostnames.js";

describe("haproxy config", () => {
  test("maps: one `host port` line per route, lower-cased and sorted", () => {
    const map = new Map([
      ["Web.svc.mcp.test", 20001],
      ["api.svc.mcp.test", 20002],
    ]);
    assert.equal(renderMap(map), "api.svc.mcp.test 20002\nweb.svc.mcp.test 20001\n");
    assert.equal(renderMap(new Map()), "");
  });

  test("one frontend per listener port, each once and in order; routes are not in it", () => {
    const text = renderHaproxyConfig({
      dir: "/p",
      bind: "127.0.0.1",
      listeners: [8443, 443, 8443],
    });
    const frontends = text.split("\n").filter((l) => l.startsWith("frontend "));
    assert.deepEqual(frontends, [
      "frontend listener_443",
      "frontend l7_443",
      "frontend listener_8443",
      "frontend l7_8443",
    ]);
    assert.ok(text.includes("  bind 127.0.0.1:443\n"));
    assert.ok(text.includes("stats socket /p/admin.sock mode 600 level admin expose-fd listeners"));
    assert.ok(
      text.includes(
        "  bind abns@mcp-l7-443 accept-proxy ssl crt /p/default.pem crt-list /p/certs-443.crtlist alpn h2,http/1.1",
      ),
    );
    assert.ok(text.includes("map(/p/l7-443.map) -m found }"));
    assert.ok(!text.includes("svc.mcp.test"));
  });

  test("PROXY-protocol routes: their own maps, looked up first, into backends whose server sends PROXY v2", () => {
    const text = renderHaproxyConfig({ dir: "/p", bind: "127.0.0.1", listeners: [443] });
    const lines = text.split("\n");
    const section = (name: string) => {
      const start = lines.indexOf(name);
      assert.ok(start >= 0, `${name} is rendered`);
      const end = lines.indexOf("", start);
      return lines.slice(start + 1, end);
    };
    const host = "req.hdr(host),field(1,:),lower";
    // L4: the l4pp map decides before the plain one; both before the L7 default.
    assert.deepEqual(section("frontend listener_443").slice(3), [
      "  use_backend l4pp_443 if { req.ssl_sni,lower,map(/p/l4pp-443.map) -m found }",
      "  use_backend l4_443 if { req.ssl_sni,lower,map(/p/l4-443.map) -m found }",
      "  default_backend to_l7_443",
    ]);
    assert.deepEqual(section("backend l4pp_443"), [
      "  tcp-request content set-dst ipv4(127.0.0.1)",
      "  tcp-request content set-dst-port req.ssl_sni,lower,map(/p/l4pp-443.map)",
      "  server route 0.0.0.0:0 send-proxy-v2",
    ]);
    assert.deepEqual(section("backend l4_443").at(-1), "  server route 0.0.0.0:0");
    // L7: a host in either map is known (no 421); the l7pp map picks its backend.
    assert.deepEqual(section("frontend l7_443").slice(2), [
      `  http-request return status 421 unless { ${host},map(/p/l7-443.map) -m found } || { ${host},map(/p/l7pp-443.map) -m found }`,
      `  use_backend l7pp_routes_443 if { ${host},map(/p/l7pp-443.map) -m found }`,
      "  default_backend l7_routes_443",
    ]);
    assert.deepEqual(section("backend l7pp_routes_443"), [
      "  mode http",
      "  option forwardfor",
      "  http-request set-header X-Forwarded-Proto https",
      "  http-request set-dst ipv4(127.0.0.1)",
      `  http-request set-dst-port ${host},map(/p/l7pp-443.map)`,
      "  server route 0.0.0.0:0 send-proxy-v2",
    ]);
    assert.deepEqual(section("backend l7_routes_443").at(-1), "  server route 0.0.0.0:0");
    assert.equal(text.match(/send-proxy-v2/g)?.length, 3, "to_l7, l4pp and l7pp only");
  });

  test("an IPv6 bind address is bracketed", () => {
    const text = renderHaproxyConfig({ dir: "/p", bind: "::1", listeners: [443] });
    assert.ok(text.includes("  bind [::1]:443\n"));
  });

  test("httpPort > 0: a plain HTTP frontend sends challenges to the responder's socket, redirects the rest", () => {
    const text = renderHaproxyConfig({
      dir: "/p",
      bind: "127.0.0.1",
      listeners: [443],
      httpPort: 80,
    });
    const section = text.slice(text.indexOf("frontend http_80"));
    assert.equal(
      section,
      [
        "frontend http_80",
        "  mode http",
        "  bind 127.0.0.1:80",
        "  http-request redirect scheme https code 301 unless { path_beg /.well-known/acme-challenge/ }",
        "  use_backend acme_http01 if { path_beg /.well-known/acme-challenge/ }",
        "",
        "backend acme_http01",
        "  mode http",
        "  server responder unix@/p/acme.sock",
        "",
      ].join("\n"),
    );
    assert.equal(proxyFiles("/p").acmeSocket, "/p/acme.sock");
  });

  test("httpPort 0 or absent: no plain HTTP frontend", () => {
    for (const httpPort of [0, undefined]) {
      const text = renderHaproxyConfig({
        dir: "/p",
        bind: "127.0.0.1",
        listeners: [443],
        httpPort,
      });
      assert.ok(!text.includes("frontend http_"), text);
      assert.ok(!text.includes("acme"), text);
    }
  });

  test("challenge tokens: only a base64url token under the well-known path", () => {
    assert.equal(challengeToken("/.well-known/acme-challenge/abc-DEF_123"), "abc-DEF_123");
    assert.equal(challengeToken("/.well-known/acme-challenge/abc?x=1"), "abc");
    assert.equal(challengeToken("/.well-known/acme-challenge/"), undefined);
    assert.equal(challengeToken("/.well-known/acme-challenge/../etc"), undefined);
    assert.equal(challengeToken("/index.html"), undefined);
    assert.equal(challengeToken(undefined), undefined);
  });

  test("listener files live under the proxy dir", () => {
    assert.deepEqual(listenerFiles("/srv/mcp/proxy", 443), {
      l4Map: "/srv/mcp/proxy/l4-443.map",
      l7Map: "/srv/mcp/proxy/l7-443.map",
      l4ppMap: "/srv/mcp/proxy/l4pp-443.map",
      l7ppMap: "/srv/mcp/proxy/l7pp-443.map",
      crtList: "/srv/mcp/proxy/certs-443.crtlist",
    });
  });
});

describe("haproxy runtime API commands", () => {
  test("map commands, exactly", () => {
    assert.equal(
      addMapCommand("/p/l7-443.map", "web.svc.mcp.test", "20001"),
      "add map /p/l7-443.map web.svc.mcp.test 20001",
    );
    assert.equal(setMapCommand("/p/l7-443.map", "web", "20002"), "set map /p/l7-443.map web 20002");
    assert.equal(delMapCommand("/p/l4-443.map", "db"), "del map /p/l4-443.map db");
    assert.equal(showMapCommand("/p/l4-443.map"), "show map /p/l4-443.map");
  });

  test("a space, newline or semicolon would smuggle a second command: refused", () => {
    for (const bad of ["a b", "a\nshutdown sessions", "a;b", ""]) {
      assert.throws(() => addMapCommand("/p/m.map", bad, "1"), /cannot go to HAProxy/);
    }
  });

  test("show map output and refusals are read", () => {
    const text = "0x55d0c1 api.svc.mcp.test 20002\n0x55d0c2 web.svc.mcp.test 20001\n\n";
    assert.deepEqual(
      [...parseShowMap(text)],
      [
        ["api.svc.mcp.test", "20002"],
        ["web.svc.mcp.test", "20001"],
      ],
    );
    assert.equal(runtimeError("add map x a 1", "\n"), undefined);
    assert.match(
      runtimeError("add map x a 1", "Unknown map identifier. Please use #<id> or <file>.\n")
        ?.message ?? "",
      /^haproxy refused "add map x a 1": Unknown map identifier/,
    );
  });
});

describe("haproxy runtime certificate commands", () => {
  const pem =
    "-----BEGIN CERTIFICATE-----\nAAA\n\n-----END CERTIFICATE-----\n\n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n";
  const payload =
    "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----";

  test("new, set (blank lines dropped: a blank line ends the payload), commit, then list it", () => {
    assert.deepEqual(
      addCertCommands("/p/web.pem", pem, "/p/certs-443.crtlist", "web.svc.mcp.test"),
      [
        "new ssl cert /p/web.pem",
        `set ssl cert /p/web.pem <<\n${payload}\n`,
        "commit ssl cert /p/web.pem",
        "add ssl crt-list /p/certs-443.crtlist <<\n/p/web.pem web.svc.mcp.test\n",
      ],
    );
  });

  test("a renewal only replaces the certificate in place", () => {
    assert.deepEqual(renewCertCommands("/p/web.pem", pem), [
      `set ssl cert /p/web.pem <<\n${payload}\n`,
      "commit ssl cert /p/web.pem",
    ]);
  });
});

describe("route hostnames on the proxy", () => {
  const route = (
    service: string,
    component: string,
    fields: Partial<ProxiedRoute> = {},
  ): ProxiedRoute => ({
    service,
    component,
    route: "",
    port: 443,
    hostname: "",
    protocol: "tcp",
    ...fields,
  });

  test("the route's hostname, else <service>.<domain>, lower-cased", () => {
    assert.equal(routeHostname(route("hello", "web"), "svc.mcp.test"), "hello.svc.mcp.test");
    assert.equal(
      routeHostname(route("hello", "web", { hostname: "Hi.Example.test" }), "d"),
      "hi.example.test",
    );
  });

  test("two routes of one service on one listener with the default name: refused, naming both", () => {
    const problems = hostnameClashes(
      [route("multi", "api", { route: "rest" }), route("multi", "web")],
      [],
      "svc.mcp.test",
    ).map((p) => p.message);
    assert.deepEqual(problems, [
      "route multi/web and route multi/api/rest both answer to multi.svc.mcp.test on port 443: give one of them another hostname",
    ]);
  });

  test("across services; another port, another name, udp, or the service's own old routes: fine", () => {
    const existing = [
      route("shop", "web", { hostname: "www.example.test" }),
      route("hello", "web"),
      route("dns", "udp", { hostname: "www.example.test", protocol: "udp" }),
    ];
    assert.deepEqual(
      hostnameClashes([route("blog", "web", { hostname: "WWW.example.test" })], existing, "d").map(
        (p) => p.message,
      ),
      [
        "route blog/web and route shop/web both answer to www.example.test on port 443: give one of them another hostname",
      ],
    );
    assert.deepEqual(
      hostnameClashes(
        [
          route("blog", "web", { hostname: "www.example.test", port: 8443 }),
          route("blog", "api", { hostname: "api.example.test" }),
          route("blog", "dns", { hostname: "www.example.test", protocol: "udp" }),
        ],
        existing,
        "d",
      ),
      [],
    );
    // A redeploy of hello meets its own routes in the registry: not a clash.
    assert.deepEqual(hostnameClashes([route("hello", "web")], existing, "d"), []);
  });
});

describe("map files read back", () => {
  test("parseMapFile is renderMap's inverse; junk lines are skipped", () => {
    const map = new Map([
      ["api.svc.mcp.test", 20002],
      ["web.svc.mcp.test", 20001],
    ]);
    assert.deepEqual(parseMapFile(renderMap(map)), map);
    assert.deepEqual([...parseMapFile("# comment\n\nhalf\nx.test notaport\n")], []);
  });
});

describe("mcp-agent init and the edge", () => {
  test("by default: a [proxy] on loopback under the agent dir, the local issuer, a route CA", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-init-edge-"));
    try {
      const init = await initAgentDir({ dir, node: "edge" });
      const config = await loadAgentConfig(init.agentConfig);
      assert.deepEqual(config.proxy, {
        driver: "haproxy",
        dir: path.join(dir, "proxy"),
        bind: "127.0.0.1",
        httpPort: 80,
        domain: "svc.mcp.test",
        drainMs: 2000,
      });
      assert.equal(config.certs?.issuer, "local");
      assert.equal(config.dns, undefined, "DNS stays off unless configured");
      assert.equal(init.routeCaCert, path.join(dir, "proxy", "route-ca.crt"));
      const ca = new X509Certificate(await readFile(init.routeCaCert ?? "", "utf8"));
      assert.ok(ca.ca);
      // Not the CA of the agent's gRPC server: a route certificate cannot impersonate the agent.
      assert.notEqual(
        ca.fingerprint256,
        new X509Certificate(await readFile(init.caCert, "utf8")).fingerprint256,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("--no-proxy: no edge tables, no route CA", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-init-edge-"));
    try {
      const init = await initAgentDir({ dir, node: "edge", proxy: false });
      const config = await loadAgentConfig(init.agentConfig);
      assert.equal(config.proxy, undefined);
      assert.equal(config.certs, undefined);
      assert.equal(init.routeCaCert, undefined);
      await assert.rejects(stat(path.join(dir, "proxy")), /ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
