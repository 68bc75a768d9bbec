/**
 * sync (diffService and SyncDesiredState), adopt and purge in the agent,
 * over a FakeRuntime, a real registry file and a real PortAllocator.
 * test/integration/sync-adopt-purge.test.ts covers the same against podman.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  adoptContainers,
  adoptedSpec,
  mappingOf,
  selectContainers,
} from "../../src/agent/operations/adopt.js";
import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { undeployService, stopService } from "../../src/agent/operations/lifecycle.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { purge, purgeVerdict } from "../../src/agent/operations/purge.js";
import {
  diffComponentSpec,
  diffService,
  summarize,
  syncDesiredState,
} from "../../src/agent/operations/sync.js";
import { ComponentSpec, HealthSpec, type ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import type { ContainerStatus } from "../../src/runtime/types.js";
import { McpError, type McpErrorCode } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import { FakeRuntime } from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const IMAGE = "localhost/mcp-httpenv:v1";
const IMAGE_V2 = "localhost/mcp-httpenv:v2";
const NODE = "local";

const dir = mkdtempSync(join(tmpdir(), "mcp-sy-unit-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function harness(): { ctx: AgentContext; runtime: FakeRuntime; registry: Registry } {
  n++;
  const registry = openRegistry(join(dir, `r-${n}.db`));
  registries.push(registry);
  const runtime = new FakeRuntime({ images: [IMAGE, IMAGE_V2] });
  const allocator = new PortAllocator({
    pool: [{ from: 21000, to: 21001 }],
    bindAddresses: ["127.0.0.1"],
    book: new RegistryPortBook(registry),
    probe: runtime.probe,
  });
  const ctx = createAgentContext({
    health: new ScriptedProber(),
    settings: {
      node: NODE,
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot: join(dir, `data-${n}`),
      agentVersion: "test",
      stopTimeoutSeconds: 0,
    },
    registry,
    runtime,
    allocator,
    logger: silentLogger(),
  });
  return { ctx, runtime, registry };
}

function component(name: string, fields: Partial<ComponentSpec> = {}): ComponentSpec {
  return ComponentSpec.fromPartial({
    name,
    image: IMAGE,
    routes: [{ name: "", port: 443, mode: "l7", hostname: "", protocol: "", proxyProtocol: false }],
    ...fields,
  });
}

function spec(name: string, components: ComponentSpec[], active?: boolean): ServiceSpec {
  return { name, node: NODE, active, comment: "", components };
}

async function rejectsWith(p: Promise<unknown>, code: McpErrorCode, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

// ------------------------------------------------------------------ diff

describe("diffService (pure)", () => {
  const web = component("web");

  test("a new service: every component added, desired from active", () => {
    const d = diffService({ components: [] }, spec("sy-a", [web, component("api")], false));
    assert.equal(d.added, true);
    assert.deepEqual(d.components, ["web", "api"]);
    assert.deepEqual(d.changes, [
      "service added (active = false)",
      `+ web: added (${IMAGE}, desired stopped)`,
      `+ api: added (${IMAGE}, desired stopped)`,
    ]);
    assert.equal(summarize(d), "added (2 components)");
  });

  test("identical: no changes; mode/protocol defaults compare equal", () => {
    const stored = component("web", {
      routes: [
        { name: "", port: 443, mode: "l7", hostname: "", protocol: "tcp", proxyProtocol: false },
      ],
    });
    const d = diffService(
      {
        service: { name: "sy-a", active: true, comment: "" },
        components: [{ name: "web", spec: stored, desiredState: "running" }],
      },
      spec("sy-a", [web]),
    );
    assert.deepEqual(d.changes, []);
    assert.deepEqual(d.components, []);
    assert.equal(d.serviceChanged, false);
    assert.equal(summarize(d), "unchanged");
  });

  test("a change of only the health check or the strategy is a change", () => {
    const d = diffService(
      {
        service: { name: "sy-a", active: true, comment: "" },
        components: [{ name: "web", spec: component("web"), desiredState: "running" }],
      },
      spec("sy-a", [
        component("web", {
          strategy: "stop-first",
          health: HealthSpec.fromPartial({ type: "http", path: "/up" }),
        }),
      ]),
    );
    assert.deepEqual(d.changes, ["web: strategy (none) → stop-first", "web: health check"]);
    assert.deepEqual(d.components, ["web"]);
  });

  test("changed fields by name, desired flip, extra registry components are not changes", () => {
    const d = diffService(
      {
        service: { name: "sy-a", active: true, comment: "" },
        components: [
          { name: "web", spec: component("web"), desiredState: "running" },
          { name: "old", spec: component("old"), desiredState: "running" },
        ],
      },
      spec("sy-a", [component("web", { image: IMAGE_V2, env: ["A=1"] })], false),
    );
    assert.deepEqual(d.changes, [
      "active true → false",
      `web: image ${IMAGE} → ${IMAGE_V2}`,
      "web: env +A",
      "web: desired running → stopped",
    ]);
    assert.deepEqual(d.components, ["web"]);
    assert.equal(d.serviceChanged, true);
    assert.equal(summarize(d), "4 changes");
  });

  test("component spec fields: lists, cmd, env by key only (values are not shown)", () => {
    const before = component("web", {
      ports: ["127.0.0.1:18080:8080"],
      cmd: ["sh", "-c", "x"],
      env: ["SECRET=old", "GONE=1", "SAME=1"],
      restart: "",
    });
    const after = component("web", {
      ports: [],
      volumes: ["/srv/a:/srv/a"],
      cmd: ["sh"],
      env: ["SECRET=new", "SAME=1", "NEW=2"],
      restart: "always",
    });
    const lines = diffComponentSpec(before, after);
    assert.deepEqual(lines, [
      "restart (none) → always",
      "ports 127.0.0.1:18080:8080 → (none)",
      "volumes (none) → /srv/a:/srv/a",
      'cmd ["sh","-c","x"] → ["sh"]',
      "env ~SECRET +NEW -GONE",
    ]);
    assert.ok(!lines.join(" ").includes("new"), "env values must not appear");
  });

  test("resources: memory, cpus and pids changes are changes", () => {
    const before = component("web", { memory: "", cpus: 0.5, pids: 64 });
    const after = component("web", { memory: "256m", cpus: 0, pids: 128 });
    assert.deepEqual(diffComponentSpec(before, after), [
      "memory (none) → 256m",
      "cpus 0.5 → (none)",
      "pids 64 → 128",
    ]);
    assert.deepEqual(diffComponentSpec(after, after), []);
  });

  test("routes: added, changed (host port kept), removed (released)", () => {
    const route = (name: string, port: number, mode = "l4") => ({
      name,
      port,
      mode,
      hostname: "",
      protocol: "",
      proxyProtocol: false,
    });
    const lines = diffComponentSpec(
      component("api", { routes: [route("rest", 8443), route("grpc", 9443)] }),
      component("api", { routes: [route("rest", 8443, "l7"), route("admin", 7000)] }),
    );
    assert.deepEqual(lines, [
      "route rest: mode l4 → l7 (host port kept)",
      "route admin added (port 7000 l4)",
      "route grpc removed (host port released)",
    ]);
  });
});

// ------------------------------------------------------------------ sync

describe("SyncDesiredState", () => {
  test("dry run writes nothing; sync records intent without running anything; then unchanged", async () => {
    const { ctx, runtime, registry } = harness();
    const s = spec("sy-a", [component("web"), component("api")]);
    const dry = await syncDesiredState(ctx, { services: [s], dryRun: true });
    assert.equal(dry[0]?.changed, true);
    assert.equal(registry.services.get("sy-a"), undefined, "dry run wrote the service");
    assert.equal(registry.events.list().length, 0);

    const real = await syncDesiredState(ctx, { services: [s], dryRun: false });
    assert.deepEqual(real, dry, "the real sync reports what the dry run predicted");
    assert.deepEqual(
      registry.components.list("sy-a").map((c) => [c.name, c.desiredState, c.observedState]),
      [
        ["web", "running", "unknown"],
        ["api", "running", "unknown"],
      ],
    );
    assert.deepEqual(runtime.runs, [], "sync must not create containers");
    assert.equal(registry.events.list({ service: "sy-a" })[0]?.kind, "sync");

    const again = await syncDesiredState(ctx, { services: [s], dryRun: true });
    assert.deepEqual(again, [{ name: "sy-a", changed: false, summary: "unchanged", changes: [] }]);
  });

  test("a route change keeps the allocated host port; sync never deletes; active=false does not stop", async () => {
    const { ctx, runtime, registry } = harness();
    const s = spec("sy-b", [component("web"), component("api")]);
    await deploy(ctx, { service: s, component: "" });
    const port = registry.routes.list({ service: "sy-b", component: "web" })[0]?.hostPort;
    assert.ok(port && port > 0);

    const changed = spec(
      "sy-b",
      [
        component("web", {
          routes: [
            { name: "", port: 8443, mode: "l4", hostname: "", protocol: "", proxyProtocol: false },
          ],
        }),
      ],
      false,
    );
    const [res] = await syncDesiredState(ctx, { services: [changed], dryRun: false });
    assert.deepEqual(res?.changes, [
      "active true → false",
      "web: route (unnamed): port 443 → 8443, mode l7 → l4 (host port kept)",
      "web: desired running → stopped",
    ]);
    const route = registry.routes.list({ service: "sy-b", component: "web" })[0];
    assert.equal(route?.port, 8443);
    assert.equal(route?.hostPort, port, "host port kept");
    assert.deepEqual(
      registry.components.list("sy-b").map((c) => c.name),
      ["web", "api"],
      "api (not in the request) must stay, in definition order",
    );
    assert.equal(runtime.containers.get("sy-b-web")?.state, "running", "sync must not stop");
    assert.equal(registry.components.get("sy-b", "web")?.observedState, "running");
  });

  test("a bad spec or a foreign node fails the whole request, nothing written", async () => {
    const { ctx, registry } = harness();
    const good = spec("sy-c", [component("web")]);
    const bad = spec("sy-d", [component("web", { image: "localhost/x:latest" })]);
    await rejectsWith(
      syncDesiredState(ctx, { services: [good, bad], dryRun: false }),
      "invalid_argument",
      /service sy-d: components\[0\]\.image/,
    );
    const foreign = { ...spec("sy-e", [component("web")]), node: "elsewhere" };
    await rejectsWith(
      syncDesiredState(ctx, { services: [good, foreign], dryRun: false }),
      "invalid_argument",
      /node "elsewhere"/,
    );
    await rejectsWith(
      syncDesiredState(ctx, { services: [good, good], dryRun: false }),
      "invalid_argument",
      /twice/,
    );
    assert.equal(registry.services.list().length, 0);
  });
});

// ------------------------------------------------------------------ adopt

function container(c: Partial<ContainerStatus> & { name: string }): ContainerStatus {
  return {
    id: `id-${c.name}`,
    image: IMAGE,
    state: "running",
    startedAt: new Date("2024-01-01T00:00:00Z"),
    labels: {},
    ports: [],
    ...c,
  };
}

describe("adopt (pure parts)", () => {
  test("labels first, then names against known services (longest match)", () => {
    const all = [
      container({ name: "mc" }),
      container({ name: "mc-proxy" }),
      container({ name: "mc-web" }),
      container({ name: "mc-proxy-admin" }),
      container({ name: "odd", labels: { "mcp.service": "mc", "mcp.component": "api" } }),
      container({ name: "mc-other", labels: { "mcp.service": "x", "mcp.component": "y" } }),
      container({
        name: "mc-foreign",
        labels: { "mcp.service": "mc", "mcp.component": "f", "mcp.node": "other" },
      }),
    ];
    const picked = (service: string, known: string[]) =>
      selectContainers(all, service, known, NODE).map(
        (c) => `${c.container.name}:${c.component}:${c.via}`,
      );
    assert.deepEqual(picked("mc", ["mc-proxy"]), [
      "odd:api:label",
      "mc:mc:name",
      "mc-web:web:name",
    ]);
    // Without mc-proxy known, its containers read as service mc.
    assert.deepEqual(picked("mc", []), [
      "odd:api:label",
      "mc:mc:name",
      "mc-proxy:proxy:name",
      "mc-proxy-admin:proxy-admin:name",
      "mc-web:web:name",
    ]);
    assert.deepEqual(picked("mc-proxy", ["mc"]), [
      "mc-proxy-admin:admin:name",
      "mc-proxy:mc-proxy:name",
    ]);
  });

  test("published ports become explicit mappings the validator accepts", () => {
    assert.equal(mappingOf("127.0.0.1:18080:8080"), "127.0.0.1:18080:8080");
    assert.equal(mappingOf("18080:8080/udp"), "18080:8080/udp");
    assert.equal(mappingOf("::1:18080:8080"), "[::1]:18080:8080");
    assert.equal(mappingOf("garbage"), undefined);
    const s = adoptedSpec(
      container({ name: "x", ports: ["127.0.0.1:18080:8080", "127.0.0.1:18080:8080", "bad"] }),
      "web",
    );
    assert.deepEqual(s.ports, ["127.0.0.1:18080:8080"]);
    assert.equal(s.image, IMAGE);
    assert.deepEqual([s.env, s.volumes, s.cmd, s.routes], [[], [], [], []]);
  });
});

describe("AdoptContainers", () => {
  test("adopts by name with image, ports, state; skips the managed; ports are then held", async () => {
    const { ctx, runtime, registry } = harness();
    runtime.addContainer({ name: "ad-x-web", image: IMAGE, ports: ["127.0.0.1:21000:8080"] });
    runtime.addContainer({ name: "ad-x-db", image: IMAGE_V2, state: "exited" });
    const results = await adoptContainers(ctx, "ad-x");
    assert.deepEqual(
      results.map((r) => [r.container, r.component, r.outcome, r.success]),
      [
        ["ad-x-db", "db", "adopted", true],
        ["ad-x-web", "web", "adopted", true],
      ],
    );
    const web = registry.components.get("ad-x", "web");
    assert.deepEqual(
      [web?.spec.ports, web?.desiredState, web?.observedState, web?.containerId],
      [["127.0.0.1:21000:8080"], "running", "running", runtime.containers.get("ad-x-web")?.id],
    );
    const db = registry.components.get("ad-x", "db");
    assert.deepEqual(
      [db?.image, db?.desiredState, db?.observedState],
      [IMAGE_V2, "stopped", "exited"],
    );
    assert.equal(registry.services.get("ad-x")?.active, true);
    assert.deepEqual(runtime.runs, []);

    const again = await adoptContainers(ctx, "ad-x");
    assert.deepEqual(
      again.map((r) => [r.outcome, r.success]),
      [
        ["skipped", true],
        ["skipped", true],
      ],
    );

    // The pool is 21000-21001 and 21000 is adopted: even with the container
    // stopped (the OS would let a probe bind it) a deploy must get 21001.
    runtime.setState("ad-x-web", "exited");
    const [deployed] = await deploy(ctx, {
      service: spec("ad-y", [component("web")]),
      component: "",
    });
    assert.equal(deployed?.success, true, deployed?.error);
    assert.equal(deployed?.routes[0]?.hostPort, 21001);
  });

  test("no containers, a bad name, a port held by another component", async () => {
    const { ctx, runtime } = harness();
    await rejectsWith(
      adoptContainers(ctx, "ad-none"),
      "not_found",
      /no containers of service "ad-none"/,
    );
    await rejectsWith(adoptContainers(ctx, "Bad_Name"), "invalid_argument");
    await deploy(ctx, { service: spec("ad-z", [component("web")]), component: "" });
    const held = ctx.registry.routes.list({ service: "ad-z" })[0]?.hostPort ?? 0;
    runtime.addContainer({ name: "ad-q-web", image: IMAGE, ports: [`127.0.0.1:${held}:80`] });
    runtime.addContainer({ name: "ad-q-Bad", image: IMAGE });
    const results = await adoptContainers(ctx, "ad-q");
    assert.deepEqual(
      results.map((r) => [r.component, r.outcome, r.success]),
      [
        ["Bad", "error", false],
        ["web", "error", false],
      ],
    );
    assert.match(results[1]?.error ?? "", new RegExp(`host port ${held} is held by ad-z/web`));
    assert.equal(ctx.registry.services.get("ad-q"), undefined, "nothing adopted, no service row");
  });
});

// ------------------------------------------------------------------ purge

describe("purge", () => {
  test("verdicts: defined, no container, died, parked by mcp stop, live", () => {
    const row = (desiredState: "running" | "stopped") => ({
      service: "s",
      name: "c",
      desiredState,
    });
    const none = new Set<string>();
    assert.deepEqual(purgeVerdict(row("running"), "removed", new Set(["s/c"])), {
      purge: false,
      refused: false,
      reason: "still defined locally",
    });
    assert.equal(purgeVerdict(row("stopped"), "removed", none).purge, true);
    assert.equal(purgeVerdict(row("running"), "unknown", none).purge, true);
    assert.equal(purgeVerdict(row("running"), "exited", none).purge, true);
    const parked = purgeVerdict(row("stopped"), "exited", none);
    assert.equal(parked.purge, false);
    assert.match(parked.reason, /stopped/);
    assert.deepEqual(purgeVerdict(row("running"), "running", none), {
      purge: false,
      refused: true,
      reason: "container is running",
    });
    assert.equal(purgeVerdict(row("stopped"), "paused", none).purge, false);
  });

  test("refuses running, purges undeployed & undefined, dry run writes nothing, empty service goes", async () => {
    const { ctx, registry } = harness();
    await deploy(ctx, {
      service: spec("pu-a", [component("web"), component("api")]),
      component: "",
    });
    const req = (over: Partial<Parameters<typeof purge>[1]> = {}) => ({
      service: "pu-a",
      component: "",
      dryRun: false,
      definedComponents: [],
      ...over,
    });
    const running = await purge(ctx, req());
    assert.deepEqual(
      running.map((r) => [r.component, r.purged, r.reason]),
      [
        ["web", false, "container is running"],
        ["api", false, "container is running"],
      ],
    );
    await undeployService(ctx, "pu-a");
    const heldBefore = registry.routes.heldHostPorts().length;
    const dry = await purge(ctx, req({ dryRun: true, definedComponents: ["pu-a/api"] }));
    assert.deepEqual(
      dry.map((r) => [r.component, r.purged]),
      [
        ["web", true],
        ["api", false],
      ],
    );
    assert.equal(registry.components.list("pu-a").length, 2, "dry run deleted something");
    assert.equal(registry.routes.heldHostPorts().length, heldBefore);

    const one = await purge(ctx, req({ component: "web", definedComponents: ["pu-a/api"] }));
    assert.deepEqual(
      one.map((r) => [r.component, r.purged]),
      [["web", true]],
    );
    assert.deepEqual(
      registry.components.list("pu-a").map((c) => c.name),
      ["api"],
    );
    assert.ok(registry.services.get("pu-a"));

    const last = await purge(ctx, req());
    assert.deepEqual(
      last.map((r) => [r.component, r.purged]),
      [
        ["api", true],
        ["", true],
      ],
    );
    assert.equal(registry.services.get("pu-a"), undefined, "emptied service row must go");
    assert.ok(registry.events.list({ service: "pu-a" }).some((e) => e.kind === "purge"));
  });

  test("a component stopped with mcp stop is refused; scope and argument errors", async () => {
    const { ctx } = harness();
    await deploy(ctx, { service: spec("pu-b", [component("web")]), component: "" });
    await stopService(ctx, "pu-b");
    const [r] = await purge(ctx, {
      service: "",
      component: "",
      dryRun: false,
      definedComponents: [],
    });
    assert.deepEqual([r?.service, r?.component, r?.purged], ["pu-b", "web", false]);
    assert.match(r?.reason ?? "", /stopped/);
    await rejectsWith(
      purge(ctx, { service: "pu-none", component: "", dryRun: false, definedComponents: [] }),
      "not_found",
      /unknown service "pu-none"/,
    );
    await rejectsWith(
      purge(ctx, { service: "pu-b", component: "nope", dryRun: false, definedComponents: [] }),
      "not_found",
      /pu-b\/nope/,
    );
    await rejectsWith(
      purge(ctx, { service: "", component: "web", dryRun: false, definedComponents: [] }),
      "invalid_argument",
    );
  });
});
