/**
 * `mcp ui` as a separate process (the built dist/mcp.mjs) and Debian's
 * chromium through playwright-core (no browser download): what
 * test/integration/ui.test.ts and bench/ui.ts drive.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chromium, type Browser } from "playwright-core";
import { MCP_BIN } from "./live-agent.js";

export const CHROMIUM = "/usr/bin/chromium";

export interface RunningUiProcess {
  child: ChildProcess;
  /** The URL it printed. */
  url: string;
  /** Everything it wrote so far (stdout and stderr). */
  output(): string;
}

/** Starts `mcp --config <config> ui --listen <listen>` and resolves once it printed its URL. */
export async function startUi(config: string, listen: string): Promise<RunningUiProcess> {
  const child = spawn(process.execPath, [MCP_BIN, "--config", config, "ui", "--listen", listen], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`mcp ui printed no URL in 15 s:\n${output}`));
    }, 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /serving \d+ nodes? on (http:\/\/\S+)/.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mcp ui exited ${code}:\n${output}`));
    });
  });
  return { child, url, output: () => output };
}

/** Stops it (SIGINT, as Ctrl-C) and resolves with its exit code. */
export async function stopUi(ui: RunningUiProcess): Promise<number | null> {
  const child = ui.child;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  return exited;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}
