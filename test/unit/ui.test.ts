/**
 * `mcp ui`'s parts that need no agent: the view model (snapshot.ts), who
 * may read the page (access.ts, and the real server over HTTP with a token),
 * the charts' geometry, the poller's schedule and failures over a scripted
 * client, and the log tail's size limit. The page in a real browser against
 * real agents is test/integration/ui.test.ts.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { describe, test } from "node:test";
import {
  ComponentInfo,
  EventInfo,
  GetServiceStatusResponse,
  LiveCheckResponse,
  NodeStatusResponse,
  ProxyRouteInfo,
  RouteStatus,
  ServiceInfo,
} from "../../src/gen/mcp/v1/mcp.js";
import type { ResolvedNode } from "../../src/config/cli.js";
import type { AgentClient } from "../../src/cli/client.js";
import { NodeNotAnsweringError } from "../../src/cli/hints.js";
import { McpError } from "../../src/util/errors.js";
import {
  checkAccess,
  cookieValue,
  pageUrl,
  TOKEN_COOKIE,
  type AccessPolicy,
} from "../../src/cli/ui/access.js";
import { chartMax, stepArea, stepPath, withSample, MAX_SAMPLES } from "../../src/cli/ui/chart.js";
import { NodePoller, type PollerSettings } from "../../src/cli/ui/collector.js";
import { collectingSink } from "../../src/cli/ui/component-detail.js";
import { parseListen } from "../../src/cli/ui/listen.js";
import { componentQuery, startUiServer, type SnapshotSource } from "../../src/cli/ui/server.js";
import {
  buildSnapshot,
  componentTone,
  EVENTS_SHOWN,
  type NodeObservation,
} from "../../src/cli/ui/snapshot.js";
import type { UiSnapshot } from "../../src/cli/ui/view-types.js";

const NOW = new Date("2026-12-01T12:00:00Z");

function component(over: Partial<ComponentInfo>): ComponentInfo {
  return ComponentInfo.fromPartial({
    name: "web",
    image: "localhost/app:v1",
    version: "v1",
    desiredState: "running",
    observedState: "running",
    health: "healthy",
    ...over,
  });
}

function service(name: string, components: ComponentInfo[]): ServiceInfo {
  return ServiceInfo.fromPartial({ name, active: true, components });
}

function live(services: ServiceInfo[], unmanaged = 0): LiveCheckResponse {
  return LiveCheckResponse.fromPartial({
    services,
    unmanaged: Array.from({ length: unmanaged }, (_, i) => ({ name: `other-${i}` })),
  });
}

const nodeStatus = NodeStatusResponse.fromPartial({
  agentVersion: "0.3.0",
  runtime: "podman",
  runtimeVersion: "4.3.1",
  serviceCount: 2,
  componentCount: 3,
  runningCount: 2,
  portRange: "20000-20099",
  portsAllocated: 7,
  cpuCount: 2,
  cpuUsagePercent: 12.4,
  diskTotalBytes: 100 * 2 ** 30,
  diskFreeBytes: 40 * 2 ** 30,
  memoryTotalBytes: 8 * 2 ** 30,
  memoryFreeBytes: 2 * 2 ** 30,
  uptimeSince: new Date("2026-12-01T10:00:00Z"),
});

describe("the view model", () => {
  const route = RouteStatus.fromPartial({ name: "", port: 443, mode: "l7", hostPort: 20001 });
  const a: NodeObservation = {
    name: "a",
    address: "10.0.0.1:9444",
    live: live(
      [
        service("shop", [
          component({
            routes: [route],
            startedAt: new Date("2026-12-01T11:59:00Z"),
          }),
          component({ name: "worker", observedState: "removed", health: "" }),
        ]),
        service("api", [component({ health: "unhealthy", healthOutput: "503 from /health" })]),
      ],
      2,
    ),
    status: nodeStatus,
    serviceStatus: GetServiceStatusResponse.fromPartial({
      services: [service("shop", [component({ routes: [{ ...route, served: true }] })])],
      recentEvents: [
        EventInfo.fromPartial({
          service: "shop",
          component: "worker",
          kind: "drift",
          message: "desired running, observed removed",
          timestamp: new Date("2026-12-01T11:59:30Z"),
        }),
        EventInfo.fromPartial({
          service: "shop",
          component: "web",
          kind: "deploy",
          prevState: "",
          newState: "running",
          message: "deployed",
          timestamp: new Date("2026-12-01T11:58:00Z"),
        }),
      ],
    }),
    routes: {
      routes: [
        ProxyRouteInfo.fromPartial({
          listener: 443,
          hostname: "shop.example.com",
          mode: "l7",
          backend: "127.0.0.1:20001",
          service: "shop",
          component: "web",
          served: true,
          certNotAfter: new Date("2027-03-01T00:00:00Z"),
        }),
        ProxyRouteInfo.fromPartial({
          listener: 8443,
          hostname: "legacy.example.com",
          mode: "l4",
          backend: "127.0.0.1:9000",
          proxyProtocol: true,
          served: false,
        }),
      ],
    },
  };
  const b: NodeObservation = {
    name: "b",
    address: "10.0.0.2:9444",
    live: live([service("batch", [component({})])]),
    status: nodeStatus,
    routes: { noProxy: true },
  };

  test("components: sorted like mcp ps, drift by the monitor's rule, a colour each", () => {
    const snap = buildSnapshot([a, b], NOW);
    assert.deepEqual(
      snap.components.map((c) => [c.key, c.observed, c.drift, c.tone, c.health]),
      [
        ["a/api/web", "running", false, "unhealthy", "unhealthy"],
        ["b/batch/web", "running", false, "running", "healthy"],
        ["a/shop/web", "running", false, "running", "healthy"],
        ["a/shop/worker", "removed", true, "drift", "-"],
      ],
    );
    const web = snap.components.find((c) => c.key === "a/shop/web");
    assert.equal(web?.ports, "PORT:443/l7→20001");
    assert.equal(web?.served, "yes", "SERVED from GetServiceStatus");
    assert.equal(web?.startedAt, "2026-12-01T11:59:00.000Z");
    assert.equal(
      snap.components.find((c) => c.key === "a/api/web")?.healthOutput,
      "503 from /health",
    );
    assert.equal(snap.components.find((c) => c.key === "b/batch/web")?.served, "-");
  });

  test("nodes: mcp node status's facts, the pool, running containers, the proxy", () => {
    const [na, nb] = buildSnapshot([a, b], NOW).nodes;
    assert.deepEqual(na, {
      name: "a",
      address: "10.0.0.1:9444",
      reachable: true,
      proxy: "yes",
      agentVersion: "0.3.0",
      runtime: "podman 4.3.1",
      services: "2 (3 components, 2 running)",
      disk: "40.0 GiB free of 100.0 GiB (60% used)",
      memory: "2.0 GiB free of 8.0 GiB (75% used)",
      cpu: "2 cores, load 12% (1-min average)",
      upSince: "2026-12-01T10:00:00.000Z",
      ports: { allocated: 7, range: "20000-20099", pool: 100 },
      running: 2,
      unmanaged: 2,
    });
    assert.equal(nb?.proxy, "no");
  });

  test("routes as mcp route list shows them; events newest first", () => {
    const snap = buildSnapshot([a, b], NOW);
    assert.deepEqual(snap.routes, [
      {
        node: "a",
        listener: 443,
        hostname: "shop.example.com",
        mode: "l7",
        backend: "127.0.0.1:20001",
        owner: "shop/web",
        served: true,
        certExpires: "2027-03-01",
      },
      {
        node: "a",
        listener: 8443,
        hostname: "legacy.example.com",
        mode: "l4+pp",
        backend: "127.0.0.1:9000",
        owner: "-",
        served: false,
        certExpires: "-",
      },
    ]);
    assert.deepEqual(
      snap.events.map((e) => [e.node, e.kind, e.detail]),
      [
        ["a", "drift", "desired running, observed removed"],
        ["a", "deploy", "- → running  deployed"],
      ],
    );
  });

  test("an unreachable node: said why and since when, its components and routes left out", () => {
    const since = new Date("2026-12-01T11:59:58Z");
    const snap = buildSnapshot(
      [{ ...a, failure: { reason: "connection refused", since } }, b],
      NOW,
    );
    const [na] = snap.nodes;
    assert.equal(na?.reachable, false);
    assert.equal(na?.error, "connection refused");
    assert.equal(na?.unreachableSince, since.toISOString());
    assert.deepEqual(
      snap.components.map((c) => c.key),
      ["b/batch/web"],
    );
    assert.deepEqual(snap.routes, []);
    assert.deepEqual(snap.events, []);
  });

  test("a node that never answered yet, and calls that failed while it answers", () => {
    const snap = buildSnapshot(
      [
        { name: "c", address: "c:9444" },
        { ...b, problems: ["GetServiceStatus: podman is down"] },
      ],
      NOW,
    );
    assert.deepEqual(snap.nodes[0], {
      name: "c",
      address: "c:9444",
      reachable: true,
      proxy: "unknown",
    });
    assert.deepEqual(snap.nodes[1]?.problems, ["GetServiceStatus: podman is down"]);
  });

  test("events are cut to the newest EVENTS_SHOWN", () => {
    const many = Array.from({ length: EVENTS_SHOWN + 5 }, (_, i) =>
      EventInfo.fromPartial({
        kind: "state",
        service: "s",
        timestamp: new Date(NOW.getTime() - i * 1000),
      }),
    );
    const snap = buildSnapshot(
      [{ ...b, serviceStatus: GetServiceStatusResponse.fromPartial({ recentEvents: many }) }],
      NOW,
    );
    assert.equal(snap.events.length, EVENTS_SHOWN);
    assert.equal(snap.events[0]?.time, NOW.toISOString());
  });

  test("the same answers give the same JSON (nothing is sent when nothing changed)", () => {
    assert.equal(
      JSON.stringify(buildSnapshot([a, b], NOW)),
      JSON.stringify(buildSnapshot([a, b], new Date(NOW.getTime() + 60_000))),
    );
  });

  test("componentTone: drift, then ill health, then the state", () => {
    const t = (desired: string, observed: string, health = "-", drift = false) =>
      componentTone({ desired, observed, health, drift });
    assert.equal(t("running", "removed", "unhealthy", true), "drift");
    assert.equal(t("running", "running", "unhealthy"), "unhealthy");
    assert.equal(t("running", "running"), "running");
    assert.equal(t("running", "exited"), "exited");
    assert.equal(t("stopped", "exited"), "stopped");
  });
});

describe("who may read the page", () => {
  const loopback: AccessPolicy = { port: 7700, loopback: true };
  const withToken: AccessPolicy = { port: 7700, loopback: false, token: "s3cret" };
  const get = (url: string, more: { host?: string; cookie?: string; method?: string } = {}) => ({
    method: more.method ?? "GET",
    host: more.host ?? "127.0.0.1:7700",
    url,
    cookie: more.cookie,
  });

  test("--listen: host:port, loopback or not; anything else is refused", () => {
    assert.deepEqual(parseListen("127.0.0.1:7700"), {
      host: "127.0.0.1",
      port: 7700,
      loopback: true,
    });
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0, loopback: true });
    assert.equal(parseListen("0.0.0.0:7700").loopback, false);
    assert.equal(parseListen("192.168.1.5:7700").loopback, false);
    assert.throws(() => parseListen("7700"), /expected host:port/);
    assert.throws(() => parseListen("localhost:99999"), /port out of range/);
  });

  test("the URL carries the token only when there is one", () => {
    assert.equal(pageUrl({ host: "127.0.0.1", port: 7700 }, undefined), "http://127.0.0.1:7700/");
    assert.equal(pageUrl({ host: "::", port: 80 }, "t"), "http://[::]:80/?token=t");
  });

  test("loopback: only loopback Host names with the port (DNS rebinding), only reads", () => {
    assert.deepEqual(checkAccess(get("/"), loopback), { allow: true });
    assert.deepEqual(checkAccess(get("/", { host: "localhost:7700" }), loopback), { allow: true });
    assert.deepEqual(checkAccess(get("/", { host: "[::1]:7700" }), loopback), { allow: true });
    for (const host of ["evil.example:7700", "127.0.0.1:80", "127.0.0.1", ""]) {
      const d = checkAccess(get("/", { host }), loopback);
      assert.equal(d.allow, false, host);
      assert.equal(!d.allow && d.status, 403, host);
    }
    const post = checkAccess(get("/api/snapshot", { method: "POST" }), loopback);
    assert.equal(!post.allow && post.status, 405);
  });

  test("beyond loopback: the token in the query sets a cookie; without either, 401", () => {
    const none = checkAccess(get("/api/snapshot"), withToken);
    assert.equal(!none.allow && none.status, 401);
    const wrong = checkAccess(get("/?token=nope"), withToken);
    assert.equal(!wrong.allow && wrong.status, 401);
    assert.deepEqual(checkAccess(get("/?token=s3cret&x=1"), withToken), {
      allow: true,
      setCookie: `${TOKEN_COOKIE}=s3cret; HttpOnly; SameSite=Strict; Path=/`,
      location: "/?x=1",
    });
    assert.deepEqual(checkAccess(get("/api/snapshot?token=s3cret"), withToken), {
      allow: true,
      setCookie: `${TOKEN_COOKIE}=s3cret; HttpOnly; SameSite=Strict; Path=/`,
    });
    assert.deepEqual(
      checkAccess(get("/app.js", { cookie: `a=b; ${TOKEN_COOKIE}=s3cret` }), withToken),
      { allow: true },
    );
    const badCookie = checkAccess(get("/", { cookie: `${TOKEN_COOKIE}=s3cre` }), withToken);
    assert.equal(!badCookie.allow && badCookie.status, 401);
    // Any Host: the token is the guard there (a rebound name gets no cookie of ours).
    assert.deepEqual(
      checkAccess(get("/", { host: "ui.lan:7700", cookie: `${TOKEN_COOKIE}=s3cret` }), withToken),
      { allow: true },
    );
  });

  test("cookieValue", () => {
    assert.equal(cookieValue("a=1; b = 2 ;c=3", "b"), "2");
    assert.equal(cookieValue(undefined, "b"), undefined);
    assert.equal(cookieValue("ab=1", "b"), undefined);
  });
});

/** A GET on the real server; `cookie`/`host` set when given. */
function get(
  port: number,
  urlPath: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: urlPath, headers, agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on("error", reject);
  });
}

