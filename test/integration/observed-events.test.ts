/**
 * Observed state fed by podman's events (issue 9; docs/ARCHITECTURE.md
 * "Observed state"), on a real agent, its own `podman system service` and
 * the real CLI. The monitor's interval is 10 minutes and nothing asks the
 * agent anything while the tests wait (they read its registry file), so
 * only the event stream can explain what they see:
 *
 * - `podman kill` shows up as `exited` with a drift event, a crash loop
 *   under `restart = "always"` as flapping;
 * - with the podman service frozen (SIGSTOP), `mcp ps` and `mcp status`
 *   still answer, from memory;
 * - a container removed while the stream is down (the service frozen, then
 *   killed) is found when the agent, its service restarted, re-lists, and
 *   the agent says how long it was deaf.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import type { EventRow } from "../../src/registry/index.js";
import { runCommand } from "../../src/util/exec.js";
import { LiveAgent, TEST_IMAGE, oneRouteDefinition, ok } from "../helpers/live-agent.js";

const NODE = "obsev";

async function podman(...args: string[]): Promise<string> {
  return (await runCommand(["podman", ...args])).stdout.trim();
}

describe("observed state from podman's events", { timeout: 180_000 }, () => {
  let agent: LiveAgent;

  /** The registry's events after `afterId`, read from the file: no RPC, no monitor pass. */
  function eventsSince(afterId: number): EventRow[] {
    const db = new Database(path.join(agent.dir, "mcp.db"), {
      readonly: true,
      fileMustExist: true,
    });
    try {
      return db
        .prepare(
          `SELECT id, service, component, kind, prev_state AS prevState, new_state AS newState,
             message, timestamp FROM events WHERE id > ? ORDER BY id`,
        )
        .all(afterId) as EventRow[];
    } finally {
      db.close();
    }
  }

  function lastEventId(): number {
    return eventsSince(0).at(-1)?.id ?? 0;
  }

  async function waitForEvents(
    what: string,
    afterId: number,
    done: (events: EventRow[]) => boolean,
    timeoutMs = 10_000,
  ): Promise<EventRow[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = eventsSince(afterId);
      if (done(events)) return events;
      if (Date.now() > deadline) {
        throw new Error(
          `no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(events)}\n${agent.log.slice(-3000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function servicePid(): Promise<number> {
    const pid = Number((await readFile(path.join(agent.dir, "podman.sock.pid"), "utf8")).trim());
    assert.ok(Number.isInteger(pid) && pid > 1, `podman service pid ${pid}`);
    return pid;
  }

  async function deploy(name: string, text: string): Promise<void> {
    await agent.addDefinition(name, text);
    ok(await agent.cli(["deploy", name]), `deploy ${name}`);
  }

  before(async () => {
    agent = await LiveAgent.start({
      node: NODE,
      config: { monitor: { interval: "10m", flap_threshold: 3, flap_window: "1m" } },
    });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("podman kill: exited and drift from the event, not the interval", async () => {
    await deploy("obsev-kill", oneRouteDefinition("obsev-kill", NODE));
    const from = lastEventId();
    await podman("kill", "obsev-kill-web");
    const events = await waitForEvents("exited state and drift", from, (es) =>
      es.some((e) => e.kind === "drift" && e.service === "obsev-kill"),
    );
    const state = events.find((e) => e.kind === "state" && e.service === "obsev-kill");
    assert.equal(state?.prevState, "running");
    assert.equal(state?.newState, "exited");
    assert.equal(state?.message, "exit code 137", "seen from the event, not on a re-list");
    const drift = events.find((e) => e.kind === "drift");
    assert.equal(drift?.message, "desired running, observed exited");

    // mcp ps shows it from the view.
    const ps = ok(await agent.cli(["ps"]), "ps").stdout;
    assert.match(ps, /^obsev-kill\s+web\s.*\bexited\b/m);
  });

  test('a crash loop under restart = "always" is flapping, from events alone', async () => {
    const from = lastEventId();
    await deploy(
      "obsev-flap",
      [
        'name = "obsev-flap"',
        `node = "${NODE}"`,
        "[[components]]",
        'name = "crash"',
        `image = "${TEST_IMAGE}"`,
        'restart = "always"',
        'cmd = ["sh", "-c", "sleep 0.5; exit 1"]',
        "[components.health]",
        'type = "none"',
        "",
      ].join("\n"),
    );
    const events = await waitForEvents(
      "a flap event",
      from,
      (es) => es.some((e) => e.kind === "flap" && e.service === "obsev-flap"),
      20_000,
    );
    const transitions = events.filter((e) => e.kind === "state" && e.service === "obsev-flap");
    assert.ok(transitions.length >= 3, JSON.stringify(transitions));
    ok(await agent.cli(["undeploy", "obsev-flap"]), "undeploy");
  });

  test("the podman service frozen: mcp ps and mcp status answer from memory", async () => {
    await deploy("obsev-mem", oneRouteDefinition("obsev-mem", NODE));
    // Let the deploy's own events arrive first: a frozen podman holds back
    // what it has not sent yet, and the view then asks podman (below: never).
    ok(await agent.cli(["ps"]), "ps");
    await new Promise((r) => setTimeout(r, 1000));
    const pid = await servicePid();
    process.kill(pid, "SIGSTOP");
    try {
      const ps = await agent.cli(["ps"]);
      const status = await agent.cli(["status", "obsev-mem"]);
      process.kill(pid, "SIGCONT");
      ok(ps, "ps with podman frozen");
      assert.match(ps.stdout, /^obsev-mem\s+web\s.*\brunning\b/m);
      ok(status, "status with podman frozen");
      assert.match(status.stdout, /^obsev-mem\s+web\s+obsev\s+running\s+running\b/m);
    } finally {
      process.kill(pid, "SIGCONT");
    }
  });

  test("the event stream dropped: the agent re-lists and reports what changed meanwhile", async () => {
    const before = await servicePid();
    const from = lastEventId();
    // Frozen, the service reads no event; killed, its stream drops unread.
    process.kill(before, "SIGSTOP");
    try {
      await podman("rm", "-f", "-t", "0", "obsev-mem-web");
    } finally {
      process.kill(before, "SIGKILL");
    }
    const events = await waitForEvents(
      "the re-list's findings",
      from,
      (es) => es.some((e) => e.kind === "podman") && es.some((e) => e.kind === "drift"),
      20_000,
    );
    const state = events.find((e) => e.kind === "state" && e.service === "obsev-mem");
    assert.equal(state?.newState, "removed");
    assert.match(state?.message ?? "", /^seen on re-listing after podman's event stream was down/);
    const deaf = events.find((e) => e.kind === "podman");
    assert.match(
      deaf?.message ?? "",
      /^podman's event stream was down \d+\.\d s; re-listed: 1 component changed \(obsev-mem\/web\)$/,
    );
    assert.notEqual(await servicePid(), before, "the agent restarted its podman service");

    // Events flow again on the new stream.
    const next = lastEventId();
    ok(await agent.cli(["start", "obsev-mem"]), "start");
    await podman("kill", "obsev-mem-web");
    const again = await waitForEvents("drift after the reconnect", next, (es) =>
      es.some((e) => e.kind === "drift" && e.service === "obsev-mem"),
    );
    const exited = again.filter((e) => e.kind === "state" && e.newState === "exited");
    assert.equal(exited.length, 1, JSON.stringify(again));
    assert.equal(exited[0]?.message, "exit code 137");
  });
});
