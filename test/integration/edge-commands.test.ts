/**
 * The edge's operator commands end to end (README "Commands"): a real agent
 * with its real HAProxy, driven by the real `mcp` CLI. A manual L7 route to
 * a Node HTTP server answers through the proxy with a certificate `mcp cert
 * ca` lets clients verify, shows in `route list` and `cert list`, survives an
 * agent restart exactly once, refuses another backend for its name, and goes
 * with `route remove` (the proxy answers 421 for the name then); a manual L4
 * route passes TLS through to a Node TLS server by SNI. Listener ports are
 * free ports, never 443 or 80.
 */
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { createCa, issueServerCert } from "../../src/certs/x509.js";
import { freePort } from "../helpers/agent.js";
import { LiveAgent, ok, webDefinition } from "../helpers/live-agent.js";

const NAME = "app.example.test";
const L4_NAME = "db.example.test";

/** The part of `mcp status --json` these tests read. */
type StatusJson = {
  status: { services: { components: { routes: { served?: boolean }[] }[] }[] };
}[];

interface RouteJson {
  node: string;
  listener: number;
  hostname: string;
  mode: string;
  backend: string;
  service: string;
  served: boolean;
  certNotAfter?: string;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** GET https://NAME/ through the proxy's listener, its certificate verified by `ca`. */
function viaProxy(port: number, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: "127.0.0.1", port, servername: NAME, headers: { host: NAME }, ca, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.setTimeout(5000, () => req.destroy(new Error("no answer through the proxy in 5 s")));
  });
}

