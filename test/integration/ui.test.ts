/**
 * `mcp ui` end to end (README "mcp ui"): two real agents on loopback in
 * one CLI config, each with a 10-minute monitor interval, the built `mcp ui`
 * serving the page, and Debian's chromium driven by playwright-core.
 *
 * - every service of both nodes is on the page;
 * - `podman rm -f` of one container shows as drift without a reload (the
 *   interval never runs: only the live path, podman's events → the agent's
 *   view → LiveCheck → SSE, can explain it);
 * - clicking a component shows its logs and events;
 * - a hung agent (SIGSTOP) is unreachable after the call deadline while the
 *   other node's changes still arrive, and is back once it resumes; a
 *   stopped agent's node shows as unreachable while the other's services
 *   stay on the page;
 * - the real server refuses a foreign Host and anything but reads; a bad
 *   --listen is a usage error; Ctrl-C stops it.
 *
 * Screenshots go to test-artifacts/ (ui.png, ui-panel.png, ui-unreachable.png). Names use
 * the prefix `ui-`; the agents' port pools are 23200–23399.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { runCommand } from "../../src/util/exec.js";
import { freePort } from "../helpers/agent.js";
import { launchChromium, startUi, stopUi, type RunningUiProcess } from "../helpers/mcp-ui.js";
import {
  LiveAgent,
  l7Definition,
  ok,
  oneRouteDefinition,
  runMcp,
  webDefinition,
} from "../helpers/live-agent.js";

const NODE_A = "ui-node-a";
const NODE_B = "ui-node-b";
const ARTIFACTS = path.resolve("test-artifacts");
/** The page must show a change within this (the 2 s target is bench/ui.ts's). */
const SEEN_MS = 10_000;

/** A row of the services table: `node/service/component`. */
const row = (node: string, service: string, component = "web") =>
  `#services tr[data-key="${node}/${service}/${component}"]`;

