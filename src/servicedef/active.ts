/**
 * Rewrites the top-level `active = ...` of a definition in place (the CLI does
 * this on stop/start). The operator's file is their source of truth, so every
 * other byte (comments, alignment, line endings) is kept as is; that is why
 * this edits text instead of re-serialising parsed TOML.
 */
import { McpError } from "../util/errors.js";

interface Statement {
  start: number;
  /** Just past the newline that ends the statement (or the end of the text). */
  end: number;
  /** The key, when the statement is a simple (undotted) `key = value`. */
  key?: string;
}

const KEY_RE = /^(?:([A-Za-z0-9_-]+)|"([^"\\]*)"|'([^']*)')[ \t]*=[ \t]*/;

/** Index just past the string that opens at `i` (basic, literal, or multi-line). */
function stringEnd(text: string, i: number): number {
  const q = text.charAt(i);
  const basic = q === '"';
  const triple = text.startsWith(q.repeat(3), i);
  for (let j = i + (triple ? 3 : 1); j < text.length; j++) {
    const c = text[j];
    if (basic && c === "\\") j++;
    else if (!triple && c === "\n")
      return j; // unterminated; let the parser complain
    else if (c === q && (!triple || text.startsWith(q.repeat(3), j))) {
      if (!triple) return j + 1;
      // A closing `"""` may be preceded by up to two quotes of content.
      let k = j + 3;
      while (k < j + 5 && text[k] === q) k++;
      return k;
    }
  }
  return text.length;
}

/** Index just past the newline that ends the statement starting at `from`. */
function statementEnd(text: string, from: number): number {
  let depth = 0; // arrays and inline tables may span lines
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'") i = stringEnd(text, i) - 1;
    else if (c === "#") while (i + 1 < text.length && text[i + 1] !== "\n") i++;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "\n" && depth <= 0) return i + 1;
  }
  return text.length;
}

/** The statements before the first table header, and where that header starts. */
function topLevel(text: string): { statements: Statement[]; end: number } {
  const statements: Statement[] = [];
  let i = 0;
  while (i < text.length) {
    let body = i;
    while (text[body] === " " || text[body] === "\t") body++;
    if (text[body] === "[") return { statements, end: i };
    const m = KEY_RE.exec(text.slice(body, body + 200));
    const end = statementEnd(text, body);
    const key = m ? (m[1] ?? m[2] ?? m[3]) : undefined;
    statements.push(key === undefined ? { start: i, end } : { start: i, end, key });
    i = end;
  }
  return { statements, end: text.length };
}

/**
 * Sets the top-level `active` to `active`: rewrites its value if present,
 * else inserts `active = ...` after the `name`/`node` line. An `active` key
 * inside a table is never touched.
 */
export function setActiveInText(text: string, active: boolean): string {
  const { statements, end } = topLevel(text);
  const existing = statements.find((s) => s.key === "active");
  if (existing) {
    const line = text.slice(existing.start, existing.end);
    const m = /^([ \t]*\S+?[ \t]*=[ \t]*)(true|false)(?![A-Za-z0-9_])/.exec(line);
    if (!m?.[1])
      throw new McpError("invalid_definition", 'the top-level "active" is not true or false');
    const at = existing.start + m[1].length;
    return text.slice(0, at) + String(active) + text.slice(at + (m[2] ?? "").length);
  }
  const keyed = statements.filter((s) => s.key !== undefined);
  const anchor = keyed.filter((s) => s.key === "name" || s.key === "node").at(-1) ?? keyed.at(-1);
  const pos = anchor ? anchor.end : end;
  const nl = text.includes("\r\n") ? "\r\n" : "\n";
  const lead = pos > 0 && text[pos - 1] !== "\n" ? nl : "";
  return text.slice(0, pos) + `${lead}active = ${active}${nl}` + text.slice(pos);
}
