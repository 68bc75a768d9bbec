/**
 * The `mcp` command tree. Each action builds a CliContext and calls the
 * command's function; failures print one line (`mcp: <reason>`, then a
 * `hint:` line when the error carries one) and exit 1, or 3 when a state
 * change's deadline passed and its outcome is unknown (outcome.ts). deploy,
 * start, stop, restart and undeploy (and rollback) exit 2 for bad input or
 * usage: they are registered with `changeCommand`. Ctrl-C is interrupt.ts.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { parseDuration } from "../config/duration.js";
import { ValidationError, errorMessage } from "../util/errors.js";
import { VERSION } from "../version.js";
import type { CliContext } from "./context.js";
import { EXPORT_FORMATS } from "./export/formats.js";
import { processIO, type CliIO } from "./io.js";
import { STATE_CHANGE_DEADLINE_MS, formatLimit, type StateChangeVerb } from "./limits.js";
import { hintLine } from "./hints.js";
import { DEFAULT_LISTEN, parseListen, type Listen } from "./ui/listen.js";
import { EXIT, changeExitCodeFor, exitCodeFor } from "./outcome.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A `--timeout` / `--deadline` value: a duration above zero ("15s", "2m", "500ms"), in ms. */
export function parseDurationOption(text: string): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  if (ms <= 0) throw new InvalidArgumentError("expected a duration above zero");
  return ms;
}