describe("mcp route / cert / dns against a real agent and HAProxy", { concurrency: false }, () => {
  let agent: LiveAgent;
  let listener: number;
  let backendPort: number;
  let tlsPort: number;
  let tlsCa: string;
  let routeCa: string;
  const servers: net.Server[] = [];

  const routes = async (): Promise<RouteJson[]> =>
    JSON.parse(
      ok(await agent.cli(["route", "list", "--json"]), "route list").stdout,
    ) as RouteJson[];

  before(async () => {
    const backend = http.createServer((req, res) => {
      res.end(`backend saw ${req.headers.host ?? ""} ${req.url ?? ""}`);
    });
    servers.push(backend);
    backendPort = await listen(backend);
    const ca = await createCa("mcp edgecmd test CA");
    tlsCa = ca.cert;
    const leaf = await issueServerCert(ca, { commonName: L4_NAME, sans: [L4_NAME], days: 10 });
    const tlsServer = tls.createServer({ cert: leaf.cert, key: leaf.key }, (socket) => {
      socket.end(
        `tls backend for ${(socket as tls.TLSSocket & { servername?: string }).servername ?? ""}`,
      );
    });
    servers.push(tlsServer);
    tlsPort = await listen(tlsServer);
    listener = await freePort();
    agent = await LiveAgent.start({
      node: "edgecmd",
      init: { proxy: true },
      config: { proxy: { http_port: 0 } },
    });
  });

  after(async () => {
    await agent?.cleanup();
    for (const s of servers) s.close();
  });

  test("route add --mode l7: the proxy answers for the name with a certificate of the route CA", async () => {
    const added = ok(
      await agent.cli([
        "route",
        "add",
        String(listener),
        NAME,
        `127.0.0.1:${backendPort}`,
        "--mode",
        "l7",
      ]),
      "route add",
    );
    assert.match(
      added.stdout,
      new RegExp(
        `route ${NAME} on port ${listener} → 127\\.0\\.0\\.1:${backendPort} \\(l7\\) added on node edgecmd`,
      ),
    );
    routeCa = ok(await agent.cli(["cert", "ca"]), "cert ca").stdout;
    assert.match(routeCa, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    const res = await viaProxy(listener, routeCa);
    assert.equal(res.status, 200);
    assert.equal(res.body, `backend saw ${NAME} /`);
  });

  test("route list shows it served with its certificate's expiry; cert list shows the local issuer", async () => {
    const mine = (await routes()).filter((r) => r.hostname === NAME);
    assert.equal(mine.length, 1);
    const [row] = mine;
    assert.equal(row?.listener, listener);
    assert.equal(row?.mode, "l7");
    assert.equal(row?.backend, `127.0.0.1:${backendPort}`);
    assert.equal(row?.service, "");
    assert.equal(row?.served, true);
    assert.ok(row?.certNotAfter && new Date(row.certNotAfter).getTime() > Date.now());
    const table = ok(await agent.cli(["route", "list"]), "route list").stdout;
    assert.match(
      table,
      /^NODE\s+LISTENER\s+HOSTNAME\s+MODE\s+BACKEND\s+SERVICE\s+SERVED\s+CERT-EXPIRES$/m,
    );
    assert.match(
      table,
      new RegExp(
        `^edgecmd\\s+${listener}\\s+${NAME}\\s+l7\\s+127\\.0\\.0\\.1:${backendPort}\\s+-\\s+yes\\s+\\d{4}-\\d{2}-\\d{2}$`,
        "m",
      ),
    );
    const certs = ok(await agent.cli(["cert", "list"]), "cert list").stdout;
    assert.match(certs, /^HOSTNAME\s+ISSUER\s+EXPIRES\s+SERIAL$/m);
    assert.match(
      certs,
      new RegExp(`^${NAME}\\s+local\\s+\\d{4}-\\d{2}-\\d{2} [\\d:]+Z\\s+[0-9A-F]+$`, "m"),
    );
  });

  test("an agent restart serves the route again, listed once", async () => {
    await agent.kill("SIGTERM");
    await agent.launch();
    const res = await viaProxy(listener, routeCa);
    assert.equal(res.status, 200);
    assert.equal(res.body, `backend saw ${NAME} /`);
    const mine = (await routes()).filter((r) => r.hostname === NAME);
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.served, true);
  });

  test("the name with another backend is refused (exit 1); bad arguments exit 2", async () => {
    const other = await agent.cli([
      "route",
      "add",
      String(listener),
      NAME,
      `127.0.0.1:${tlsPort}`,
      "--mode",
      "l7",
    ]);
    assert.equal(other.code, 1, other.stderr);
    assert.match(
      other.stderr,
      new RegExp(`already a manual route to 127\\.0\\.0\\.1:${backendPort}: remove it first`),
    );
    const remote = await agent.cli([
      "route",
      "add",
      String(listener),
      NAME,
      "10.0.0.1:80",
      "--mode",
      "l7",
    ]);
    assert.equal(remote.code, 2, remote.stderr);
    assert.match(
      remote.stderr,
      /not this node's loopback; the proxy reaches backends on 127\.0\.0\.1 only/,
    );
    const port = await agent.cli(["route", "add", "0", NAME, "127.0.0.1:80", "--mode", "l4"]);
    assert.equal(port.code, 2, port.stderr);
    assert.match(port.stderr, /listener: expected a port 1-65535, got "0"/);
    const mode = await agent.cli(["route", "add", String(listener), NAME, "127.0.0.1:80"]);
    assert.equal(mode.code, 2, mode.stderr);
    assert.match(mode.stderr, /--mode <mode>/);
    // The refused ones changed nothing.
    const res = await viaProxy(listener, routeCa);
    assert.equal(res.body, `backend saw ${NAME} /`);
  });

  test("route add --mode l4: TLS passed through to the backend by SNI, beside the L7 name", async () => {
    ok(
      await agent.cli([
        "route",
        "add",
        String(listener),
        L4_NAME,
        `localhost:${tlsPort}`,
        "--mode",
        "l4",
      ]),
      "route add l4",
    );
    const text = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect(
        { host: "127.0.0.1", port: listener, servername: L4_NAME, ca: tlsCa },
        () => {
          let data = "";
          socket.setEncoding("utf8");
          socket.on("data", (c: string) => (data += c));
          socket.on("end", () => resolve(data));
        },
      );
      socket.on("error", reject);
    });
    assert.equal(text, `tls backend for ${L4_NAME}`);
    const l4 = (await routes()).find((r) => r.hostname === L4_NAME);
    assert.equal(l4?.served, true);
    assert.equal(l4?.mode, "l4");
    assert.equal(l4?.certNotAfter, undefined);
    ok(await agent.cli(["route", "remove", String(listener), L4_NAME]), "route remove l4");
  });

  test("route remove: the proxy answers 421 for the name; removing it again is not found", async () => {
    // Another name keeps the listener open (a listener no route needs is closed), so the proxy answers.
    const keep = "keep.example.test";
    ok(
      await agent.cli([
        "route",
        "add",
        String(listener),
        keep,
        `127.0.0.1:${backendPort}`,
        "--mode",
        "l7",
      ]),
      `route add ${keep}`,
    );
    const removed = ok(
      await agent.cli(["route", "remove", String(listener), NAME]),
      "route remove",
    );
    assert.match(
      removed.stdout,
      new RegExp(`route ${NAME} on port ${listener} .* removed on node edgecmd`),
    );
    assert.equal((await viaProxy(listener, routeCa)).status, 421);
    assert.deepEqual(
      (await routes()).map((r) => r.hostname),
      [keep],
    );
    const again = await agent.cli(["route", "remove", String(listener), NAME]);
    assert.notEqual(again.code, 0);
    assert.match(
      again.stderr,
      new RegExp(`no route for ${NAME} on port ${listener} on node edgecmd`),
    );
    ok(await agent.cli(["route", "remove", String(listener), keep]), `route remove ${keep}`);
    assert.deepEqual(await routes(), []);
  });

  test("a service's route: served in status and route list, its name refused to route add/remove", async () => {
    const SHOP = "shop.example.test";
    await agent.addDefinition(
      "shop",
      webDefinition("shop", "edgecmd", [
        "",
        "[[components.routes]]",
        `port = ${listener}`,
        'mode = "l7"',
        `hostname = "${SHOP}"`,
      ]),
    );
    ok(await agent.cli(["deploy", "shop", "-q"]), "deploy shop");
    const served = async () => {
      const status = JSON.parse(
        ok(await agent.cli(["status", "--json"]), "status").stdout,
      ) as StatusJson;
      return status[0]?.status.services[0]?.components[0]?.routes[0]?.served;
    };
    assert.equal(await served(), true);
    const table = ok(await agent.cli(["status"]), "status").stdout;
    assert.match(table, /^shop\s+web\s+edgecmd\s+running\s+running\s+ok\s+yes\s+PORT:/m);
    const row = (await routes()).find((r) => r.hostname === SHOP);
    assert.equal(row?.service, "shop");
    assert.equal(row?.served, true);
    const add = [
      "route",
      "add",
      String(listener),
      SHOP,
      `127.0.0.1:${backendPort}`,
      "--mode",
      "l7",
    ];
    const taken = await agent.cli(add);
    assert.equal(taken.code, 1, taken.stderr);
    assert.match(
      taken.stderr,
      new RegExp(`${SHOP} on port ${listener} is already a route of shop/web`),
    );
    const owned = await agent.cli(["route", "remove", String(listener), SHOP]);
    assert.equal(owned.code, 1, owned.stderr);
    assert.match(
      owned.stderr,
      new RegExp(
        `${SHOP} on port ${listener} is owned by shop/web: it goes with mcp stop/undeploy`,
      ),
    );
    // Stopped, the route is off the proxy but its name stays the service's.
    ok(await agent.cli(["stop", "shop"]), "stop shop");
    assert.equal(await served(), false);
    const stopped = await agent.cli(add);
    assert.equal(stopped.code, 1, stopped.stderr);
    assert.match(
      stopped.stderr,
      new RegExp(`${SHOP} on port ${listener} is the name of route shop/web`),
    );
    ok(await agent.cli(["undeploy", "shop"]), "undeploy shop");
  });

  test("dns list without [dns]: a clear error, non-zero", async () => {
    const dns = await agent.cli(["dns", "list"]);
    assert.notEqual(dns.code, 0);
    assert.match(dns.stderr, /^mcp: node edgecmd: this node has no \[dns\] configured$/m);
  });
});
