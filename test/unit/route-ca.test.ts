/** The local route CA (src/edge/certs/local-ca.ts): its own CA, 90-day leaves, renewal. */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { createCa } from "../../src/certs/x509.js";
import {
  issueRouteCert,
  loadOrCreateRouteCa,
  needsRenewal,
  routeCaFiles,
  routePem,
} from "../../src/edge/certs/local-ca.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const DAY = 86_400_000;

describe("local route CA", () => {
  test("made once under the proxy dir (key 0600), then loaded", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mcp-route-ca-"));
    dirs.push(dir);
    const first = await loadOrCreateRouteCa(path.join(dir, "proxy"), "rift");
    const again = await loadOrCreateRouteCa(path.join(dir, "proxy"), "rift");
    assert.equal(again.cert, first.cert);
    assert.equal((await stat(routeCaFiles(path.join(dir, "proxy")).key)).mode & 0o777, 0o600);
    assert.match(new X509Certificate(first.cert).subject, /mcp route CA \(rift\)/);
  });

  test("a 90-day leaf for the hostname, verified by the route CA and by no other", async () => {
    const ca = await createCa("route CA");
    const agentCa = await createCa("agent gRPC CA");
    const leaf = await issueRouteCert(ca, "web.svc.mcp.test");
    const x509 = new X509Certificate(leaf.cert);
    assert.equal(x509.checkHost("web.svc.mcp.test"), "web.svc.mcp.test");
    assert.ok(x509.verify(new X509Certificate(ca.cert).publicKey));
    assert.ok(!x509.verify(new X509Certificate(agentCa.cert).publicKey));
    const days = (new Date(x509.validTo).getTime() - Date.now()) / DAY;
    assert.ok(days > 89 && days <= 90, `valid ${days.toFixed(1)} days`);
    const pem = routePem(leaf, ca);
    assert.equal(pem.match(/BEGIN CERTIFICATE/g)?.length, 2, "leaf then CA");
    assert.ok(pem.indexOf("PRIVATE KEY") > pem.lastIndexOf("END CERTIFICATE"), "key last");
  });

  test("renewal: due once renew_before or less is left", async () => {
    const leaf = await issueRouteCert(await createCa("route CA"), "web.svc.mcp.test");
    assert.equal(needsRenewal(leaf.cert, 30 * DAY), false, "fresh: 90 days left");
    assert.equal(needsRenewal(leaf.cert, 100 * DAY), true, "renew_before longer than its life");
    assert.equal(needsRenewal(leaf.cert, 30 * DAY, new Date(Date.now() + 61 * DAY)), true);
  });
});
