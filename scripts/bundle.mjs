// Bundles the mcp CLI into one file (dist/mcp.mjs). An operator runs the CLI
// for every command, so its start-up counts: one file starts in about half the
// time of the module tree tsc emits (measured: 0.13 s vs 0.25 s for --version).
// The agent is a long-running process and ships as tsc emits it.
import { build } from "esbuild";

await build({
  entryPoints: ["src/bin/mcp.ts"],
  outfile: "dist/mcp.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  sourcemap: "linked",
  logLevel: "warning",
  // Bundled CommonJS dependencies (grpc-js) call require().
  banner: {
    js: "import { createRequire as __mcpRequire } from 'node:module'; const require = __mcpRequire(import.meta.url);",
  },
});
