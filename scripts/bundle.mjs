// Bundles the mcp CLI (dist/mcp.mjs plus the chunks it imports on demand,
// dist/mcp-chunks/). An operator runs the CLI for every command, so its
// start-up counts: a bundle starts in about half the time of the module tree
// tsc emits (measured: 0.13 s vs 0.25 s for --version). Split by command
// (src/cli/program.ts imports each command when it runs), so `--help` and
// `--version` compile and run no gRPC, TLS or protobuf code at all.
// The agent is a long-running process and ships as tsc emits it.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const CHUNKS = "mcp-chunks";

/**
 * grpc-js requires @grpc/proto-loader (and through it protobufjs, ~130 kB
 * minified) only to serve channelz and ORCA, which the CLI never does; and
 * from a bundle that require could not work anyway (it reads .proto files
 * next to grpc-js's own sources). A stub that says so instead keeps the CLI
 * from parsing it on every command.
 */
const noProtoLoader = {
  name: "no-proto-loader",
  setup(b) {
    b.onResolve({ filter: /^@grpc\/proto-loader$/ }, () => ({
      path: "proto-loader",
      namespace: "mcp-stub",
    }));
    b.onLoad({ filter: /.*/, namespace: "mcp-stub" }, () => ({
      contents:
        "export function loadSync() { throw new Error('@grpc/proto-loader is not part of the mcp CLI bundle'); }",
      loader: "js",
    }));
  },
};

// Chunk names carry a hash: drop the previous build's.
rmSync(`dist/${CHUNKS}`, { recursive: true, force: true });
await build({
  entryPoints: { mcp: "src/bin/mcp.ts" },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  chunkNames: `${CHUNKS}/[name]-[hash]`,
  splitting: true,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [noProtoLoader],
  // Bundled CommonJS dependencies (grpc-js) call require().
  banner: {
    js: "import { createRequire as __mcpRequire } from 'node:module'; const require = __mcpRequire(import.meta.url);",
  },
});

// `mcp ui`'s page (src/cli/ui/web/): its script and style sheet, served by the
// CLI from dist/ui/ (src/cli/commands/ui.ts finds them next to dist/mcp.mjs).
await build({
  entryPoints: ["src/cli/ui/web/app.ts", "src/cli/ui/web/app.css"],
  outdir: "dist/ui",
  bundle: true,
  platform: "browser",
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  logLevel: "warning",
});
