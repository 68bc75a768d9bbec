/**
 * The nsupdate publisher (src/edge/dns/publisher.ts) against a real Knot
 * (test/helpers/knot.ts): upserts answer, replace and switch family; a
 * remove leaves nothing; list() is exactly what was made; a wrong key is
 * refused with the key-file hint and changes nothing; a server that never
 * answers fails within the bound. Times per update go to the diagnostics.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { after, before, describe, test } from "node:test";
import type { DnsConfig } from "../../src/config/edge.js";
import { NsupdatePublisher } from "../../src/edge/dns/publisher.js";
import { McpError } from "../../src/util/errors.js";
import { runCommand } from "../../src/util/exec.js";
import { startKnot, type TestKnot } from "../helpers/knot.js";

async function dig(knot: TestKnot, name: string, type: "A" | "AAAA"): Promise<string[]> {
  const r = await runCommand(
    ["dig", `@${knot.host}`, "-p", String(knot.port), name, type, "+short", "+time=2", "+tries=1"],
    { timeoutMs: 5000 },
  );
  return r.stdout.split("\n").filter(Boolean).sort();
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, performance.now() - start];
}

describe("the nsupdate publisher on a real Knot", { concurrency: false }, () => {
  let knot: TestKnot;
  let cfg: DnsConfig;
  let dns: NsupdatePublisher;
  const times: number[] = [];

  before(async () => {
    knot = await startKnot();
    cfg = {
      server: knot.server,
      zone: knot.zone,
      tsigKeyFile: knot.keyFile,
      address: "10.0.0.5",
      ttl: 60,
    };
    dns = new NsupdatePublisher(cfg, { timeoutSec: 3 });
  });
  after(async () => {
    await knot?.stop();
  });

  const upsert = async (p: NsupdatePublisher, name: string) => {
    const [, ms] = await timed(() => p.upsert(name));
    times.push(ms);
  };

  test("an upsert answers the configured address", async () => {
    await upsert(dns, "app.svc.mcp.test");
    assert.deepEqual(await dig(knot, "app.svc.mcp.test", "A"), ["10.0.0.5"]);
  });

  test("a second upsert with another address replaces it", async () => {
    await upsert(new NsupdatePublisher({ ...cfg, address: "10.0.0.6" }), "app.svc.mcp.test");
    assert.deepEqual(await dig(knot, "app.svc.mcp.test", "A"), ["10.0.0.6"]);
  });

  test("an IPv6 address gives AAAA, and replaces the name's A", async () => {
    const v6 = new NsupdatePublisher({ ...cfg, address: "fd00::5" });
    await upsert(v6, "six.svc.mcp.test");
    assert.deepEqual(await dig(knot, "six.svc.mcp.test", "AAAA"), ["fd00::5"]);
    assert.deepEqual(await dig(knot, "six.svc.mcp.test", "A"), []);
    await upsert(dns, "family.svc.mcp.test");
    await upsert(v6, "family.svc.mcp.test");
    assert.deepEqual(await dig(knot, "family.svc.mcp.test", "AAAA"), ["fd00::5"]);
    assert.deepEqual(await dig(knot, "family.svc.mcp.test", "A"), []);
  });

  test("list() shows exactly the records made", async () => {
    const records = await dns.list();
    assert.deepEqual(
      records.sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: "app.svc.mcp.test", type: "A", address: "10.0.0.6", ttl: 60 },
        { name: "family.svc.mcp.test", type: "AAAA", address: "fd00::5", ttl: 60 },
        { name: "six.svc.mcp.test", type: "AAAA", address: "fd00::5", ttl: 60 },
      ],
    );
  });

  test("remove leaves nothing; removing a missing name is fine", async () => {
    await dns.remove("app.svc.mcp.test");
    assert.deepEqual(await dig(knot, "app.svc.mcp.test", "A"), []);
    await dns.remove("family.svc.mcp.test");
    assert.deepEqual(await dig(knot, "family.svc.mcp.test", "AAAA"), []);
    await dns.remove("never-made.svc.mcp.test");
    assert.deepEqual(await dns.list(), [
      { name: "six.svc.mcp.test", type: "AAAA", address: "fd00::5", ttl: 60 },
    ]);
  });

  test("concurrent upserts are serialised and all land", async () => {
    const names = Array.from({ length: 5 }, (_, i) => `c${i}.svc.mcp.test`);
    await Promise.all(names.map((n) => dns.upsert(n)));
    for (const n of names) assert.deepEqual(await dig(knot, n, "A"), ["10.0.0.5"]);
    await Promise.all(names.map((n) => dns.remove(n)));
    for (const n of names) assert.deepEqual(await dig(knot, n, "A"), []);
  });

  test("the wrong key is refused with the key-file hint and changes nothing", async () => {
    const wrong = new NsupdatePublisher({ ...cfg, tsigKeyFile: knot.wrongKeyFile });
    await assert.rejects(wrong.upsert("app.svc.mcp.test"), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.equal(err.code, "failed_precondition");
      assert.match(
        err.message,
        new RegExp(
          `^DNS update of app\\.svc\\.mcp\\.test refused by ${knot.server.replace(/\./g, "\\.")}: NOTAUTH\\(BADSIG\\)`,
        ),
      );
      assert.match(err.message, /check that \[dns\] tsig_key_file/);
      return true;
    });
    assert.deepEqual(await dig(knot, "app.svc.mcp.test", "A"), []);
    await assert.rejects(wrong.list(), /DNS transfer of zone svc\.mcp\.test refused by .*tsig/);
  });

  test("a server that never answers fails within the bound", async (t) => {
    // A bound UDP socket that reads nothing: the update is sent and never answered.
    const silent: Socket = createSocket("udp4");
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
    try {
      const port = silent.address().port;
      const p = new NsupdatePublisher({ ...cfg, server: `127.0.0.1:${port}` }, { timeoutSec: 2 });
      const start = performance.now();
      await assert.rejects(p.upsert("app.svc.mcp.test"), {
        name: "McpError",
        code: "unavailable",
        message: `DNS server 127.0.0.1:${port} did not answer within 2 s`,
      });
      const ms = performance.now() - start;
      t.diagnostic(`silent server: failed after ${Math.round(ms)} ms (bound 2 s)`);
      assert.ok(ms >= 1500 && ms < 3000, `${ms} ms`);
      // dig's AXFR goes over TCP, where nothing listens on that port.
      await assert.rejects(p.list(), { code: "unavailable", message: /did not answer/ });
    } finally {
      silent.close();
    }
  });

  test("time per update", (t) => {
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    t.diagnostic(
      `${times.length} upserts: median ${median.toFixed(1)} ms, ` +
        `min ${sorted[0]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms (in order: ${times.map((x) => x.toFixed(0)).join(", ")})`,
    );
    assert.ok(times.length > 0);
  });
});
