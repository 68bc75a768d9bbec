/**
 * How `mcp deploy` and `mcp rollback` show an operation while it runs and
 * when it is done. Pure functions of the agent's events, tested on their
 * output; ProgressPrinter only decides when to write them.
 *
 * - One line per finished step: `web: pull ✓ 0.3s`, a failure with its
 *   reason `web: health ✗ 60.0s connect ECONNREFUSED`, an undo
 *   `web: undo run`, and what the agent reports meanwhile (info):
 *   `web: health 2/3 connect ECONNREFUSED`. A step's start prints nothing,
 *   except on a terminal, where it shows as `web: pull …` until its end
 *   replaces it.
 * - The summary: a line per component as `formatResults` always printed
 *   (`  web: ok  PORT=12345`, `  web: failed: run: …`), `rolled back`
 *   instead of `failed` when the old version serves again, and under a
 *   failure the failed step, the last health check's output and the
 *   container's last log lines; the downtime when the component served
 *   nothing for a while.
 */
import type { ComponentResult, StepProgress } from "../gen/mcp/v1/mcp.js";

/** `0.3s`, `60.0s`: one decimal, always seconds (steps are compared by eye). */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

/** One detail as one line: the agent's texts may carry newlines (podman's stderr, an HTTP body). */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

/** A step line's detail is cut here (the summary shows the whole reason). */
const STEP_DETAIL_MAX = 160;

function shortLine(text: string): string {
  const line = oneLine(text);
  return line.length > STEP_DETAIL_MAX ? `${line.slice(0, STEP_DETAIL_MAX - 1)}…` : line;
}

/** The line for one progress event, or undefined for those that print none (a step's start). */
export function formatStep(p: StepProgress): string | undefined {
  const detail = p.detail ? ` ${shortLine(p.detail)}` : "";
  switch (p.phase) {
    case "ok":
      return `${p.component}: ${p.step} ✓ ${formatSeconds(p.elapsedMs)}${detail}`;
    case "failed":
      return `${p.component}: ${p.step} ✗ ${formatSeconds(p.elapsedMs)}${detail}`;
    case "undo":
      return `${p.component}: undo ${p.step}${detail}`;
    case "info":
      return `${p.component}: ${p.step}${detail}`;
    default:
      return undefined;
  }
}

/** What a terminal shows while a step runs (replaced by its end line). */
export function formatRunning(p: StepProgress): string {
  return `${p.component}: ${p.step} …`;
}

/** One line per component: `  web: ok  PORT=12345` or `  web: failed: run: …`. */
export function formatResults(results: ComponentResult[], done = "ok"): string {
  return results
    .map((r) => {
      if (!r.success) return `  ${r.name}: failed: ${r.error}\n`;
      const ports = r.routes
        .filter((route) => route.hostPort > 0)
        .map(
          (route) =>
            `${route.name ? `PORT_${route.name.toUpperCase().replace(/-/g, "_")}` : "PORT"}=${route.hostPort}`,
        );
      return `  ${r.name}: ${done}${ports.length > 0 ? `  ${ports.join(" ")}` : ""}\n`;
    })
    .join("");
}

const INDENT = "    ";

/** The lines under one component's summary line: why it failed, what it left, its downtime. */
export function formatResultDetails(r: ComponentResult): string[] {
  const lines: string[] = [];
  if (!r.success) {
    if (r.failedStep) lines.push(`failed step: ${r.failedStep}`);
    if (r.healthOutput) lines.push(`last health check: ${oneLine(r.healthOutput)}`);
    if (r.logLines.length > 0) {
      lines.push(`last log lines of ${r.container || r.name}:`);
      lines.push(...r.logLines.map((l) => `  ${l.trimEnd()}`));
    }
    if (r.outcome === "rolled back") lines.push("the old version serves again");
  }
  if (r.downtimeMs > 0) {
    lines.push(`downtime ${r.downtimeMs < 100 ? "<0.1s" : formatSeconds(r.downtimeMs)}`);
  }
  return lines.map((l) => `${INDENT}${l}`);
}

/** The summary of an operation's results (see the file comment). */
export function formatSummary(results: ComponentResult[], done = "ok"): string {
  return results
    .map((r) => {
      const one = { ...r, error: oneLine(r.error) };
      const head =
        r.outcome === "rolled back"
          ? `  ${r.name}: rolled back: ${one.error}\n`
          : formatResults([one], done);
      const details = formatResultDetails(r);
      return head + details.map((l) => `${l}\n`).join("");
    })
    .join("");
}

/**
 * Writes progress as it comes: finished steps and info as lines; on a
 * terminal also the running step, on a line the next write replaces.
 */
export class ProgressPrinter {
  private pending = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
  ) {}

  event(p: StepProgress): void {
    const line = formatStep(p);
    if (line === undefined && !(this.tty && p.phase === "start")) return;
    this.clear();
    if (line !== undefined) {
      this.write(`${line}\n`);
    } else {
      this.write(formatRunning(p));
      this.pending = true;
    }
  }

  /** Removes a running step's line (before the summary, or on Ctrl-C). */
  clear(): void {
    if (!this.pending) return;
    this.write("\r\x1b[K");
    this.pending = false;
  }
}
