/**
 * The agent's Prometheus metrics (src/agent/metrics/): the pure rows →
 * samples functions, the exposition text of AgentMetrics (checked by the
 * real `promtool check metrics`), the RPC interceptor on a real TLS agent
 * server, the HTTP listener, what a deploy over the fake runtime counts, and
 * the `[metrics]` config.
 */
import assert from "node:assert/strict";
import { request as httpRequest, Agent as HttpAgent } from "node:http";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { status as grpcStatus } from "@grpc/grpc-js";
import { startMetricsListener, isScrape } from "../../src/agent/metrics/http.js";
import { AgentMetrics } from "../../src/agent/metrics/metrics.js";
import type { MetricsRecorder } from "../../src/agent/metrics/recorder.js";
import {
  certificateSamples,
  componentSamples,
  driftSamples,
  grpcCodeName,
  proxyRouteSamples,
  rpcMethod,
  type AgentState,
} from "../../src/agent/metrics/samples.js";
import { readAgentState } from "../../src/agent/metrics/state.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { LogsRequest } from "../../src/gen/mcp/v1/mcp.js";
import { excludedPorts } from "../../src/agent/server/serve.js";
import { connectNode } from "../../src/cli/client.js";
import { agentConfigFromObject, renderAgentConfig } from "../../src/config/agent.js";
import { Monitor } from "../../src/monitor/monitor.js";
import { McpError, ValidationError } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import { runCommand } from "../../src/util/exec.js";
import { IMAGE, agent, example, withImage } from "../helpers/fake-agent.js";
import { startTestAgent, type TestAgent } from "../helpers/agent.js";

type Component = AgentState["components"][number];

function component(
  service: string,
  desiredState: Component["desiredState"],
  observedState: string,
  health: Component["health"]["status"] = "",
): Component {
  return {
    service,
    desiredState,
    observedState,
    health: { status: health, output: "", checkedAt: null },
  };
}

const STATE: AgentState = {
  components: [
    component("api", "running", "running", "healthy"),
    component("api", "running", "running", "healthy"),
    component("api", "running", "exited", "unhealthy"),
    component("db", "stopped", "exited"),
    component("db", "ignore", "removed"),
  ],
  ports: { poolSize: 100, held: 7 },
  routes: [
    { listener: 443, mode: "l7", served: true },
    { listener: 443, mode: "l7", served: true },
    { listener: 443, mode: "l4", served: false },
  ],
  certificates: [
    { hostname: "b.test", issuer: "acme", notAfter: new Date("2027-01-01T00:00:00.900Z") },
    { hostname: "a.test", issuer: "local", notAfter: new Date("2026-12-31T00:00:00Z") },
    { hostname: "none.test", issuer: "local" },
  ],
};

/** The sample lines of `name` (no comments), in order. */
function lines(text: string, name: string): string[] {
  return text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
}

async function promtool(text: string): Promise<void> {
  // Fails loudly (ENOENT) where Debian's prometheus package is missing.
  const { stdout, stderr } = await runCommand(["promtool", "check", "metrics"], { input: text });
  assert.equal(`${stdout}${stderr}`, "", "promtool has no complaints");
}

describe("samples: state → label sets and values", () => {
  test("components are counted by service, desired, observed state and health", () => {
    assert.deepEqual(componentSamples(STATE.components), [
      {
        labels: {
          service: "api",
          desired_state: "running",
          observed_state: "exited",
          health: "unknown",
        },
        value: 1,
      },
      {
        labels: {
          service: "api",
          desired_state: "running",
          observed_state: "running",
          health: "healthy",
        },
        value: 2,
      },
      {
        labels: {
          service: "db",
          desired_state: "ignore",
          observed_state: "removed",
          health: "unknown",
        },
        value: 1,
      },
      {
        labels: {
          service: "db",
          desired_state: "stopped",
          observed_state: "exited",
          health: "unknown",
        },
        value: 1,
      },
    ]);
  });

  test("health as mcp status shows it: only a running container's; none shown is unknown", () => {
    const [stopped] = componentSamples([component("x", "running", "exited", "unhealthy")]);
    assert.equal(
      stopped?.labels.health,
      "unknown",
      "an exited container's last verdict is not shown",
    );
    const [unchecked] = componentSamples([component("x", "running", "running", "")]);
    assert.equal(unchecked?.labels.health, "unknown");
    const [noCheck] = componentSamples([component("x", "running", "running", "none")]);
    assert.equal(noCheck?.labels.health, "none");
  });

  test("drift per service, 0 for a service with none; ignore and stopped-exited never drift", () => {
    assert.deepEqual(driftSamples(STATE.components), [
      { labels: { service: "api" }, value: 1 },
      { labels: { service: "db" }, value: 0 },
    ]);
  });

  test("proxy routes by listener, mode and served", () => {
    assert.deepEqual(proxyRouteSamples(STATE.routes), [
      { labels: { listener: "443", mode: "l4", served: "false" }, value: 1 },
      { labels: { listener: "443", mode: "l7", served: "true" }, value: 2 },
    ]);
  });

  test("certificate expiry in whole Unix seconds, by hostname; one without a date is left out", () => {
    assert.deepEqual(certificateSamples(STATE.certificates), [
      { labels: { hostname: "a.test", issuer: "local" }, value: 1798675200 },
      { labels: { hostname: "b.test", issuer: "acme" }, value: 1798761600 },
    ]);
  });

  test("RPC method from its path, gRPC code names", () => {
    assert.equal(rpcMethod("/mcp.v1.McpAgentService/DeployStream"), "DeployStream");
    assert.equal(grpcCodeName(grpcStatus.OK), "OK");
    assert.equal(grpcCodeName(grpcStatus.UNAUTHENTICATED), "UNAUTHENTICATED");
    assert.equal(grpcCodeName(99), "99");
  });
});

