/**
 * The pure parts of the ACME issuer (src/edge/certs/acme.ts): the PEM HAProxy
 * gets, the error wording, the timeout; and the HTTP-01 responder
 * (src/edge/certs/http01.ts) on its unix socket. The issuer against a real
 * ACME server is test/integration/acme.test.ts.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { createCa, issueServerCert, type CertPair } from "../../src/certs/x509.js";
import {
  acmeFailure,
  acmeRoutePem,
  pemCertificates,
  routeCertFrom,
  unreachableDirectory,
  withTimeout,
} from "../../src/edge/certs/acme.js";
import { Http01Responder } from "../../src/edge/certs/http01.js";
import { McpError } from "../../src/util/errors.js";
import { tempDir } from "../helpers/agent.js";

describe("ACME route certificates (pure parts)", () => {
  let ca: CertPair;
  let leaf: CertPair;

  before(async () => {
    ca = await createCa("unit ACME CA");
    leaf = await issueServerCert(ca, {
      commonName: "app.svc.mcp.test",
      sans: ["app.svc.mcp.test"],
    });
  });

  test("pem: the chain as sent, then the key, with no blank line anywhere", () => {
    // acme-client returns the chain with blank lines between certificates, CRLF at times.
    const chain = `${leaf.cert.trim()}\n\n${ca.cert.trim().replace(/\n/g, "\r\n")}\r\n\r\n`;
    const pem = acmeRoutePem(chain, `\n${leaf.key}\n\n`);
    assert.ok(!/\n\s*\n/.test(pem), pem);
    assert.ok(!pem.includes("\r"));
    assert.ok(pem.endsWith("-----END PRIVATE KEY-----\n"));
    const certs = pemCertificates(pem);
    assert.equal(certs.length, 2);
    assert.equal(new X509Certificate(certs[0] ?? "").subject, "CN=app.svc.mcp.test");
    assert.equal(certs[1], ca.cert.trim());
  });

  test("pem: a chain without a certificate is refused", () => {
    assert.throws(() => acmeRoutePem("<html>oops</html>", leaf.key), McpError);
  });

  test("RouteCert: serial upper-case hex and notAfter of the leaf; a key that does not match is refused", async () => {
    const cert = routeCertFrom("app.svc.mcp.test", `${leaf.cert}\n${ca.cert}`, leaf.key);
    const x = new X509Certificate(leaf.cert);
    assert.equal(cert.issuer, "acme");
    assert.equal(cert.hostname, "app.svc.mcp.test");
    assert.equal(cert.serial, x.serialNumber.toUpperCase());
    assert.match(cert.serial, /^[0-9A-F]+$/);
    assert.equal(cert.notAfter.getTime(), new Date(x.validTo).getTime());
    const other = await issueServerCert(ca, { commonName: "x.test", sans: ["x.test"] });
    assert.throws(
      () => routeCertFrom("app.svc.mcp.test", leaf.cert, other.key),
      /does not match its key/,
    );
  });

  test("an unreachable directory names the URL and the cause", () => {
    const err = unreachableDirectory(
      "https://acme.example/dir",
      new Error("connect ECONNREFUSED 127.0.0.1:1"),
    );
    assert.equal(err.code, "unavailable");
    assert.equal(
      err.message,
      "cannot reach the ACME directory https://acme.example/dir: connect ECONNREFUSED 127.0.0.1:1",
    );
  });

  test("failures carry the server's words; network errors are unavailable; McpErrors pass through", () => {
    const refused = acmeFailure(
      "a.test",
      "https://acme.example/dir",
      new Error("Invalid identifier"),
    );
    assert.equal(refused.code, "failed_precondition");
    assert.equal(
      refused.message,
      "ACME server https://acme.example/dir gave no certificate for a.test: Invalid identifier",
    );
    const network = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    assert.equal(acmeFailure("a.test", "https://acme.example/dir", network).code, "unavailable");
    const axios = Object.assign(new Error("timeout"), { isAxiosError: true });
    assert.equal(acmeFailure("a.test", "https://acme.example/dir", axios).code, "unavailable");
    const file = Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    assert.equal(
      acmeFailure("a.test", "https://acme.example/dir", file).code,
      "failed_precondition",
    );
    const own = new McpError("timed_out", "late");
    assert.equal(acmeFailure("a.test", "https://acme.example/dir", own), own);
  });

  test("withTimeout: the work's result, or the timeout's error (and no timer left behind)", async () => {
    assert.equal(await withTimeout(Promise.resolve(7), 1000, () => new Error("late")), 7);
    let called = false;
    await assert.rejects(
      withTimeout(new Promise(() => {}), 20, () => {
        called = true;
        return new McpError("timed_out", "late");
      }),
      /late/,
    );
    assert.ok(called);
  });
});

function get(socketPath: string, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: urlPath }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve(`${res.statusCode} ${body}`));
      })
      .on("error", reject);
  });
}

describe("the HTTP-01 responder", () => {
  let dir: string;
  let responder: Http01Responder;

  before(async () => {
    dir = await tempDir("mcp-acme-http01-");
  });

  after(async () => {
    await responder?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("replaces a stale socket file, listens 0600, answers a set token, 404 otherwise", async () => {
    const socket = path.join(dir, "acme.sock");
    await writeFile(socket, "left by a killed agent");
    responder = new Http01Responder(socket);
    await responder.start();
    assert.equal((await stat(socket)).mode & 0o777, 0o600);
    responder.set("tok-1", "tok-1.thumbprint");
    assert.equal(await get(socket, "/.well-known/acme-challenge/tok-1"), "200 tok-1.thumbprint");
    assert.match(await get(socket, "/.well-known/acme-challenge/tok-2"), /^404 /);
    assert.match(await get(socket, "/"), /^404 /);
    responder.delete("tok-1");
    assert.match(await get(socket, "/.well-known/acme-challenge/tok-1"), /^404 /);
    assert.deepEqual(responder.tokens, []);
    await responder.close();
    await assert.rejects(stat(socket), { code: "ENOENT" });
  });
});
