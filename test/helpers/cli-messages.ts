/**
 * What the CLI prints for a node with no agent listening (src/cli/client.ts
 * NodeNotAnsweringError): the one line, then its hint line.
 */

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `node NAME (ADDRESS) is not answering: is mcp-agent running?` (any port when address is a host). */
export function notAnsweringLine(node: string, address?: string): string {
  const where = address === undefined ? "[^)]+" : escape(address);
  return `node ${escape(node)} \\(${where}\\) is not answering: is mcp-agent running\\?`;
}

/**
 * The whole stderr of a command that asked one node nobody listens on:
 * `mcp: <line>` and `hint: connection refused; start it on the node: mcp-agent serve --config …`.
 */
export function notAnsweringStderr(node: string, address?: string): RegExp {
  return new RegExp(
    `^mcp: ${notAnsweringLine(node, address)}\\n` +
      `hint: connection refused; start it on the node: mcp-agent serve --config \\S+\\n$`,
  );
}
