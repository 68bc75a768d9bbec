/**
 * Checking of TOML-shaped data (service definitions, config and tokens files).
 *
 * Written by hand rather than with a schema library: it is small (the CLI is
 * bundled and starts on every command), every problem is reported at once
 * with its path (`ports.range[1]`, `nodes[2].name`) while checking goes on,
 * and values are tested against allow-lists, so a typo or an unknown key
 * never passes silently.
 *
 * Each parse function reports its problems and returns the value, or
 * undefined after a problem; callers build a result with placeholders and
 * discard it when there is any problem.
 */
import type { Problem } from "./errors.js";

export type Table = Record<string, unknown>;
export type Parse<T> = (value: unknown, path: string) => T | undefined;

/** How many characters of a value a message echoes, at most (escapes counted). */
export const ECHO_MAX = 60;

/**
 * A string as a JSON literal, cut after about ECHO_MAX characters:
 * `"abc…"… (1048576 bytes)`, so a refused 1 MB value is not echoed back in
 * full. `withSize` adds the size to an uncut string too.
 */
export function quote(s: string, withSize = false): string {
  let body = "";
  let cut = false;
  // By code point, so a cut never splits a surrogate pair.
  for (const ch of s) {
    const escaped = JSON.stringify(ch).slice(1, -1);
    if (body.length + escaped.length > ECHO_MAX) {
      cut = true;
      break;
    }
    body += escaped;
  }
  const size = ` (${Buffer.byteLength(s)} bytes)`;
  return cut ? `"${body}"…${size}` : `"${body}"${withSize ? size : ""}`;
}

/** How a value looks in "expected X, got Y" (long strings cut short, see quote). */
export function describe(v: unknown): string {
  if (typeof v === "string") return quote(v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  return typeof v === "object" ? "a table" : typeof v;
}

export function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/**
 * `at("ports", "range")` → `ports.range`; `at("nodes", 2)` → `nodes[2]`. A
 * key that is not a bare TOML key is quoted (and cut short): paths of
 * unknown keys repeat what the file says, which may be anything.
 */
export function at(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const k = BARE_KEY.test(key) && key.length <= ECHO_MAX ? key : quote(key);
  return path ? `${path}.${k}` : k;
}

export function defined<T>(xs: (T | undefined)[]): T[] {
  return xs.filter((x): x is T => x !== undefined);
}

export class TableChecker {
  readonly problems: Problem[] = [];

  /** `unknownKey` is the message for a key not in the allow-list. */
  constructor(private readonly unknownKey = "unknown key") {}

  fail(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  expected(path: string, what: string, got: unknown): undefined {
    return this.fail(path, `expected ${what}, got ${describe(got)}`);
  }

  /**
   * Reads `t[key]`; absent (or undefined) is fine unless required. A table
   * that already failed its own check (undefined) has no fields to report.
   */
  field<T>(
    t: Table | undefined,
    path: string,
    key: string,
    parse: Parse<T>,
    required = false,
  ): T | undefined {
    if (t === undefined) return undefined;
    const p = at(path, key);
    const v = Object.hasOwn(t, key) ? t[key] : undefined;
    if (v === undefined) return required ? this.fail(p, "required") : undefined;
    return parse(v, p);
  }

  /** Typos such as `imagee` must not pass silently. */
  unknownKeys(t: Table, path: string, known: readonly string[]): void {
    for (const [k, v] of Object.entries(t)) {
      if (v !== undefined && !known.includes(k)) this.fail(at(path, k), this.unknownKey);
    }
  }

  table(v: unknown, path: string, what = "a table"): Table | undefined {
    return isTable(v) ? v : this.expected(path, what, v);
  }

  /** A table that may hold only the `known` keys. */
  strictTable(known: readonly string[]): Parse<Table> {
    return (v, p) => {
      const t = this.table(v, p);
      if (t) this.unknownKeys(t, p, known);
      return t;
    };
  }

  /**
   * A reader for the fields of the table `t[key]`, which may hold only the
   * `known` keys. An absent optional table has no fields: each reads as
   * undefined, so takes its default.
   */
  section(
    t: Table | undefined,
    path: string,
    key: string,
    known: readonly string[],
    required = false,
  ) {
    const s = this.field(t, path, key, this.strictTable(known), required);
    const p = at(path, key);
    return <T>(k: string, parse: Parse<T>, req = false) => this.field(s, p, k, parse, req);
  }

  string: Parse<string> = (v, p) => (typeof v === "string" ? v : this.expected(p, "a string", v));

  boolean: Parse<boolean> = (v, p) =>
    typeof v === "boolean" ? v : this.expected(p, "a boolean", v);

  nonEmpty: Parse<string> = (v, p) =>
    typeof v === "string" && v !== "" ? v : this.expected(p, "a non-empty string", v);

  matching(re: RegExp, what: string): Parse<string> {
    return (v, p) => (typeof v === "string" && re.test(v) ? v : this.expected(p, what, v));
  }

  oneOf<T extends string>(values: readonly T[]): Parse<T> {
    const what = values.map((x) => `"${x}"`).join(" or ");
    return (v, p) => (values.includes(v as T) ? (v as T) : this.expected(p, what, v));
  }

  /** An integer from `min` to `max` inclusive. */
  integer(min: number, max?: number): Parse<number> {
    const what = max === undefined ? `an integer of at least ${min}` : `an integer ${min}-${max}`;
    return (v, p) =>
      typeof v === "number" && Number.isInteger(v) && v >= min && (max === undefined || v <= max)
        ? v
        : this.expected(p, what, v);
  }

  /** A string `parse` accepts; the message of what it throws is the problem. */
  parsing<T>(parse: (s: string) => T, what = "a string"): Parse<T> {
    return (v, p) => {
      if (typeof v !== "string") return this.expected(p, what, v);
      try {
        return parse(v);
      } catch (err) {
        return this.fail(p, (err as Error).message);
      }
    };
  }

  /**
   * Every item is checked; invalid ones stay as undefined so indexes still
   * match. With `max`, a longer array is one problem (`expected at most 64
   * routes, got 10000`) and its items are not checked.
   */
  list<T>(
    item: Parse<T>,
    what = "an array",
    max?: { count: number; noun: string },
  ): Parse<(T | undefined)[]> {
    return (v, p) => {
      if (!Array.isArray(v)) return this.expected(p, what, v);
      if (max && v.length > max.count) {
        return this.fail(p, `expected at most ${max.count} ${max.noun}, got ${v.length}`);
      }
      return v.map((x, i) => item(x, at(p, i)));
    };
  }

  /**
   * A string of at most `max` UTF-8 bytes (`bytes` says it, e.g. "4096
   * bytes (4 KiB)") and without NUL, which no argv or environment string can
   * carry; then `parse`. Anything but a string goes to `parse` as it is.
   */
  bounded<T>(max: number, bytes: string, parse: Parse<T>): Parse<T> {
    return (v, p) => {
      if (typeof v !== "string") return parse(v, p);
      // UTF-8 takes at most 3 bytes per UTF-16 unit: short strings skip the count.
      if (v.length * 3 > max && Buffer.byteLength(v) > max) {
        return this.fail(p, `expected at most ${bytes}, got ${quote(v, true)}`);
      }
      if (v.includes("\u0000")) return this.expected(p, "a string without NUL characters", v);
      return parse(v, p);
    };
  }
}
