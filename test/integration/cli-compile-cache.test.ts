/**
 * The built `mcp` (dist/mcp.mjs → dist/mcp-cli.cjs) with its V8 compile cache
 * (src/cli/compile-cache.ts), against a real agent: the first run of each
 * command records the cache (0700 directory, 0600 files), a run of a known
 * command only reads it, a cache V8 cannot use (garbage) is replaced and the
 * command still answers, another build's files are removed, and
 * MCP_CLI_CACHE=off writes nothing. That the cache saves time is
 * benchmarked (bench/cli-startup.ts), not asserted.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { VERSION } from "../../src/version.js";
import { LiveAgent, ok, runMcp } from "../helpers/live-agent.js";

describe("CLI compile cache", () => {
  let agent: LiveAgent;
  let home: string;
  const cacheDir = () => path.join(home, "mcp");
  const mcp = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runMcp(["--config", agent.cliConfig, ...args], { env: { XDG_CACHE_HOME: home, ...env } });
  /** `mcp node status --json`: the node name the agent itself reports (a gRPC call over TLS). */
  const agentNodeName = async () => {
    const run = ok(await mcp(["node", "status", "--json"]), "mcp node status");
    return (JSON.parse(run.stdout) as { status?: { nodeName?: string } }[])[0]?.status?.nodeName;
  };
  const files = async () => (await readdir(cacheDir())).sort();
  const manifest = async () => {
    const json = (await files()).find((f) => f.endsWith(".json"));
    assert.ok(json, "a manifest");
    return JSON.parse(await readFile(path.join(cacheDir(), json), "utf8")) as {
      commands: string[];
    };
  };
  const dataFile = async () => {
    const v8 = (await files()).find((f) => f.endsWith(".v8"));
    assert.ok(v8, "cached data");
    return path.join(cacheDir(), v8);
  };

  before(async () => {
    agent = await LiveAgent.start({ node: "cc-node" });
    home = await mkdtemp(path.join(os.tmpdir(), "mcp-cc-cache-"));
  });
  after(async () => {
    await agent?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  test("the first run of a command records the cache, private to the user", async () => {
    const run = ok(await mcp(["--version"]), "mcp --version");
    assert.equal(run.stdout.trim(), VERSION);
    assert.equal((await stat(cacheDir())).mode & 0o777, 0o700);
    const names = await files();
    assert.equal(names.length, 2, names.join(", "));
    for (const f of names)
      assert.equal((await stat(path.join(cacheDir(), f))).mode & 0o777, 0o600, f);
    assert.deepEqual(await manifest(), { commands: ["--version"] });
  });

  test("a new command adds what it compiled; a known one only reads", async () => {
    const small = (await stat(await dataFile())).size;
    assert.equal(await agentNodeName(), "cc-node");
    assert.deepEqual(await manifest(), { commands: ["--version", "node"] });
    const data = await dataFile();
    const big = await stat(data);
    assert.ok(
      big.size > small * 4,
      `node status's gRPC and TLS code is in the cache: ${small} → ${big.size} bytes`,
    );

    assert.equal(await agentNodeName(), "cc-node", "mcp node status, cached");
    ok(await mcp(["--version"]), "mcp --version, cached");
    // Had V8 rejected the data, the run would have recorded a fresh cache.
    assert.equal((await stat(data)).mtimeMs, big.mtimeMs, "the cache was read, not written");
    assert.deepEqual(await manifest(), { commands: ["--version", "node"] });
  });

  test("a cache V8 cannot use is replaced, and the command still answers", async () => {
    const data = await dataFile();
    await writeFile(data, "not V8 cached data");
    assert.equal(await agentNodeName(), "cc-node", "mcp node status over a broken cache");
    assert.deepEqual(await manifest(), { commands: ["node"] });
    assert.ok((await stat(data)).size > 10_000, "fresh cached data");
  });

  test("another build's files are removed when the cache is recorded", async () => {
    const stale = path.join(cacheDir(), "cli-1-2.v8");
    await writeFile(stale, "old build");
    ok(await mcp(["--help"]), "mcp --help");
    assert.deepEqual(await manifest(), { commands: ["node", "--help"] });
    assert.ok(!(await files()).includes("cli-1-2.v8"), (await files()).join(", "));
  });

  test("MCP_CLI_CACHE=off writes nothing", async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), "mcp-cc-off-"));
    try {
      ok(
        await mcp(["ps"], { XDG_CACHE_HOME: elsewhere, MCP_CLI_CACHE: "off" }),
        "mcp ps without cache",
      );
      assert.deepEqual(await readdir(elsewhere), []);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