/** A `--listen` value: `host:port` (IPv6 as `[::1]:7700`). */
export function parseListenOption(text: string): Listen {
  try {
    return parseListen(text);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const DEADLINE_HELP = (verb: StateChangeVerb) =>
  `how long to wait for the agent to finish (default ${formatLimit(STATE_CHANGE_DEADLINE_MS[verb])}); past it, exit 3: it may still be running`;

/** Prints a command's failure: `mcp: <reason>` (a definition's problems one per line), then its hint. */
export function reportFailure(io: CliIO, err: unknown): void {
  // Definition problems are several lines (one per problem); anything else is one.
  const text = err instanceof ValidationError ? err.message : errorMessage(err).split("\n")[0];
  io.err(`mcp: ${text}\n${hintLine(err)}`);
}

/**
 * Gives a command the exit codes of deploy, rollback, start, stop, restart
 * and undeploy (README "Exit codes"): usage errors (a missing argument, an
 * unknown option, a bad --deadline) exit 2 instead of commander's 1. Its
 * action must be wrapped by `runChange` (buildProgram) for the rest.
 */
export function changeCommand<C extends { exitOverride(fn: (err: CommanderError) => never): C }>(
  command: C,
): C {
  command.exitOverride((err) => {
    throw err.exitCode === 0 ? err : new CommanderError(EXIT.usage, err.code, err.message);
  });
  return command;
}

export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command()
    .name("mcp")
    .description("Deploy and watch containers on your nodes through their mcp-agent.")
    .version(VERSION)
    .option("--config <file>", "CLI config file (default: $MCP_CONFIG or ~/.config/mcp/mcp.toml)")
    .option(
      "--timeout <duration>",
      "how long connecting to an agent may take (default: [client] connect_timeout, else 15s)",
      parseDurationOption,
    )
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride();

  // Each command loads its own module, and the context (gRPC, TLS, TOML)
  // only when it runs: `mcp --help` and `--version` load none of it.
  const context = async (): Promise<CliContext> => {
    const [{ CliContext }, { defaultCliConfigPath }] = await Promise.all([
      import("./context.js"),
      import("../config/cli.js"),
    ]);
    return new CliContext(
      program.opts().config ?? process.env.MCP_CONFIG ?? defaultCliConfigPath(),
      io,
      { connectTimeoutMs: program.opts().timeout },
    );
  };
  const run =
    <A extends unknown[]>(fn: (ctx: CliContext, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      setExit(await fn(await context(), ...args));
    };
  /** `run` for the state changes with their own exit codes (outcome.ts changeExitCodeFor). */
  const runChange =
    <A extends unknown[]>(fn: (ctx: CliContext, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      try {
        setExit(await fn(await context(), ...args));
      } catch (err) {
        if (err instanceof CommanderError) throw err;
        reportFailure(io, err);
        setExit(changeExitCodeFor(err));
      }
    };

  changeCommand(program.command("deploy"))
    .description(
      "deploy a service (or one component) to its node, printing each step as it ends; exit 0 done, 1 failed, 2 bad input, 3 deadline passed, 130 Ctrl-C (the agent goes on)",
    )
    .argument("[target]", "<service> or <service>/<component>")
    .option(
      "-f, --file <file>",
      "use this definition file instead of <services dir>/<service>.toml",
    )
    .option("--deadline <duration>", DEADLINE_HELP("deploy"), parseDurationOption)
    .option("-q, --quiet", "print only the result, no progress")
    .option("--json", "print the result as JSON (no progress)")
    .action(
      runChange(async (ctx, target, opts) =>
        (await import("./commands/deploy.js")).deployCommand(ctx, target, opts),
      ),
    );

  changeCommand(program.command("rollback"))
    .description(
      "deploy again, health-gated, the last good revision before the current one (or each component's spec at --to REV); the definition file is left as it is",
    )
    .argument("<target>", "<service> or <service>/<component>")
    .option("--to <revision>", "go back to this revision (see mcp history)")
    .option("-n, --node <node>", "node to ask (needed without a definition, with several nodes)")
    .option("--deadline <duration>", DEADLINE_HELP("rollback"), parseDurationOption)
    .option("-q, --quiet", "print only the result, no progress")
    .option("--json", "print the result as JSON (no progress)")
    .action(
      runChange(async (ctx, target, opts) =>
        (await import("./commands/rollback.js")).rollbackCommand(ctx, target, opts),
      ),
    );

  changeCommand(program.command("undeploy"))
    .description("remove a service's containers and release its ports (keeps its record)")
    .argument("<service>")
    .option("-n, --node <node>", "node to ask when the definition file is gone")
    .option("--deadline <duration>", DEADLINE_HELP("undeploy"), parseDurationOption)
    .action(
      runChange(async (ctx, service, opts) =>
        (await import("./commands/deploy.js")).undeployCommand(ctx, service, opts),
      ),
    );

  for (const verb of ["stop", "start", "restart"] as const) {
    changeCommand(program.command(verb))
      .description(
        verb === "restart"
          ? "restart a service's containers in place"
          : `${verb} a service (sets active = ${verb === "start"} in its definition file)`,
      )
      .argument("<service>")
      .option("--deadline <duration>", DEADLINE_HELP(verb), parseDurationOption)
      .action(
        runChange(async (ctx, service, opts) =>
          (await import("./commands/lifecycle.js")).lifecycleCommand(ctx, verb, service, opts),
        ),
      );
  }

  program
    .command("ps")
    .description("live containers on every node: SERVICE COMPONENT NODE STATE VERSION UPTIME")
    .option("--json", "print JSON")
    .action(run(async (ctx, opts) => (await import("./commands/ps.js")).psCommand(ctx, opts)));

  program
    .command("list")
    .description("what every agent's registry holds, with allocated host ports")
    .option("--json", "print JSON")
    .action(run(async (ctx, opts) => (await import("./commands/list.js")).listCommand(ctx, opts)));

  program
    .command("status")
    .description("desired vs observed state, drift and recent events")
    .argument("[service]")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, service, opts) =>
        (await import("./commands/status.js")).statusCommand(ctx, service, opts),
      ),
    );

  const node = program.command("node").description("manage the nodes in the CLI config");
  node
    .command("list")
    .description("configured nodes with their agent version")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, opts) => (await import("./commands/node.js")).nodeListCommand(ctx, opts)),
    );
  node
    .command("status")
    .description("each node's versions, counts, port pool and resources (all nodes by default)")
    .argument("[node]", "only this node")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, name, opts) =>
        (await import("./commands/node-status.js")).nodeStatusCommand(ctx, name, opts),
      ),
    );
  node
    .command("add")
    .description("add a node")
    .argument("<name>")
    .argument("<address>", "host:port of its agent")
    .option("--ca <file>", "CA certificate for this node (default: the shared [tls] ca_cert)")
    .option("--token-file <file>", "token for this node (default: the shared [auth] token_path)")
    .action(
      run(async (ctx, name, address, opts) =>
        (await import("./commands/node.js")).nodeAddCommand(ctx, name, address, opts),
      ),
    );
  node
    .command("remove")
    .description("remove a node")
    .argument("<name>")
    .action(
      run(async (ctx, name) => (await import("./commands/node.js")).nodeRemoveCommand(ctx, name)),
    );

  program
    .command("login")
    .description("store an operator token (read from standard input or --token-file)")
    .option("--token-file <file>", "read the token from this file")
    .option("-n, --node <node>", "store it as this node's token instead of the shared one")
    .action(
      run(async (ctx, opts) =>
        (await import("./commands/node.js")).loginCommand(ctx, opts, readStdin),
      ),
    );

  program
    .command("logs")
    .description(
      "print a component's container logs (-f follows until the container stops; Ctrl-C ends with exit 130)",
    )
    .argument(
      "<target>",
      "<service> or <service>/<component> (the component may be omitted when there is one)",
    )
    .option("-n, --tail <N>", "only the last N lines")
    .option("-f, --follow", "keep printing new lines as they are written")
    .option("-t, --timestamps", "prefix each line with its timestamp")
    .option(
      "--since <time>",
      "only lines since a duration ago (10m) or a time (2024-01-31T10:00:00Z)",
    )
    .option("--node <node>", "node to ask when the definition file is gone")
    .action(
      run(async (ctx, target, opts) =>
        (await import("./commands/logs.js")).logsCommand(ctx, target, opts),
      ),
    );

  program
    .command("push")
    .description("copy a local file into the service's data directory on its node (mode kept)")
    .argument("<local>", "local file")
    .argument("<service>")
    .argument("[path]", "path relative to the data directory (default: the local base name)")
    .option("--node <node>", "node to ask when the definition file is gone")
    .action(
      run(async (ctx, local, service, dest, opts) =>
        (await import("./commands/files.js")).pushCommand(ctx, local, service, dest, opts),
      ),
    );

  program
    .command("pull")
    .description("copy a file from the service's data directory on its node (mode kept)")
    .argument("<service>")
    .argument("<path>", "path relative to the data directory")
    .argument(
      "[local]",
      "local file or directory (default: the base name in the current directory; - = stdout)",
    )
    .option("--node <node>", "node to ask when the definition file is gone")
    .action(
      run(async (ctx, service, src, local, opts) =>
        (await import("./commands/files.js")).pullCommand(ctx, service, src, local, opts),
      ),
    );

  program
    .command("sync")
    .description(
      "push every definition to its node's agent (records intent; deploys, stops and deletes nothing)",
    )
    .option(
      "--dry-run",
      "only show what would change; exit 0 = nothing, 1 = something would change, 2 = error",
    )
    .option("--deadline <duration>", DEADLINE_HELP("sync"), parseDurationOption)
    // Usage errors exit 2 like every other sync failure, so scripts can tell them from "changes".
    .exitOverride((err) => {
      throw err.exitCode === 0 ? err : new CommanderError(2, err.code, err.message);
    })
    .action(run(async (ctx, opts) => (await import("./commands/sync.js")).syncCommand(ctx, opts)));

  program
    .command("adopt")
    .description("take a service's existing containers (by label, else by name) into the registry")
    .argument("<service>")
    .option("-n, --node <node>", "node where the containers run (needed without a definition)")
    .option("--deadline <duration>", DEADLINE_HELP("adopt"), parseDurationOption)
    .action(
      run(async (ctx, service, opts) =>
        (await import("./commands/adopt.js")).adoptCommand(ctx, service, opts),
      ),
    );

  program
    .command("history")
    .description("the revisions of a service the agent keeps: REV COMPONENT IMAGE DEPLOYED OUTCOME")
    .argument("<service>")
    .option("-n, --node <node>", "node to ask (needed without a definition, with several nodes)")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, service, opts) =>
        (await import("./commands/history.js")).historyCommand(ctx, service, opts),
      ),
    );

  program
    .command("purge")
    .description("remove registry entries of components that are gone and no longer defined")
    .argument("[target]", "<service> or <service>/<component> (default: everything)")
    .option("--dry-run", "only show what would be purged")
    .option("-n, --node <node>", "ask only this node (default: every node)")
    .option("--deadline <duration>", DEADLINE_HELP("purge"), parseDurationOption)
    .action(
      run(async (ctx, target, opts) =>
        (await import("./commands/purge.js")).purgeCommand(ctx, target, opts),
      ),
    );

  const service = program
    .command("service")
    .description("show, edit or export a service definition");
  service
    .command("show")
    .description("the spec the agent holds, with each route's allocated host port")
    .argument("<service>")
    .option("-n, --node <node>", "node to ask (default: the definition's, else every node)")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, name, opts) =>
        (await import("./commands/service.js")).serviceShowCommand(ctx, name, opts),
      ),
    );
  service
    .command("edit")
    .description("open the local definition in $EDITOR; save it only if it is valid")
    .argument("<service>")
    .action(
      run(async (ctx, name) =>
        (await import("./commands/service.js")).serviceEditCommand(ctx, name),
      ),
    );
  // The original's top-level shortcut for `service edit`.
  program
    .command("edit")
    .description("same as `mcp service edit`")
    .argument("<service>")
    .action(
      run(async (ctx, name) =>
        (await import("./commands/service.js")).serviceEditCommand(ctx, name),
      ),
    );
  // `mcp export` is the shortcut for `service export`, as `mcp edit` is for `service edit`.
  for (const [parent, description] of [
    [service, "write the agent's spec as a definition file, a Kubernetes Pod or a Compose file"],
    [program, "same as `mcp service export`"],
  ] as const) {
    parent
      .command("export")
      .description(description)
      .argument("<service>")
      .addOption(
        new Option("--format <format>", "what to write").choices(EXPORT_FORMATS).default("toml"),
      )
      .option(
        "-o, --output <file>",
        "file to write, - for stdout (default: toml <services dir>/<service>.toml, kube and compose stdout)",
      )
      .option("-f, --force", "overwrite an existing file")
      .option("-n, --node <node>", "node to ask (default: the definition's, else every node)")
      .action(
        run(async (ctx, name, opts) =>
          (await import("./commands/service.js")).serviceExportCommand(ctx, name, opts),
        ),
      );
  }

  const EDGE_NODE = "node to ask (needed with several nodes)";
  const route = program
    .command("route")
    .description("the routes on the nodes' proxies: list them, add or remove manual ones");
  route
    .command("list")
    .description(
      "every proxy route: NODE LISTENER HOSTNAME MODE BACKEND SERVICE SERVED CERT-EXPIRES (every node by default)",
    )
    .option("-n, --node <node>", "ask only this node")
    .option("--json", "print JSON")
    .action(
      run(async (ctx, opts) => (await import("./commands/edge.js")).routeListCommand(ctx, opts)),
    );
  changeCommand(route.command("add"))
    .description(
      "send <hostname> on the proxy's <listener-port> to a backend MCP does not run (kept across agent restarts); exit 2 for bad arguments",
    )
    .argument("<listener-port>", "the proxy listener clients connect to (e.g. 8443)")
    .argument("<hostname>", "the name clients ask for (TLS SNI, HTTP Host)")
    .argument("<host:port>", "the backend, on the node's loopback (127.0.0.1, localhost or ::1)")
    .requiredOption(
      "--mode <mode>",
      "l4: TLS passed through by SNI; l7: the proxy terminates TLS with a certificate for <hostname>",
    )
    .option("--proxy-protocol", "send the backend a PROXY v2 header (the client's address) first")
    .option("-n, --node <node>", EDGE_NODE)
    .option("--deadline <duration>", DEADLINE_HELP("route add"), parseDurationOption)
    .action(
      runChange(async (ctx, listener, hostname, backend, opts) =>
        (await import("./commands/edge.js")).routeAddCommand(
          ctx,
          listener,
          hostname,
          backend,
          opts,
        ),
      ),
    );
  changeCommand(route.command("remove"))
    .description(
      "remove a route added with mcp route add (a service's routes go with stop/undeploy)",
    )
    .argument("<listener-port>")
    .argument("<hostname>")
    .option("-n, --node <node>", EDGE_NODE)
    .option("--deadline <duration>", DEADLINE_HELP("route remove"), parseDurationOption)
    .action(
      runChange(async (ctx, listener, hostname, opts) =>
        (await import("./commands/edge.js")).routeRemoveCommand(ctx, listener, hostname, opts),
      ),
    );

  const cert = program.command("cert").description("the certificates of the L7 routes");
  cert
    .command("list")
    .description("each L7 name's certificate on the node's proxy: HOSTNAME ISSUER EXPIRES SERIAL")
    .option("-n, --node <node>", EDGE_NODE)
    .option("--json", "print JSON")
    .action(
      run(async (ctx, opts) => (await import("./commands/edge.js")).certListCommand(ctx, opts)),
    );
  cert
    .command("ca")
    .description(
      "print the node's local route CA certificate (PEM only: mcp cert ca > ca.pem), for clients to trust",
    )
    .option("-n, --node <node>", EDGE_NODE)
    .action(
      run(async (ctx, opts) => (await import("./commands/edge.js")).certCaCommand(ctx, opts)),
    );

  program
    .command("ui")
    .description(
      "serve a live web page of every node: services, drift, routes, events, logs (Ctrl-C stops it)",
    )
    .option(
      "--listen <host:port>",
      `where to serve it (default ${DEFAULT_LISTEN}); beyond loopback, the printed URL carries a token the page needs`,
      parseListenOption,
    )
    .action(run(async (ctx, opts) => (await import("./commands/ui.js")).uiCommand(ctx, opts)));

  program
    .command("dns")
    .description("the DNS records the node publishes ([dns])")
    .command("list")
    .description("the zone's A and AAAA records: NAME TYPE ADDRESS TTL")
    .option("-n, --node <node>", EDGE_NODE)
    .option("--json", "print JSON")
    .action(
      run(async (ctx, opts) => (await import("./commands/edge.js")).dnsListCommand(ctx, opts)),
    );

  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIO = processIO): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => (exitCode = code));
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    reportFailure(io, err);
    return exitCodeFor(err);
  }
}
