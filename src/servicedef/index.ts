export * from "./types.js";
export * from "./image.js";
export {
  parseServiceDef,
  loadServiceDefFile,
  readServiceDefFile,
  validateServiceDef,
} from "./parse.js";
export * from "./limits.js";
export { toServiceSpec, fromServiceSpec, validateServiceSpec } from "./spec.js";
export { routeEnvName, portEnv } from "./env.js";
export { parsePortMapping, formatRouteMapping, type PortMapping } from "./ports.js";
export { setActiveInText } from "./active.js";
