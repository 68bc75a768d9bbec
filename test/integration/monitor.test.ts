/**
 * The monitor and recovery at agent start against a real agent process, real
 * podman and the real CLI: drift after `podman rm -f` (event, alert with the
 * documented environment, cooldown), a crash loop under `restart = "always"`
 * reported as flapping, and a killed agent that recreates a removed
 * container on its old host port when it starts again, leaving a stopped
 * component and a container started by hand alone.
 *
 * Podman 4.3.1 without systemd does apply `--restart always`: conmon's exit
 * hook (`podman container cleanup`) restarts the container. A container
 * running `sleep 0.3; exit 1` is restarted about every 0.4 s (RestartCount
 * went to 16 in 6 s here), so `on-failure` is not needed.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { runCommand } from "../../src/util/exec.js";
import {
  LiveAgent,
  TEST_IMAGE,
  httpGet,
  oneRouteDefinition,
  parseEnvPage,
  ok,
} from "../helpers/live-agent.js";

const NODE = "mon";
const INTERVAL_MS = 1000;
const ALERTS = path.join(tmpdir(), `mcp-mon-alerts-${process.pid}.log`);
const STRAY = "mon-stray";

/** Every alert the alert command wrote so far: one env record each. */
async function alerts(): Promise<Record<string, string>[]> {
  if (!existsSync(ALERTS)) return [];
  const text = await readFile(ALERTS, "utf8");
  return text
    .split("---\n")
    .filter((r) => r.trim())
    .map((r) => parseEnvPage(r));
}

