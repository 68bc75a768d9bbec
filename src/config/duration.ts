/**
 * Durations in config files: a sequence of `<number><unit>` with units
 * `ms`, `s`, `m`, `h` (as in Go's time.ParseDuration, which the original used),
 * e.g. "30s", "15m", "1h30m", "1.5h". Stored as milliseconds.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** Parses a duration string into milliseconds; throws an Error with a readable reason. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (!WHOLE.test(s)) {
    throw new Error(
      `invalid duration ${JSON.stringify(text)}: expected a number and a unit ms, s, m or h (e.g. "30s", "15m", "1h30m")`,
    );
  }
  let ms = 0;
  for (const [, num, unit] of s.matchAll(PART)) {
    ms += Number(num) * UNIT_MS[unit as Unit];
  }
  return Math.round(ms);
}

/** Formats milliseconds back into the shortest exact form ("720h", "15m", "1h30m", "250ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (const unit of ["h", "m", "s", "ms"] as const) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * UNIT_MS[unit];
    }
  }
  return out;
}
