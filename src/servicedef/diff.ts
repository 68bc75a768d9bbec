/**
 * Field-by-field differences between two component specs, as one line per
 * change (`image a:v1 → a:v2`, `env +NEW ~CHANGED`, `route rest: port 1 → 2
 * (host port kept)`). The agent's sync reports them, and `mcp status` says
 * with them how what runs differs from the definition file.
 */
import { ComponentSpec, HealthSpec } from "../gen/mcp/v1/mcp.js";

const NONE = "(none)";

function show(value: string): string {
  return value === "" ? NONE : value;
}

function showList(values: readonly string[]): string {
  return values.length === 0 ? NONE : values.join(", ");
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A route's fields with defaults filled in, so `mode = "l4"` and no mode compare equal. */
function normalRoute(r: ComponentSpec["routes"][number]) {
  return {
    name: r.name,
    port: r.port,
    mode: r.mode || "l4",
    hostname: r.hostname,
    protocol: r.protocol || "tcp",
    proxy_protocol: r.proxyProtocol,
  };
}

function routeLabel(name: string): string {
  return name === "" ? "(unnamed)" : name;
}

function envKey(entry: string): string {
  const eq = entry.indexOf("=");
  return eq < 0 ? entry : entry.slice(0, eq);
}

/**
 * Env changes by key only: `+NEW -GONE ~CHANGED`. Values are not shown
 * because env often carries secrets and dry-run output ends up in CI logs.
 */
function envChange(before: readonly string[], after: readonly string[]): string | undefined {
  if (sameList(before, after)) return undefined;
  const old = new Map(before.map((e) => [envKey(e), e]));
  const now = new Map(after.map((e) => [envKey(e), e]));
  const parts: string[] = [];
  for (const [key, entry] of now) {
    const prev = old.get(key);
    if (prev === undefined) parts.push(`+${key}`);
    else if (prev !== entry) parts.push(`~${key}`);
  }
  for (const key of old.keys()) if (!now.has(key)) parts.push(`-${key}`);
  // Same entries in another order (or a duplicated key): still a change of the spec.
  return parts.length > 0 ? `env ${parts.join(" ")}` : "env order";
}

function routeChanges(before: ComponentSpec["routes"], after: ComponentSpec["routes"]): string[] {
  const old = new Map(before.map((r) => [r.name, normalRoute(r)]));
  const now = after.map(normalRoute);
  const out: string[] = [];
  for (const r of now) {
    const prev = old.get(r.name);
    const label = routeLabel(r.name);
    if (!prev) {
      out.push(
        `route ${label} added (port ${r.port} ${r.mode}${r.protocol === "udp" ? " udp" : ""}${r.proxy_protocol ? " proxy_protocol" : ""})`,
      );
      continue;
    }
    const fields: string[] = [];
    for (const key of ["port", "mode", "hostname", "protocol", "proxy_protocol"] as const) {
      if (prev[key] !== r[key])
        fields.push(`${key} ${show(String(prev[key]))} → ${show(String(r[key]))}`);
    }
    if (fields.length > 0) out.push(`route ${label}: ${fields.join(", ")} (host port kept)`);
  }
  const names = new Set(now.map((r) => r.name));
  for (const r of before) {
    if (!names.has(r.name)) out.push(`route ${routeLabel(r.name)} removed (host port released)`);
  }
  const kept = (list: { name: string }[]) =>
    list.map((r) => r.name).filter((n) => old.has(n) && names.has(n));
  if (out.length === 0 && !sameList(kept(before), kept(now))) {
    out.push(
      `route order ${before.map((r) => routeLabel(r.name)).join(",")} → ${now.map((r) => routeLabel(r.name)).join(",")}`,
    );
  }
  return out;
}

/** Field-by-field differences between two component specs, e.g. `image a:v1 → a:v2`. */
export function diffComponentSpec(before: ComponentSpec, after: ComponentSpec): string[] {
  const out: string[] = [];
  for (const key of ["image", "network", "user", "restart", "memory"] as const) {
    if (before[key] !== after[key]) out.push(`${key} ${show(before[key])} → ${show(after[key])}`);
  }
  for (const key of ["cpus", "pids"] as const) {
    const num = (n: number) => (n === 0 ? NONE : String(n));
    if (before[key] !== after[key]) out.push(`${key} ${num(before[key])} → ${num(after[key])}`);
  }
  for (const key of ["ports", "volumes"] as const) {
    if (!sameList(before[key], after[key])) {
      out.push(`${key} ${showList(before[key])} → ${showList(after[key])}`);
    }
  }
  if (!sameList(before.cmd, after.cmd)) {
    const cmd = (c: readonly string[]) => (c.length === 0 ? NONE : JSON.stringify(c));
    out.push(`cmd ${cmd(before.cmd)} → ${cmd(after.cmd)}`);
  }
  const env = envChange(before.env, after.env);
  if (env) out.push(env);
  out.push(...routeChanges(before.routes, after.routes));
  return out;
}

/** How a deploy proves and replaces the component: strategy and health check. */
export function deployChanges(before: ComponentSpec, after: ComponentSpec): string[] {
  const out: string[] = [];
  if (before.strategy !== after.strategy) {
    out.push(`strategy ${show(before.strategy)} → ${show(after.strategy)}`);
  }
  const health = (h: HealthSpec | undefined) => (h ? JSON.stringify(HealthSpec.toJSON(h)) : "");
  if (health(before.health) !== health(after.health)) out.push("health check");
  return out;
}

/**
 * diffComponentSpec and what it leaves out (strategy, health), for telling
 * whether two specs run the same: empty when they do.
 */
export function specDifferences(before: ComponentSpec, after: ComponentSpec): string[] {
  const out = [...diffComponentSpec(before, after), ...deployChanges(before, after)];
  const whole = (c: ComponentSpec) => JSON.stringify(ComponentSpec.toJSON(c));
  // Anything else (a field newer than this list): still a difference.
  if (out.length === 0 && whole(before) !== whole(after)) out.push("other fields");
  return out;
}
