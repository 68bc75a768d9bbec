/**
 * The failure every command can hit before any gRPC is loaded: no agent at
 * the node's address (NodeNotAnsweringError) and its `hint:` line. Kept apart
 * from client.ts so program.ts can print failures without loading gRPC
 * (`mcp --help` and `--version` stay cheap; client.ts re-exports these).
 */
import { McpError } from "../util/errors.js";

/** How an operator starts an agent (README, "The agent"). */
export const START_AGENT_HINT = "mcp-agent serve --config /srv/mcp/mcp-agent.toml";

/**
 * Nothing answered at the node's address: the connection was refused, there
 * is no route to the host, or its name does not resolve. The CLI prints
 * `hint` on a line of its own after the message.
 */
export class NodeNotAnsweringError extends McpError {
  readonly hint: string;
  constructor(
    readonly node: string,
    readonly address: string,
    /** What the connection ran into: "connection refused", "no route to host" ... */
    readonly why: string,
    options?: { cause?: unknown },
  ) {
    super(
      "unavailable",
      `node ${node} (${address}) is not answering: is mcp-agent running?`,
      options,
    );
    this.name = "NodeNotAnsweringError";
    this.hint =
      why === "connection refused"
        ? `${why}; start it on the node: ${START_AGENT_HINT}`
        : `${why}; check that the node is up and its address in the CLI config, then start the agent there: ${START_AGENT_HINT}`;
  }
}

/** The hint an error carries (NodeNotAnsweringError), if any. */
export function hintOf(err: unknown): string | undefined {
  return err instanceof NodeNotAnsweringError ? err.hint : undefined;
}

/** `hint: …\n` for an error that carries a hint, else "": printed after its `mcp: …` line. */
export function hintLine(err: unknown): string {
  const hint = hintOf(err);
  return hint ? `hint: ${hint}\n` : "";
}
