/**
 * The agent's Prometheus metrics (issue 10; README "Metrics") on a real
 * agent with `[metrics]`, its own podman service and the real CLI. After a
 * deploy, a deploy that fails its health gate, and a container removed
 * behind the agent's back, each scrape passes Debian's `promtool check
 * metrics` with no complaint, and its values are what `mcp status --json`,
 * `mcp history --json` and `mcp node status --json` of the same agent say.
 * The monitor's interval is 10 minutes, so the drift can only come from
 * podman's event stream (as in observed-events.test.ts). Behind the proxy,
 * the route and certificate gauges are what `mcp route list` and `mcp cert
 * list` say; a metrics port already taken stops the start, naming it.
 */
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import { freePort } from "../helpers/agent.js";
import { LiveAgent, l7Definition, ok } from "../helpers/live-agent.js";

const NODE = "mx-node";
const SERVICE = "mx-web";

/** A `web` with one route and an http check; broken: never listens, so the check never passes. */
function definition(release: string, broken = false): string {
  return l7Definition(SERVICE, NODE, 443, {
    lines: [
      `env = ["RELEASE=${release}"]`,
      ...(broken ? ['cmd = ["sh", "-c", "exec sleep 3600"]'] : []),
    ],
    deadline: "3s",
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The exposition text's samples (our label values need no unescaping). */
function parseSamples(text: string): Sample[] {
  return text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(m?.[1] && m[3], `not a sample line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="([^"]*)"/g)) {
        labels[k ?? ""] = v ?? "";
      }
      return { name: m[1], labels, value: Number(m[3]) };
    });
}

/** The value of `name` with (at least) these labels; undefined when there is no such sample. */
function valueOf(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** GET /metrics from `address`, through promtool (exit 0, nothing to say), parsed. */
async function scrapeChecked(address: string): Promise<Sample[]> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  // runCommand rejects on a non-zero exit (promtool's lint problems exit 3).
  const lint = await runCommand(["promtool", "check", "metrics"], { input: text });
  assert.equal(lint.stdout + lint.stderr, "", "promtool check metrics has no complaint");
  return parseSamples(text);
}

interface StatusJson {
  node: string;
  status: {
    services: {
      name: string;
      components: { name: string; desiredState: string; observedState: string; health: string }[];
    }[];
    drift: { service: string; component: string }[];
    recentEvents: { service: string; kind: string }[];
  };
}

describe("metrics of a real agent", { timeout: 180_000 }, () => {
  let agent: LiveAgent;
  let metricsAddress: string;

  before(async () => {
    metricsAddress = `127.0.0.1:${await freePort()}`;
    agent = await LiveAgent.start({
      node: NODE,
      config: {
        ports: { range: [23000, 23050] },
        monitor: { interval: "10m" },
        metrics: { listen: metricsAddress },
      },
    });
  });

  after(async () => {
    await agent?.cleanup();
  });

  const scrape = () => scrapeChecked(metricsAddress);

  async function status(): Promise<StatusJson["status"]> {
    const [answer] = JSON.parse(
      ok(await agent.cli(["status", "--json"]), "status").stdout,
    ) as StatusJson[];
    statusCalls += 1;
    assert.ok(answer, "one node answered");
    return answer.status;
  }

  /** What the components gauge must hold: status's components counted by their labels. */
  function componentsFromStatus(s: StatusJson["status"]): string[] {
    const counts = new Map<string, number>();
    for (const svc of s.services) {
      for (const c of svc.components) {
        const key = `service=${svc.name} desired=${c.desiredState} observed=${c.observedState} health=${c.health || "unknown"}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return [...counts].map(([k, n]) => `${k} ${n}`).sort();
  }

  function componentsFromMetrics(samples: Sample[]): string[] {
    return samples
      .filter((s) => s.name === "mcp_components")
      .map(
        (s) =>
          `service=${s.labels.service} desired=${s.labels.desired_state} observed=${s.labels.observed_state} health=${s.labels.health} ${s.value}`,
      )
      .sort();
  }

  /** Deploys and failed deploys as `mcp history` records them (one revision per deploy). */
  async function historyCounts(): Promise<{ deploys: number; failed: number }> {
    const { revisions } = JSON.parse(
      ok(await agent.cli(["history", SERVICE, "--json"]), "history").stdout,
    ) as { revisions: { revision: number; outcome: string }[] };
    const byRevision = new Map<number, boolean>();
    for (const r of revisions) {
      byRevision.set(r.revision, (byRevision.get(r.revision) ?? true) && r.outcome === "ok");
    }
    return {
      deploys: byRevision.size,
      failed: [...byRevision.values()].filter((good) => !good).length,
    };
  }

  async function portsInUse(): Promise<number> {
    const [row] = JSON.parse(
      ok(await agent.cli(["node", "status", "--json"]), "node status").stdout,
    ) as { status: { portsAllocated: number } }[];
    assert.ok(row, "one node answered");
    return row.status.portsAllocated;
  }

  let statusCalls = 0;

  /**
   * `mcp status`, then a scrape, compared: every comparison the three cases
   * share (components, drift, deploys, ports, the status RPCs). The health
   * loop runs on its own clock and may record a verdict between the two, so
   * the pair is taken again (for up to 10 s) until the components agree.
   */
  async function assertAgree(): Promise<{ samples: Sample[]; s: StatusJson["status"] }> {
    const deadline = Date.now() + 10_000;
    let s = await status();
    let samples = await scrape();
    while (
      !isDeepStrictEqual(componentsFromMetrics(samples), componentsFromStatus(s)) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 200));
      s = await status();
      samples = await scrape();
    }
    assert.deepEqual(componentsFromMetrics(samples), componentsFromStatus(s), "mcp_components");
    assert.equal(
      valueOf(samples, "mcp_components_drifting", { service: SERVICE }),
      s.drift.filter((d) => d.service === SERVICE).length,
      "mcp_components_drifting",
    );
    const history = await historyCounts();
    const deployLabels = { service: SERVICE, kind: "deploy" };
    assert.equal(valueOf(samples, "mcp_deploys_total", deployLabels), history.deploys);
    assert.equal(valueOf(samples, "mcp_deploy_failures_total", deployLabels), history.failed);
    const durations = samples
      .filter((x) => x.name === "mcp_deploy_duration_seconds_count" && x.labels.service === SERVICE)
      .reduce((sum, x) => sum + x.value, 0);
    assert.equal(durations, history.deploys, "one duration per deploy");
    assert.equal(
      valueOf(samples, "mcp_drift_events_total", { service: SERVICE }) ?? 0,
      s.recentEvents.filter((e) => e.service === SERVICE && e.kind === "drift").length,
      "mcp_drift_events_total",
    );
    assert.equal(valueOf(samples, "mcp_port_pool_in_use"), await portsInUse(), "ports in use");
    assert.equal(
      valueOf(samples, "mcp_rpcs_total", { method: "GetServiceStatus", code: "OK" }),
      statusCalls,
      "each mcp status is one GetServiceStatus, counted as it ended",
    );
    return { samples, s };
  }

  test("the listener: its address in the start-up log, 404 beside /metrics, the pool and the agent", async () => {
    assert.match(agent.log, new RegExp(`"listen":"${metricsAddress}".*"msg":"metrics listening`));
    assert.equal((await fetch(`http://${metricsAddress}/`)).status, 404);
    const samples = await scrape();
    assert.equal(valueOf(samples, "mcp_agent_info", { node: NODE }), 1);
    assert.equal(valueOf(samples, "mcp_port_pool_size"), 50, "[23000, 23050)");
    assert.equal(valueOf(samples, "mcp_port_pool_in_use"), 0);
    assert.ok((valueOf(samples, "process_resident_memory_bytes") ?? 0) > 0, "process metrics");
  });

  test("after a deploy: one deploy, no failure, the component running and healthy", async () => {
    await agent.addDefinition(SERVICE, definition("v1"));
    ok(await agent.cli(["deploy", SERVICE]), "deploy v1");
    const { samples, s } = await assertAgree();
    assert.equal(s.services[0]?.components[0]?.observedState, "running");
    assert.equal(valueOf(samples, "mcp_deploys_total", { service: SERVICE }), 1);
    assert.equal(valueOf(samples, "mcp_deploy_failures_total", { service: SERVICE }), 0);
    assert.equal(valueOf(samples, "mcp_port_pool_in_use"), 1, "the route's host port");
    assert.equal(
      valueOf(samples, "mcp_rpcs_total", { method: "DeployStream", code: "OK" }),
      1,
      "the CLI's deploy is one DeployStream",
    );
  });

  test("after a deploy that fails its health gate: counted as failed, v1 still serves", async () => {
    await agent.addDefinition(SERVICE, definition("v2", true));
    const run = await agent.cli(["deploy", SERVICE]);
    assert.equal(run.code, 1, `the deploy fails: ${run.stdout}${run.stderr}`);
    const { samples, s } = await assertAgree();
    assert.equal(s.services[0]?.components[0]?.observedState, "running", "v1 untouched");
    assert.equal(valueOf(samples, "mcp_deploys_total", { service: SERVICE }), 2);
    assert.equal(valueOf(samples, "mcp_deploy_failures_total", { service: SERVICE }), 1);
    assert.equal(
      valueOf(samples, "mcp_deploy_duration_seconds_count", {
        service: SERVICE,
        outcome: "failed",
      }),
      1,
    );
  });

  test("after podman rm -f: the drift counted from the event, before any status pass", async () => {
    await runCommand(["podman", "rm", "-f", "-t", "0", `${SERVICE}-web`]);
    const deadline = Date.now() + 10_000;
    let samples = await scrape();
    while (valueOf(samples, "mcp_drift_events_total", { service: SERVICE }) === undefined) {
      assert.ok(Date.now() < deadline, `no drift counted within 10 s:\n${agent.log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
      samples = await scrape();
    }
    assert.equal(valueOf(samples, "mcp_drift_events_total", { service: SERVICE }), 1);
    assert.equal(valueOf(samples, "mcp_components_drifting", { service: SERVICE }), 1);
    const { s } = await assertAgree();
    assert.deepEqual(
      s.drift.map((d) => `${d.service}/${d.component}`),
      [`${SERVICE}/web`],
    );
    assert.equal(s.services[0]?.components[0]?.observedState, "removed");
    // Status's own pass found nothing new: still one drift.
    assert.equal(
      valueOf(await scrape(), "mcp_drift_events_total", { service: SERVICE }),
      1,
      "one episode, one count",
    );
  });

  test("closed with the agent", async () => {
    await agent.kill("SIGTERM");
    await assert.rejects(fetch(`http://${metricsAddress}/metrics`), /fetch failed/);
  });
});

describe("metrics of an agent behind its proxy", { timeout: 120_000 }, () => {
  let agent: LiveAgent;
  let metricsAddress: string;
  let listener: number;

  before(async () => {
    metricsAddress = `127.0.0.1:${await freePort()}`;
    listener = await freePort();
    agent = await LiveAgent.start({
      node: "mx-edge",
      init: { proxy: true },
      config: {
        ports: { range: [23060, 23099] },
        monitor: { interval: "10m" },
        proxy: { http_port: 0 },
        metrics: { listen: metricsAddress },
      },
    });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("proxy routes and certificate expiry as mcp route list and mcp cert list say", async () => {
    await agent.addDefinition("mx-edge-web", l7Definition("mx-edge-web", "mx-edge", listener));
    ok(await agent.cli(["deploy", "mx-edge-web"]), "deploy");
    const samples = await scrapeChecked(metricsAddress);

    const routes = JSON.parse(
      ok(await agent.cli(["route", "list", "--json"]), "route list").stdout,
    ) as { listener: number; mode: string; served: boolean }[];
    assert.equal(routes.length, 1, "the component's route");
    const fromList = routes.map((r) => `${r.listener} ${r.mode} ${r.served} 1`);
    const fromMetrics = samples
      .filter((x) => x.name === "mcp_proxy_routes")
      .map((x) => `${x.labels.listener} ${x.labels.mode} ${x.labels.served} ${x.value}`);
    assert.deepEqual(fromMetrics, fromList);
    assert.deepEqual(fromList, [`${listener} l7 true 1`], "served by the running HAProxy");

    const { certs } = JSON.parse(
      ok(await agent.cli(["cert", "list", "--json"]), "cert list").stdout,
    ) as { certs: { hostname: string; issuer: string; notAfter: string }[] };
    assert.equal(certs.length, 1);
    const [cert] = certs;
    assert.equal(
      valueOf(samples, "mcp_certificate_expiry_timestamp_seconds", {
        hostname: cert?.hostname ?? "",
        issuer: cert?.issuer ?? "",
      }),
      Math.floor(Date.parse(cert?.notAfter ?? "") / 1000),
    );
  });
});

describe("a metrics port already taken", { timeout: 60_000 }, () => {
  test("the agent does not start, and says which address", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    try {
      await assert.rejects(
        LiveAgent.start({
          node: "mx-busy",
          config: { ports: { range: [23050, 23060] }, metrics: { listen: address } },
        }),
        (err: Error) => {
          assert.match(err.message, /agent mx-busy exited 1/);
          assert.ok(
            err.message.includes(`mcp-agent: cannot listen on ${address} for metrics: `),
            err.message,
          );
          return true;
        },
      );
    } finally {
      taken.close();
      // start() threw before handing back the agent, so its directory is ours to remove.
      for (const entry of await readdir(tmpdir())) {
        if (entry.startsWith("mcp-mx-busy-")) {
          await rm(path.join(tmpdir(), entry), { recursive: true, force: true });
        }
      }
    }
  });
});
