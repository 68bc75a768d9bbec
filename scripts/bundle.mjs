// Bundles the mcp CLI: dist/mcp-cli.cjs (the CLI, src/bin/mcp-cli.ts) and
// dist/mcp.mjs (the `mcp` command, src/bin/mcp.ts, which runs the first
// through V8's compile cache). An operator runs the CLI for every command, so
// its start-up counts: a bundle starts in about half the time of the module
// tree tsc emits, and the compile cache saves most of what is left of
// compiling it (bench/README "CLI start-up"). The agent is a long-running
// process and ships as tsc emits it.
import { rmSync } from "node:fs";
import { build } from "esbuild";

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

// The previous layout (an ESM bundle split into chunks) is gone.
rmSync("dist/mcp-chunks", { recursive: true, force: true });
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  minify: true,
  logLevel: "warning",
};
// The CLI itself: one CommonJS file, so the launcher can compile it through
// vm.Script with V8's cached data (src/cli/compile-cache.ts). Its commands'
// modules are still initialised only when the command runs (esbuild turns
// each `await import()` into a lazy initialiser), so `--help` and
// `--version` run no gRPC, TLS or protobuf code.
await build({
  ...common,
  entryPoints: ["src/bin/mcp-cli.ts"],
  outfile: "dist/mcp-cli.cjs",
  format: "cjs",
  sourcemap: "linked",
  plugins: [noProtoLoader],
});
// The `mcp` command: the launcher, a few kB.
await build({
  ...common,
  entryPoints: ["src/bin/mcp.ts"],
  outfile: "dist/mcp.mjs",
  format: "esm",
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