/** One raw request (fetch would not let the test set Host). */
function request(
  url: string,
  opts: { method?: string; host?: string } = {},
): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: opts.method ?? "GET",
        headers: opts.host ? { host: opts.host } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("mcp ui", { timeout: 240_000 }, () => {
  let a: LiveAgent;
  let b: LiveAgent;
  let ui: RunningUiProcess | undefined;
  let browser: Browser | undefined;
  let page: Page;

  const mcp = (...args: string[]) => runMcp(["--config", a.cliConfig, ...args]);

  before(async () => {
    const monitor = { interval: "10m" };
    [a, b] = await Promise.all([
      // Node a runs a proxy (its routes are listed), node b none ("no proxy").
      LiveAgent.start({
        node: NODE_A,
        init: { proxy: true },
        config: { monitor, ports: { range: [23200, 23300] }, proxy: { http_port: 0 } },
      }),
      LiveAgent.start({ node: NODE_B, config: { monitor, ports: { range: [23300, 23400] } } }),
    ]);
    ok(
      await mcp(
        "node",
        "add",
        NODE_B,
        `127.0.0.1:${b.port}`,
        "--ca",
        path.join(b.dir, "ca.pem"),
        "--token-file",
        path.join(b.dir, "token"),
      ),
      "node add",
    );
    await a.addDefinition("ui-shop", l7Definition("ui-shop", NODE_A, await freePort()));
    await a.addDefinition("ui-api", webDefinition("ui-api", NODE_A, ['env = ["MODE=api"]']));
    await a.addDefinition("ui-batch", oneRouteDefinition("ui-batch", NODE_B));
    await a.addDefinition("ui-docs", webDefinition("ui-docs", NODE_B));
    for (const run of await Promise.all(
      ["ui-shop", "ui-api", "ui-batch", "ui-docs"].map((s) => mcp("deploy", s)),
    )) {
      ok(run, "deploy");
    }
    // One stopped on purpose: desired stopped is no drift.
    ok(await mcp("stop", "ui-docs"), "stop ui-docs");
    await mkdir(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    // A failed hung-node test must not leave node b's agent stopped.
    if (b?.pid) process.kill(b.pid, "SIGCONT");
    await browser?.close();
    if (ui) await stopUi(ui);
    await Promise.all([a?.cleanup(), b?.cleanup()]);
  });

  test("a bad --listen is a usage error", async () => {
    const run = await mcp("ui", "--listen", "nowhere");
    assert.equal(run.code, 1);
    assert.match(run.stderr, /option '--listen <host:port>' argument 'nowhere' is invalid/);
    assert.match(run.stderr, /expected host:port/);
  });

  test("the page shows every service of both nodes", async () => {
    ui = await startUi(a.cliConfig, "127.0.0.1:0");
    assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, "loopback: no token in the URL");
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(ui.url);
    for (const [node, service] of [
      [NODE_A, "ui-shop"],
      [NODE_A, "ui-api"],
      [NODE_B, "ui-batch"],
      [NODE_B, "ui-docs"],
    ] as const) {
      const r = page.locator(row(node, service));
      await r.waitFor({ timeout: SEEN_MS });
      const tone = service === "ui-docs" ? "stopped" : "running";
      assert.equal(await r.getAttribute("data-tone"), tone, `${service} on ${node}`);
      assert.equal(await r.getAttribute("data-drift"), "false", `${service} on ${node}`);
    }
    for (const node of [NODE_A, NODE_B]) {
      const card = page.locator(`[data-node="${node}"]`);
      await card.waitFor({ timeout: SEEN_MS });
      assert.equal(await card.getAttribute("data-reachable"), "true");
      // NodeStatus answered: the agent's version and the port pool are shown.
      await card.locator("text=/\\d+ of 100/").waitFor({ timeout: SEEN_MS });
    }
    assert.equal(await page.locator("#connection").getAttribute("data-state"), "live");
    // Node a's proxy serves ui-shop's route with a certificate; node b has no proxy, which is no error.
    const route = page.locator("#routes tr", { hasText: "ui-shop.svc.mcp.test" });
    await route.waitFor({ timeout: SEEN_MS });
    assert.match(
      (await route.textContent()) ?? "",
      /ui-node-a.*l7.*ui-shop\/web.*yes\d{4}-\d\d-\d\d/,
    );
    await page
      .locator("#routes", { hasText: `No proxy on ${NODE_B}.` })
      .waitFor({ timeout: SEEN_MS });
  });

  test("podman rm -f shows as drift without a reload", async () => {
    await page.evaluate(() => ((globalThis as unknown as { loaded: string }).loaded = "once"));
    await runCommand(["podman", "rm", "-f", "ui-shop-web"]);
    const drifted = page.locator(`${row(NODE_A, "ui-shop")}[data-drift="true"]`);
    await drifted.waitFor({ timeout: SEEN_MS });
    assert.equal(await drifted.getAttribute("data-tone"), "drift");
    assert.match((await drifted.textContent()) ?? "", /DRIFT/);
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { loaded?: string }).loaded),
      "once",
      "the page was not reloaded",
    );
    // The others are untouched.
    assert.equal(await page.locator(row(NODE_B, "ui-batch")).getAttribute("data-tone"), "running");
  });

  test("clicking a component shows its logs and events", async () => {
    // The drift event reaches the page's own list too.
    await page.locator('#events tr[data-kind="drift"]').first().waitFor({ timeout: SEEN_MS });
    await page.screenshot({ path: path.join(ARTIFACTS, "ui.png"), fullPage: true });
    await page.locator(row(NODE_B, "ui-batch")).click();
    const panel = page.locator("#detail");
    await panel
      .locator("pre.logs", { hasText: "serve-env: listening on" })
      .waitFor({ timeout: SEEN_MS });
    await panel.locator('tr[data-kind="deploy"]').first().waitFor({ timeout: SEEN_MS });
    assert.match(
      (await page.locator("#detail-title").textContent()) ?? "",
      /ui-batch\/web on ui-node-b/,
    );

    // The removed one: its drift event, and no logs (the container is gone) said as such.
    await page.locator(row(NODE_A, "ui-shop")).click();
    await panel.locator('tr[data-kind="drift"]').first().waitFor({ timeout: SEEN_MS });
    await panel.locator(".problem").first().waitFor({ timeout: SEEN_MS });
    await page.locator("#detail-close").click();
    await page.locator(row(NODE_B, "ui-batch")).click();
    await panel.locator("pre.logs", { hasText: "serve-env" }).waitFor({ timeout: SEEN_MS });
    await page.screenshot({ path: path.join(ARTIFACTS, "ui-panel.png") });
    await page.locator("#detail-close").click();
  });

  test("a hung node: unreachable after the call deadline, the other still live; back when it resumes", async () => {
    const pid = b.pid;
    assert.ok(pid);
    process.kill(pid, "SIGSTOP");
    try {
      const hung = page.locator(`[data-node="${NODE_B}"][data-reachable="false"]`);
      // Meanwhile node a's changes still arrive at once.
      await runCommand(["podman", "rm", "-f", "ui-api-web"]);
      await page
        .locator(`${row(NODE_A, "ui-api")}[data-drift="true"]`)
        .waitFor({ timeout: SEEN_MS });
      await hung.waitFor({ timeout: SEEN_MS });
      assert.match((await hung.textContent()) ?? "", /did not answer within 5 s/);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await page
      .locator(`[data-node="${NODE_B}"][data-reachable="true"]`)
      .waitFor({ timeout: SEEN_MS });
    await page.locator(row(NODE_B, "ui-batch")).waitFor({ timeout: SEEN_MS });
  });

  test("a stopped node shows as unreachable; the other's services stay", async () => {
    await b.kill("SIGTERM");
    const card = page.locator(`[data-node="${NODE_B}"][data-reachable="false"]`);
    await card.waitFor({ timeout: SEEN_MS });
    assert.match((await card.textContent()) ?? "", /connection refused/);
    await page.locator(row(NODE_A, "ui-api")).waitFor({ timeout: SEEN_MS });
    assert.equal(await page.locator(row(NODE_B, "ui-batch")).count(), 0, "node b's rows are gone");
    assert.equal(
      await page.locator(`[data-node="${NODE_A}"]`).getAttribute("data-reachable"),
      "true",
    );
    await page.screenshot({ path: path.join(ARTIFACTS, "ui-unreachable.png"), fullPage: true });
  });

  test("the server refuses a foreign Host and anything but reads", async () => {
    assert.ok(ui);
    const snapshot = await request(`${ui.url}api/snapshot`);
    assert.equal(snapshot.status, 200);
    const nodes = (JSON.parse(snapshot.body) as { nodes: { name: string }[] }).nodes.map(
      (n) => n.name,
    );
    assert.deepEqual(nodes, [NODE_A, NODE_B]);
    const rebound = await request(`${ui.url}api/snapshot`, { host: "evil.example:80" });
    assert.equal(rebound.status, 403);
    assert.doesNotMatch(rebound.body, /ui-shop/);
    assert.equal((await request(`${ui.url}api/snapshot`, { method: "POST" })).status, 405);
  });

  test("Ctrl-C stops it", async () => {
    assert.ok(ui);
    assert.equal(await stopUi(ui), 130);
    assert.match(ui.output(), /mcp: stopped serving the page/);
  });
});
