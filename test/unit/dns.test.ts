/**
 * The DNS publisher's pure parts (src/edge/dns/): the TSIG key file, the
 * nsupdate argv and script, the AXFR parser and the wording of failures,
 * on text captured from nsupdate, dig and Knot 3.2 (shared notes
 * "edge-stack", DNS).
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { DnsConfig } from "../../src/config/edge.js";
import {
  checkName,
  digAxfrArgv,
  inZone,
  nsupdateArgv,
  parseAxfr,
  recordType,
  removeChanges,
  transferFailure,
  updateFailure,
  updateScript,
  upsertChanges,
} from "../../src/edge/dns/nsupdate.js";
import { NsupdatePublisher } from "../../src/edge/dns/publisher.js";
import { loadTsigKey, parseTsigKey } from "../../src/edge/dns/tsig-key.js";
import { McpError, ValidationError } from "../../src/util/errors.js";
import { tempDir } from "../helpers/agent.js";

/** Printed by BIND 9.18's `tsig-keygen -a hmac-sha256 app-key`. */
const KEYGEN_OUTPUT =
  'key "app-key" {\n\talgorithm hmac-sha256;\n\tsecret "Yjx+Xe+xvBzBf+k4BVr+ibBIl4f0hnM7+3UbEYcpjCg=";\n};\n';

function keyError(text: string): string {
  try {
    parseTsigKey(text, "/etc/mcp/dns.key");
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.code, "invalid_config");
    return err.message;
  }
  assert.fail("no error");
}

describe("TSIG key files", () => {
  test("tsig-keygen's output parses", () => {
    assert.deepEqual(parseTsigKey(KEYGEN_OUTPUT, "k"), {
      name: "app-key",
      algorithm: "hmac-sha256",
      secret: "Yjx+Xe+xvBzBf+k4BVr+ibBIl4f0hnM7+3UbEYcpjCg=",
    });
  });

  test("comments, bare words, other layouts and a trailing dot on the name", () => {
    const text = [
      "# made by hand",
      "// for the svc zone",
      "key mcp-key. { /* inline */ secret",
      '  "c2VjcmV0"; algorithm HMAC-SHA512; };',
    ].join("\n");
    assert.deepEqual(parseTsigKey(text, "k"), {
      name: "mcp-key",
      algorithm: "hmac-sha512",
      secret: "c2VjcmV0",
    });
  });

  test("syntax errors name the file and line:column", () => {
    assert.equal(
      keyError('key "k" {\n\talgorithm hmac-sha256\n\tsecret "c2VjcmV0";\n};\n'),
      "/etc/mcp/dns.key:3:2: expected ';', found 'secret'",
    );
    assert.equal(
      keyError('key "k" {\n  algorithm hmac-sha999;\n};'),
      "/etc/mcp/dns.key:2:13: unknown algorithm 'hmac-sha999' (expected one of hmac-md5, hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512)",
    );
    assert.equal(
      keyError('key "k" {\n  secret "not base64!";\n};'),
      "/etc/mcp/dns.key:2:10: the secret is not base64",
    );
    assert.equal(
      keyError('key "k" {\n  secret "c2VjcmV0;\n};'),
      "/etc/mcp/dns.key:2:10: unterminated string",
    );
    assert.equal(
      keyError('key "k" {\n  owner root;\n};'),
      "/etc/mcp/dns.key:2:3: unknown key option 'owner'",
    );
    assert.equal(keyError("garbage\n"), "/etc/mcp/dns.key:1:1: expected 'key', found 'garbage'");
    assert.equal(keyError(""), "/etc/mcp/dns.key:1:1: expected 'key', found end of file");
    assert.equal(
      keyError('key "k" {\n  secret "c2VjcmV0";\n'),
      "/etc/mcp/dns.key:3:1: expected 'algorithm', 'secret' or '}', found end of file",
    );
    assert.equal(
      keyError(KEYGEN_OUTPUT + KEYGEN_OUTPUT),
      "/etc/mcp/dns.key:5:1: expected end of file (one key per file), found 'key'",
    );
  });

  test("a missing field is named", () => {
    assert.equal(
      keyError('key "k" { algorithm hmac-sha256; };'),
      '/etc/mcp/dns.key: key "k" has no secret',
    );
    assert.equal(
      keyError('key "k" { secret "c2VjcmV0"; };'),
      '/etc/mcp/dns.key: key "k" has no algorithm',
    );
  });

  test("an unreadable file is an McpError naming it and the config key", () => {
    assert.throws(
      () => loadTsigKey("/nonexistent/mcp-dns.key"),
      (err: unknown) =>
        err instanceof McpError &&
        err.code === "invalid_config" &&
        err.message.startsWith(
          "/nonexistent/mcp-dns.key: cannot read the TSIG key file ([dns] tsig_key_file): ENOENT",
        ),
    );
  });
});

