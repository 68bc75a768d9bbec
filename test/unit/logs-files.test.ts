/**
 * Logs and file transfer: the pure rules (paths, modes, sizes, --since,
 * --tail, component choice), the agent's push/pull against real temp
 * directories (symlinks included), and the logs pipe over a scripted
 * LogStream and a stand-in call. test/integration/logs-files.test.ts covers
 * the same end to end against a real agent, podman and the CLI.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  lstatSync,
  readdirSync,
  linkSync,
  existsSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import {
  DEFAULT_FILE_MODE,
  MAX_FILE_BYTES,
  checkFileSize,
  checkMode,
  checkRelativePath,
  formatMode,
  isInside,
} from "../../src/protocol/file-paths.js";
import { pullFile, pushFile } from "../../src/agent/operations/files.js";
import { pipeLogs, resolveLogsTarget } from "../../src/agent/operations/logs.js";
import {
  checkSince,
  logOptions,
  parseTail,
  pickComponent,
} from "../../src/protocol/logs-options.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { logsRequest } from "../../src/cli/commands/logs.js";
import { pullDestination, writeLocalFile } from "../../src/cli/commands/files.js";
import { ComponentSpec, type LogsRequest, type LogsResponse } from "../../src/gen/mcp/v1/mcp.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import type { LogStream } from "../../src/runtime/types.js";
import { McpError, type McpErrorCode } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import { FakeRuntime, apiError, noSuchContainer } from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const dir = mkdtempSync(join(tmpdir(), "mcp-lf-unit-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Asserts `fn` throws an McpError with `code` whose message matches `re`, on one line. */
function throwsMcp(fn: () => unknown, code: McpErrorCode, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, re);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

async function rejectsMcp(p: Promise<unknown>, code: McpErrorCode, re: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, re);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

// ------------------------------------------------------------------ pure rules

describe("file paths", () => {
  test("relative paths are split into segments; . and empty segments are dropped", () => {
    assert.deepEqual(checkRelativePath("app.toml"), ["app.toml"]);
    assert.deepEqual(checkRelativePath("conf/app.toml"), ["conf", "app.toml"]);
    assert.deepEqual(checkRelativePath("./conf//app.toml/"), ["conf", "app.toml"]);
    assert.deepEqual(checkRelativePath("..hidden/...x"), ["..hidden", "...x"]);
  });

  test("absolute paths, .. segments, NUL, empty and the directory itself are refused", () => {
    throwsMcp(() => checkRelativePath("/etc/passwd"), "invalid_argument", /absolute paths/);
    throwsMcp(() => checkRelativePath("../x"), "invalid_argument", /"\.\." segments/);
    throwsMcp(() => checkRelativePath("a/../b"), "invalid_argument", /"\.\." segments/);
    throwsMcp(() => checkRelativePath("a/.."), "invalid_argument", /"\.\." segments/);
    throwsMcp(() => checkRelativePath(""), "invalid_argument", /empty/);
    throwsMcp(() => checkRelativePath("."), "invalid_argument", /data directory itself/);
    throwsMcp(() => checkRelativePath("./"), "invalid_argument", /data directory itself/);
    throwsMcp(() => checkRelativePath("a\0b"), "invalid_argument", /NUL/);
    throwsMcp(() => checkRelativePath("x".repeat(256)), "invalid_argument", /longer than 255/);
    throwsMcp(() => checkRelativePath("a/".repeat(2100)), "invalid_argument", /longer than 4095/);
  });

  test("isInside: the base itself and below; siblings with a common prefix are outside", () => {
    assert.ok(isInside("/srv/a", "/srv/a"));
    assert.ok(isInside("/srv/a", "/srv/a/b/c"));
    assert.ok(isInside("/srv/a", "/srv/a/..b"));
    assert.ok(!isInside("/srv/a", "/srv/ab"));
    assert.ok(!isInside("/srv/a", "/srv"));
    assert.ok(!isInside("/srv/a", "/etc/passwd"));
  });

  test("modes: 0 is the default, permission bits pass, special bits are refused", () => {
    assert.equal(checkMode(0), DEFAULT_FILE_MODE);
    assert.equal(checkMode(0o640), 0o640);
    assert.equal(checkMode(0o777), 0o777);
    throwsMcp(() => checkMode(0o4755), "invalid_argument", /mode 4755 is refused/);
    throwsMcp(() => checkMode(0o1777), "invalid_argument", /sticky/);
    assert.equal(formatMode(0o640), "0640");
    assert.equal(formatMode(0o7), "0007");
  });

  test("size limit: exactly the limit passes, one byte more is refused with both sizes", () => {
    assert.equal(MAX_FILE_BYTES, 16 * 1024 * 1024);
    checkFileSize(MAX_FILE_BYTES, "f", "invalid_argument");
    throwsMcp(
      () => checkFileSize(MAX_FILE_BYTES + 1, "big.bin", "invalid_argument"),
      "invalid_argument",
      /^big\.bin is 16\.0 MiB \(16777217 bytes\), over the 16\.0 MiB limit/,
    );
  });
});

