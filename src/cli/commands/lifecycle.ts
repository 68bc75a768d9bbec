/**
 * `mcp stop|start|restart <service>`. stop and start first flip `active` in
 * the local definition (the operator's source of truth), keeping its
 * comments, then tell the agent; restart leaves the file alone.
 */
import { writeFile } from "node:fs/promises";
import { setActiveInText } from "../../servicedef/active.js";
import { errorMessage } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { hintLine } from "../client.js";
import { EXIT, OutcomeUnknownError, changeExitCodeFor } from "../outcome.js";
import { deadlineFor, formatResults } from "./deploy.js";

type Verb = "stop" | "start" | "restart";

const RPC = { stop: "stopService", start: "startService", restart: "restartService" } as const;
const DONE = { stop: "stopped", start: "started", restart: "restarted" } as const;

export async function lifecycleCommand(
  ctx: CliContext,
  verb: Verb,
  service: string,
  opts: { deadline?: number } = {},
): Promise<number> {
  const loaded = await ctx.loadDefinition(service);
  // Before the file changes: a definition naming an unknown node is not edited.
  const node = await ctx.nodeOf(loaded);
  if (verb !== "restart") {
    const active = verb === "start";
    if ((loaded.def.active ?? true) !== active) {
      await writeFile(loaded.file, setActiveInText(loaded.text, active));
    }
  }
  const change = { verb, target: service, deadlineMs: deadlineFor(verb, opts) };
  try {
    const response = await ctx.changeState(node, change, (client, call) =>
      client.call(RPC[verb], { name: service }, call),
    );
    ctx.io.out(formatResults(response.results, DONE[verb]));
    return response.results.every((r) => r.success) ? 0 : 1;
  } catch (err) {
    if (verb === "restart") throw err;
    // The intent is recorded locally even though the agent did not (or not yet) act on it.
    if (err instanceof OutcomeUnknownError) {
      ctx.io.err(`mcp: ${loaded.file} now says active = ${verb === "start"}; ${err.message}\n`);
      return EXIT.unknown;
    }
    ctx.io.err(
      `mcp: ${loaded.file} now says active = ${verb === "start"}, but node ${node.name} did not ${verb} it: ${errorMessage(err)}\n${hintLine(err)}`,
    );
    return changeExitCodeFor(err);
  }
}
