#!/usr/bin/env node
// The operator CLI: argument parsing and wiring live in src/cli/program.ts.
import { runCli } from "../cli/program.js";

process.exitCode = await runCli(process.argv);