describe("AgentMetrics: the exposition text", () => {
  function metricsOf(state: () => AgentState, processMetrics = false) {
    let reads = 0;
    const metrics = new AgentMetrics({
      node: "rift",
      version: "1.2.3",
      processMetrics,
      readState: () => {
        reads += 1;
        return Promise.resolve(state());
      },
    });
    return { metrics, reads: () => reads };
  }

  test("state gauges from one read per scrape, at scrape time", async () => {
    const { metrics, reads } = metricsOf(() => STATE);
    const text = await metrics.scrape();
    assert.equal(reads(), 1, "every state gauge shares the scrape's one read");
    assert.deepEqual(lines(text, "mcp_agent_info"), [
      'mcp_agent_info{node="rift",version="1.2.3"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_components"), [
      'mcp_components{service="api",desired_state="running",observed_state="exited",health="unknown"} 1',
      'mcp_components{service="api",desired_state="running",observed_state="running",health="healthy"} 2',
      'mcp_components{service="db",desired_state="ignore",observed_state="removed",health="unknown"} 1',
      'mcp_components{service="db",desired_state="stopped",observed_state="exited",health="unknown"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_components_drifting"), [
      'mcp_components_drifting{service="api"} 1',
      'mcp_components_drifting{service="db"} 0',
    ]);
    assert.deepEqual(lines(text, "mcp_port_pool_size"), ["mcp_port_pool_size 100"]);
    assert.deepEqual(lines(text, "mcp_port_pool_in_use"), ["mcp_port_pool_in_use 7"]);
    assert.deepEqual(lines(text, "mcp_proxy_routes"), [
      'mcp_proxy_routes{listener="443",mode="l4",served="false"} 1',
      'mcp_proxy_routes{listener="443",mode="l7",served="true"} 2',
    ]);
    assert.deepEqual(lines(text, "mcp_certificate_expiry_timestamp_seconds"), [
      'mcp_certificate_expiry_timestamp_seconds{hostname="a.test",issuer="local"} 1798675200',
      'mcp_certificate_expiry_timestamp_seconds{hostname="b.test",issuer="acme"} 1798761600',
    ]);
    await Promise.all([metrics.scrape(), metrics.scrape()]);
    assert.equal(reads(), 2, "two concurrent scrapes share one read too");
  });

  test("a state no component is in any more is gone from the next scrape", async () => {
    let state = STATE;
    const { metrics } = metricsOf(() => state);
    assert.equal(lines(await metrics.scrape(), "mcp_components").length, 4);
    state = { ...STATE, components: [component("api", "running", "running", "healthy")] };
    assert.deepEqual(lines(await metrics.scrape(), "mcp_components"), [
      'mcp_components{service="api",desired_state="running",observed_state="running",health="healthy"} 1',
    ]);
  });

  test("deploys, failures (0 from the first deploy), duration by outcome; drift, flap; RPCs", async () => {
    const { metrics } = metricsOf(() => STATE);
    metrics.deployEnded({ service: "api", kind: "deploy", ok: true, seconds: 1.5 });
    metrics.deployEnded({ service: "api", kind: "deploy", ok: false, seconds: 25 });
    metrics.deployEnded({ service: "db", kind: "rollback", ok: true, seconds: 0.2 });
    metrics.conditionEntered("drift", "api");
    metrics.conditionEntered("drift", "api");
    metrics.conditionEntered("flap", "db");
    metrics.rpcEnded("Deploy", "OK", 0.002);
    metrics.rpcEnded("Deploy", "OK", 0.004);
    metrics.rpcEnded("ListServices", "UNAUTHENTICATED", 0.0005);
    const text = await metrics.scrape();
    assert.deepEqual(lines(text, "mcp_deploys_total"), [
      'mcp_deploys_total{service="api",kind="deploy"} 2',
      'mcp_deploys_total{service="db",kind="rollback"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_deploy_failures_total"), [
      'mcp_deploy_failures_total{service="api",kind="deploy"} 1',
      'mcp_deploy_failures_total{service="db",kind="rollback"} 0',
    ]);
    assert.deepEqual(lines(text, "mcp_deploy_duration_seconds_count"), [
      'mcp_deploy_duration_seconds_count{service="api",kind="deploy",outcome="ok"} 1',
      'mcp_deploy_duration_seconds_count{service="api",kind="deploy",outcome="failed"} 1',
      'mcp_deploy_duration_seconds_count{service="db",kind="rollback",outcome="ok"} 1',
    ]);
    assert.ok(
      lines(text, "mcp_deploy_duration_seconds_bucket").includes(
        'mcp_deploy_duration_seconds_bucket{le="30",service="api",kind="deploy",outcome="failed"} 1',
      ),
    );
    assert.deepEqual(lines(text, "mcp_drift_events_total"), [
      'mcp_drift_events_total{service="api"} 2',
    ]);
    assert.deepEqual(lines(text, "mcp_flap_events_total"), [
      'mcp_flap_events_total{service="db"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_rpcs_total"), [
      'mcp_rpcs_total{method="Deploy",code="OK"} 2',
      'mcp_rpcs_total{method="ListServices",code="UNAUTHENTICATED"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_rpc_duration_seconds_sum"), [
      'mcp_rpc_duration_seconds_sum{method="Deploy",code="OK"} 0.006',
      'mcp_rpc_duration_seconds_sum{method="ListServices",code="UNAUTHENTICATED"} 0.0005',
    ]);
    await promtool(text);
  });

  test("with the process metrics, promtool check metrics passes with no lint complaint", async () => {
    const { metrics } = metricsOf(() => STATE, true);
    metrics.deployEnded({ service: "api", kind: "deploy", ok: true, seconds: 1 });
    const text = await metrics.scrape();
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.doesNotMatch(text, /^nodejs_active_handles_total/m, "a gauge named _total is left out");
    await promtool(text);
    assert.equal(metrics.contentType, "text/plain; version=0.0.4; charset=utf-8");
  });
});