describe("logs options", () => {
  test("--since accepts podman's durations, dates, RFC 3339 times and Unix seconds", () => {
    for (const s of [
      "10m",
      "1h30m",
      "1.5h",
      ".5h",
      "500ms",
      "0",
      "1700000000",
      "1700000000.5",
      "2024-01-01",
      "2024-01-01Z",
      "2024-01-01+02:00",
      "2024-01-01T10:00:00",
      "2024-01-01T10:00:00.123Z",
      "2024-01-01T10:00:00+02:00",
    ]) {
      assert.equal(checkSince(s), s);
    }
  });

  test("--since refuses what podman would refuse, and option-like values", () => {
    for (const s of [
      "bogus",
      "-5m",
      "--tail",
      "2024-01-01T10:00",
      "2024-01-01 10:00",
      "10 m",
      "",
    ]) {
      throwsMcp(() => checkSince(s), "invalid_argument", /--since .*expected a duration/);
    }
  });

  test("-n takes a whole number ≥ 1", () => {
    assert.equal(parseTail("2"), 2);
    for (const s of ["0", "-1", "1.5", "x", "", "99999999999"]) {
      throwsMcp(() => parseTail(s), "invalid_argument", /-n\/--tail: expected a whole number/);
    }
  });

  test("request → podman options: tail 0 means all, since checked", () => {
    const base: LogsRequest = {
      service: "s",
      component: "",
      tail: 0,
      follow: false,
      timestamps: false,
      since: "",
    };
    assert.deepEqual(logOptions(base), { follow: false, timestamps: false });
    assert.deepEqual(
      logOptions({ ...base, tail: 2, follow: true, timestamps: true, since: "5m" }),
      {
        tail: 2,
        follow: true,
        timestamps: true,
        since: "5m",
      },
    );
    throwsMcp(() => logOptions({ ...base, tail: -1 }), "invalid_argument", /tail -1/);
    throwsMcp(() => logOptions({ ...base, since: "yesterday" }), "invalid_argument", /--since/);
  });

  test("component: the named one, else the only one; several need a name", () => {
    assert.equal(pickComponent("s", ["web"], "", "n1"), "web");
    assert.equal(pickComponent("s", ["api", "web"], "api", "n1"), "api");
    throwsMcp(
      () => pickComponent("s", ["api", "web"], "", "n1"),
      "invalid_argument",
      /^service s has 2 components \(api, web\): name one, e\.g\. mcp logs s\/api$/,
    );
    throwsMcp(
      () => pickComponent("s", ["api", "web"], "db", "n1"),
      "not_found",
      /no component "db" on node n1 \(it has: api, web\)/,
    );
    throwsMcp(() => pickComponent("s", [], "", "n1"), "not_found", /has no components/);
  });

  test("the CLI builds the request from its arguments and checks them first", () => {
    assert.deepEqual(logsRequest("svc/web", { tail: "2", follow: true, since: "1h" }), {
      service: "svc",
      component: "web",
      tail: 2,
      follow: true,
      timestamps: false,
      since: "1h",
    });
    assert.equal(logsRequest("svc", {}).component, "");
    throwsMcp(() => logsRequest("a/b/c", {}), "invalid_argument", /expected <service>/);
    throwsMcp(() => logsRequest("svc", { tail: "0" }), "invalid_argument", /-n\/--tail/);
  });
});

// ------------------------------------------------------------------ agent: files

let contexts = 0;