/** A source whose observations the test sets, and whose change signal it fires. */
function scriptedSource(initial: NodeObservation[]): SnapshotSource & {
  set(next: NodeObservation[]): void;
} {
  let current = initial;
  const listeners = new Set<() => void>();
  return {
    observations: () => current,
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    set(next) {
      current = next;
      for (const l of listeners) l();
    },
  };
}

/** Reads SSE `snapshot` events from `/api/events` until `count` arrived or `ms` passed. */
function readEvents(
  port: number,
  count: number,
  ms: number,
  headers: Record<string, string> = {},
): { done: Promise<UiSnapshot[]>; connected: Promise<void> } {
  let connected!: () => void;
  const isConnected = new Promise<void>((r) => (connected = r));
  const done = new Promise<UiSnapshot[]>((resolve, reject) => {
    const got: UiSnapshot[] = [];
    const req = http.get(
      { host: "127.0.0.1", port, path: "/api/events", headers, agent: false },
      (res) => {
        let buffer = "";
        const finish = () => {
          clearTimeout(timer);
          req.destroy();
          resolve(got);
        };
        const timer = setTimeout(finish, ms);
        res.on("data", (c: Buffer) => {
          buffer += c.toString();
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (/^event: snapshot$/m.test(block) && data) got.push(JSON.parse(data) as UiSnapshot);
            if (got.length === 1) connected();
          }
          if (got.length >= count) finish();
        });
      },
    );
    req.on("error", reject);
  });
  return { done, connected: isConnected };
}