async function alertsFor(service: string, kind?: string) {
  return (await alerts()).filter(
    (a) => a.MCP_SERVICE === service && (kind === undefined || a.MCP_ALERT_KIND === kind),
  );
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function podman(...args: string[]): Promise<string> {
  return (await runCommand(["podman", ...args])).stdout.trim();
}

interface StatusJson {
  node: string;
  status: {
    drift: { service: string; component: string; desired: string; observed: string }[];
    recentEvents: { service: string; component: string; kind: string; message: string }[];
  };
}

describe("monitor and recovery on real podman", { timeout: 120_000 }, () => {
  let agent: LiveAgent;

  async function status(service: string): Promise<StatusJson["status"]> {
    const out = ok(await agent.cli(["status", service, "--json"]), `status ${service}`).stdout;
    const [answer] = JSON.parse(out) as StatusJson[];
    assert.ok(answer, out);
    return answer.status;
  }

  async function hostPort(service: string): Promise<number> {
    const nodes = JSON.parse(ok(await agent.cli(["list", "--json"]), "list").stdout) as {
      services: { name: string; components: { routes: { hostPort: number }[] }[] }[];
    }[];
    const svc = nodes.flatMap((n) => n.services).find((s) => s.name === service);
    const port = svc?.components[0]?.routes[0]?.hostPort;
    assert.ok(port && port > 0, `no host port for ${service}`);
    return port;
  }

  async function deploy(name: string, text: string): Promise<void> {
    await agent.addDefinition(name, text);
    ok(await agent.cli(["deploy", name]), `deploy ${name}`);
  }

  before(async () => {
    await rm(ALERTS, { force: true });
    await runCommand(["podman", "rm", "-f", "-t", "0", "--ignore", STRAY]);
    agent = await LiveAgent.start({
      node: NODE,
      config: {
        monitor: {
          interval: `${INTERVAL_MS}ms`,
          alert_command: ["/bin/sh", "-c", `{ env | grep ^MCP_ | sort; echo ---; } >> ${ALERTS}`],
          cooldown: "1h",
          flap_threshold: 3,
          flap_window: "1m",
        },
      },
    });
  });

  after(async () => {
    await runCommand(["podman", "rm", "-f", "-t", "0", "--ignore", STRAY]);
    await agent?.cleanup();
    await rm(ALERTS, { force: true });
  });

  test("podman rm -f: drift within one interval, one alert with the documented env, cooldown", async () => {
    await deploy("mon-drift", oneRouteDefinition("mon-drift", NODE));
    await sleep(INTERVAL_MS + 200); // a pass sees it running
    assert.deepEqual(await alertsFor("mon-drift"), []);

    await podman("rm", "-f", "-t", "0", "mon-drift-web");
    const removedAt = Date.now();
    // The loop alone (no status call yet) notices and alerts.
    const [alert] = await waitFor("the drift alert", 3 * INTERVAL_MS, async () => {
      const found = await alertsFor("mon-drift");
      return found.length > 0 ? found : undefined;
    });
    // One interval at most, plus the pass itself and this poll's 100 ms.
    const elapsed = Date.now() - removedAt;
    assert.ok(elapsed <= INTERVAL_MS + 1000, `alert after ${elapsed} ms`);
    assert.deepEqual(alert, {
      MCP_ALERT_KIND: "drift",
      MCP_COMPONENT: "web",
      MCP_DESIRED: "running",
      MCP_MESSAGE: `mon-drift/web on ${NODE}: drift: desired running, observed removed`,
      MCP_NODE: NODE,
      MCP_OBSERVED: "removed",
      MCP_SERVICE: "mon-drift",
    });

    const st = await status("mon-drift");
    assert.deepEqual(st.drift, [
      { service: "mon-drift", component: "web", desired: "running", observed: "removed" },
    ]);
    const drifts = st.recentEvents.filter((e) => e.kind === "drift");
    assert.equal(drifts.length, 1);
    assert.equal(drifts[0]?.message, "desired running, observed removed");
    const table = ok(await agent.cli(["status", "mon-drift"]), "status").stdout;
    assert.match(table, /^mon-drift\s+web\s+mon\s+running\s+removed\s+DRIFT\b/m);
    assert.match(table, /\bdrift\s+desired running, observed removed$/m);

    await sleep(2 * INTERVAL_MS + 300); // more passes: same episode, no second alert
    assert.equal((await alertsFor("mon-drift")).length, 1);

    // Back and gone again: a second drift event, but the cooldown (1h) holds the alert.
    ok(await agent.cli(["deploy", "mon-drift"]), "redeploy");
    await sleep(INTERVAL_MS + 200);
    await podman("rm", "-f", "-t", "0", "mon-drift-web");
    // `mcp status` runs a pass before answering: the drift shows at once.
    const again = await status("mon-drift");
    assert.equal(again.drift.length, 1);
    assert.equal(again.recentEvents.filter((e) => e.kind === "drift").length, 2);
    await sleep(INTERVAL_MS + 200);
    assert.equal((await alertsFor("mon-drift")).length, 1, "cooldown");
    ok(await agent.cli(["undeploy", "mon-drift"]), "undeploy");
  });

  test('a crash loop under restart = "always" is reported as flapping', async () => {
    await deploy(
      "mon-flap",
      [
        'name = "mon-flap"',
        `node = "${NODE}"`,
        "[[components]]",
        'name = "crash"',
        `image = "${TEST_IMAGE}"`,
        'restart = "always"',
        'cmd = ["sh", "-c", "sleep 0.3; exit 1"]',
        // A deploy proves only that it starts: the crash loop comes after.
        "[components.health]",
        'type = "none"',
        "",
      ].join("\n"),
    );
    const [flap] = await waitFor("the flap alert", 15_000, async () => {
      const found = await alertsFor("mon-flap", "flap");
      return found.length > 0 ? found : undefined;
    });
    assert.equal(flap?.MCP_COMPONENT, "crash");
    assert.equal(flap?.MCP_NODE, NODE);
    assert.equal(flap?.MCP_DESIRED, "running");
    assert.ok(Number(flap?.MCP_TRANSITIONS) >= 3, `MCP_TRANSITIONS=${flap?.MCP_TRANSITIONS}`);
    assert.match(
      flap?.MCP_MESSAGE ?? "",
      /^mon-flap\/crash on mon: flapping: \d+ state changes within 1m \(threshold 3\)/,
    );
    const restarts = Number(
      await podman("inspect", "mon-flap-crash", "--format", "{{.RestartCount}}"),
    );
    assert.ok(restarts >= 3, `podman restarted it ${restarts} times`);

    const events = (await status("mon-flap")).recentEvents;
    assert.equal(events.filter((e) => e.kind === "flap").length, 1, JSON.stringify(events));
    assert.ok(events.filter((e) => e.kind === "state").length >= 3);
    await sleep(INTERVAL_MS + 200);
    assert.equal((await alertsFor("mon-flap", "flap")).length, 1, "one flap alert per episode");
    ok(await agent.cli(["undeploy", "mon-flap"]), "undeploy");
  });

  test("agent killed, container removed, agent started: back on its old port; the rest left alone", async () => {
    await deploy("mon-rec", oneRouteDefinition("mon-rec", NODE));
    await deploy("mon-stop", oneRouteDefinition("mon-stop", NODE));
    ok(await agent.cli(["stop", "mon-stop"]), "stop mon-stop");
    const port = await hostPort("mon-rec");
    const stoppedId = await podman("inspect", "mon-stop-web", "--format", "{{.Id}}");

    await agent.kill();
    await podman("rm", "-f", "-t", "0", "mon-rec-web");
    await podman("run", "-d", "--name", STRAY, TEST_IMAGE, "sleep", "600");
    await agent.launch();

    assert.equal(await hostPort("mon-rec"), port, "the recorded host port");
    const page = parseEnvPage(await httpGet(port));
    assert.equal(page.PORT, String(port));
    assert.equal(
      await podman("inspect", "mon-rec-web", "--format", "{{.State.Status}}"),
      "running",
    );
    const recover = (await status("mon-rec")).recentEvents.filter((e) => e.kind === "recover");
    assert.equal(recover.length, 1);
    assert.match(
      recover[0]?.message ?? "",
      new RegExp(`^container was gone: recreated ${TEST_IMAGE} \\(PORT=${port}\\)$`),
    );

    // Desired stopped: not touched.
    assert.equal(
      await podman("inspect", "mon-stop-web", "--format", "{{.Id}} {{.State.Status}}"),
      `${stoppedId} exited`,
    );
    assert.equal(
      (await status("mon-stop")).recentEvents.some((e) => e.kind === "recover"),
      false,
    );

    // Started by hand: left running and reported (log line + event).
    assert.equal(await podman("inspect", STRAY, "--format", "{{.State.Status}}"), "running");
    assert.match(
      agent.log,
      new RegExp(`"container":"${STRAY}".*"msg":"container not managed by this agent; left alone"`),
    );
    const db = new Database(path.join(agent.dir, "mcp.db"), { readonly: true });
    try {
      const rows = db
        .prepare(
          "SELECT component, new_state AS state, message FROM events WHERE kind = 'unmanaged' AND service = ?",
        )
        .all(STRAY) as { component: string; state: string; message: string }[];
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.state, "running");
      assert.match(rows[0]?.message ?? "", /not in this agent's registry; left alone/);
    } finally {
      db.close();
    }
    // Back to normal: no drift anywhere on this node.
    const all = JSON.parse(
      ok(await agent.cli(["status", "--json"]), "status").stdout,
    ) as StatusJson[];
    assert.deepEqual(all[0]?.status.drift, []);
  });

  test("status of an unknown service fails with a one-line reason", async () => {
    const run = await agent.cli(["status", "mon-nope"]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr.trim(), /^mcp: .*unknown service "mon-nope"/);
    assert.equal(run.stderr.trim().split("\n").length, 1);
  });
});
