/**
 * The ACME issuer (src/edge/certs/acme.ts) against a real Pebble, with the
 * HTTP-01 challenge fetched by Pebble through a real HAProxy's plain
 * listener to the agent's responder (src/edge/certs/http01.ts): the issued
 * chain verifies up to Pebble's root and serves an L7 route; the plain
 * listener redirects everything else; an unreachable or hung directory
 * fails fast; the account key is made once and reused.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createCa, issueServerCert } from "../../src/certs/x509.js";
import { AcmeIssuer, pemCertificates } from "../../src/edge/certs/acme.js";
import { Http01Responder } from "../../src/edge/certs/http01.js";
import { proxyFiles, renderHaproxyConfig } from "../../src/edge/haproxy/config.js";
import { HaproxyDriver } from "../../src/edge/haproxy/driver.js";
import { HaproxyProcess } from "../../src/edge/haproxy/process.js";
import { McpError } from "../../src/util/errors.js";
import { runCommand } from "../../src/util/exec.js";
import type { RouteCert } from "../../src/edge/types.js";
import { freePort, tempDir } from "../helpers/agent.js";
import { startPebble, type Pebble } from "../helpers/pebble.js";

const HOST = "app.svc.mcp.test";

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function request(
  mod: typeof http | typeof https,
  opts: https.RequestOptions,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    mod
      .get(opts, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on("error", reject);
  });
}

describe(
  "the ACME issuer on a real Pebble, HTTP-01 through a real HAProxy",
  { concurrency: false },
  () => {
    let dir: string;
    let pebble: Pebble;
    let proxy: HaproxyProcess;
    let driver: HaproxyDriver;
    let responder: Http01Responder;
    let httpPort: number;
    let listener: number;
    let accountKeyFile: string;
    let issuer: AcmeIssuer;
    let cert: RouteCert;
    const servers: net.Server[] = [];

    before(async () => {
      dir = await tempDir("mcp-acme-");
      httpPort = await freePort();
      listener = await freePort();
      pebble = await startPebble({ httpPort });
      proxy = new HaproxyProcess(path.join(dir, "proxy"));
      driver = new HaproxyDriver(path.join(dir, "proxy"), "127.0.0.1", proxy, httpPort);
      const ca = await createCa("fallback CA");
      const fallback = await issueServerCert(ca, {
        commonName: "default.invalid",
        sans: ["default.invalid"],
      });
      await driver.start([listener], `${fallback.cert}\n${fallback.key}`);
      responder = new Http01Responder(proxyFiles(path.join(dir, "proxy")).acmeSocket);
      await responder.start();
      accountKeyFile = path.join(dir, "acme", "account.key");
      issuer = new AcmeIssuer({
        directoryUrl: pebble.directoryUrl,
        caFile: pebble.caFile,
        email: "ops@mcp.test",
        accountKeyFile,
        challenges: responder,
      });
    });

    after(async () => {
      await responder?.close();
      await proxy?.stop();
      await pebble?.stop();
      for (const s of servers) s.close();
      await rm(dir, { recursive: true, force: true });
    });

    test("issue(): Pebble fetches the challenge through HAProxy; the chain verifies up to its root", async () => {
      const started = performance.now();
      cert = await issuer.issue(HOST);
      const ms = performance.now() - started;
      console.log(`# acme issue (account + order + HTTP-01 + certificate): ${ms.toFixed(0)} ms`);

      assert.equal(cert.hostname, HOST);
      assert.equal(cert.issuer, "acme");
      assert.ok(!/\n\s*\n/.test(cert.pem), "no blank line (the runtime API would end the payload)");
      const chain = pemCertificates(cert.pem).map((p) => new X509Certificate(p));
      assert.ok(chain.length >= 2, `leaf + at least one intermediate, got ${chain.length}`);
      assert.match(
        cert.pem,
        /-----BEGIN (EC )?PRIVATE KEY-----[\s\S]+-----END (EC )?PRIVATE KEY-----\n$/,
      );
      const [leaf] = chain;
      assert.ok(leaf?.checkHost(HOST));
      assert.equal(cert.serial, leaf?.serialNumber.toUpperCase());
      assert.equal(cert.notAfter.getTime(), new Date(leaf?.validTo ?? "").getTime());
      const root = new X509Certificate(await pebble.rootPem());
      for (const [i, c] of chain.entries()) {
        const up = chain[i + 1] ?? root;
        assert.ok(c.checkIssued(up), `certificate ${i} is issued by the next one`);
        assert.ok(c.verify(up.publicKey), `certificate ${i} is signed by the next one`);
      }
      assert.deepEqual(responder.tokens, [], "the challenge is removed afterwards");
      assert.ok(issuer.accountUrl?.startsWith("https://127.0.0.1:"), issuer.accountUrl);
      const mode = (await stat(accountKeyFile)).mode & 0o777;
      assert.equal(mode, 0o600);
    });

    test("that certificate on an L7 route: https with Pebble's root as the only trust answers", async () => {
      const backend = http.createServer((_req, res) => res.end("from the backend\n"));
      servers.push(backend);
      await driver.setRoute({
        listener,
        hostname: HOST,
        mode: "l7",
        hostPort: await listen(backend),
        certPem: cert.pem,
      });
      const res = await request(https, {
        host: "127.0.0.1",
        port: listener,
        servername: HOST,
        headers: { host: HOST },
        ca: await pebble.rootPem(),
      });
      assert.equal(`${res.status} ${res.body}`, "200 from the backend\n");
    });

    test("plain HTTP: any other path is redirected to https; an unknown challenge is 404", async () => {
      const res = await request(http, {
        host: "127.0.0.1",
        port: httpPort,
        path: "/some/page?x=1",
        headers: { host: HOST },
      });
      assert.equal(res.status, 301);
      assert.match(
        res.headers.location ?? "",
        new RegExp(`^https://${HOST}(:\\d+)?/some/page\\?x=1$`),
      );
      const unknown = await request(http, {
        host: "127.0.0.1",
        port: httpPort,
        path: "/.well-known/acme-challenge/nosuchtoken",
        headers: { host: HOST },
      });
      assert.equal(unknown.status, 404);
    });

    test("the account key is made once: a second issuer over the same file is the same account", async () => {
      const before = await readFile(accountKeyFile, "utf8");
      const again = new AcmeIssuer({
        directoryUrl: pebble.directoryUrl,
        caFile: pebble.caFile,
        email: "ops@mcp.test",
        accountKeyFile,
        challenges: responder,
      });
      const started = performance.now();
      const second = await again.issue(HOST);
      const ms = performance.now() - started;
      console.log(`# acme issue, existing account: ${ms.toFixed(0)} ms`);
      assert.notEqual(second.serial, cert.serial);
      assert.equal(await readFile(accountKeyFile, "utf8"), before, "the key file is unchanged");
      assert.equal(again.accountUrl, issuer.accountUrl);
    });

    test("a refusal carries the ACME server's own words", async () => {
      const err = await issuer.issue("bad_name.mcp.test").then(
        () => assert.fail("issued a certificate for an invalid name"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof McpError);
      assert.equal(err.code, "failed_precondition");
      assert.match(
        err.message,
        /^ACME server https:\/\/127\.0\.0\.1:\d+\/dir gave no certificate for bad_name\.mcp\.test: \S/,
      );
      console.log(`# refusal: ${err.message}`);
    });

    test("a challenge nobody answers: Pebble's words, and the challenge is removed", async () => {
      // This responder is not behind HAProxy: Pebble's fetch finds no answer there.
      const elsewhere = new Http01Responder(path.join(dir, "elsewhere.sock"));
      const set: string[] = [];
      const answer = elsewhere.set.bind(elsewhere);
      elsewhere.set = (token, keyAuthorization) => {
        set.push(token);
        answer(token, keyAuthorization);
      };
      const unanswered = new AcmeIssuer({
        directoryUrl: pebble.directoryUrl,
        caFile: pebble.caFile,
        email: "",
        accountKeyFile,
        challenges: elsewhere,
      });
      const err = await unanswered.issue("unanswered.svc.mcp.test").then(
        () => assert.fail("issued without an answered challenge"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof McpError);
      assert.match(err.message, /gave no certificate for unanswered\.svc\.mcp\.test: .*404/);
      console.log(`# unanswered: ${err.message}`);
      assert.equal(set.length, 1, "the challenge was set");
      assert.deepEqual(elsewhere.tokens, [], "and removed after the failure");
    });

    test("the config with the plain listener passes haproxy -c; it cannot also be a route listener", async () => {
      const file = path.join(dir, "check.cfg");
      await writeFile(
        file,
        renderHaproxyConfig({
          dir: path.join(dir, "proxy"),
          bind: "127.0.0.1",
          listeners: [listener],
          httpPort,
        }),
      );
      await runCommand(["haproxy", "-c", "-q", "-f", file]);
      await assert.rejects(driver.setListeners([listener, httpPort]), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "failed_precondition");
        return true;
      });
      assert.deepEqual(driver.listeners, [listener]);
    });

    test("an unreachable directory fails at once, saying so", async () => {
      const closed = await freePort();
      const url = `https://127.0.0.1:${closed}/dir`;
      const broken = new AcmeIssuer({
        directoryUrl: url,
        caFile: pebble.caFile,
        email: "",
        accountKeyFile: path.join(dir, "unreachable", "account.key"),
        challenges: responder,
      });
      const started = performance.now();
      await assert.rejects(broken.issue(HOST), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "unavailable");
        assert.equal(
          err.message,
          `cannot reach the ACME directory ${url}: connect ECONNREFUSED 127.0.0.1:${closed}`,
        );
        return true;
      });
      assert.ok(performance.now() - started < 2000, "no retries");
    });

    test("a directory that never answers fails the issue at its timeout", async () => {
      const hung = net.createServer(() => {}); // accepts, never speaks TLS
      servers.push(hung);
      const port = await listen(hung);
      const slow = new AcmeIssuer({
        directoryUrl: `https://127.0.0.1:${port}/dir`,
        caFile: pebble.caFile,
        email: "",
        accountKeyFile: path.join(dir, "hung", "account.key"),
        challenges: responder,
        timeoutMs: 300,
      });
      const started = performance.now();
      await assert.rejects(slow.issue(HOST), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "timed_out");
        assert.match(err.message, /gave no certificate for app\.svc\.mcp\.test within 300 ms/);
        return true;
      });
      assert.ok(performance.now() - started < 1500);
    });
  },
);