describe("the server", () => {
  const node = (name: string, services: ServiceInfo[]): NodeObservation => ({
    name,
    address: `${name}:9444`,
    live: live(services),
  });
  const assets = { js: "/* app */", css: "/* css */" };

  test("with a token: 401 without it, the cookie from the URL, then every route", async () => {
    const source = scriptedSource([node("a", [service("shop", [component({})])])]);
    const ui = await startUiServer({
      listen: { host: "127.0.0.1", port: 0, loopback: false },
      token: "tok",
      assets,
      source,
      componentDetail: () => Promise.resolve({ logs: "hello\n", truncated: false, events: [] }),
    });
    try {
      for (const p of ["/", "/app.js", "/api/snapshot", "/api/events", "/api/component?node=a"]) {
        const res = await get(ui.port, p);
        assert.equal(res.status, 401, p);
        assert.doesNotMatch(res.body, /shop/);
      }
      const first = await get(ui.port, "/?token=tok");
      assert.equal(first.status, 303);
      assert.equal(first.headers.location, "/");
      const cookie = (first.headers["set-cookie"]?.[0] ?? "").split(";")[0] ?? "";
      assert.equal(cookie, `${TOKEN_COOKIE}=tok`);
      const page = await get(ui.port, "/", { cookie });
      assert.equal(page.status, 200);
      assert.match(page.body, /<script src="\/app.js" defer><\/script>/);
      assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
      assert.equal((await get(ui.port, "/app.css", { cookie })).body, "/* css */");
      const snap = JSON.parse((await get(ui.port, "/api/snapshot", { cookie })).body) as UiSnapshot;
      assert.deepEqual(
        snap.components.map((c) => c.key),
        ["a/shop/web"],
      );
      const detail = await get(ui.port, "/api/component?node=a&service=shop&component=web", {
        cookie,
      });
      assert.deepEqual(JSON.parse(detail.body), { logs: "hello\n", truncated: false, events: [] });
      assert.equal((await get(ui.port, "/api/component?node=a", { cookie })).status, 400);
      assert.equal((await get(ui.port, "/nope", { cookie })).status, 404);
    } finally {
      await ui.close();
    }
  });

  test("SSE: the snapshot at once, then only when it changed", async () => {
    const source = scriptedSource([node("a", [service("shop", [component({})])])]);
    const ui = await startUiServer({
      listen: { host: "127.0.0.1", port: 0, loopback: true },
      assets,
      source,
      componentDetail: () => Promise.reject(new Error("node a did not answer within 30 s")),
    });
    try {
      const host = `127.0.0.1:${ui.port}`;
      const events = readEvents(ui.port, 3, 3000, { host });
      await events.connected;
      // The same answers again (a poll that found nothing new): nothing sent.
      source.set([node("a", [service("shop", [component({})])])]);
      source.set([node("a", [service("shop", [component({ observedState: "removed" })])])]);
      source.set([node("a", [service("shop", [component({ observedState: "removed" })])])]);
      const got = await events.done;
      assert.deepEqual(
        got.map((s) => s.components.map((c) => `${c.key}=${c.observed}${c.drift ? " drift" : ""}`)),
        [["a/shop/web=running"], ["a/shop/web=removed drift"]],
      );
      const failed = await get(ui.port, "/api/component?node=a&service=shop&component=web", {
        host,
      });
      assert.equal(failed.status, 502);
      assert.deepEqual(JSON.parse(failed.body), { error: "node a did not answer within 30 s" });
      assert.equal((await get(ui.port, "/", { host: `evil.example:${ui.port}` })).status, 403);
    } finally {
      await ui.close();
    }
  });

  test("componentQuery", () => {
    assert.deepEqual(componentQuery(new URLSearchParams("node=a&service=s&component=c")), {
      node: "a",
      ref: { service: "s", component: "c" },
    });
    assert.deepEqual(componentQuery(new URLSearchParams("node=a&service=s")), {
      error: "needs node, service and component",
    });
  });
});