function agentContext(): { ctx: AgentContext; runtime: FakeRuntime; dataRoot: string } {
  const n = ++contexts;
  const registry = openRegistry(join(dir, `registry-${n}.db`));
  registries.push(registry);
  const runtime = new FakeRuntime();
  const dataRoot = join(dir, `data-${n}`);
  const ctx = createAgentContext({
    health: new ScriptedProber(),
    settings: {
      node: "lf-unit",
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot,
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
    },
    registry,
    runtime,
    allocator: new PortAllocator({
      pool: [{ from: 20000, to: 20010 }],
      bindAddresses: ["127.0.0.1"],
      book: new RegistryPortBook(registry),
      probe: runtime.probe,
    }),
    logger: silentLogger(),
  });
  registry.services.upsert({ name: "svc", active: true });
  return { ctx, runtime, dataRoot };
}

const push = (ctx: AgentContext, path: string, content: Buffer | string, mode = 0o640) =>
  pushFile(ctx, {
    service: "svc",
    path,
    content: typeof content === "string" ? Buffer.from(content) : content,
    mode,
  });

describe("agent push/pull", () => {
  test("round trip of binary bytes and modes; parents are created inside", async () => {
    const { ctx, dataRoot } = agentContext();
    const bytes = Buffer.from([0, 1, 2, 255, 0, 10, 13, 0]);
    assert.deepEqual(await push(ctx, "conf/deep/a.bin", bytes, 0o755), { bytesWritten: 8 });
    const onDisk = join(dataRoot, "svc/conf/deep/a.bin");
    assert.deepEqual(readFileSync(onDisk), bytes);
    assert.equal(statSync(onDisk).mode & 0o777, 0o755);
    assert.ok(statSync(join(dataRoot, "svc/conf/deep")).isDirectory());
    const pulled = await pullFile(ctx, { service: "svc", path: "conf/deep/a.bin" });
    assert.deepEqual(Buffer.from(pulled.content), bytes);
    assert.equal(pulled.mode, 0o755);

    // Overwrite with another mode: replaced, no temp files left behind.
    await push(ctx, "conf/deep/a.bin", "x", 0o640);
    assert.equal(readFileSync(onDisk, "utf8"), "x");
    assert.equal(statSync(onDisk).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(join(dataRoot, "svc/conf/deep")), ["a.bin"]);
    assert.equal((await pullFile(ctx, { service: "svc", path: "./conf//deep/a.bin" })).mode, 0o640);

    // mode 0 = unset: 0644, whatever the umask.
    await push(ctx, "plain", "p", 0);
    assert.equal(statSync(join(dataRoot, "svc/plain")).mode & 0o777, 0o644);
  });

  test("unknown service, bad paths and bad modes are refused before touching the disk", async () => {
    const { ctx, dataRoot } = agentContext();
    await rejectsMcp(
      pushFile(ctx, { service: "ghost", path: "a", content: Buffer.from("x"), mode: 0 }),
      "not_found",
      /unknown service "ghost" on node lf-unit/,
    );
    await rejectsMcp(pullFile(ctx, { service: "ghost", path: "a" }), "not_found", /ghost/);
    await rejectsMcp(push(ctx, "../x", "x"), "invalid_argument", /"\.\." segments/);
    await rejectsMcp(push(ctx, "/etc/passwd", "x"), "invalid_argument", /absolute/);
    await rejectsMcp(pullFile(ctx, { service: "svc", path: "../x" }), "invalid_argument", /\.\./);
    await rejectsMcp(
      pullFile(ctx, { service: "svc", path: "/etc/passwd" }),
      "invalid_argument",
      /absolute/,
    );
    await rejectsMcp(push(ctx, "a", "x", 0o4755), "invalid_argument", /setuid/);
    assert.throws(() => statSync(join(dataRoot, "svc")), /ENOENT/);
  });

  test("size limit on push and on pull", async () => {
    const { ctx, dataRoot } = agentContext();
    await rejectsMcp(
      push(ctx, "big", Buffer.alloc(MAX_FILE_BYTES + 1)),
      "invalid_argument",
      /over the 16\.0 MiB limit/,
    );
    mkdirSync(join(dataRoot, "svc"), { recursive: true });
    writeFileSync(join(dataRoot, "svc/big"), Buffer.alloc(MAX_FILE_BYTES + 1));
    await rejectsMcp(
      pullFile(ctx, { service: "svc", path: "big" }),
      "failed_precondition",
      /"big" is 16\.0 MiB .* over the 16\.0 MiB limit/,
    );
  });

  test("symlinks leading out are refused for push and pull; inside ones are followed", async () => {
    const { ctx, dataRoot } = agentContext();
    const svc = join(dataRoot, "svc");
    const outside = join(dataRoot, "outside");
    mkdirSync(join(svc, "real"), { recursive: true });
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, "secret"), "secret");
    writeFileSync(join(svc, "real/file"), "inside");
    symlinkSync(join(outside, "secret"), join(svc, "leak")); // file link out
    symlinkSync(outside, join(svc, "out")); // dir link out
    symlinkSync("../outside", join(svc, "rel-out")); // relative link out
    symlinkSync("real", join(svc, "in")); // dir link in
    symlinkSync("real/file", join(svc, "in-file")); // file link in
    symlinkSync("/nonexistent/x", join(svc, "dangling"));

    for (const p of ["leak", "out/secret", "rel-out/secret"]) {
      await rejectsMcp(
        pullFile(ctx, { service: "svc", path: p }),
        "failed_precondition",
        /is a symlink leading out of the data directory/,
      );
    }
    for (const p of ["leak", "out/new", "rel-out/secret", "out/sub/new"]) {
      await rejectsMcp(push(ctx, p, "evil"), "failed_precondition", /leading out/);
    }
    await rejectsMcp(push(ctx, "dangling", "x"), "failed_precondition", /does not resolve/);
    // Nothing outside changed, nothing was created there, the links are intact.
    assert.equal(readFileSync(join(outside, "secret"), "utf8"), "secret");
    assert.deepEqual(readdirSync(outside), ["secret"]);
    assert.ok(lstatSync(join(svc, "leak")).isSymbolicLink());

    assert.equal(
      Buffer.from((await pullFile(ctx, { service: "svc", path: "in/file" })).content).toString(),
      "inside",
    );
    assert.equal(
      Buffer.from((await pullFile(ctx, { service: "svc", path: "in-file" })).content).toString(),
      "inside",
    );
    await push(ctx, "in/new", "via link");
    assert.equal(readFileSync(join(svc, "real/new"), "utf8"), "via link");
    await push(ctx, "in-file", "replaced");
    assert.equal(readFileSync(join(svc, "real/file"), "utf8"), "replaced");
    assert.ok(lstatSync(join(svc, "in-file")).isSymbolicLink(), "an inside link stays a link");
  });

  test("directories, missing files and non-directories in the path", async () => {
    const { ctx, dataRoot } = agentContext();
    mkdirSync(join(dataRoot, "svc/sub"), { recursive: true });
    writeFileSync(join(dataRoot, "svc/file"), "f");
    await rejectsMcp(
      pullFile(ctx, { service: "svc", path: "nope" }),
      "not_found",
      /no file "nope"/,
    );
    await rejectsMcp(pullFile(ctx, { service: "svc", path: "a/b" }), "not_found", /a\/ does not/);
    await rejectsMcp(
      pullFile(ctx, { service: "svc", path: "sub" }),
      "failed_precondition",
      /directory/,
    );
    await rejectsMcp(push(ctx, "sub", "x"), "failed_precondition", /is a directory/);
    await rejectsMcp(push(ctx, "file/x", "x"), "failed_precondition", /file is not a directory/);
  });
});