describe("RPCs counted by method and code, on a real TLS agent server", () => {
  let server: TestAgent;
  const ended: { method: string; code: string; seconds: number }[] = [];
  const recorder: Pick<MetricsRecorder, "rpcEnded"> = {
    rpcEnded: (method, code, seconds) => void ended.push({ method, code, seconds }),
  };

  before(async () => {
    server = await startTestAgent({
      node: "mx-rpc",
      rpcMetrics: recorder,
      impl: {
        listServices: (_call, cb) => cb(null, { services: [] }),
        listRevisions: (_call, cb) =>
          cb({ code: grpcStatus.NOT_FOUND, details: "unknown service" }),
        // One chunk and the end; followed, it runs until the client cancels.
        logs: (call) => {
          call.write({ data: Buffer.from("line\n") });
          if (!call.request.follow) call.end();
        },
      },
    });
  });
  after(async () => {
    await server?.close();
  });

  async function client(token?: string) {
    const tokenPath =
      token === undefined ? server.init.tokenFile : join(server.init.dir, "other-token");
    if (token !== undefined) await writeFile(tokenPath, token);
    return connectNode({
      name: "mx-rpc",
      address: server.address,
      caCert: server.init.caCert,
      tokenPath,
    });
  }

  /** Waits for the server to have counted `n` calls. */
  async function counted(n: number): Promise<string[]> {
    const deadline = Date.now() + 5000;
    while (ended.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return ended.map((e) => `${e.method} ${e.code}`);
  }

  const LOGS = LogsRequest.fromPartial({ service: "x" });

  test("unary: OK, a handler's error, UNIMPLEMENTED, and the guard's refusal", async () => {
    ended.length = 0;
    const c = await client();
    try {
      await c.call("listServices", { name: "", includeSpec: false });
      await assert.rejects(c.call("listRevisions", { service: "nope" }));
      await new Promise<void>((resolve) => c.raw.nodeStatus({}, () => resolve()));
    } finally {
      c.close();
    }
    const stranger = await client("not-a-known-token");
    try {
      await assert.rejects(stranger.call("listServices", { name: "", includeSpec: false }));
    } finally {
      stranger.close();
    }
    assert.deepEqual(await counted(4), [
      "ListServices OK",
      "ListRevisions NOT_FOUND",
      "NodeStatus UNIMPLEMENTED",
      "ListServices UNAUTHENTICATED",
    ]);
    for (const e of ended) assert.ok(e.seconds >= 0 && e.seconds < 5, `${e.method} ${e.seconds}`);
  });

  test("streaming: one that ends, one not implemented, one the client cancels (once)", async () => {
    ended.length = 0;
    const c = await client();
    try {
      const chunks = [];
      for await (const chunk of c.stream("logs", LOGS)) chunks.push(chunk);
      assert.equal(chunks.length, 1);
      await new Promise<void>((resolve) =>
        c.raw.deployStream({ service: undefined, component: "" }).on("error", () => resolve()),
      );
      const followed = c.raw.logs({ ...LOGS, follow: true });
      await new Promise<void>((resolve) => followed.once("data", () => resolve()));
      followed.on("error", () => {});
      followed.cancel();
      assert.deepEqual(await counted(3), [
        "Logs OK",
        "DeployStream UNIMPLEMENTED",
        "Logs CANCELLED",
      ]);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(ended.length, 3, "a cancelled call counts once");
    } finally {
      c.close();
    }
  });
});

describe("what the agent counts, over the fake runtime", () => {
  test("a deploy, a failed one and a drift: the counters, and gauges that agree with the registry", async () => {
    const { ctx, runtime, registry, health } = agent();
    const metrics = new AgentMetrics({
      node: "local",
      version: "0.0.0-test",
      processMetrics: false,
      readState: () => readAgentState(ctx),
    });
    ctx.metrics = metrics;
    const hello = withImage(example("hello"), IMAGE);
    const [ok] = await deploy(ctx, { service: hello, component: "" });
    assert.equal(ok?.success, true, ok?.error);
    health.failing.set("hello-web", "HTTP 503");
    const [failed] = await deploy(ctx, { service: hello, component: "" });
    assert.equal(failed?.success, false);
    health.failing.clear();
    // Refused before any step: not a deploy (the RPC's code says so).
    await assert.rejects(deploy(ctx, { service: hello, component: "nope" }));

    const monitor = new Monitor(
      ctx,
      {
        intervalMs: 60_000,
        alertCommand: [],
        cooldownMs: 0,
        flapThreshold: 3,
        flapWindowMs: 60_000,
        retentionMs: 3_600_000,
      },
      { runAlert: () => Promise.resolve() },
    );
    runtime.containers.delete("hello-web");
    await monitor.runOnce();
    const text = await metrics.scrape();
    assert.deepEqual(lines(text, "mcp_deploys_total"), [
      'mcp_deploys_total{service="hello",kind="deploy"} 2',
    ]);
    assert.deepEqual(lines(text, "mcp_deploy_failures_total"), [
      'mcp_deploy_failures_total{service="hello",kind="deploy"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_drift_events_total"), [
      'mcp_drift_events_total{service="hello"} 1',
    ]);
    assert.equal(
      registry.events.list({ service: "hello" }).filter((e) => e.kind === "drift").length,
      1,
      "one drift event, one count",
    );
    assert.deepEqual(lines(text, "mcp_components"), [
      'mcp_components{service="hello",desired_state="running",observed_state="removed",health="unknown"} 1',
    ]);
    assert.deepEqual(lines(text, "mcp_components_drifting"), [
      'mcp_components_drifting{service="hello"} 1',
    ]);
    const stats = ctx.allocator.stats();
    assert.deepEqual(lines(text, "mcp_port_pool_in_use"), [`mcp_port_pool_in_use ${stats.held}`]);
    assert.equal(stats.held, 1, "the route's port is still held");
    assert.deepEqual(lines(text, "mcp_port_pool_size"), ["mcp_port_pool_size 100"]);
    assert.deepEqual(lines(text, "mcp_proxy_routes"), [], "no [proxy]: no routes");
    await monitor.stop();
  });
});

describe("the metrics listener", () => {
  test("GET /metrics with the Prometheus content type, 404 for anything else; close() with a scraper connected", async () => {
    const listener = await startMetricsListener({
      listen: "127.0.0.1:0",
      scrape: () => Promise.resolve("mcp_up 1\n"),
      contentType: "text/plain; version=0.0.4; charset=utf-8",
      logger: silentLogger(),
    });
    const keepAlive = new HttpAgent({ keepAlive: true });
    const get = (path: string, method = "GET") =>
      new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const req = httpRequest(
          `http://${listener.address}${path}`,
          { method, agent: keepAlive },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c.toString()));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                type: res.headers["content-type"] ?? "",
                body,
              }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
    try {
      assert.match(listener.address, /^127\.0\.0\.1:\d+$/);
      assert.notEqual(listener.address, "127.0.0.1:0", "the port it got");
      const scrape = await get("/metrics");
      assert.deepEqual(scrape, {
        status: 200,
        type: "text/plain; version=0.0.4; charset=utf-8",
        body: "mcp_up 1\n",
      });
      assert.equal((await get("/metrics?x=1")).status, 200);
      assert.equal((await get("/")).status, 404);
      assert.equal((await get("/metrics/x")).status, 404);
      assert.equal((await get("/metrics", "POST")).status, 404);
    } finally {
      // The keep-alive connection is still open: close() must not wait for it.
      await listener.close();
      keepAlive.destroy();
    }
    await assert.rejects(get("/metrics"), /ECONNREFUSED/);
  });

  test("a scrape that fails answers 500 with the reason; a taken port is an error naming the address", async () => {
    const listener = await startMetricsListener({
      listen: "127.0.0.1:0",
      scrape: () => Promise.reject(new Error("registry closed")),
      contentType: "text/plain",
      logger: silentLogger(),
    });
    try {
      const res = await fetch(`http://${listener.address}/metrics`);
      assert.equal(res.status, 500);
      assert.equal(await res.text(), "scrape failed: registry closed\n");
      await assert.rejects(
        startMetricsListener({
          listen: listener.address,
          scrape: () => Promise.resolve(""),
          contentType: "text/plain",
          logger: silentLogger(),
        }),
        (err: unknown) =>
          err instanceof McpError &&
          err.code === "unavailable" &&
          err.message.startsWith(`cannot listen on ${listener.address} for metrics: `),
      );
    } finally {
      await listener.close();
    }
  });

  test("isScrape: GET on the path only", () => {
    assert.equal(isScrape({ method: "GET", url: "/metrics" }), true);
    assert.equal(isScrape({ method: "GET", url: "/metrics?name[]=x" }), true);
    assert.equal(isScrape({ method: "HEAD", url: "/metrics" }), false);
    assert.equal(isScrape({ method: "GET", url: "/metricsx" }), false);
  });
});

