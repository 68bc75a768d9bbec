#!/usr/bin/env node
// The node agent: argument parsing and wiring only.
//   mcp-agent init --dir DIR --node NAME [--listen HOST:PORT] [--san NAME]... [--ca-dir DIR] [--no-proxy]
//   mcp-agent serve --config DIR/mcp-agent.toml
import { Command, CommanderError } from "@commander-js/extra-typings";
import { VERSION } from "../version.js";
import { errorMessage } from "../util/errors.js";

const program = new Command()
  .name("mcp-agent")
  .description("MCP node agent: runs the node's containers under Podman for the mcp CLI")
  .version(VERSION)
  .exitOverride();

program
  .command("init")
  .description("create a config, CA, server certificate and operator token in DIR")
  .requiredOption("--dir <dir>", "directory for the agent's config, certificates and registry")
  .requiredOption("--node <name>", "this node's name")
  .option("--listen <host:port>", "address the agent serves on", "127.0.0.1:9444")
  .option(
    "--san <name>",
    "extra DNS name or IP for the certificate (repeatable)",
    (v, all: string[]) => [...all, v],
    [],
  )
  .option(
    "--ca-dir <dir>",
    "sign with the CA in this directory (ca.pem, ca-key.pem) instead of a new one",
  )
  .option("--data-root <dir>", "parent of the services' data directories", "/srv")
  .option("--force", "overwrite an initialised directory (invalidates its token)")
  .option("--no-proxy", "no [proxy] table: routes end at their host ports, no HAProxy")
  .action(async (opts) => {
    // Each command loads only its own modules: a serving agent stays small.
    const { initAgentDir } = await import("../agent/server/init.js");
    const result = await initAgentDir({
      dir: opts.dir,
      node: opts.node,
      listen: opts.listen,
      sans: opts.san,
      dataRoot: opts.dataRoot,
      ...(opts.caDir ? { caDir: opts.caDir } : {}),
      ...(opts.force ? { force: true } : {}),
      proxy: opts.proxy,
    });
    process.stdout.write(
      `initialised ${result.dir} for node ${opts.node}\n` +
        `  agent config: ${result.agentConfig}\n` +
        `  CLI config:   ${result.cliConfig}   (mcp --config ${result.cliConfig} ...)\n` +
        `  start it:     mcp-agent serve --config ${result.agentConfig}\n`,
    );
    if (result.routeCaCert) {
      const { readFile } = await import("node:fs/promises");
      process.stdout.write(
        `  route CA:     ${result.routeCaCert}   (clients trust it for L7 routes; mcp cert ca prints it)\n` +
          (await readFile(result.routeCaCert, "utf8")),
      );
    }
  });

program
  .command("serve")
  .description("serve the agent's gRPC API (TLS 1.3, bearer tokens)")
  .requiredOption("--config <file>", "agent config (mcp-agent.toml)")
  .action(async (opts) => {
    const { serveAgent } = await import("../agent/server/serve.js");
    const agent = await serveAgent(opts.config);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      agent.ctx.logger.info({ signal }, "stopping");
      // Containers keep running: they belong to podman, not to this process.
      void agent.close().then(() => process.exit(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode;
  else {
    process.stderr.write(`mcp-agent: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  }
}