/** Every regular file below `root` (symlinks not followed), as path → content. */
function filesBelow(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const p = join(entry.parentPath, entry.name);
      out.set(p, readFileSync(p, "utf8"));
    }
  }
  return out;
}

/**
 * The attack of the finding, in another thread so it really runs between the
 * agent's system calls: `<svc>/sub` turns from a directory into a symlink to
 * `outside` and back, as fast as it can, until `stop` is set or `deadline`.
 * Renames keep everything inside: the real directory waits at `parked` (or at
 * `extra-N` when a push recreated `sub` meanwhile), the symlink at `link`.
 * Every step may lose a race with a push, so each one is allowed to fail.
 */
const SWAPPER = `
const { workerData, parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const path = require("node:path");
const { svc, outside, stop, deadline, maxSwaps } = workerData;
const sub = path.join(svc, "sub"), parked = path.join(svc, "parked"), link = path.join(svc, "link");
const lst = (p) => { try { return fs.lstatSync(p); } catch { return undefined; } };
const tryDo = (f) => { try { f(); return true; } catch { return false; } };
fs.symlinkSync(outside, link);
let swaps = 0, extra = 0;
while (Atomics.load(stop, 0) === 0 && Date.now() < deadline && swaps < maxSwaps) {
  const st = lst(sub);
  if (st && st.isDirectory()) {
    tryDo(() => fs.renameSync(sub, lst(parked) ? path.join(svc, "extra-" + extra++) : parked));
    if (tryDo(() => fs.renameSync(link, sub))) swaps++;
  } else if (st && st.isSymbolicLink()) {
    tryDo(() => fs.renameSync(sub, link));
    tryDo(() => fs.renameSync(parked, sub));
  } else if (!st) {
    tryDo(() => fs.renameSync(parked, sub));
  }
}
// Leave sub a directory (or absent), never the symlink.
const end = lst(sub);
if (end && end.isSymbolicLink()) fs.unlinkSync(sub);
if (!lst(sub) && lst(parked)) fs.renameSync(parked, sub);
parentPort.postMessage(swaps);
`;

