#!/usr/bin/env node
// The operator CLI: argument parsing and wiring live in src/cli/program.ts.
import { runCli } from "../cli/program.js";

const code = await runCli(process.argv);
// Exit as soon as the command is done, once stdout/stderr are flushed: grpc-js
// keeps a pending TCP connect or TLS handshake to an unreachable node open
// after its channel is closed (see src/cli/deadline.ts), which would otherwise
// hold the process for minutes after the answer was printed.
const flushed = (stream: NodeJS.WriteStream) =>
  new Promise<void>((resolve) => stream.write("", () => resolve()));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
