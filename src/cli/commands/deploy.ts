/** `mcp deploy <service>[/<component>]` and `mcp undeploy <service>`. */
import type { ResolvedNode } from "../../config/cli.js";
import type { DeployRequest } from "../../gen/mcp/v1/mcp.js";
import { toServiceSpec } from "../../servicedef/spec.js";
import { McpError } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { STATE_CHANGE_DEADLINE_MS, type StateChangeVerb } from "../limits.js";
import {
  finishOperation,
  followOperation,
  operationView,
  type InterruptSource,
  type ShowOptions,
} from "../operation-stream.js";
import type { StateChange } from "../outcome.js";
import { formatResults } from "../progress.js";

export { formatResults };

/** Splits `service/component`. */
export function parseTarget(target: string): { service: string; component: string } {
  const [service = "", component = "", ...rest] = target.split("/");
  if (!service || rest.length > 0 || target.endsWith("/")) {
    throw new McpError(
      "invalid_argument",
      `expected <service> or <service>/<component>, got "${target}"`,
    );
  }
  return { service, component };
}

/** `--deadline` of the state-changing commands, else the verb's default (limits.ts). */
export function deadlineFor(verb: StateChangeVerb, opts: { deadline?: number }): number {
  return opts.deadline ?? STATE_CHANGE_DEADLINE_MS[verb];
}

/**
 * `mcp deploy`: streams the deploy (DeployStream) and prints each step as it
 * ends, then the result (operation-stream.ts); an older agent gets the
 * unary Deploy. Exit 0 done, 1 failed, 3 deadline passed, 130 Ctrl-C (the
 * agent goes on); bad input is exit 2 (program.ts).
 */
export async function deployCommand(
  ctx: CliContext,
  target: string | undefined,
  opts: { file?: string; deadline?: number } & ShowOptions,
  interrupts?: InterruptSource,
): Promise<number> {
  const { service, component } = target
    ? parseTarget(target)
    : { service: undefined, component: "" };
  const loaded = await ctx.loadDefinition(service, opts.file);
  const { def } = loaded;
  if (component && !def.components.some((c) => c.name === component)) {
    throw new McpError(
      "not_found",
      `service ${def.name} has no component "${component}" (it has: ${def.components.map((c) => c.name).join(", ")})`,
    );
  }
  const node = await ctx.nodeOf(loaded);
  const change: StateChange = {
    verb: "deploy",
    target: component ? `${def.name}/${component}` : def.name,
    deadlineMs: deadlineFor("deploy", opts),
  };
  const req: DeployRequest = { service: toServiceSpec(def), component };
  const what = { verb: "deploy", service: def.name, node: node.name } as const;
  const view = operationView(ctx, opts, what, interrupts);
  const followed = await ctx.changeState(node, change, (client, call) =>
    followOperation(client, () => client.stream("deployStream", req, call), {
      onProgress: view.onProgress,
      interrupts: view.interrupts,
      fallback: () => {
        view.markStarted();
        return client.call("deploy", req, call);
      },
    }),
  );
  return finishOperation(ctx, view, followed, what, opts);
}

/**
 * The node a service lives on: `--node`, else its local definition's `node`.
 * Without either, say how to name it (undeploy, adopt, logs, push and pull
 * all take `--node` for services with no definition file here).
 */
export async function nodeOfService(
  ctx: CliContext,
  service: string,
  nodeOverride: string | undefined,
): Promise<ResolvedNode> {
  if (nodeOverride) return ctx.node(nodeOverride);
  let loaded;
  try {
    loaded = await ctx.loadDefinition(service);
  } catch (err) {
    if (err instanceof McpError && err.code === "not_found") {
      // With one node configured there is nothing to choose.
      const [only, ...others] = (await ctx.config()).nodes;
      if (only && others.length === 0) return ctx.node(only.name);
      throw new McpError(
        "not_found",
        `no definition for service "${service}": pass --node <node> to say where it runs`,
        { cause: err },
      );
    }
    throw err;
  }
  return ctx.nodeOf(loaded);
}

export async function undeployCommand(
  ctx: CliContext,
  service: string,
  opts: { node?: string; deadline?: number },
): Promise<number> {
  const node = await nodeOfService(ctx, service, opts.node);
  const change: StateChange = {
    verb: "undeploy",
    target: service,
    deadlineMs: deadlineFor("undeploy", opts),
  };
  const response = await ctx.changeState(node, change, (client, call) =>
    client.call("undeployService", { name: service }, call),
  );
  ctx.io.out(formatResults(response.results, "undeployed"));
  return response.results.every((r) => r.success) ? 0 : 1;
}