/** Runs `work` in `lanes` concurrent loops while the swapper attacks `<svc>/sub` for `ms`. */
async function underSwap(
  svc: string,
  outside: string,
  ms: number,
  lanes: number,
  work: (lane: number, i: number) => Promise<void>,
): Promise<number> {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  const worker = new Worker(SWAPPER, {
    eval: true,
    workerData: { svc, outside, stop, deadline, maxSwaps: 200_000 },
  });
  const swapped = new Promise<number>((resolve, reject) => {
    worker.once("message", (n: number) => resolve(n));
    worker.once("error", reject);
  });
  try {
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = 0; Date.now() < deadline; i++) await work(lane, i);
      }),
    );
  } finally {
    Atomics.store(stop, 0, 1);
  }
  return swapped;
}

/** A refusal the race may cause: typed, one line, and nothing else. */
function raceRefusal(err: unknown): McpError {
  assert.ok(err instanceof McpError, `untyped error: ${String(err)}`);
  assert.ok(
    err.code === "failed_precondition" || err.code === "not_found",
    `${err.code}: ${err.message}`,
  );
  assert.doesNotMatch(err.message, /\n/);
  return err;
}

describe("agent push/pull under attack", () => {
  test("push while a directory is swapped with a symlink to outside creates nothing outside", async () => {
    const { ctx, dataRoot } = agentContext();
    const svc = join(dataRoot, "svc");
    const outside = join(dataRoot, "outside");
    mkdirSync(join(svc, "sub"), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, "keep"), "outside");
    const pushed: string[] = [];
    let refused = 0;
    const swaps = await underSwap(svc, outside, 1500, 8, async (lane, i) => {
      // Alternate a file right under the swapped directory and one in a new
      // directory below it (push's mkdir must not land outside either).
      const p = i % 2 === 0 ? `sub/f-${lane}-${i}` : `sub/d-${lane}-${i}/f`;
      const content = `push ${lane} ${i}`;
      try {
        await push(ctx, p, content);
        pushed.push(content);
      } catch (err) {
        raceRefusal(err);
        refused++;
      }
    });
    assert.deepEqual(readdirSync(outside), ["keep"], "nothing may be created outside");
    assert.equal(readFileSync(join(outside, "keep"), "utf8"), "outside");
    assert.ok(
      swaps > 0 && pushed.length > 0 && refused > 0,
      `swaps ${swaps}, ok ${pushed.length}, refused ${refused}`,
    );
    // Every push that succeeded left its file inside (wherever the swapper
    // moved its directory), and no temp file is left anywhere.
    const inside = filesBelow(svc);
    const contents = new Set(inside.values());
    for (const c of pushed) assert.ok(contents.has(c), `pushed "${c}" is not inside`);
    for (const p of inside.keys()) assert.doesNotMatch(p, /\.mcp-push-/);
  });

  test("pull while a directory is swapped with a symlink to outside never returns outside content", async () => {
    const { ctx, dataRoot } = agentContext();
    const svc = join(dataRoot, "svc");
    const outside = join(dataRoot, "outside");
    mkdirSync(join(svc, "sub"), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(svc, "sub/secret"), "inside");
    writeFileSync(join(outside, "secret"), "OUTSIDE");
    let served = 0;
    let refused = 0;
    const swaps = await underSwap(svc, outside, 1500, 8, async () => {
      try {
        const got = await pullFile(ctx, { service: "svc", path: "sub/secret" });
        assert.equal(Buffer.from(got.content).toString(), "inside");
        served++;
      } catch (err) {
        raceRefusal(err);
        refused++;
      }
    });
    assert.ok(
      swaps > 0 && served > 0 && refused > 0,
      `swaps ${swaps}, ok ${served}, refused ${refused}`,
    );
    assert.deepEqual(readdirSync(outside), ["secret"]);
  });

  test("hard links: pull from and push onto a file with more than one link are refused", async () => {
    const { ctx, dataRoot } = agentContext();
    const svc = join(dataRoot, "svc");
    const outside = join(dataRoot, "outside");
    mkdirSync(svc, { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, "shadow"), "root:secret");
    linkSync(join(outside, "shadow"), join(svc, "hl")); // made by someone on the host
    symlinkSync("hl", join(svc, "via")); // an inside symlink to it changes nothing
    const refusal = (p: string) =>
      new RegExp(
        `path "${p}" has 2 hard links; push/pull refuse files with more than one link, since a link can lead out of the data directory`,
      );
    for (const p of ["hl", "via"]) {
      await rejectsMcp(
        pullFile(ctx, { service: "svc", path: p }),
        "failed_precondition",
        refusal(p),
      );
      await rejectsMcp(push(ctx, p, "evil"), "failed_precondition", refusal(p));
    }
    assert.equal(readFileSync(join(outside, "shadow"), "utf8"), "root:secret");
    assert.equal(lstatSync(join(svc, "hl")).nlink, 2, "the link is not replaced either");
    assert.equal(readFileSync(join(svc, "hl"), "utf8"), "root:secret");
    assert.deepEqual(readdirSync(svc).sort(), ["hl", "via"], "no temp file left");

    // Two links inside are refused alike: a link's other name is not ours to know.
    writeFileSync(join(svc, "a"), "a");
    linkSync(join(svc, "a"), join(svc, "b"));
    await rejectsMcp(
      pullFile(ctx, { service: "svc", path: "b" }),
      "failed_precondition",
      /has 2 hard links/,
    );
    // Once the other link is gone the file is an ordinary one again.
    rmSync(join(svc, "a"));
    assert.equal(
      Buffer.from((await pullFile(ctx, { service: "svc", path: "b" })).content).toString(),
      "a",
    );
    await push(ctx, "b", "b2");
    assert.equal(readFileSync(join(svc, "b"), "utf8"), "b2");
    assert.ok(!existsSync(join(svc, "a")));
  });
});

