/**
 * A real `mcp-agent serve` process (the built dist/ entry point) in a temp
 * dir, driven through the real `mcp` CLI: what an operator runs, end to end.
 * Used by the integration tests and the benchmarks.
 */
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "smol-toml";
import { initAgentDir, type InitOptions } from "../../src/agent/server/init.js";
import { parseHostPort } from "../../src/config/address.js";
import { runCommand } from "../../src/util/exec.js";
import { freePort, tempDir } from "./agent.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MCP_BIN = path.join(ROOT, "dist/mcp.mjs");
export const AGENT_BIN = path.join(ROOT, "dist/bin/mcp-agent.js");
export const EXAMPLES_DIR = path.join(ROOT, "examples");
export const TEST_IMAGE = "localhost/mcp-httpenv:v1";
/** How long an agent may take to say it is ready (recovery runs first). */
const READY_MS = 30_000;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LiveAgentOptions {
  /** Node name; also the `mcp.node` label cleanup() removes containers by. Unique per test file. */
  node: string;
  /** Overrides merged into mcp-agent.toml, e.g. `{ ports: { range: [20000, 20100] } }`. */
  config?: Record<string, Record<string, unknown>>;
  /** Parent of the services' data dirs (default: inside the temp dir). */
  dataRoot?: string;
  /**
   * `mcp-agent init` options: `listen` (default 127.0.0.1 on a free port),
   * `caDir`, `sans`, `proxy` (default false: only edge tests run an HAProxy).
   */
  init?: Pick<InitOptions, "listen" | "caDir" | "sans" | "proxy">;
  /**
   * argv put in front of the agent process and of cleanup()'s podman commands,
   * e.g. `nsenter --net=… env CONTAINERS_CONF=…` for a network-namespace node.
   */
  prefix?: string[];
}

export class LiveAgent {
  private child: ChildProcess | undefined;
  private output = "";

  private constructor(
    readonly node: string,
    readonly dir: string,
    readonly port: number,
    readonly agentConfig: string,
    readonly cliConfig: string,
    readonly servicesDir: string,
    readonly prefix: string[] = [],
  ) {}

  static async start(opts: LiveAgentOptions): Promise<LiveAgent> {
    for (const bin of [MCP_BIN, AGENT_BIN]) {
      if (!existsSync(bin))
        throw new Error(`${bin} is missing: run "npm run build" (npm test does)`);
    }
    const dir = await tempDir(`mcp-${opts.node}-`);
    const listen = opts.init?.listen ?? `127.0.0.1:${await freePort()}`;
    const port = parseHostPort(listen).port;
    const init = await initAgentDir({
      proxy: false,
      ...opts.init,
      dir,
      node: opts.node,
      listen,
      dataRoot: opts.dataRoot ?? path.join(dir, "data"),
    });
    if (opts.config) {
      const current = parse(await readFile(init.agentConfig, "utf8")) as Record<
        string,
        Record<string, unknown>
      >;
      for (const [section, values] of Object.entries(opts.config)) {
        current[section] = { ...current[section], ...values };
      }
      await writeFile(init.agentConfig, stringify(current));
    }
    await mkdir(init.servicesDir, { recursive: true });
    const agent = new LiveAgent(
      opts.node,
      dir,
      port,
      init.agentConfig,
      init.cliConfig,
      init.servicesDir,
      opts.prefix,
    );
    await agent.launch();
    return agent;
  }

