/**
 * Health in steady state on real podman, a real agent and the real CLI:
 * http, tcp and exec checks pass as configured (`none` is not checked, a
 * component without routes or [health] is healthy while it runs), and each
 * turns unhealthy when what it checks breaks inside the running container
 * (a file removed, the listener killed): exactly one `unhealthy` event and
 * one alert (kind unhealthy, the check's output in the message), the
 * output in `mcp status`, HEALTH in `mcp ps`; mended, a `healthy` event and
 * no further alert.
 *
 * The test image serves /www on $PORT and writes /www/health ("ok") at
 * start (scripts/setup.sh); its busybox has rm and killall as applets of
 * /bin/busybox only.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { runCommand } from "../../src/util/exec.js";
import { LiveAgent, TEST_IMAGE, ok, parseEnvPage } from "../helpers/live-agent.js";

const NODE = "hl";
const SERVICE = "hl-mix";
const ALERTS = path.join(tmpdir(), `mcp-hl-alerts-${process.pid}.log`);
/** Check timings in the definition: quick, so the test is. */
const CHECK = ['interval = "300ms"', 'timeout = "2s"', "retries = 2"];

const DEFINITION = [
  `name = "${SERVICE}"`,
  `node = "${NODE}"`,
  "",
  "[[components]]",
  'name = "http"',
  `image = "${TEST_IMAGE}"`,
  "[[components.routes]]",
  "port = 443",
  "[components.health]",
  'type = "http"',
  'path = "/health"',
  ...CHECK,
  "",
  "[[components]]",
  'name = "tcp"',
  `image = "${TEST_IMAGE}"`,
  // httpd daemonizes; the shell stays, so killing httpd leaves the container running.
  `cmd = ["sh", "-c", "httpd -p 0.0.0.0:$PORT -h /www; trap 'exit 0' TERM; while true; do sleep 1; done"]`,
  "[[components.routes]]",
  "port = 443",
  "[components.health]",
  'type = "tcp"',
  ...CHECK,
  "",
  "[[components]]",
  'name = "exec"',
  `image = "${TEST_IMAGE}"`,
  "[components.health]",
  'type = "exec"',
  'cmd = ["cat", "/www/health"]',
  ...CHECK,
  "",
  "[[components]]",
  'name = "plain"',
  `image = "${TEST_IMAGE}"`,
  "",
  "[[components]]",
  'name = "off"',
  `image = "${TEST_IMAGE}"`,
  "[components.health]",
  'type = "none"',
  "",
].join("\n");

async function alerts(): Promise<Record<string, string>[]> {
  if (!existsSync(ALERTS)) return [];
  const text = await readFile(ALERTS, "utf8");
  return text
    .split("---\n")
    .filter((r) => r.trim())
    .map((r) => parseEnvPage(r));
}

