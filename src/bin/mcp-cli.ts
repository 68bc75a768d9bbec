// The operator CLI: argument parsing and wiring live in src/cli/program.ts.
// Bundled as CommonJS (dist/mcp-cli.cjs) and started by src/bin/mcp.ts.
import { installInterruptHandler, wasInterrupted } from "../cli/interrupt.js";
import { EXIT } from "../cli/outcome.js";
import { runCli } from "../cli/program.js";

// Exit as soon as the command is done, once stdout/stderr are flushed: grpc-js
// keeps a pending TCP connect or TLS handshake to an unreachable node open
// after its channel is closed (see src/cli/deadline.ts), which would otherwise
// hold the process for minutes after the answer was printed.
const flushed = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => stream.write("", () => resolve()));
async function exit(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  // A command that ends after Ctrl-C (logs cancels its stream) still exits 130.
  process.exit(wasInterrupted() ? EXIT.interrupted : code);
}

// Ctrl-C: `mcp: interrupted` (or what the running command says), exit 130.
installInterruptHandler(exit);
// No top-level await: the bundle is CommonJS, for the compile cache.
void runCli(process.argv).then(exit);
