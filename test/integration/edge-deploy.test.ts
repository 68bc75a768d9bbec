/**
 * Deploys behind the agent's own HAProxy (issue 8), on real Podman through
 * the CLI: an L7 route answers over HTTPS through the proxy with a local-CA
 * certificate (full chain, curl verifying it), an unknown name gets 421;
 * two L4 routes on one listener reach each its own container by SNI, the
 * ClientHello untouched; stop takes the route off the proxy first (and the
 * listener it alone used); an
 * HAProxy killed comes back with every route; an agent killed leaves the
 * proxy serving and its restart adopts it with no entry twice; a hostname
 * clash is refused naming both routes; an entry the proxy lost comes back
 * with the next monitor pass; undeploy leaves the maps empty.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, test } from "node:test";
import {
  delMapCommand,
  parseShowMap,
  runtimeCommand,
  showMapCommand,
} from "../../src/edge/haproxy/runtime-api.js";
import { freePort } from "../helpers/agent.js";
import { curl, output, servedChain } from "../helpers/edge-client.js";
import { LiveAgent, l7Definition, ok, parseEnvPage, webDefinition } from "../helpers/live-agent.js";

const NODE = "edge-node";
const DOMAIN = "svc.mcp.test";

/** Retries `curl` until `accept` says yes or the time is up; returns the last answer. */
async function curlUntil(
  host: string,
  port: number,
  accept: (r: { status: number; body: string }) => boolean,
  opts: { ca?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const r = await curl(host, port, opts);
    if (accept(r) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A TLS ClientHello with `servername` to the proxy; the handshake itself may fail. */
function hello(port: number, servername: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(2000, done);
    socket.once("error", done);
    socket.once("close", done);
  });
}

/** A container that writes what the first connection sends to its log (nc), over and over. */
function l4Definition(name: string, listener: number, hostname: string): string {
  return webDefinition(name, NODE, [
    `cmd = ["sh", "-c", "while true; do nc -l -p $PORT; done"]`,
    "",
    "[[components.routes]]",
    `port = ${listener}`,
    'mode = "l4"',
    `hostname = "${hostname}"`,
  ]);
}

describe("deploys behind the agent's HAProxy", { concurrency: false }, () => {
  let agent: LiveAgent;
  let proxyDir: string;
  let routeCa: string;
  let listener: number;
  let l4Listener: number;
  const host = `edge-web.${DOMAIN}`;

  const mapLines = async (mode: "l4" | "l7", port: number) =>
    (await readFile(path.join(proxyDir, `${mode}-${port}.map`), "utf8"))
      .split("\n")
      .filter(Boolean);

  before(async () => {
    agent = await LiveAgent.start({
      node: NODE,
      init: { proxy: true },
      config: { proxy: { http_port: 0 }, monitor: { interval: "1s" } },
    });
    proxyDir = path.join(agent.dir, "proxy");
    routeCa = path.join(proxyDir, "route-ca.crt");
    listener = await freePort();
    l4Listener = await freePort();
    await agent.addDefinition(
      "edge-web",
      l7Definition("edge-web", NODE, listener, { lines: ['env = ["R=1"]'] }),
    );
    ok(await agent.cli(["deploy", "edge-web"]), "deploy edge-web");
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("an L7 route answers over HTTPS through the proxy, verified against the route CA", async () => {
    const r = await curl(host, listener, { ca: routeCa });
    assert.equal(r.status, 200, r.body);
    const env = parseEnvPage(r.body);
    assert.equal(env.R, "1");
    assert.ok(Number(env.PORT) > 0, "the container got $PORT");
    assert.notEqual(Number(env.PORT), listener, "the host port is not the listener");
  });

  test("the certificate comes with its chain; an unknown name gets 421", async () => {
    const { text: shown, chain } = await servedChain(listener, host, routeCa);
    assert.equal(chain.length, 2, shown);
    assert.match(shown, /Verify return code: 0 \(ok\)/);
    assert.equal((await curl(`nobody.${DOMAIN}`, listener)).status, 421);
  });

  test("two L4 routes on one listener: each ClientHello reaches its own container untouched", async () => {
    await agent.addDefinition("edge-a", l4Definition("edge-a", l4Listener, "a.l4.test"));
    await agent.addDefinition("edge-b", l4Definition("edge-b", l4Listener, "b.l4.test"));
    ok(await agent.cli(["deploy", "edge-a"]), "deploy edge-a");
    ok(await agent.cli(["deploy", "edge-b"]), "deploy edge-b");
    await hello(l4Listener, "a.l4.test");
    await hello(l4Listener, "b.l4.test");
    const logs = (service: string) => output(["podman", "logs", `${service}-web`]);
    let a = "";
    let b = "";
    for (let i = 0; i < 50 && !(a.includes("a.l4.test") && b.includes("b.l4.test")); i++) {
      await new Promise((r) => setTimeout(r, 100));
      [a, b] = [await logs("edge-a"), await logs("edge-b")];
    }
    assert.ok(a.includes("a.l4.test"), "edge-a saw its SNI");
    assert.ok(b.includes("b.l4.test"), "edge-b saw its SNI");
    assert.ok(!a.includes("b.l4.test") && !b.includes("a.l4.test"), "no name went astray");
    // A handshake record byte for byte: content type 22 (handshake), then TLS 1.x.
    assert.ok(a.includes("\u0016\u0003"), "the raw ClientHello, not a re-encrypted one");
  });

  test("a second service answering to the same name on the same listener is refused, naming both", async () => {
    await agent.addDefinition(
      "edge-clash",
      l7Definition("edge-clash", NODE, listener, { hostname: host }),
    );
    const run = await agent.cli(["deploy", "edge-clash"]);
    assert.notEqual(run.code, 0);
    assert.match(
      run.stderr,
      /edge-clash\/web and route edge-web\/web both answer to edge-web\.svc\.mcp\.test/,
    );
    assert.match(run.stderr, /routes\[0\]\.hostname/);
    // Nothing of it got on the proxy: the name still goes to edge-web alone.
    const lines = await mapLines("l7", listener);
    assert.equal(lines.length, 1);
    assert.ok(lines[0]?.startsWith(`${host} `));
  });

  test("stop takes the route off the proxy; start puts it back", async () => {
    ok(await agent.cli(["stop", "edge-web"]), "stop");
    // Its only route gone, the proxy stops listening there (0: connection refused).
    assert.equal((await curl(host, listener)).status, 0);
    assert.deepEqual(await mapLines("l7", listener), []);
    ok(await agent.cli(["start", "edge-web"]), "start");
    const r = await curlUntil(host, listener, (x) => x.status === 200, { ca: routeCa });
    assert.equal(r.status, 200, r.body);
  });

  test("HAProxy killed: it comes back with every route", async () => {
    const pidFile = path.join(proxyDir, "haproxy.pid");
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    // The master and its workers (its own process group): a worker left
    // alone would go on serving for a while and prove nothing.
    process.kill(-pid, "SIGKILL");
    let newPid = pid;
    for (let i = 0; i < 100 && newPid === pid; i++) {
      await new Promise((res) => setTimeout(res, 100));
      newPid = Number((await readFile(pidFile, "utf8")).trim());
    }
    assert.notEqual(newPid, pid, "started again");
    const r = await curlUntil(host, listener, (x) => x.status === 200, {
      ca: routeCa,
      timeoutMs: 10_000,
    });
    assert.equal(r.status, 200, r.body);
    // And the agent said so: a node-level `proxy` event in mcp status.
    const status = ok(await agent.cli(["status"]), "status").stdout;
    assert.match(status, /proxy\s+haproxy exited \(SIGKILL\).*started again/);
  });

  test("the agent killed: the proxy keeps serving; its restart adopts it, nothing twice", async () => {
    const pid = Number((await readFile(path.join(proxyDir, "haproxy.pid"), "utf8")).trim());
    await agent.kill("SIGKILL");
    assert.equal((await curl(host, listener, { ca: routeCa })).status, 200, "served meanwhile");
    await agent.launch();
    assert.equal(Number((await readFile(path.join(proxyDir, "haproxy.pid"), "utf8")).trim()), pid);
    assert.equal((await curl(host, listener, { ca: routeCa })).status, 200);
    assert.equal((await mapLines("l7", listener)).length, 1);
    assert.equal((await mapLines("l4", l4Listener)).length, 2);
    const live = parseShowMap(
      await runtimeCommand(
        path.join(proxyDir, "admin.sock"),
        showMapCommand(path.join(proxyDir, `l7-${listener}.map`)),
      ),
    );
    assert.deepEqual([...live.keys()], [host]);
  });

  test("an entry the running proxy lost is put back by the next monitor pass", async () => {
    const socket = path.join(proxyDir, "admin.sock");
    const map = path.join(proxyDir, `l7-${listener}.map`);
    await runtimeCommand(socket, delMapCommand(map, host));
    // The monitor runs every second here: it notices, puts it back and says so.
    const deadline = Date.now() + 10_000;
    let status = "";
    while (!/re-applied 1 proxy entry/.test(status) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
      status = ok(await agent.cli(["status"]), "status").stdout;
    }
    assert.match(status, /proxy\s+re-applied 1 proxy entry the proxy had lost/);
    const live = parseShowMap(await runtimeCommand(socket, showMapCommand(map)));
    assert.deepEqual([...live.keys()], [host]);
    const r = await curl(host, listener, { ca: routeCa });
    assert.equal(r.status, 200, r.body);
  });

  test("undeploy takes every route off; the maps are empty", async () => {
    for (const s of ["edge-web", "edge-a", "edge-b"]) ok(await agent.cli(["undeploy", s]), s);
    assert.notEqual((await curl(host, listener)).status, 200);
    assert.deepEqual(await mapLines("l7", listener), []);
    assert.deepEqual(await mapLines("l4", l4Listener), []);
  });
});
