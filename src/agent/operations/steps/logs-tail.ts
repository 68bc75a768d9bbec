/**
 * The last lines a container printed, for the operator when a new version
 * fails (Kamal users lose these: README, "Health checks"). Bounded in time:
 * a podman that hangs costs at most LOGS_TIMEOUT_MS, never the deploy.
 */
import type { Runtime } from "../../../runtime/types.js";
import { errorMessage } from "../../../util/errors.js";

const LOGS_TIMEOUT_MS = 3000;

export async function lastLogLines(
  runtime: Runtime,
  container: string,
  lines: number,
): Promise<string[]> {
  const logs = runtime.logs(container, { tail: lines });
  let text = "";
  for (const stream of [logs.stdout, logs.stderr]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (text += chunk));
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      logs.done,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          logs.kill();
          resolve();
        }, LOGS_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    return [`(no logs: ${errorMessage(err)})`];
  } finally {
    clearTimeout(timer);
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-lines);
}
