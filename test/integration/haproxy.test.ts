/**
 * The rendered HAProxy configuration in a real HAProxy on loopback (issue 8,
 * first slice): the config is valid, an L7 name in the listener's map is
 * terminated and reaches its backend over plain HTTP with X-Forwarded-*
 * headers, an unknown name gets 421, and an L4 name passes through still
 * encrypted. The backends are Node servers on loopback standing in for
 * containers.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import {
  listenerFiles,
  proxyFiles,
  renderHaproxyConfig,
  renderMap,
} from "../../src/edge/haproxy/config.js";
import { createCa, issueServerCert } from "../../src/certs/x509.js";
import {
  addCertCommands,
  addMapCommand,
  delMapCommand,
  parseShowMap,
  runtimeCommand,
  showMapCommand,
} from "../../src/edge/haproxy/runtime-api.js";
import { HaproxyProcess, haproxyArgv } from "../../src/edge/haproxy/process.js";
import { runCommand } from "../../src/util/exec.js";
import { freePort } from "../helpers/agent.js";

/** A self-signed certificate for `cn` (openssl, argv): `{ cert, key }` PEMs. */
async function selfSigned(dir: string, cn: string): Promise<{ cert: string; key: string }> {
  const keyFile = path.join(dir, `${cn}.key`);
  const certFile = path.join(dir, `${cn}.crt`);
  await runCommand([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "1",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    `subjectAltName=DNS:${cn}`,
  ]);
  return { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** GET https://<host>:<port>/ through the proxy, trusting `ca`. */
function get(port: number, host: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: "127.0.0.1", port, servername: host, headers: { host }, ca, path: "/" },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
  });
}