describe("[metrics] in the agent config", () => {
  const base = {
    agent: { node_name: "rift" },
    server: { listen: "127.0.0.1:9444", tls_cert: "/c.pem", tls_key: "/k.pem" },
    database: { path: "/mcp.db" },
    auth: { tokens_file: "/t.toml" },
  };
  const load = (extra: Record<string, unknown>) =>
    agentConfigFromObject({ ...base, ...extra }, "/etc/mcp", "/etc/mcp/mcp-agent.toml");
  const problemsOf = (extra: Record<string, unknown>) => {
    try {
      load(extra);
    } catch (err) {
      assert.ok(err instanceof ValidationError, String(err));
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
    return assert.fail("expected a ValidationError");
  };

  test("absent: no listener; listen: kept as written, rendered, and kept out of the port pool", () => {
    assert.equal(load({}).metrics, undefined);
    assert.doesNotMatch(renderAgentConfig(load({})), /\[metrics\]/);
    const cfg = load({ metrics: { listen: "[::1]:9464" } });
    assert.deepEqual(cfg.metrics, { listen: "[::1]:9464" });
    assert.match(renderAgentConfig(cfg), /^\[metrics\]\nlisten = "\[::1\]:9464"$/m);
    assert.deepEqual(excludedPorts(cfg, undefined), [
      { from: 9444, to: 9444 },
      { from: 9464, to: 9464 },
    ]);
  });

  test("an empty table, a bad address, an unknown key, the gRPC port: errors naming the field", () => {
    assert.deepEqual(problemsOf({ metrics: {} }), ["metrics.listen: required"]);
    assert.deepEqual(problemsOf({ metrics: { listen: "9464" } }), [
      'metrics.listen: invalid address "9464": expected host:port (IPv6 as [::1]:9444)',
    ]);
    const [unknown, ...more] = problemsOf({ metrics: { listen: "127.0.0.1:9464", path: "/m" } });
    assert.match(unknown ?? "", /^metrics\.path: unknown/);
    assert.deepEqual(more, []);
    assert.deepEqual(problemsOf({ metrics: { listen: "127.0.0.1:9444" } }), [
      'metrics.listen: port 9444 is the gRPC server\'s ([server] listen = "127.0.0.1:9444"); use another port',
    ]);
  });
});
