/**
 * Routes with `proxy_protocol` on a real HAProxy through the driver
 * (src/edge/haproxy/driver.ts, config.ts): the container gets a PROXY v2
 * header carrying the client's address first, then for L4 the client's TLS
 * ClientHello untouched and for L7 plain HTTP; a route without it gets no
 * header; setRoute flips the flag without a reload. The backends are Node
 * TCP servers (test/helpers/proxy-v2.ts) standing in for containers.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { createCa, issueServerCert, type CertPair } from "../../src/certs/x509.js";
import { listenerFiles, proxyFiles } from "../../src/edge/haproxy/config.js";
import { HaproxyDriver } from "../../src/edge/haproxy/driver.js";
import type { ProxyRoute } from "../../src/edge/types.js";
import { HaproxyProcess } from "../../src/edge/haproxy/process.js";
import { runtimeCommand } from "../../src/edge/haproxy/runtime-api.js";
import { freePort } from "../helpers/agent.js";
import {
  PROXY_V2_SIGNATURE,
  clientHelloSni,
  parseProxyV2,
  proxyAwareServer,
  type ProxyV2Header,
} from "../helpers/proxy-v2.js";

/** What a backend saw on one connection, sent back to the client as JSON. */
interface Seen {
  header: ProxyV2Header | null;
  /** L4: the SNI in the raw ClientHello that followed; L7: the request line. */
  first: string;
  /** L4: the name the TLS handshake (completed by the backend itself) saw. */
  servername?: string;
  xff?: string;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** An L7 route's container: plain HTTP after the header; answers with what it saw. */
function httpBackend(): net.Server {
  return proxyAwareServer((socket, header, first) => {
    const text = first.toString("latin1");
    const seen: Seen = {
      header: header ?? null,
      first: text.split("\r\n")[0] ?? "",
      xff: /^x-forwarded-for: *(.*)$/im.exec(text)?.[1]?.trim(),
    };
    const body = JSON.stringify(seen);
    socket.end(
      `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

/** An L4 route's container: completes the client's TLS handshake itself after the header. */
function tlsBackend(pair: CertPair): net.Server {
  const secureContext = tls.createSecureContext({ cert: pair.cert, key: pair.key });
  return proxyAwareServer((socket, header, first) => {
    const secure = new tls.TLSSocket(socket, { isServer: true, secureContext });
    secure.on("error", () => secure.destroy());
    secure.on("secure", () => {
      const seen: Seen = {
        header: header ?? null,
        first: clientHelloSni(first) ?? "",
        servername: (secure as tls.TLSSocket & { servername?: string | false }).servername || "",
      };
      secure.end(JSON.stringify(seen));
    });
  });
}

/** Through the proxy over TLS, verified by `ca`; what the backend saw and the client's port. */
function viaL4(port: number, servername: string, ca: string): Promise<[Seen, number]> {
  return new Promise((resolve, reject) => {
    let local = 0;
    const socket = tls.connect({ host: "127.0.0.1", port, servername, ca }, () => {
      let data = "";
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => (data += c));
      socket.on("end", () => resolve([JSON.parse(data) as Seen, local]));
    });
    socket.on("connect", () => (local = socket.localPort ?? 0));
    socket.on("error", reject);
  });
}

/** GET over the proxy's L7 (its certificate verified by `ca`); what the backend saw. */
function viaL7(port: number, host: string, ca: string): Promise<[Seen | string, number]> {
  return new Promise((resolve, reject) => {
    let local = 0;
    const req = https.get(
      { host: "127.0.0.1", port, servername: host, headers: { host }, ca, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          resolve([
            res.statusCode === 200 ? (JSON.parse(body) as Seen) : `${res.statusCode}`,
            local,
          ]),
        );
      },
    );
    req.on("socket", (s) => s.on("connect", () => (local = s.localPort ?? 0)));
    req.on("error", reject);
  });
}

describe("PROXY protocol v2 to the container, on a real HAProxy", { concurrency: false }, () => {
  let dir: string;
  let ca: CertPair;
  let listener: number;
  let driver: HaproxyDriver;
  let proxy: HaproxyProcess;
  const servers: net.Server[] = [];
  const ports: Record<"l4" | "l7", number> = { l4: 0, l7: 0 };
  const pems = new Map<string, string>();

  const cert = async (name: string) =>
    issueServerCert(ca, { commonName: name, sans: [name], days: 90 });
  const route = (hostname: string, mode: "l4" | "l7", proxyProtocol?: boolean): ProxyRoute => ({
    listener,
    hostname,
    mode,
    hostPort: ports[mode],
    ...(mode === "l7" ? { certPem: pems.get(hostname) } : {}),
    ...(proxyProtocol === undefined ? {} : { proxyProtocol }),
  });
  const workerPid = async () =>
    /^Pid: (\d+)$/m.exec(await runtimeCommand(proxyFiles(dir).adminSocket, "show info"))?.[1];
  const map = (file: keyof ReturnType<typeof listenerFiles>) =>
    readFile(listenerFiles(dir, listener)[file], "utf8");

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mcp-pp-"));
    ca = await createCa("mcp proxy-protocol test CA");
    // One L4 backend serves every L4 name (its certificate names them all).
    const l4Names = ["db.pp.mcp.test", "raw.pp.mcp.test", "flip4.pp.mcp.test"];
    const l4Cert = await issueServerCert(ca, {
      commonName: l4Names[0] ?? "",
      sans: l4Names,
      days: 90,
    });
    for (const name of ["web.pp.mcp.test", "plain.pp.mcp.test", "flip7.pp.mcp.test"]) {
      const leaf = await cert(name);
      pems.set(name, `${leaf.cert}\n${ca.cert}\n${leaf.key}`);
    }
    const l4 = tlsBackend(l4Cert);
    const l7 = httpBackend();
    servers.push(l4, l7);
    ports.l4 = await listen(l4);
    ports.l7 = await listen(l7);
    const fallback = await cert("default.invalid");
    listener = await freePort();
    proxy = new HaproxyProcess(dir);
    driver = new HaproxyDriver(dir, "127.0.0.1", proxy);
    await driver.start([listener], `${fallback.cert}\n${fallback.key}`);
  });

  after(async () => {
    await proxy?.stop();
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the header reader: a known IPv4 header, no header, and not enough bytes yet", () => {
    const header = Buffer.concat([
      PROXY_V2_SIGNATURE,
      Buffer.from([0x21, 0x11, 0x00, 0x0c, 127, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb]),
      Buffer.from("GET / HTTP/1.1\r\n"),
    ]);
    assert.deepEqual(parseProxyV2(header), {
      versionCommand: 0x21,
      family: "inet",
      transport: "stream",
      source: { address: "127.0.0.1", port: 12345 },
      destination: { address: "10.0.0.2", port: 443 },
      length: 28,
    });
    assert.equal(parseProxyV2(Buffer.from("GET / HTTP/1.1\r\n")), undefined);
    assert.equal(parseProxyV2(header.subarray(0, 20)), "incomplete");
    assert.equal(parseProxyV2(header.subarray(0, 5)), "incomplete");
  });

  test("L4 with proxyProtocol: PROXY v2 with the client's address, then its ClientHello untouched", async () => {
    await driver.setRoute(route("db.pp.mcp.test", "l4", true));
    const [seen, clientPort] = await viaL4(listener, "db.pp.mcp.test", ca.cert);
    assert.equal(seen.header?.versionCommand, 0x21);
    assert.equal(seen.header?.family, "inet");
    assert.equal(seen.header?.transport, "stream");
    assert.deepEqual(seen.header?.source, { address: "127.0.0.1", port: clientPort });
    assert.equal(seen.header?.destination?.address, "127.0.0.1");
    // The SNI read from the raw bytes after the header, and the backend's own
    // handshake on them (its certificate verified by the client) succeeded.
    assert.equal(seen.first, "db.pp.mcp.test");
    assert.equal(seen.servername, "db.pp.mcp.test");
    assert.equal(await map("l4ppMap"), `db.pp.mcp.test ${ports.l4}\n`);
    assert.equal(await map("l4Map"), "");
  });

  test("L7 with proxyProtocol: PROXY v2 with the client's address, then plain HTTP", async () => {
    await driver.setRoute(route("web.pp.mcp.test", "l7", true));
    const [seen, clientPort] = await viaL7(listener, "web.pp.mcp.test", ca.cert);
    assert.ok(typeof seen === "object", JSON.stringify(seen));
    assert.equal(seen.header?.versionCommand, 0x21);
    // The client's own address and port, carried from the listener over the L7 hop.
    assert.deepEqual(seen.header?.source, { address: "127.0.0.1", port: clientPort });
    assert.equal(seen.first, "GET / HTTP/1.1");
    assert.equal(seen.xff, "127.0.0.1", "X-Forwarded-For is still sent");
    assert.equal(await map("l7ppMap"), `web.pp.mcp.test ${ports.l7}\n`);
  });

  test("routes without it: no header, L4 and L7", async () => {
    await driver.setRoute(route("raw.pp.mcp.test", "l4"));
    await driver.setRoute(route("plain.pp.mcp.test", "l7", false));
    const [l4] = await viaL4(listener, "raw.pp.mcp.test", ca.cert);
    assert.equal(l4.header, null);
    assert.equal(l4.first, "raw.pp.mcp.test");
    assert.equal(l4.servername, "raw.pp.mcp.test");
    const [l7] = await viaL7(listener, "plain.pp.mcp.test", ca.cert);
    assert.ok(typeof l7 === "object", JSON.stringify(l7));
    assert.equal(l7.header, null);
    assert.equal(l7.first, "GET / HTTP/1.1");
    assert.equal(await map("l4Map"), `raw.pp.mcp.test ${ports.l4}\n`);
    assert.equal(await map("l7Map"), `plain.pp.mcp.test ${ports.l7}\n`);
  });

  test("setRoute flips the flag both ways without a reload; removeRoute finds either map", async () => {
    const master = proxy.pid;
    const worker = await workerPid();
    assert.ok(worker);
    const cases = [
      { name: "flip4.pp.mcp.test", mode: "l4", plain: "l4Map", pp: "l4ppMap" },
      { name: "flip7.pp.mcp.test", mode: "l7", plain: "l7Map", pp: "l7ppMap" },
    ] as const;
    const sees = async (name: string, mode: "l4" | "l7") => {
      const [seen] =
        mode === "l4" ? await viaL4(listener, name, ca.cert) : await viaL7(listener, name, ca.cert);
      assert.ok(typeof seen === "object", `${name}: ${JSON.stringify(seen)}`);
      return seen.header !== null;
    };
    for (const c of cases) {
      const holds = async (file: "l4Map" | "l7Map" | "l4ppMap" | "l7ppMap") =>
        (await map(file)).includes(`${c.name} `);
      await driver.setRoute(route(c.name, c.mode));
      assert.equal(await sees(c.name, c.mode), false, `${c.name} plain`);
      await driver.setRoute(route(c.name, c.mode, true));
      assert.equal(await sees(c.name, c.mode), true, `${c.name} moved to PROXY v2`);
      assert.deepEqual([await holds(c.plain), await holds(c.pp)], [false, true]);
      await driver.setRoute(route(c.name, c.mode, false));
      assert.equal(await sees(c.name, c.mode), false, `${c.name} moved back`);
      assert.deepEqual([await holds(c.plain), await holds(c.pp)], [true, false]);
      await driver.setRoute(route(c.name, c.mode, true));
      await driver.removeRoute(listener, c.name, c.mode);
      assert.deepEqual([await holds(c.plain), await holds(c.pp)], [false, false]);
    }
    // Gone from HAProxy too: L7 answers 421, L4 falls to the L7 frontend's default certificate.
    assert.equal((await viaL7(listener, "flip7.pp.mcp.test", ca.cert))[0], "421");
    await assert.rejects(viaL4(listener, "flip4.pp.mcp.test", ca.cert));
    assert.equal(proxy.pid, master, "the same master");
    assert.equal(await workerPid(), worker, "the same worker: no reload");
  });

  test("the PROXY-protocol routes come back from the files after HAProxy is killed", async () => {
    process.kill(proxy.pid ?? 0, "SIGKILL");
    let seen: Seen | string = "";
    for (let i = 0; i < 100 && typeof seen !== "object"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = (await viaL7(listener, "web.pp.mcp.test", ca.cert).catch(() => [""]))[0] ?? "";
    }
    assert.ok(typeof seen === "object", JSON.stringify(seen));
    assert.notEqual(seen.header, null);
    const [l4] = await viaL4(listener, "db.pp.mcp.test", ca.cert);
    assert.notEqual(l4.header, null);
  });
});