describe("HAProxy with the rendered configuration", () => {
  let dir: string;
  let listener: number;
  let haproxy: HaproxyProcess | undefined;
  const deaths: string[] = [];
  let web: http.Server;
  let passthrough: tls.Server;
  let webCert: { cert: string; key: string };
  let l4Cert: { cert: string; key: string };
  const seen: http.IncomingHttpHeaders[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mcp-haproxy-"));
    listener = await freePort();
    web = http.createServer((req, res) => {
      seen.push(req.headers);
      res.end("from web\n");
    });
    const webPort = await listen(web);
    l4Cert = await selfSigned(dir, "db.svc.mcp.test");
    passthrough = tls.createServer({ cert: l4Cert.cert, key: l4Cert.key }, (socket) => {
      socket.end(`l4 saw SNI ${(socket as tls.TLSSocket & { servername?: string }).servername}\n`);
    });
    const l4Port = await listen(passthrough);

    webCert = await selfSigned(dir, "web.svc.mcp.test");
    const fallback = await selfSigned(dir, "default.invalid");
    const files = listenerFiles(dir, listener);
    const pem = path.join(dir, "web.svc.mcp.test.pem");
    await writeFile(pem, webCert.cert + webCert.key);
    await writeFile(proxyFiles(dir).defaultCert, fallback.cert + fallback.key);
    await writeFile(files.crtList, `${pem} web.svc.mcp.test\n`);
    await writeFile(files.l7Map, renderMap(new Map([["web.svc.mcp.test", webPort]])));
    await writeFile(files.l4Map, renderMap(new Map([["db.svc.mcp.test", l4Port]])));
    await writeFile(files.l4ppMap, "");
    await writeFile(files.l7ppMap, "");
    await writeFile(
      proxyFiles(dir).config,
      renderHaproxyConfig({ dir, bind: "127.0.0.1", listeners: [listener] }),
    );
  });

  after(async () => {
    await haproxy?.stop();
    web.close();
    passthrough.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the configuration is valid (haproxy -c)", async () => {
    const check = await runCommand(["haproxy", "-c", "-f", proxyFiles(dir).config]);
    assert.match(check.stdout + check.stderr, /Configuration file is valid/);
  });

  test("L7: terminated with the route's certificate, plain HTTP with X-Forwarded-*; unknown host 421", async () => {
    haproxy = new HaproxyProcess(dir, { died: (reason) => deaths.push(reason) });
    await haproxy.start();
    const answer = await get(listener, "web.svc.mcp.test", webCert.cert);
    assert.deepEqual(answer, { status: 200, body: "from web\n" });
    assert.equal(seen.at(-1)?.["x-forwarded-proto"], "https");
    assert.equal(seen.at(-1)?.["x-forwarded-for"], "127.0.0.1");
    // An unknown name gets the default certificate (not verified here) and 421.
    const unknown = (await insecureGet(listener, "nobody.svc.mcp.test")).status;
    assert.equal(unknown, 421);
  });

  test("L4: the ClientHello with that SNI reaches its backend untouched", async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect(
        { host: "127.0.0.1", port: listener, servername: "db.svc.mcp.test", ca: l4Cert.cert },
        () => {
          let data = "";
          socket.setEncoding("utf8");
          socket.on("data", (c: string) => (data += c));
          socket.on("end", () => resolve(data));
        },
      );
      socket.on("error", reject);
    });
    // The backend's own certificate verified, and it saw the SNI itself.
    assert.equal(text, "l4 saw SNI db.svc.mcp.test\n");
  });

  test("a route added through the runtime API answers at once, without a reload; removed, 421", async () => {
    const api = http.createServer((_req, res) => res.end("from api\n"));
    const apiPort = await listen(api);
    const { adminSocket } = proxyFiles(dir);
    const { l7Map } = listenerFiles(dir, listener);
    const status = async (host: string) => {
      const answer = await insecureGet(listener, host);
      return `${answer.status} ${answer.body}`;
    };
    try {
      assert.match(await status("api.svc.mcp.test"), /^421 /);
      await runtimeCommand(adminSocket, addMapCommand(l7Map, "api.svc.mcp.test", String(apiPort)));
      assert.equal(await status("api.svc.mcp.test"), "200 from api\n");
      const map = parseShowMap(await runtimeCommand(adminSocket, showMapCommand(l7Map)));
      assert.equal(map.get("api.svc.mcp.test"), String(apiPort));
      assert.ok(map.has("web.svc.mcp.test"), "the file's entries are loaded too");
      await runtimeCommand(adminSocket, delMapCommand(l7Map, "api.svc.mcp.test"));
      assert.match(await status("api.svc.mcp.test"), /^421 /);
      await assert.rejects(
        runtimeCommand(adminSocket, addMapCommand(`${dir}/nope.map`, "x", "1")),
        /haproxy refused "add map .*nope.map x 1": Unknown map identifier/,
      );
    } finally {
      api.close();
    }
  });

  test("a certificate from a local CA pushed at runtime serves a new L7 name, verified by that CA", async () => {
    const api = http.createServer((_req, res) => res.end("from api over tls\n"));
    const apiPort = await listen(api);
    const { adminSocket } = proxyFiles(dir);
    const files = listenerFiles(dir, listener);
    try {
      const ca = await createCa("mcp routes test CA");
      const leaf = await issueServerCert(ca, {
        commonName: "api.svc.mcp.test",
        sans: ["api.svc.mcp.test"],
        days: 90,
      });
      const certPath = path.join(dir, "api.svc.mcp.test.pem");
      const pem = `${leaf.cert}\n${ca.cert}\n${leaf.key}`;
      await writeFile(certPath, pem);
      for (const command of addCertCommands(certPath, pem, files.crtList, "api.svc.mcp.test")) {
        await runtimeCommand(adminSocket, command);
      }
      await runtimeCommand(
        adminSocket,
        addMapCommand(files.l7Map, "api.svc.mcp.test", String(apiPort)),
      );
      const answer = await get(listener, "api.svc.mcp.test", ca.cert);
      assert.deepEqual(answer, { status: 200, body: "from api over tls\n" });
      await runtimeCommand(adminSocket, delMapCommand(files.l7Map, "api.svc.mcp.test"));
    } finally {
      api.close();
    }
  });

  test("a new listener port: the config is rewritten and reloaded, hitless for the old one", async () => {
    const second = await freePort();
    await writeFile(listenerFiles(dir, second).l7Map, renderMap(new Map()));
    await writeFile(listenerFiles(dir, second).l4Map, "");
    await writeFile(listenerFiles(dir, second).crtList, "");
    await writeFile(listenerFiles(dir, second).l4ppMap, "");
    await writeFile(listenerFiles(dir, second).l7ppMap, "");
    await writeFile(
      proxyFiles(dir).config,
      renderHaproxyConfig({ dir, bind: "127.0.0.1", listeners: [listener, second] }),
    );
    const pid = haproxy?.pid;
    await haproxy?.reload();
    assert.equal(haproxy?.pid, pid, "the same master");
    assert.equal((await insecureGet(second, "web.svc.mcp.test")).status, 421, "listens, no route");
    assert.equal((await insecureGet(listener, "web.svc.mcp.test")).status, 200);
  });

  test("HAProxy killed: started again from the files, with its routes; an event says so", async () => {
    process.kill(haproxy?.pid ?? 0, "SIGKILL");
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = await insecureGet(listener, "web.svc.mcp.test").then(
        (a) => a.status,
        () => 0,
      );
    }
    assert.equal(status, 200);
    assert.equal(deaths.length, 1);
    assert.match(deaths[0] ?? "", /^haproxy exited \(SIGKILL\)/);
  });

  test("the argv: master-worker in the foreground with its master socket", () => {
    assert.deepEqual(haproxyArgv("/p"), [
      "haproxy",
      "-W",
      "-db",
      "-S",
      "/p/master.sock,mode,600",
      "-p",
      "/p/haproxy.pid",
      "-f",
      "/p/haproxy.cfg",
    ]);
  });
});

/** GET through the proxy without verifying the certificate (names without one get the default). */
function insecureGet(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(
        { host: "127.0.0.1", port, servername: host, headers: { host }, rejectUnauthorized: false },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      )
      .on("error", reject);
  });
}