async function alertsFor(component: string, kind?: string) {
  return (await alerts()).filter(
    (a) =>
      a.MCP_SERVICE === SERVICE &&
      a.MCP_COMPONENT === component &&
      (kind === undefined || a.MCP_ALERT_KIND === kind),
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

interface PsRow {
  service: string;
  component: string;
  info: { observedState: string; health: string; healthOutput: string };
}

interface EventRow {
  component: string;
  kind: string;
  prev: string;
  next: string;
  message: string;
}

describe("health checks in steady state on real podman", { timeout: 120_000 }, () => {
  let agent: LiveAgent;

  /** component → health, from `mcp ps --json`. */
  async function health(): Promise<Map<string, PsRow["info"]>> {
    const rows = JSON.parse(ok(await agent.cli(["ps", "--json"]), "ps --json").stdout) as PsRow[];
    return new Map(rows.filter((r) => r.service === SERVICE).map((r) => [r.component, r.info]));
  }

  async function waitHealth(component: string, status: string): Promise<PsRow["info"]> {
    return waitFor(`${component} ${status}`, 15_000, async () => {
      const info = (await health()).get(component);
      return info?.health === status ? info : undefined;
    });
  }

  /** The service's health events, oldest first, straight from the registry. */
  function events(component?: string): EventRow[] {
    const db = new Database(path.join(agent.dir, "mcp.db"), { readonly: true });
    try {
      const rows = db
        .prepare(
          `SELECT component, kind, prev_state AS prev, new_state AS next, message FROM events
           WHERE service = ? AND kind IN ('healthy', 'unhealthy') ORDER BY id`,
        )
        .all(SERVICE) as EventRow[];
      return rows.filter((e) => component === undefined || e.component === component);
    } finally {
      db.close();
    }
  }

  before(async () => {
    await rm(ALERTS, { force: true });
    agent = await LiveAgent.start({
      node: NODE,
      config: {
        monitor: {
          interval: "1s",
          alert_command: ["/bin/sh", "-c", `{ env | grep ^MCP_ | sort; echo ---; } >> ${ALERTS}`],
          cooldown: "1h",
        },
      },
    });
    await agent.addDefinition(SERVICE, DEFINITION);
    ok(await agent.cli(["deploy", SERVICE]), "deploy");
  });

  after(async () => {
    await agent?.cleanup();
    await rm(ALERTS, { force: true });
  });

  test("http, tcp and exec checks pass; none is not checked; no routes, no [health]: running is healthy", async () => {
    for (const c of ["http", "tcp", "exec", "plain"]) await waitHealth(c, "healthy");
    const now = await health();
    assert.equal(now.get("off")?.health, "none");
    assert.equal(now.get("http")?.healthOutput, "HTTP 200: ok");
    assert.match(now.get("tcp")?.healthOutput ?? "", /^connected to \d+$/);
    assert.equal(now.get("exec")?.healthOutput, "exit 0: ok");
    assert.equal(now.get("plain")?.healthOutput, "container running");

    const table = ok(await agent.cli(["ps"]), "ps").stdout;
    assert.match(table, /^SERVICE\s+COMPONENT\s+NODE\s+STATE\s+HEALTH\s+VERSION\s+UPTIME$/m);
    assert.match(table, /^hl-mix\s+http\s+hl\s+running\s+healthy\s+v1\s/m);
    assert.match(table, /^hl-mix\s+off\s+hl\s+running\s+none\s+v1\s/m);
    assert.deepEqual(events(), [], "passing from the start is not news");
    assert.deepEqual(await alerts(), []);
  });

  /**
   * Breaks what `component`'s check looks at, waits for the alert, checks
   * it is the only one and the event the only one, mends it and waits for
   * the `healthy` event.
   */
  async function breakAndMend(
    component: string,
    breakArgv: string[],
    mendArgv: string[],
    output: RegExp,
  ): Promise<void> {
    await waitHealth(component, "healthy");
    await podman("exec", `${SERVICE}-${component}`, ...breakArgv);
    const [alert] = await waitFor(`the ${component} alert`, 15_000, async () => {
      const found = await alertsFor(component);
      return found.length > 0 ? found : undefined;
    });
    assert.equal(alert?.MCP_ALERT_KIND, "unhealthy");
    assert.equal(alert?.MCP_NODE, NODE);
    assert.equal(alert?.MCP_DESIRED, "running");
    assert.equal(alert?.MCP_OBSERVED, "running");
    const prefix = `${SERVICE}/${component} on ${NODE}: unhealthy: `;
    const message = alert?.MCP_MESSAGE ?? "";
    assert.ok(message.startsWith(prefix), message);
    assert.match(message.slice(prefix.length), output);

    const [ill, ...more] = events(component);
    assert.deepEqual(more, []);
    assert.deepEqual([ill?.kind, ill?.prev, ill?.next], ["unhealthy", "healthy", "unhealthy"]);
    assert.match(ill?.message ?? "", output);
    const info = (await health()).get(component);
    assert.equal(info?.health, "unhealthy");
    assert.equal(info?.observedState, "running");

    const status = ok(await agent.cli(["status", SERVICE]), "status").stdout;
    assert.match(status, /^UNHEALTHY$/m);
    assert.match(status, new RegExp(`^${SERVICE}\\s+${component}\\s+${NODE}\\s+\\S+Z\\s+\\S`, "m"));
    const unhealthySection = status.slice(status.indexOf("UNHEALTHY"));
    const line = unhealthySection.split("\n").find((l) => l.startsWith(`${SERVICE} `));
    assert.match(line?.split(/Z\s+/)[1] ?? "", output, status);

    await sleep(1500); // checks every 300 ms and monitor passes every 1 s: same episode
    assert.equal(events(component).length, 1, "one event");
    assert.equal((await alertsFor(component)).length, 1, "one alert");

    await podman("exec", `${SERVICE}-${component}`, ...mendArgv);
    await waitHealth(component, "healthy");
    const [, healthy] = events(component);
    assert.deepEqual(
      [healthy?.kind, healthy?.prev, healthy?.next],
      ["healthy", "unhealthy", "healthy"],
    );
    await sleep(1200);
    assert.equal((await alertsFor(component)).length, 1, "healthy again is not alerted");
  }

  test("exec: the file removed → one unhealthy event, one alert; put back → healthy", async () => {
    await breakAndMend(
      "exec",
      ["busybox", "rm", "/www/health"],
      ["sh", "-c", "echo ok > /www/health"],
      /^exit 1: cat: can't open '\/www\/health': No such file or directory$/,
    );
  });

  test("http: the path gone (404) → unhealthy; back → healthy", async () => {
    await breakAndMend(
      "http",
      ["busybox", "rm", "/www/health"],
      ["sh", "-c", "echo ok > /www/health"],
      /^HTTP 404: /,
    );
  });

  test("tcp: the listener killed → unhealthy; started again → healthy", async () => {
    await breakAndMend(
      "tcp",
      ["busybox", "killall", "httpd"],
      ["sh", "-c", "httpd -p 0.0.0.0:$PORT -h /www"],
      /ECONNREFUSED 127\.0\.0\.1:\d+/,
    );
  });

  test("none of it was drift; the other components stayed healthy", async () => {
    const kinds = new Set((await alerts()).map((a) => a.MCP_ALERT_KIND));
    assert.deepEqual([...kinds], ["unhealthy"]);
    const now = await health();
    for (const c of ["http", "tcp", "exec", "plain"]) assert.equal(now.get(c)?.health, "healthy");
    assert.deepEqual(
      events("plain").concat(events("off")),
      [],
      "the components nobody broke had no transitions",
    );
    assert.equal(
      await podman("inspect", `${SERVICE}-tcp`, "--format", "{{.State.Status}}"),
      "running",
    );
  });
});
