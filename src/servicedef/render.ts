/**
 * ServiceDef → TOML text, the inverse of parseServiceDef: for every valid
 * definition `parseServiceDef(renderServiceDef(def))` deep-equals `def`.
 * Used by `mcp service export` (a definition file from the agent's spec) and
 * `mcp service show` (the same text with the agent's facts as comments).
 *
 * The layout is the one the examples use: top-level keys, then one
 * `[[components]]` table per component with its `[components.health]` and
 * its `[[components.routes]]`.
 * Optional fields that are absent stay absent.
 */
import type { ComponentDef, RouteDef, ServiceDef } from "./types.js";

/** Comment lines to put under a component or a route (`mcp service show`). */
export interface RenderNotes {
  component?(component: ComponentDef): string[];
  route?(component: ComponentDef, route: RouteDef, index: number): string[];
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/** A TOML basic string: quotes, backslashes and control characters (DEL too) escaped. */
export function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

function tomlKey(k: string): string {
  return BARE_KEY.test(k) ? k : tomlString(k);
}

function tomlArray(values: readonly string[]): string {
  return `[${values.map(tomlString).join(", ")}]`;
}

function comments(lines: string[] | undefined): string[] {
  return (lines ?? []).map((l) => `# ${l}`);
}

export function renderServiceDef(def: ServiceDef, notes: RenderNotes = {}): string {
  const lines: string[] = [];
  const str = (key: string, v: string | undefined) => {
    if (v !== undefined) lines.push(`${key} = ${tomlString(v)}`);
  };
  const list = (key: string, v: readonly string[] | undefined) => {
    if (v !== undefined) lines.push(`${key} = ${tomlArray(v)}`);
  };

  str("name", def.name);
  str("node", def.node);
  if (def.active !== undefined) lines.push(`active = ${def.active}`);
  str("comment", def.comment);
  str("path", def.path);

  if (def.build) {
    lines.push("", "[build]");
    if (def.build.uses_mcdsl !== undefined) lines.push(`uses_mcdsl = ${def.build.uses_mcdsl}`);
    if (def.build.images !== undefined) {
      lines.push("", "[build.images]");
      for (const [k, v] of Object.entries(def.build.images)) {
        lines.push(`${tomlKey(k)} = ${tomlString(v)}`);
      }
    }
  }

  for (const c of def.components) {
    lines.push("", "[[components]]");
    str("name", c.name);
    str("image", c.image);
    str("network", c.network);
    str("user", c.user);
    str("restart", c.restart);
    str("memory", c.memory);
    // JavaScript's shortest round-trip form is valid TOML (0.5, 2, 1e-7) and parses back exactly.
    if (c.cpus !== undefined) lines.push(`cpus = ${c.cpus}`);
    if (c.pids !== undefined) lines.push(`pids = ${c.pids}`);
    list("ports", c.ports);
    list("volumes", c.volumes);
    list("cmd", c.cmd);
    list("env", c.env);
    str("strategy", c.strategy);
    lines.push(...comments(notes.component?.(c)));
    if (c.health) {
      const h = c.health;
      lines.push("", "[components.health]");
      str("type", h.type);
      str("route", h.route);
      str("path", h.path);
      list("cmd", h.cmd);
      str("interval", h.interval);
      str("timeout", h.timeout);
      if (h.retries !== undefined) lines.push(`retries = ${h.retries}`);
      str("start_period", h.start_period);
      str("deadline", h.deadline);
    }
    (c.routes ?? []).forEach((r, i) => {
      lines.push("", "[[components.routes]]");
      str("name", r.name);
      lines.push(`port = ${r.port}`);
      str("mode", r.mode);
      str("hostname", r.hostname);
      str("protocol", r.protocol);
      // Only `true` is ever held (types.ts): off is the default and stays unwritten.
      if (r.proxy_protocol) lines.push("proxy_protocol = true");
      lines.push(...comments(notes.route?.(c, r, i)));
    });
  }
  return lines.join("\n") + "\n";
}
