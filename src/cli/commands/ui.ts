/**
 * `mcp ui [--listen host:port]`: serves a live page of every configured
 * node (src/cli/ui/: the collector, the server, the view model, the page)
 * until Ctrl-C (exit 130, like every command) or SIGTERM (exit 0). Loopback
 * only by default; another address gets a token, in the URL printed
 * (src/cli/ui/access.ts). The page only reads: nothing is changed on a node.
 */
import { realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { McpError, errorMessage } from "../../util/errors.js";
import { connectNode } from "../client.js";
import type { CliContext } from "../context.js";
import { withNodeDeadline } from "../deadline.js";
import { onInterrupt } from "../interrupt.js";
import { fanOutLimits } from "../limits.js";
import { newToken, pageUrl } from "../ui/access.js";
import { Collector, DEFAULT_POLLER_SETTINGS } from "../ui/collector.js";
import { componentDetail } from "../ui/component-detail.js";
import { DEFAULT_LISTEN, parseListen, type Listen } from "../ui/listen.js";
import { startUiServer, type UiAssets } from "../ui/server.js";

export interface UiDeps {
  /** Where app.js and app.css are: `ui/` next to the running CLI (dist/mcp.mjs → dist/ui/). */
  assetsDir?: string;
  /** Resolves when the UI should stop; default: SIGTERM (Ctrl-C exits through interrupt.ts). */
  stopped?: Promise<void>;
}

export function defaultAssetsDir(): string {
  const main = process.argv[1];
  return path.join(path.dirname(main ? realpathSync(main) : process.cwd()), "ui");
}

/** The page's script and style sheet (scripts/bundle.mjs builds them). */
export async function loadAssets(dir: string): Promise<UiAssets> {
  try {
    const [js, css] = await Promise.all([
      readFile(path.join(dir, "app.js"), "utf8"),
      readFile(path.join(dir, "app.css"), "utf8"),
    ]);
    return { js, css };
  } catch (err) {
    throw new McpError(
      "internal",
      `the UI's page is not in ${dir} (${errorMessage(err)}): run npm run build`,
      { cause: err },
    );
  }
}

function sigterm(): Promise<void> {
  return new Promise((resolve) => process.once("SIGTERM", () => resolve()));
}

export async function uiCommand(
  ctx: CliContext,
  opts: { listen?: Listen },
  deps: UiDeps = {},
): Promise<number> {
  const listen = opts.listen ?? parseListen(DEFAULT_LISTEN);
  const nodes = await ctx.allNodes();
  if (nodes.length === 0) {
    throw new McpError(
      "not_found",
      `no nodes are configured in ${ctx.configPath}; add one with "mcp node add <name> <host:port>"`,
    );
  }
  const assets = await loadAssets(deps.assetsDir ?? defaultAssetsDir());
  const token = listen.loopback ? undefined : newToken();
  const limits = fanOutLimits(await ctx.connectTimeoutMs());
  const collector = new Collector(nodes, DEFAULT_POLLER_SETTINGS, { connect: connectNode });

  let running;
  try {
    running = await startUiServer({
      listen,
      ...(token === undefined ? {} : { token }),
      assets,
      source: collector,
      componentDetail: (name, ref) => {
        const node = nodes.find((n) => n.name === name);
        if (!node)
          return Promise.reject(new Error(`no node ${JSON.stringify(name)} in the config`));
        return withNodeDeadline(node, limits, (client) =>
          componentDetail(client, ref, DEFAULT_POLLER_SETTINGS.callTimeoutMs),
        );
      },
    });
  } catch (err) {
    throw new McpError(
      "unavailable",
      `cannot listen on ${listen.host}:${listen.port}: ${errorMessage(err)} (pass --listen host:port)`,
      { cause: err },
    );
  }
  collector.start();
  const ui = running;
  const offInterrupt = onInterrupt(() => {
    void ui.close();
    return "stopped serving the page";
  });
  ctx.io.out(
    `mcp ui: serving ${nodes.length} node${nodes.length === 1 ? "" : "s"} on ${pageUrl({ host: listen.host, port: ui.port }, token)}\n` +
      (token ? "mcp ui: the page needs the token in that URL (it listens beyond loopback)\n" : "") +
      "mcp ui: Ctrl-C stops it\n",
  );
  try {
    await (deps.stopped ?? sigterm());
  } finally {
    offInterrupt();
    await ui.close();
    await collector.stop();
  }
  return 0;
}
