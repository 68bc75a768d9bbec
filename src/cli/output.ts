/**
 * Output helpers: aligned tables (upper-case headers, two spaces apart, like
 * `kubectl get`), uptimes, and JSON. Pure, so tests assert on strings.
 */

/** Formats rows under headers; every column as wide as its widest cell. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/**
 * The two most significant units, no padding: `12s`, `2m19s`, `23h57m`,
 * `2d16h` (the original's format).
 */
export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

/** JSON for `--json`: two-space indented, Dates as ISO strings, trailing newline. */
/** `2026-12-01 11:58:03Z` (UTC, whole seconds): read across machines and time zones; `-` for none. */
export function formatUtcTime(d: Date | undefined): string {
  return d
    ? d
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z")
    : "-";
}

export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}
