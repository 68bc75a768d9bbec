/**
 * The per-node charts' geometry (pure; the page draws the paths as inline
 * SVG): a value that holds until the next sample, over the page's lifetime.
 * No imports: the browser bundle compiles it.
 */

export interface Sample {
  /** ms since the epoch */
  t: number;
  v: number;
}

/** The most samples a series keeps (the oldest go first). */
export const MAX_SAMPLES = 2000;

/** `series` with a new sample, unless the value did not change. Does not modify `series`. */
export function withSample(series: Sample[], sample: Sample): Sample[] {
  const last = series[series.length - 1];
  if (last && last.v === sample.v) return series;
  const next = [...series, sample];
  return next.length > MAX_SAMPLES ? next.slice(next.length - MAX_SAMPLES) : next;
}

export interface ChartFrame {
  /** The time at the left edge and at the right edge (now). */
  t0: number;
  t1: number;
  /** The value at the top edge. */
  vmax: number;
  width: number;
  height: number;
}

/**
 * The top of a chart: a quarter above the largest value seen (a line at
 * the very top reads as "full"), at least 1 so a line of zeros sits at the
 * bottom.
 */
export function chartMax(series: Sample[]): number {
  return Math.max(1, Math.ceil(Math.max(0, ...series.map((s) => s.v)) * 1.25));
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * The SVG path of a step line: from the first sample to `t1`, each value
 * held until the next one. Empty for no samples.
 */
export function stepPath(series: Sample[], frame: ChartFrame): string {
  const span = Math.max(1, frame.t1 - frame.t0);
  const x = (t: number) =>
    round(((Math.min(Math.max(t, frame.t0), frame.t1) - frame.t0) / span) * frame.width);
  const y = (v: number) =>
    round(frame.height - (Math.min(Math.max(v, 0), frame.vmax) / frame.vmax) * frame.height);
  const [first, ...rest] = series;
  if (!first) return "";
  const parts = [`M${x(first.t)} ${y(first.v)}`];
  for (const s of rest) parts.push(`H${x(s.t)}`, `V${y(s.v)}`);
  parts.push(`H${round(frame.width)}`);
  return parts.join(" ");
}

/** The step line closed along the bottom edge: the chart's shaded area. Empty for no samples. */
export function stepArea(series: Sample[], frame: ChartFrame): string {
  const line = stepPath(series, frame);
  if (!line) return "";
  const start = /^M([\d.]+) /.exec(line)?.[1] ?? "0";
  return `${line} V${round(frame.height)} H${start} Z`;
}
