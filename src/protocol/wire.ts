/**
 * What the CLI and the agent share about the wire beyond the generated
 * stubs: the trailer that carries an McpError's code, so the CLI rebuilds
 * the same typed error (src/agent/server/rpc.ts sets it, src/cli/client.ts reads it).
 */
export const ERROR_CODE_KEY = "x-mcp-error-code";
