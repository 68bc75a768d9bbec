/**
 * The names and labels MCP gives containers: a component's container, its
 * set-aside and trial containers, reading a name back into service and
 * component, and the labels adoption and the event stream filter on. Pure,
 * tested on their outputs (test/unit/runtime.test.ts).
 */

/** `<service>-<component>`, or just `<service>` for a component named like its service. */
export function containerName(service: string, component: string): string {
  return service === component ? service : `${service}-${component}`;
}

/**
 * The name a component's old container carries while its replacement starts
 * (src/agent/operations/deploy.ts, "set aside"). Component names cannot contain ".", so
 * this never names another component's container.
 */
export function setAsideName(container: string): string {
  return `${container}.prev`;
}

export function isSetAsideName(name: string): boolean {
  return name.endsWith(".prev");
}

/**
 * The name of a new version's trial container, started beside the old one
 * on temporary host ports to prove itself (start-first deploys).
 */
export function trialName(container: string): string {
  return `${container}.next`;
}

export function isTrialName(name: string): boolean {
  return name.endsWith(".next");
}

/** A set-aside or trial container: it carries a component's labels but is not the component. */
export function isSideContainer(name: string): boolean {
  return isSetAsideName(name) || isTrialName(name);
}

/**
 * Reads a container name back into service and component. Known services win
 * (longest first), so `mc-proxy` stays one service instead of `mc` + `proxy`;
 * an unknown name is split at its first `-`, and a name without `-` is a
 * component named like its service. Only the name's own prefixes are looked
 * up, so a caller matching many containers passes the services as a Set
 * once (no scan, no sort of every service per container).
 */
export function splitContainerName(
  name: string,
  knownServices: readonly string[] | ReadonlySet<string>,
): { service: string; component: string } | undefined {
  const known: ReadonlySet<string> =
    knownServices instanceof Set ? knownServices : new Set(knownServices);
  // The longest candidate is the name itself, then the prefixes before each `-`, right to left.
  if (name && known.has(name)) return { service: name, component: name };
  for (let dash = name.lastIndexOf("-"); dash > 0; dash = name.lastIndexOf("-", dash - 1)) {
    if (dash === name.length - 1) continue;
    const service = name.slice(0, dash);
    if (known.has(service)) return { service, component: name.slice(dash + 1) };
  }
  const dash = name.indexOf("-");
  if (dash < 0) return name ? { service: name, component: name } : undefined;
  const service = name.slice(0, dash);
  const component = name.slice(dash + 1);
  return service && component ? { service, component } : undefined;
}

export const LABEL_SERVICE = "mcp.service";
export const LABEL_COMPONENT = "mcp.component";
export const LABEL_NODE = "mcp.node";

/** Labels that tie a container to its component, so adoption never has to parse names. */
export function mcpLabels(
  service: string,
  component: string,
  node: string,
): Record<string, string> {
  return { [LABEL_SERVICE]: service, [LABEL_COMPONENT]: component, [LABEL_NODE]: node };
}
