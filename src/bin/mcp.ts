#!/usr/bin/env node
// The `mcp` command: runs the bundled CLI (dist/mcp-cli.cjs, built from
// src/bin/mcp-cli.ts by scripts/bundle.mjs) through the V8 compile cache,
// so a command does not parse and compile the CLI again (src/cli/compile-cache.ts).
import { fileURLToPath } from "node:url";
import { runBundleWithCompileCache } from "../cli/compile-cache.js";

runBundleWithCompileCache(
  fileURLToPath(new URL("./mcp-cli.cjs", import.meta.url)),
  process.env,
  process.argv.slice(2),
);
