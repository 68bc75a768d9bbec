/**
 * MCP's version, reported by `mcp --version`, `mcp-agent --version` and
 * NodeStatus (`mcp node list`). Kept equal to package.json's by a unit test;
 * a constant (not a read of package.json) so the bundled CLI needs no file.
 */
export const VERSION = "0.3.0";
