/** The agent's version, as NodeStatus reports it (`mcp node list`). */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const pkg = require("../../package.json") as { version: string };

export const AGENT_VERSION: string = pkg.version;