describe("nsupdate argv and script", () => {
  test("the key goes by file, never its secret in argv", () => {
    assert.deepEqual(nsupdateArgv("/etc/mcp/dns.key"), ["nsupdate", "-k", "/etc/mcp/dns.key"]);
    const argv = nsupdateArgv("/etc/mcp/dns.key", 3);
    assert.deepEqual(argv, ["nsupdate", "-k", "/etc/mcp/dns.key", "-t", "3", "-u", "1", "-r", "2"]);
    assert.deepEqual(nsupdateArgv("k", 1).slice(3), ["-t", "1", "-u", "1", "-r", "0"]);
    const secret = parseTsigKey(KEYGEN_OUTPUT, "k").secret;
    const dig = digAxfrArgv("/etc/mcp/dns.key", "127.0.0.1", 53, "svc.mcp.test", 3);
    for (const a of [...argv, ...dig]) {
      assert.ok(!a.includes(secret), a);
      assert.ok(!/^-y/.test(a), a);
    }
    assert.deepEqual(dig, [
      "dig",
      "-k",
      "/etc/mcp/dns.key",
      "@127.0.0.1",
      "-p",
      "53",
      "svc.mcp.test",
      "AXFR",
      "+noall",
      "+answer",
      "+time=3",
      "+tries=1",
    ]);
  });

  test("an upsert is delete-then-add in one message", () => {
    const script = updateScript({
      host: "127.0.0.1",
      port: 5353,
      zone: "svc.mcp.test",
      changes: upsertChanges("App.Svc.Mcp.Test.", "10.0.0.5", 60),
    });
    assert.equal(
      script,
      [
        "server 127.0.0.1 5353",
        "zone svc.mcp.test",
        "update delete app.svc.mcp.test A",
        "update delete app.svc.mcp.test AAAA",
        "update add app.svc.mcp.test 60 A 10.0.0.5",
        "send",
        "",
      ].join("\n"),
    );
    assert.match(
      updateScript({
        host: "::1",
        port: 53,
        zone: "svc.mcp.test",
        changes: upsertChanges("v6.svc.mcp.test", "fd00::5", 30),
      }),
      /^server ::1 53\n[^]*update add v6\.svc\.mcp\.test 30 AAAA fd00::5\nsend\n$/,
    );
  });

  test("a remove deletes both address types", () => {
    assert.equal(
      updateScript({
        host: "127.0.0.1",
        port: 53,
        zone: "svc.mcp.test",
        changes: removeChanges("app.svc.mcp.test"),
      }),
      "server 127.0.0.1 53\nzone svc.mcp.test\nupdate delete app.svc.mcp.test A\nupdate delete app.svc.mcp.test AAAA\nsend\n",
    );
  });

  test("nothing that could smuggle another nsupdate command gets into the script", () => {
    for (const name of [
      "a.svc.mcp.test\nsend",
      "a b.svc.mcp.test",
      "",
      "a..svc.mcp.test",
      "-a.x",
    ]) {
      assert.throws(() => checkName(name), McpError, JSON.stringify(name));
    }
    assert.throws(
      () =>
        updateScript({
          host: "127.0.0.1",
          port: 53,
          zone: "svc.mcp.test",
          changes: [
            { op: "add", name: "a.svc.mcp.test", type: "A", ttl: 60, address: "10.0.0.1\nsend" },
          ],
        }),
      McpError,
    );
    assert.throws(
      () =>
        updateScript({
          host: "127.0.0.1",
          port: 53,
          zone: "svc.mcp.test",
          changes: [{ op: "add", name: "a.svc.mcp.test", type: "A", ttl: 60, address: "fd00::1" }],
        }),
      /fd00::1 is not an A address/,
    );
    assert.equal(
      checkName("_acme-challenge.App.svc.mcp.test."),
      "_acme-challenge.app.svc.mcp.test",
    );
  });

  test("record type and zone membership", () => {
    assert.equal(recordType("192.0.2.1"), "A");
    assert.equal(recordType("2001:db8::1"), "AAAA");
    assert.throws(() => recordType("example.com"), McpError);
    assert.ok(inZone("app.svc.mcp.test", "svc.mcp.test"));
    assert.ok(inZone("APP.Svc.MCP.test.", "svc.mcp.test"));
    assert.ok(inZone("svc.mcp.test", "svc.mcp.test."));
    assert.ok(inZone("a.b.svc.mcp.test", "svc.mcp.test"));
    assert.ok(!inZone("appsvc.mcp.test", "svc.mcp.test"));
    assert.ok(!inZone("mcp.test", "svc.mcp.test"));
    assert.ok(!inZone("app.example.com", "svc.mcp.test"));
  });
});

