/**
 * The CLI's compile cache (src/cli/compile-cache.ts): where it lives, which
 * command a run is about, when a run records the cache, and the wrapper V8
 * compiles. test/integration/cli-compile-cache.test.ts runs the built CLI.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MAX_RECORDED_COMMANDS,
  commandKey,
  compileCacheDisabled,
  compileCacheFiles,
  manifestToRecord,
  parseManifest,
  wrapCommonJs,
} from "../../src/cli/compile-cache.js";

describe("compile cache", () => {
  const bundle = { size: 545558, mtimeMs: 1796161675220.731 };

  test("lives under $XDG_CACHE_HOME/mcp, else ~/.cache/mcp, one pair of files per build", () => {
    assert.deepEqual(compileCacheFiles({ XDG_CACHE_HOME: "/var/cache/u" }, "/home/u", bundle), {
      data: "/var/cache/u/mcp/cli-545558-1796161675220.v8",
      manifest: "/var/cache/u/mcp/cli-545558-1796161675220.json",
      dir: "/var/cache/u/mcp",
      prefix: "cli-",
    });
    assert.equal(
      compileCacheFiles({}, "/home/u", bundle).data,
      "/home/u/.cache/mcp/cli-545558-1796161675220.v8",
    );
    // The XDG spec ignores a relative path.
    assert.equal(
      compileCacheFiles({ XDG_CACHE_HOME: "rel" }, "/home/u", bundle).dir,
      "/home/u/.cache/mcp",
    );
    assert.notEqual(
      compileCacheFiles({}, "/h", bundle).data,
      compileCacheFiles({}, "/h", { ...bundle, mtimeMs: bundle.mtimeMs + 1000 }).data,
    );
  });

  test("MCP_CLI_CACHE=off (0, false) turns it off", () => {
    for (const v of ["off", "OFF", "0", "false"])
      assert.equal(compileCacheDisabled({ MCP_CLI_CACHE: v }), true, v);
    for (const v of [undefined, "", "on", "1"])
      assert.equal(compileCacheDisabled({ MCP_CLI_CACHE: v }), false, String(v));
  });

  test("a run's command is its first word, skipping global options and their values", () => {
    assert.equal(commandKey(["ps"]), "ps");
    assert.equal(commandKey(["--config", "/etc/mcp.toml", "ps", "--json"]), "ps");
    assert.equal(commandKey(["--timeout", "5s", "--config", "c", "deploy", "web"]), "deploy");
    assert.equal(commandKey(["--config", "ps", "status"]), "status");
    assert.equal(commandKey(["--version"]), "--version");
    assert.equal(commandKey(["-V"]), "--version");
    assert.equal(commandKey(["--config", "c", "--help"]), "--help");
    assert.equal(commandKey([]), "");
  });

  test("a command new to the cache records it; a known one only reads it", () => {
    assert.deepEqual(manifestToRecord({ commands: ["ps"] }, "deploy", true), {
      commands: ["ps", "deploy"],
    });
    assert.equal(manifestToRecord({ commands: ["ps", "deploy"] }, "deploy", true), null);
  });

  test("a cache V8 rejected (or none) is recorded afresh by whatever command runs", () => {
    assert.deepEqual(manifestToRecord({ commands: ["ps", "deploy"] }, "ps", false), {
      commands: ["ps"],
    });
    assert.deepEqual(manifestToRecord({ commands: [] }, "--version", false), {
      commands: ["--version"],
    });
  });

  test(`at most ${MAX_RECORDED_COMMANDS} commands are recorded (typos are commands too)`, () => {
    const full = { commands: Array.from({ length: MAX_RECORDED_COMMANDS }, (_, i) => `c${i}`) };
    assert.equal(manifestToRecord(full, "new", true), null);
  });

  test("a manifest that is missing, torn or foreign counts as no command recorded", () => {
    assert.deepEqual(parseManifest(undefined), { commands: [] });
    assert.deepEqual(parseManifest('{"commands":["ps"'), { commands: [] });
    assert.deepEqual(parseManifest('{"commands":[1]}'), { commands: [] });
    assert.deepEqual(parseManifest("null"), { commands: [] });
    assert.deepEqual(parseManifest('{"commands":["ps","deploy"]}'), { commands: ["ps", "deploy"] });
  });

  test("the wrapper is Node's CommonJS one on its own line; a shebang becomes a comment", () => {
    const wrapped = wrapCommonJs("#!/usr/bin/env node\nfoo();\n");
    assert.equal(
      wrapped,
      "(function (exports, require, module, __filename, __dirname) {\n///usr/bin/env node\nfoo();\n\n})",
    );
    assert.equal(
      wrapped.split("\n")[2],
      "foo();",
      "the bundle's line 2 is line 2 with lineOffset -1",
    );
    assert.equal(wrapCommonJs("a()").split("\n")[1], "a()");
  });
});