// ------------------------------------------------------------------ agent: logs

/** A stand-in for grpc-js's ServerWritableStream: records writes, can be cancelled. */
class FakeCall extends EventEmitter {
  chunks: string[] = [];
  cancelled = false;
  writableEnded = false;
  destroyed = false;
  /** write() answers false (backpressure) while this is set. */
  full = false;
  write(msg: LogsResponse): boolean {
    this.chunks.push(Buffer.from(msg.data).toString());
    return !this.full;
  }
  end(): void {
    this.writableEnded = true;
  }
  cancel(): void {
    this.cancelled = true;
    this.emit("cancelled");
  }
}

function scriptedLogs(): LogStream & {
  stdout: PassThrough;
  stderr: PassThrough;
  killed: number;
  finish(err?: Error): void;
} {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let settle: (err?: Error) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => {
      stdout.end();
      stderr.end();
      if (err) reject(err);
      else resolve();
    };
  });
  const s = {
    stdout,
    stderr,
    done,
    killed: 0,
    kill: () => {
      s.killed++;
      settle();
    },
    finish: (err?: Error) => settle(err),
  };
  return s;
}

const asCall = (c: FakeCall) => c as unknown as ServerWritableStream<LogsRequest, LogsResponse>;

describe("agent logs", () => {
  test("stdout and stderr chunks are streamed, then the call ends OK", async () => {
    const logs = scriptedLogs();
    const call = new FakeCall();
    const piped = pipeLogs(logs, asCall(call), "logs svc/web");
    logs.stdout.write("tick 0\n");
    logs.stderr.write("warn\n");
    logs.stdout.write("tick 1\n");
    await new Promise((r) => setImmediate(r));
    logs.finish();
    await piped;
    assert.deepEqual(call.chunks, ["tick 0\n", "warn\n", "tick 1\n"]);
    assert.ok(call.writableEnded);
    assert.equal(logs.killed, 0);
  });

  test("backpressure pauses podman's pipes until the call drains", async () => {
    const logs = scriptedLogs();
    const call = new FakeCall();
    call.full = true;
    const piped = pipeLogs(logs, asCall(call), "logs svc/web");
    logs.stdout.write("a\n");
    await new Promise((r) => setImmediate(r));
    assert.ok(logs.stdout.isPaused() && logs.stderr.isPaused());
    assert.equal(call.listenerCount("drain"), 1);
    call.full = false;
    call.emit("drain");
    assert.ok(!logs.stdout.isPaused() && !logs.stderr.isPaused());
    logs.stdout.write("b\n");
    await new Promise((r) => setImmediate(r));
    logs.finish();
    await piped;
    assert.deepEqual(call.chunks, ["a\n", "b\n"]);
    assert.ok(call.writableEnded);
  });

  test("a cancelled call kills podman, even while paused by backpressure", async () => {
    const logs = scriptedLogs();
    const call = new FakeCall();
    call.full = true;
    const piped = pipeLogs(logs, asCall(call), "logs svc/web");
    logs.stdout.write("a\n");
    await new Promise((r) => setImmediate(r));
    assert.ok(logs.stdout.isPaused(), "paused while the client is slow");
    call.cancel();
    await piped;
    assert.equal(logs.killed, 1);
    assert.ok(!call.writableEnded, "a cancelled call is not ended by us");
  });

  test("podman failures become typed errors", async () => {
    const gone = scriptedLogs();
    const p1 = pipeLogs(gone, asCall(new FakeCall()), "logs svc/web");
    gone.finish(noSuchContainer("logs", "svc-web"));
    await rejectsMcp(p1, "not_found", /^logs svc\/web: the container is gone$/);
    const since = scriptedLogs();
    const p2 = pipeLogs(since, asCall(new FakeCall()), "logs svc/web");
    since.finish(
      apiError(
        "logs",
        400,
        `failed to parse query parameter 'since': "x": unable to interpret time value`,
        "unable to interpret time value",
      ),
    );
    await rejectsMcp(p2, "invalid_argument", /unable to interpret time value/);
  });

  test("target: unknown service, component choice, missing container", async () => {
    const { ctx, runtime } = agentContext();
    await rejectsMcp(resolveLogsTarget(ctx, "ghost", ""), "not_found", /unknown service "ghost"/);
    await rejectsMcp(resolveLogsTarget(ctx, "", ""), "invalid_argument", /no service/);
    for (const name of ["api", "web"]) {
      ctx.registry.components.upsert({
        service: "svc",
        name,
        spec: ComponentSpec.fromPartial({ name, image: "localhost/x:v1" }),
        desiredState: "running",
      });
    }
    await rejectsMcp(resolveLogsTarget(ctx, "svc", ""), "invalid_argument", /name one/);
    await rejectsMcp(
      resolveLogsTarget(ctx, "svc", "api"),
      "failed_precondition",
      /svc\/api has no container on node lf-unit/,
    );
    runtime.addContainer({ name: "svc-api", image: "localhost/x:v1" });
    assert.deepEqual(await resolveLogsTarget(ctx, "svc", "api"), {
      component: "api",
      container: "svc-api",
    });
  });
});

// ------------------------------------------------------------------ CLI: local files

describe("CLI local files", () => {
  test("pull destination: default base name, into a directory, or the path given", async () => {
    const d = mkdtempSync(join(dir, "dest-"));
    assert.equal(await pullDestination("conf/app.toml", undefined), "app.toml");
    assert.equal(await pullDestination("conf/app.toml", d), join(d, "app.toml"));
    assert.equal(await pullDestination("conf/app.toml", join(d, "x.toml")), join(d, "x.toml"));
  });

  test("writeLocalFile replaces atomically and applies the mode despite the umask", async () => {
    const d = mkdtempSync(join(dir, "write-"));
    const f = join(d, "f");
    writeFileSync(f, "old");
    chmodSync(f, 0o600);
    await writeLocalFile(f, Buffer.from([0, 1, 0]), 0o755);
    assert.deepEqual(readFileSync(f), Buffer.from([0, 1, 0]));
    assert.equal(statSync(f).mode & 0o777, 0o755);
    assert.deepEqual(readdirSync(d), ["f"]);
    await rejectsMcp(
      writeLocalFile(join(d, "missing/f"), Buffer.from("x"), 0o644),
      "not_found",
      /cannot write .*missing\/f: directory .* does not exist$/,
    );
  });
});
