/**
 * Runs the configured alert command: `alert_command` is an argv list executed
 * directly (never through a shell, so nothing in a service name or message can
 * be interpreted), with the alert's details in its environment. A failing or
 * hanging command is logged and killed after a timeout; it never stops the
 * monitor.
 */
import { errorMessage } from "../util/errors.js";
import { CommandError, runCommand } from "../util/exec.js";
import type { Logger } from "../util/log.js";
import { ALERT_ENV_KEYS } from "./alerts.js";

/** How long an alert command may run before it is killed. */
export const ALERT_TIMEOUT_MS = 30_000;

/** At most this much of the command's output goes into the log line. */
const OUTPUT_LOG_LIMIT = 2000;

export type AlertRunner = (argv: string[], env: Record<string, string>) => Promise<void>;

/**
 * Runs argv with `env` over the agent's environment (minus stale MCP_* alert
 * variables); logs its output; resolves either way.
 */
export async function runAlertCommand(
  argv: string[],
  env: Record<string, string>,
  opts: { logger: Logger; timeoutMs?: number },
): Promise<void> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const key of ALERT_ENV_KEYS) delete base[key];
  const log = opts.logger.child({
    alert: env.MCP_ALERT_KIND,
    service: env.MCP_SERVICE,
    component: env.MCP_COMPONENT,
  });
  try {
    const { stdout, stderr } = await runCommand(argv, {
      env: { ...base, ...env },
      timeoutMs: opts.timeoutMs ?? ALERT_TIMEOUT_MS,
    });
    log.info({ command: argv[0], stdout: clip(stdout), stderr: clip(stderr) }, "alert command ran");
  } catch (err) {
    const output =
      err instanceof CommandError ? { stdout: clip(err.stdout), stderr: clip(err.stderr) } : {};
    log.warn({ command: argv[0], err: errorMessage(err), ...output }, "alert command failed");
  }
}

function clip(text: string): string {
  const t = text.trim();
  return t.length > OUTPUT_LOG_LIMIT ? `${t.slice(0, OUTPUT_LOG_LIMIT)}…` : t;
}