describe("the charts", () => {
  const frame = { t0: 0, t1: 100, vmax: 4, width: 200, height: 40 };

  test("a step line held to the right edge, and its area", () => {
    const series = [
      { t: 0, v: 2 },
      { t: 50, v: 4 },
    ];
    assert.equal(stepPath(series, frame), "M0 20 H100 V0 H200");
    assert.equal(stepArea(series, frame), "M0 20 H100 V0 H200 V40 H0 Z");
    assert.equal(stepPath([], frame), "");
    assert.equal(stepArea([], frame), "");
    // Out of frame: clamped to the edges.
    assert.equal(stepPath([{ t: -10, v: 9 }], frame), "M0 0 H200");
  });

  test("samples only when the value changes, at most MAX_SAMPLES", () => {
    let series = withSample([], { t: 1, v: 1 });
    series = withSample(series, { t: 2, v: 1 });
    assert.deepEqual(series, [{ t: 1, v: 1 }]);
    for (let i = 0; i < MAX_SAMPLES + 10; i++) series = withSample(series, { t: i, v: i });
    assert.equal(series.length, MAX_SAMPLES);
    assert.equal(series.at(-1)?.v, MAX_SAMPLES + 9);
  });

  test("the top leaves room above the largest value", () => {
    assert.equal(chartMax([]), 1);
    assert.equal(chartMax([{ t: 0, v: 0 }]), 1);
    assert.equal(chartMax([{ t: 0, v: 1 }]), 2);
    assert.equal(chartMax([{ t: 0, v: 8 }]), 10);
  });
});

