/**
 * Renewal in place (issue 8; docs/ARCHITECTURE.md "Edge": "a renewal is
 * `set` + `commit` in place"), with the agent in this process so the check
 * can run on a clock 89 days ahead: an L7 route deployed through the CLI
 * gets a new certificate from the local route CA, the proxy serves it at
 * once, a TLS keep-alive connection opened before still carries requests
 * after, and the renewal is recorded as a `certificate` event.
 */
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import type { Socket } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "smol-toml";
import { renewDueCertificates } from "../../src/agent/edge/renew.js";
import { initAgentDir } from "../../src/agent/server/init.js";
import { serveAgent, type RunningAgent } from "../../src/agent/server/serve.js";
import { runCommand } from "../../src/util/exec.js";
import { freePort, memoryLogger, tempDir } from "../helpers/agent.js";
import { servedChain } from "../helpers/edge-client.js";
import { ok, parseEnvPage, runMcp, l7Definition } from "../helpers/live-agent.js";

const NODE = "acmedns-renew-node";
const SERVICE = "acmedns-renew";
const DAY_MS = 86_400_000;

/** One GET over `agent`; says whether it went over a socket the agent kept from before. */
function get(
  agent: https.Agent,
  port: number,
  host: string,
): Promise<{ status: number; body: string; socket: Socket; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { agent, host: "127.0.0.1", port, servername: host, headers: { host }, path: "/" },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            socket: res.socket,
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", reject);
  });
}

describe("a route certificate renewed in place", { concurrency: false }, () => {
  let dir: string;
  let running: RunningAgent;
  let cliConfig: string;
  let routeCa: string;
  let listener: number;
  const host = `${SERVICE}.svc.mcp.test`;
  const log = memoryLogger();

  before(async () => {
    dir = await tempDir("mcp-acmedns-renew-");
    const init = await initAgentDir({
      dir,
      node: NODE,
      listen: `127.0.0.1:${await freePort()}`,
      dataRoot: path.join(dir, "data"),
      proxy: true,
    });
    cliConfig = init.cliConfig;
    routeCa = init.routeCaCert ?? assert.fail("init made no route CA");
    const config = parse(await readFile(init.agentConfig, "utf8")) as Record<
      string,
      Record<string, unknown>
    >;
    // No plain listener (nothing here uses HTTP-01); never port 80.
    config.proxy = { ...config.proxy, http_port: 0 };
    config.certs = { issuer: "local", renew_before: "720h" };
    await writeFile(init.agentConfig, stringify(config));
    running = await serveAgent(init.agentConfig, { logger: log.logger });

    listener = await freePort();
    await writeFile(
      path.join(init.servicesDir, `${SERVICE}.toml`),
      l7Definition(SERVICE, NODE, listener, { lines: ['env = ["R=1"]'] }),
    );
    ok(await runMcp(["--config", cliConfig, "deploy", SERVICE]), "deploy");
  });

  after(async () => {
    await running?.close({ stopProxy: true });
    const { stdout } = await runCommand([
      "podman",
      "ps",
      "-aq",
      "--filter",
      `label=mcp.node=${NODE}`,
    ]);
    const ids = stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await runCommand(["podman", "rm", "-f", "-t", "0", ...ids]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("due at a date 89 days ahead: a new certificate is served, an open keep-alive connection goes on", async () => {
    const ctx = running.ctx;
    const before = (await servedChain(listener, host, routeCa)).chain[0] ?? assert.fail("no chain");
    assert.ok(before.checkHost(host), "served the route's own certificate");

    const keepAlive = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: await readFile(routeCa),
    });
    try {
      const first = await get(keepAlive, listener, host);
      assert.equal(first.status, 200, first.body);
      assert.equal(parseEnvPage(first.body).R, "1");

      // Nothing is due now: the check renews nothing.
      assert.deepEqual(await renewDueCertificates(ctx), []);
      const renewed = await renewDueCertificates(ctx, new Date(Date.now() + 89 * DAY_MS));
      assert.deepEqual(
        renewed,
        [host],
        log
          .lines()
          .filter((l) => Number(l.level) >= 40)
          .map((l) => l.msg)
          .join("\n"),
      );

      const second = await get(keepAlive, listener, host);
      assert.equal(second.status, 200, second.body);
      assert.ok(second.reused, "the second request went over the socket kept from the first");
    } finally {
      keepAlive.destroy();
    }

    const after = (await servedChain(listener, host, routeCa)).chain[0];
    assert.ok(after?.checkHost(host));
    assert.notEqual(after?.serialNumber, before.serialNumber, "a new certificate is served");
    const event = ctx.registry.events
      .list({ service: SERVICE })
      .find((e) => e.kind === "certificate");
    assert.ok(event, "a certificate event");
    assert.match(
      event.message,
      new RegExp(`renewed the certificate of ${host.replace(/\./g, "\\.")}`),
    );
  });
});