describe("AXFR answers", () => {
  /** `dig -k … AXFR +noall +answer` against Knot 3.2. */
  const AXFR = [
    "svc.mcp.test.\t\t60\tIN\tSOA\tns.mcp.test. hostmaster.mcp.test. 2 3600 600 86400 60",
    "svc.mcp.test.\t\t60\tIN\tNS\tns.mcp.test.",
    "App.svc.mcp.test.\t60\tIN\tA\t10.0.0.5",
    "v6.svc.mcp.test.\t30\tIN\tAAAA\tfd00::5",
    'txt.svc.mcp.test.\t30\tIN\tTXT\t"hello world"',
    "svc.mcp.test.\t\t60\tIN\tSOA\tns.mcp.test. hostmaster.mcp.test. 2 3600 600 86400 60",
    "",
  ].join("\n");

  test("the A and AAAA records, names normalised", () => {
    assert.deepEqual(parseAxfr(AXFR, "svc.mcp.test", "127.0.0.1:53"), [
      { name: "app.svc.mcp.test", type: "A", address: "10.0.0.5", ttl: 60 },
      { name: "v6.svc.mcp.test", type: "AAAA", address: "fd00::5", ttl: 30 },
    ]);
  });

  test("a transfer dig reports as failed (exit 0) is a refusal with the key-file hint", () => {
    const out = ";; Couldn't verify signature: tsig indicates error\n; Transfer failed.\n";
    assert.throws(
      () => parseAxfr(out, "svc.mcp.test", "127.0.0.1:53"),
      (err: unknown) =>
        err instanceof McpError &&
        err.code === "failed_precondition" &&
        err.message ===
          "DNS transfer of zone svc.mcp.test refused by 127.0.0.1:53: Couldn't verify signature: tsig indicates error; Transfer failed.; check that [dns] tsig_key_file holds the key the server has for this zone",
    );
    assert.throws(() => parseAxfr("", "svc.mcp.test", "s:53"), /no SOA record in the answer/);
  });

  test("an unreachable server did not answer", () => {
    const err = transferFailure(
      "svc.mcp.test",
      "127.0.0.1:53598",
      "Connection to 127.0.0.1#53598(127.0.0.1) for svc.mcp.test failed: connection refused.; no servers could be reached",
    );
    assert.equal(err.code, "unavailable");
    assert.match(err.message, /^DNS server 127\.0\.0\.1:53598 did not answer \(Connection to/);
  });
});

describe("nsupdate failures", () => {
  const ctx = {
    name: "app.svc.mcp.test",
    server: "127.0.0.1:5353",
    zone: "svc.mcp.test",
    keyFile: "/etc/mcp/dns.key",
    timeoutSec: 3,
  };

  test("a wrong key is refused, with the key-file hint", () => {
    const err = updateFailure(
      {
        stderr: "; TSIG error with server: tsig indicates error\nupdate failed: NOTAUTH(BADSIG)\n",
        timedOut: false,
      },
      ctx,
    );
    assert.equal(err.code, "failed_precondition");
    assert.equal(
      err.message,
      "DNS update of app.svc.mcp.test refused by 127.0.0.1:5353: NOTAUTH(BADSIG) (TSIG error with server: tsig indicates error); check that [dns] tsig_key_file holds the key the server has for this zone",
    );
    assert.match(
      updateFailure({ stderr: "update failed: NOTAUTH\n", timedOut: false }, ctx).message,
      /refused by 127\.0\.0\.1:5353: NOTAUTH; check that \[dns\] tsig_key_file/,
    );
  });

  test("a name the server does not serve there points at [dns] zone", () => {
    assert.equal(
      updateFailure({ stderr: "update failed: NOTZONE\n", timedOut: false }, ctx).message,
      "DNS update of app.svc.mcp.test refused by 127.0.0.1:5353: NOTZONE; check [dns] zone (svc.mcp.test): the server does not take updates of that name there",
    );
  });

  test("no answer, within the bound or by a refused connection", () => {
    const silent = updateFailure(
      { stderr: "; Communication with 127.0.0.1#5353 failed: timed out\n", timedOut: false },
      ctx,
    );
    assert.equal(silent.code, "unavailable");
    assert.equal(silent.message, "DNS server 127.0.0.1:5353 did not answer within 3 s");
    assert.equal(
      updateFailure({ stderr: "", timedOut: true }, ctx).message,
      "DNS server 127.0.0.1:5353 did not answer within 3 s",
    );
    assert.equal(
      updateFailure(
        {
          stderr: "; Communication with 127.0.0.1#5353 failed: connection refused\n",
          timedOut: false,
        },
        ctx,
      ).message,
      "DNS server 127.0.0.1:5353 did not answer (connection refused)",
    );
  });

  test("a key file nsupdate cannot read, and anything else, keep nsupdate's words", () => {
    const unreadable = updateFailure(
      {
        stderr: "could not read key from /etc/mcp/dns.key.{private,key}: file not found\n",
        timedOut: false,
      },
      ctx,
    );
    assert.equal(unreadable.code, "invalid_config");
    assert.match(
      unreadable.message,
      /^\/etc\/mcp\/dns\.key: nsupdate cannot use the TSIG key file/,
    );
    assert.equal(
      updateFailure({ stderr: "something odd\n", timedOut: false }, ctx).message,
      "DNS update of app.svc.mcp.test at 127.0.0.1:5353 failed: something odd",
    );
  });
});

describe("the publisher's checks before any update", () => {
  const dirs: string[] = [];
  const newDir = async () => {
    const d = await tempDir("mcp-dns-unit-");
    dirs.push(d);
    return d;
  };
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const cfg = (keyFile: string): DnsConfig => ({
    server: "127.0.0.1:5353",
    zone: "svc.mcp.test",
    tsigKeyFile: keyFile,
    address: "10.0.0.5",
    ttl: 60,
  });

  test("a bad key file fails at construction, naming file and position", async () => {
    const dir = await newDir();
    const file = path.join(dir, "dns.key");
    await writeFile(file, 'key "k" {\n  algorithm hmac-sha256;\n  secret c2VjcmV0\n};\n');
    assert.throws(() => new NsupdatePublisher(cfg(file)), {
      name: "ValidationError",
      message: `${file}:4:1: expected ';', found '}'`,
    });
    await writeFile(file, KEYGEN_OUTPUT);
    const p = new NsupdatePublisher(cfg(file));
    assert.equal(p.zone, "svc.mcp.test");
    assert.equal(p.key.name, "app-key");
  });

  test("a name outside the zone is refused without asking the server", async () => {
    const dir = await newDir();
    const file = path.join(dir, "dns.key");
    await writeFile(file, KEYGEN_OUTPUT);
    const p = new NsupdatePublisher(cfg(file));
    await assert.rejects(p.upsert("app.example.com"), {
      name: "McpError",
      code: "invalid_argument",
      message:
        "app.example.com is outside zone svc.mcp.test ([dns] zone): no DNS record is published for it",
    });
    await assert.rejects(p.remove("svc.mcp.test.evil.com"), /outside zone svc\.mcp\.test/);
  });
});
