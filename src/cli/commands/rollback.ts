/**
 * `mcp rollback <service>[/<component>] [--to REV] [--quiet|--json]`: the
 * agent deploys again, health-gated like any deploy, each component's spec
 * of the last good revision before its current one, or of revision REV
 * (src/agent/operations/rollback.ts), and records it as a new revision that
 * says `rollback`. Progress, summary and exit codes as for `mcp deploy`.
 *
 * The local definition file is not rewritten: afterwards `mcp status
 * <service>` says which components run another spec than the file, and
 * `mcp deploy` brings the file's version back.
 */
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import {
  finishOperation,
  followOperation,
  operationView,
  type InterruptSource,
  type ShowOptions,
} from "../operation-stream.js";
import type { StateChange } from "../outcome.js";
import { deadlineFor, nodeOfService, parseTarget } from "./deploy.js";

/** `--to` as a revision number (1, 2, ...). */
export function parseRevision(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    throw new McpError(
      "invalid_argument",
      `--to: expected a revision number (1, 2, ...), got "${text}"`,
    );
  }
  return n;
}

export async function rollbackCommand(
  ctx: CliContext,
  target: string,
  opts: { to?: string; node?: string; deadline?: number } & ShowOptions,
  interrupts?: InterruptSource,
): Promise<number> {
  const { service, component } = parseTarget(target);
  const toRevision = opts.to === undefined ? 0 : parseRevision(opts.to);
  const node = await nodeOfService(ctx, service, opts.node);
  const change: StateChange = {
    verb: "rollback",
    target: component ? `${service}/${component}` : service,
    deadlineMs: deadlineFor("rollback", opts),
  };
  const what = { verb: "rollback", service, node: node.name } as const;
  const view = operationView(ctx, opts, what, interrupts);
  const followed = await ctx.changeState(node, change, (client, call) =>
    followOperation(
      client,
      () => client.stream("rollback", { service, component, toRevision }, call),
      { onProgress: view.onProgress, interrupts: view.interrupts },
    ),
  );
  return finishOperation(ctx, view, followed, what, opts);
}
