/**
 * `mcp ui`'s live path: from `podman rm -f` of a component's container,
 * behind the agent's back, to the page showing the component as drifting,
 * without a reload (issue 10: ≤ 2 s).
 *
 *   node --import tsx bench/ui.ts [--runs N] [--timeout SECONDS] [--prefix P]
 *
 * One agent whose monitor interval is 10 minutes (so no pass on the
 * interval finds the drift), the built `mcp ui` on a free loopback port,
 * and Debian's chromium (playwright-core) on its page. The clock starts as
 * `podman rm -f` is spawned and stops when the row's `data-drift` turns
 * true in the page: the agent's event-fed view, the UI's once-a-second
 * LiveCheck, the SSE push and the page's render together. Between runs `mcp
 * start` brings the component back (untimed) and the page must show it
 * running again. A run not seen within `--timeout` counts as the timeout.
 */
import { performance } from "node:perf_hooks";
import type { Browser } from "playwright-core";
import { containerName } from "../src/runtime/names.js";
import { runCommand } from "../src/util/exec.js";
import { launchChromium, startUi, stopUi, type RunningUiProcess } from "../test/helpers/mcp-ui.js";
import { LiveAgent } from "../test/helpers/live-agent.js";
import {
  deployUnchecked,
  intArg,
  judgeLatency,
  loadavg1,
  ms,
  namePrefix,
  reportLatency,
  roundStats,
  sleep,
  withCleanup,
} from "./lib.js";

const prefix = namePrefix();
const NODE = `${prefix}ui-bench`;
const SERVICE = `${prefix}ui-bench-drift`;
const COMPONENT = "web";
const CONTAINER = containerName(SERVICE, COMPONENT);
const TARGET_MS = 2000;
/** After the component runs again: let the agent and the page take in the start first. */
const SETTLE_MS = 1500;

const runs = intArg("runs", 8);
const timeoutMs = intArg("timeout", 15) * 1000;

let agent: LiveAgent | undefined;
let ui: RunningUiProcess | undefined;
let browser: Browser | undefined;

async function main(signal: AbortSignal): Promise<void> {
  agent = await LiveAgent.start({
    node: NODE,
    config: { monitor: { interval: "10m" }, ports: { range: [23380, 23400] } },
  });
  const live = agent;
  await deployUnchecked(live, SERVICE, NODE);
  ui = await startUi(live.cliConfig, "127.0.0.1:0");
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(ui.url);
  const row = `#services tr[data-key="${NODE}/${SERVICE}/${COMPONENT}"]`;
  await page.locator(`${row}[data-tone="running"]`).waitFor({ timeout: 30_000 });
  await sleep(SETTLE_MS, signal);

  const seen: (number | undefined)[] = [];
  for (let i = 0; i < runs; i++) {
    signal.throwIfAborted();
    const start = performance.now();
    const rm = runCommand(["podman", "rm", "-f", CONTAINER]);
    let elapsed: number | undefined;
    try {
      await page.locator(`${row}[data-drift="true"]`).waitFor({ timeout: timeoutMs });
      elapsed = performance.now() - start;
    } catch {
      elapsed = undefined;
    }
    await rm;
    seen.push(elapsed);
    process.stderr.write(
      `  run ${i + 1}/${runs}: ${elapsed === undefined ? `not shown within ${timeoutMs / 1000} s` : `drift on the page after ${ms(elapsed)} ms`}\n`,
    );
    const started = await live.cli(["start", SERVICE]);
    if (started.code !== 0) {
      throw new Error(`mcp start exited ${started.code}:\n${started.stdout}${started.stderr}`);
    }
    await page.locator(`${row}[data-tone="running"]`).waitFor({ timeout: 30_000 });
    await sleep(SETTLE_MS, signal);
  }

  const verdict = judgeLatency(seen, TARGET_MS);
  const load = loadavg1();
  console.log(
    `\npodman rm -f → drift on mcp ui's page, ${runs} runs, monitor interval 10m (1-min load ${load})`,
  );
  reportLatency(verdict, {
    seenLabel: "shown on the page (from rm's spawn):",
    targetMs: TARGET_MS,
    timeoutMs,
  });
  console.log(
    JSON.stringify({
      bench: "ui",
      runs,
      unit: "ms",
      timeoutMs,
      monitorInterval: "10m",
      shown: roundStats(verdict.seen),
      ...verdict.json,
      loadavg1: load,
    }),
  );
}

await withCleanup(main, async () => {
  await browser?.close();
  if (ui) await stopUi(ui);
  await agent?.cleanup();
});