  /**
   * Starts the agent process and waits until it says it is ready. `env` is
   * added to the agent's environment (e.g. MCP_CRASH_AT for one launch).
   */
  async launch(env: NodeJS.ProcessEnv = {}): Promise<void> {
    const [cmd, ...args] = [
      ...this.prefix,
      process.execPath,
      AGENT_BIN,
      "serve",
      "--config",
      this.agentConfig,
    ];
    const child = spawn(cmd ?? process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    this.child = child;
    // Only this launch's output counts: after kill(), the log already says "agent ready".
    const from = this.output.length;
    await new Promise<void>((resolve, reject) => {
      // A slow start must not leave an agent running that nobody stops: its
      // pipes would keep the test process (and the whole run) alive.
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`agent ${this.node} not ready in ${READY_MS / 1000} s:\n${this.output}`));
      }, READY_MS);
      const onData = (chunk: Buffer) => {
        this.output += chunk.toString();
        if (this.output.includes('"msg":"agent ready"', from)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`agent ${this.node} exited ${code}:\n${this.output}`));
      });
    });
  }

  /** Everything the agent wrote to stdout/stderr so far (JSON log lines). */
  get log(): string {
    return this.output;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the signal (or exit code) once the agent process has ended by itself. */
  async exited(): Promise<string> {
    const child = this.child;
    if (!child) return "not running";
    const how =
      child.exitCode !== null || child.signalCode !== null
        ? String(child.signalCode ?? child.exitCode)
        : await new Promise<string>((resolve) =>
            child.once("exit", (code, signal) => resolve(String(signal ?? code))),
          );
    this.child = undefined;
    return how;
  }

  /** Kills the agent process (SIGKILL by default: a crash) and waits for it. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
    this.child = undefined;
  }

  /** The agent's HAProxy (it outlives the agent process), if one runs: stopped, waited for. */
  stopProxy(): Promise<void> {
    return stopByPidFile(path.join(this.dir, "proxy", "haproxy.pid"));
  }

  /** The podman service of an agent that was killed outright (its children outlive it). */
  stopPodmanService(): Promise<void> {
    return stopByPidFile(path.join(this.dir, "podman.sock.pid"));
  }

  /** Runs `mcp --config <this agent's CLI config> ...args`. */
  cli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
    return runMcp(["--config", this.cliConfig, ...args], opts);
  }

  /** Copies the example definitions (or any files) into the services dir. */
  async addDefinition(name: string, text: string): Promise<string> {
    const file = path.join(this.servicesDir, `${name}.toml`);
    await writeFile(file, text);
    return file;
  }

  /** Stops the agent and removes every container it labelled, then the temp dir. */
  async cleanup(): Promise<void> {
    await this.kill("SIGTERM");
    await this.stopProxy();
    await this.stopPodmanService();
    const { stdout } = await runCommand([
      ...this.prefix,
      "podman",
      "ps",
      "-aq",
      "--filter",
      `label=mcp.node=${this.node}`,
    ]);
    const ids = stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await runCommand([...this.prefix, "podman", "rm", "-f", "-t", "0", ...ids]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Stops the process a pid file names, if it still runs, and waits for it. */
async function stopByPidFile(file: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await readFile(file, "utf8")).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!Number.isInteger(pid) || pid <= 1 || !alive()) return;
  process.kill(pid, "SIGTERM");
  while (alive()) await new Promise((r) => setTimeout(r, 20));
}

/** Asserts that a CLI run succeeded, showing its output when it did not. */
export function ok(run: CliRun, what: string): CliRun {
  assert.equal(run.code, 0, `${what} failed (exit ${run.code}):\n${run.stdout}${run.stderr}`);
  return run;
}

/** The shape of `mcp list --json` (one entry per node), as far as tests read it. */
export interface RouteJson {
  name: string;
  port: number;
  hostPort: number;
}
export interface ComponentJson {
  name: string;
  desiredState: string;
  observedState: string;
  version: string;
  routes: RouteJson[];
  ports: string[];
}
export interface NodeServicesJson {
  node: string;
  services: { name: string; components: ComponentJson[] }[];
}

export function runMcp(
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MCP_BIN, ...args],
      { env: { ...process.env, ...opts.env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** A one-component (`web`) service definition for `node`, `lines` added to the component. */
export function webDefinition(
  name: string,
  node: string,
  lines: string[] = [],
  image = TEST_IMAGE,
): string {
  return [
    `name = "${name}"`,
    `node = "${node}"`,
    "",
    "[[components]]",
    'name = "web"',
    `image = "${image}"`,
    ...lines,
    "",
  ].join("\n");
}

/**
 * A `web` component with one unnamed L7 route on `listener` (behind the
 * agent's proxy) and an http check on /health: the edge tests' service.
 * `lines` go into the component (env, strategy, cmd).
 */
export function l7Definition(
  name: string,
  node: string,
  listener: number,
  opts: { lines?: string[]; hostname?: string; deadline?: string } = {},
): string {
  return webDefinition(name, node, [
    ...(opts.lines ?? []),
    "",
    "[[components.routes]]",
    `port = ${listener}`,
    'mode = "l7"',
    ...(opts.hostname ? [`hostname = "${opts.hostname}"`] : []),
    "",
    "[components.health]",
    'type = "http"',
    'path = "/health"',
    `deadline = "${opts.deadline ?? "5s"}"`,
  ]);
}

/**
 * A one-component (`web`), one-unnamed-route service definition for `node`;
 * `after` goes after the route (e.g. a `[components.health]` table).
 */
export function oneRouteDefinition(
  name: string,
  node: string,
  image = TEST_IMAGE,
  after: string[] = [],
): string {
  return webDefinition(
    name,
    node,
    ["", "[[components.routes]]", "port = 443", 'mode = "l7"', ...after],
    image,
  );
}

/** GETs `http://127.0.0.1:<port><path>`, retrying while the container starts. */
export async function httpGet(port: number, urlPath = "/", timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
        signal: AbortSignal.timeout(2000),
      });
      if (res.ok) return await res.text();
      lastError = new Error(`HTTP ${res.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no HTTP answer on 127.0.0.1:${port}${urlPath}: ${String(lastError)}`);
}

/** Parses `KEY=VALUE` lines (the test image's page) into a record. */
export function parseEnvPage(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}