describe("the poller", () => {
  const settings: PollerSettings = {
    intervalMs: 1000,
    slowEveryMs: 5000,
    callTimeoutMs: 2000,
    eventLimit: 7,
  };
  const resolved: ResolvedNode = { name: "a", address: "127.0.0.1:1", caCert: "", tokenPath: "" };

  /** A client whose answers the test sets; it records calls and closes. */
  function scriptedClient() {
    const calls: string[] = [];
    let closed = 0;
    let liveAnswer: () => Promise<LiveCheckResponse> = () => Promise.resolve(live([]));
    let routesAnswer: () => Promise<unknown> = () =>
      Promise.reject(new McpError("failed_precondition", "node a: no [proxy] configured"));
    const client = {
      name: "a",
      address: "127.0.0.1:1",
      call: (method: string, req: unknown, opts?: { timeoutMs?: number }) => {
        calls.push(`${method} ${JSON.stringify(req)} ${opts?.timeoutMs}`);
        switch (method) {
          case "liveCheck":
            return liveAnswer();
          case "nodeStatus":
            return Promise.resolve(nodeStatus);
          case "getServiceStatus":
            return Promise.reject(new McpError("runtime", "node a: podman is not answering"));
          case "listRoutes":
            return routesAnswer();
        }
        return Promise.reject(new Error(`unexpected ${method}`));
      },
      close: () => void closed++,
    };
    return {
      client: client as unknown as AgentClient,
      calls,
      closed: () => closed,
      setLive: (fn: () => Promise<LiveCheckResponse>) => (liveAnswer = fn),
      setRoutes: (fn: () => Promise<unknown>) => (routesAnswer = fn),
    };
  }

  /** A poller on a scripted client and a clock the test sets; counts dials and changes. */
  function scriptedPoller(startAt: number) {
    const scripted = scriptedClient();
    const clock = { now: startAt };
    let dials = 0;
    let changes = 0;
    const poller = new NodePoller(
      resolved,
      settings,
      { connect: () => (dials++, Promise.resolve(scripted.client)), now: () => clock.now },
      () => changes++,
    );
    return { scripted, clock, poller, dials: () => dials, changes: () => changes };
  }

  test("LiveCheck every poll; the rest on a change, else every slowEveryMs", async () => {
    const { scripted, clock, poller, dials, changes } = scriptedPoller(0);
    await poller.pollOnce();
    assert.deepEqual(scripted.calls, [
      "liveCheck {} 2000",
      "listRoutes {} 2000",
      "nodeStatus {} 2000",
      'getServiceStatus {"name":"","eventLimit":7} 2000',
    ]);
    assert.equal(changes(), 2, "after LiveCheck, and after the rest");
    const obs = poller.observation;
    assert.deepEqual(obs.routes, { noProxy: true });
    assert.equal(obs.status?.agentVersion, "0.3.0");
    assert.deepEqual(obs.problems, ["GetServiceStatus: podman is not answering"]);

    scripted.calls.length = 0;
    clock.now = 1000;
    await poller.pollOnce();
    assert.deepEqual(scripted.calls, ["liveCheck {} 2000"], "nothing changed: LiveCheck only");

    scripted.setLive(() => Promise.resolve(live([service("shop", [component({})])])));
    scripted.calls.length = 0;
    clock.now = 2000;
    await poller.pollOnce();
    assert.equal(scripted.calls.length, 4, "LiveCheck changed: everything");

    scripted.calls.length = 0;
    clock.now = 7000;
    await poller.pollOnce();
    assert.equal(scripted.calls.length, 4, "5 s since: everything");
    assert.equal(dials(), 1, "one connection kept");
  });

  test("a failed LiveCheck: unreachable since the first failure, the connection dropped and dialled again", async () => {
    const { scripted, clock, poller, dials } = scriptedPoller(10_000);
    await poller.pollOnce();
    scripted.setLive(() =>
      Promise.reject(new NodeNotAnsweringError("a", "127.0.0.1:1", "connection refused")),
    );
    clock.now = 11_000;
    await poller.pollOnce();
    clock.now = 12_000;
    await poller.pollOnce();
    assert.deepEqual(poller.observation.failure, {
      reason: "connection refused",
      since: new Date(11_000),
    });
    assert.equal(scripted.closed(), 2);
    assert.equal(dials(), 2, "dialled again after the failure");
    assert.ok(poller.observation.live, "the last answer is kept (the view leaves it out)");

    scripted.setLive(() => Promise.resolve(live([])));
    scripted.setRoutes(() => Promise.resolve({ routes: [] }));
    scripted.calls.length = 0;
    clock.now = 13_000;
    await poller.pollOnce();
    assert.equal(poller.observation.failure, undefined);
    assert.equal(scripted.calls.length, 4, "back: everything asked again");
    assert.equal(dials(), 3);
    assert.deepEqual(poller.observation.routes, { routes: [] });
  });

  test("a dial that fails (unreadable token file) is a failure too", async () => {
    const poller = new NodePoller(
      resolved,
      settings,
      {
        connect: () =>
          Promise.reject(
            new McpError("invalid_config", "node a: cannot read token file /x: ENOENT"),
          ),
        now: () => 5,
      },
      () => undefined,
    );
    await poller.pollOnce();
    assert.equal(poller.observation.failure?.reason, "cannot read token file /x: ENOENT");
  });
});

describe("the log tail", () => {
  test("kept up to the limit, then the stream is stopped", async () => {
    const sink = collectingSink(10);
    const stops: number[] = [];
    sink.onStop((code) => stops.push(code));
    await sink.write(Buffer.from("12345"));
    assert.deepEqual(stops, []);
    await sink.write(Buffer.from("6789abcdef"));
    assert.equal(sink.text(), "123456789a");
    assert.equal(sink.truncated, true);
    assert.deepEqual(stops, [0]);
  });
});
