/**
 * Routes on a real HAProxy through the driver (src/edge/haproxy/driver.ts):
 * an L7 route with a local-CA certificate answers, is moved to another host
 * port and removed without a reload; a new listener reloads; a second
 * driver over the same files (an agent restart) adds nothing twice; an
 * HAProxy killed comes back with every route from the files.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createCa, issueServerCert, type CertPair } from "../../src/certs/x509.js";
import { listenerFiles } from "../../src/edge/haproxy/config.js";
import { HaproxyDriver } from "../../src/edge/haproxy/driver.js";
import { HaproxyProcess } from "../../src/edge/haproxy/process.js";
import { freePort } from "../helpers/agent.js";

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function get(port: number, host: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: "127.0.0.1",
          port,
          servername: host,
          headers: { host },
          ...(ca ? { ca } : { rejectUnauthorized: false }),
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve(`${res.statusCode} ${body}`));
        },
      )
      .on("error", reject);
  });
}

describe("the HAProxy driver on a real HAProxy", { concurrency: false }, () => {
  let dir: string;
  let ca: CertPair;
  let pem: string;
  let listener: number;
  let driver: HaproxyDriver;
  let proxy: HaproxyProcess;
  const servers: http.Server[] = [];
  const backend = async (text: string) => {
    const s = http.createServer((_req, res) => res.end(text));
    servers.push(s);
    return listen(s);
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mcp-proxy-"));
    ca = await createCa("mcp routes test CA");
    const leaf = await issueServerCert(ca, {
      commonName: "web.svc.mcp.test",
      sans: ["web.svc.mcp.test"],
      days: 90,
    });
    pem = `${leaf.cert}\n${ca.cert}\n${leaf.key}`;
    const fallback = await issueServerCert(ca, {
      commonName: "default.invalid",
      sans: ["default.invalid"],
    });
    listener = await freePort();
    proxy = new HaproxyProcess(dir);
    driver = new HaproxyDriver(dir, "127.0.0.1", proxy);
    await driver.start([listener], `${fallback.cert}\n${fallback.key}`);
  });

  after(async () => {
    await proxy.stop();
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("an L7 route answers with its certificate; moved to another port; removed: 421", async () => {
    const v1 = await backend("v1\n");
    const v2 = await backend("v2\n");
    const route = {
      listener,
      hostname: "Web.svc.mcp.test",
      mode: "l7" as const,
      hostPort: v1,
      certPem: pem,
    };
    await driver.setRoute(route);
    assert.equal(await get(listener, "web.svc.mcp.test", ca.cert), "200 v1\n");
    const pid = proxy.pid;
    await driver.setRoute({ ...route, hostPort: v2 });
    assert.equal(await get(listener, "web.svc.mcp.test", ca.cert), "200 v2\n");
    assert.equal(proxy.pid, pid, "no restart");
    assert.equal(
      await readFile(listenerFiles(dir, listener).l7Map, "utf8"),
      `web.svc.mcp.test ${v2}\n`,
      "the file says what HAProxy serves",
    );
    await driver.removeRoute(listener, "web.svc.mcp.test", "l7");
    assert.match(await get(listener, "web.svc.mcp.test"), /^421 /);
    await driver.setRoute({ ...route, hostPort: v1 });
  });

  test("a second driver over the same files (agent restart) lists nothing twice", async () => {
    const again = new HaproxyDriver(dir, "127.0.0.1", proxy);
    await again.setListeners([listener]); // what a restarted agent would configure
    const v1 = Number((await readFile(listenerFiles(dir, listener).l7Map, "utf8")).split(" ")[1]);
    await again.setRoute({
      listener,
      hostname: "web.svc.mcp.test",
      mode: "l7",
      hostPort: v1,
      certPem: pem,
    });
    const crtList = await readFile(listenerFiles(dir, listener).crtList, "utf8");
    assert.equal(crtList.split("\n").filter(Boolean).length, 1, crtList);
    assert.equal(await get(listener, "web.svc.mcp.test", ca.cert), "200 v1\n");
  });

  test("a new listener: reloaded; a route on it answers; the old one still does", async () => {
    const second = await freePort();
    await driver.setListeners([listener, second]);
    assert.deepEqual(
      driver.listeners,
      [listener, second].sort((a, b) => a - b),
    );
    const api = await backend("api\n");
    await driver.setRoute({
      listener: second,
      hostname: "api.svc.mcp.test",
      mode: "l7",
      hostPort: api,
    });
    assert.equal(await get(second, "api.svc.mcp.test"), "200 api\n");
    assert.equal(await get(listener, "web.svc.mcp.test", ca.cert), "200 v1\n");
    await assert.rejects(
      driver.setRoute({ listener: 1, hostname: "x.test", mode: "l7", hostPort: api }),
      /the proxy does not listen on 1/,
    );
  });

  test("HAProxy killed: back with every route from the files", async () => {
    process.kill(proxy.pid ?? 0, "SIGKILL");
    let answer = "";
    for (let i = 0; i < 100 && answer !== "200 v1\n"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await get(listener, "web.svc.mcp.test", ca.cert).catch(() => "");
    }
    assert.equal(answer, "200 v1\n");
  });
});
