/**
 * The agent's logic (deploy, lifecycle, observe, status, node status, the RPC
 * adapters) over a FakeRuntime, a real registry file and a real PortAllocator.
 * No podman: test/integration covers the same features against the real thing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { Metadata, status as grpcStatus } from "@grpc/grpc-js";
import type { ServerErrorResponse, ServerUnaryCall, handleUnaryCall } from "@grpc/grpc-js";

import { containerSpecFor, routeKey } from "../../src/agent/operations/container-spec.js";
import {
  createAgentContext,
  type AgentContext,
  type AgentSettings,
} from "../../src/agent/context.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { createHandlers } from "../../src/agent/server/handlers.js";
import { ImageCache, isMutableReference } from "../../src/agent/operations/images.js";
import {
  restartService,
  startService,
  stopService,
  undeployService,
} from "../../src/agent/operations/lifecycle.js";
import { nodeStatus } from "../../src/agent/server/node-status.js";
import { matchContainers, refreshObserved } from "../../src/agent/observed/refresh.js";
import { isDrift } from "../../src/protocol/drift.js";
import { defaultPolicy } from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator, describePool, type PortRange } from "../../src/agent/ports/allocator.js";
import { toServiceError, unary } from "../../src/agent/server/rpc.js";
import { ERROR_CODE_KEY } from "../../src/protocol/wire.js";
import { driftOf, serviceInfos } from "../../src/agent/messages.js";
import {
  ComponentSpec,
  ComponentResult,
  type DeployRequest,
  type ServiceSpec,
} from "../../src/gen/mcp/v1/mcp.js";
import {
  NO_HEALTH,
  openRegistry,
  type ComponentRow,
  type Registry,
} from "../../src/registry/index.js";
import { containerName, mcpLabels } from "../../src/runtime/names.js";
import type { ContainerSpec, ContainerStatus } from "../../src/runtime/types.js";
import { BUILTIN_LIMITS, parseServiceDef, toServiceSpec } from "../../src/servicedef/index.js";
import { McpError, type McpErrorCode } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import {
  FakeRuntime,
  apiError,
  imageNotKnown,
  noAnswer,
  pullRefused,
  runFailed,
} from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "../../examples");
const IMAGE = "localhost/mcp-httpenv:v1";
const IMAGE_V2 = "localhost/mcp-httpenv:v2";
const NODE = "local";
const POOL: PortRange[] = [{ from: 20000, to: 20099 }];

const dir = mkdtempSync(join(tmpdir(), "mcp-agent-unit-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ harness

interface Harness {
  ctx: AgentContext;
  runtime: FakeRuntime;
  registry: Registry;
  allocator: PortAllocator;
}

interface HarnessOptions {
  pool?: PortRange[];
  /** Default: the fake runtime's OS-like probe (running containers' ports are taken). */
  probe?: (port: number) => Promise<boolean>;
  images?: string[];
  allowLatest?: boolean;
  /** [policy] volume_roots; default the multi example's /srv/multi (data_root is a temp dir here). */
  volumeRoots?: string[];
  /** Merged into the agent's settings (limits, logMaxSize). */
  settings?: Partial<AgentSettings>;
}

let harnessCount = 0;

/** A fresh agent: real registry file, real allocator, fake runtime, silent logs. */
function harness(opts: HarnessOptions = {}): Harness {
  const n = ++harnessCount;
  const registry = openRegistry(join(dir, `registry-${n}.db`));
  registries.push(registry);
  const runtime = new FakeRuntime({ images: opts.images ?? [IMAGE] });
  const allocator = new PortAllocator({
    pool: opts.pool ?? POOL,
    bindAddresses: ["127.0.0.1"],
    book: new RegistryPortBook(registry),
    probe: opts.probe ?? runtime.probe,
  });
  const ctx = createAgentContext({
    settings: {
      node: NODE,
      bindAddress: "127.0.0.1",
      allowLatest: opts.allowLatest ?? false,
      dataRoot: join(dir, `data-${n}`),
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      policy: { ...defaultPolicy(["127.0.0.1"]), volumeRoots: opts.volumeRoots ?? ["/srv/multi"] },
      ...opts.settings,
    },
    registry,
    runtime,
    allocator,
    logger: silentLogger(),
    health: new ScriptedProber(),
  });
  return { ctx, runtime, registry, allocator };
}

/** An example definition, as the CLI would send it. */
function example(name: "hello" | "multi" | "legacy"): ServiceSpec {
  const file = join(EXAMPLES, `${name}.toml`);
  return toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file));
}

/** A one-component service with one unnamed route. */
function simple(name: string, image = IMAGE): ServiceSpec {
  return {
    name,
    node: NODE,
    active: undefined,
    comment: "",
    components: [
      ComponentSpec.fromPartial({
        name: "web",
        image,
        routes: [{ name: "", port: 443, mode: "l7", hostname: "", protocol: "" }],
      }),
    ],
  };
}

function withImage(spec: ServiceSpec, image: string): ServiceSpec {
  return { ...spec, components: spec.components.map((c) => ({ ...c, image })) };
}

function request(spec: ServiceSpec, component = ""): DeployRequest {
  return { service: spec, component };
}

/** Deploys and asserts every component succeeded. */
async function deployOk(
  ctx: AgentContext,
  spec: ServiceSpec,
  component = "",
): Promise<ComponentResult[]> {
  const results = await deploy(ctx, request(spec, component));
  for (const r of results) assert.equal(r.success, true, `${r.name}: ${r.error}`);
  return results;
}

/** `component/route` → recorded host port, for one service. */
function hostPorts(registry: Registry, service: string): Record<string, number> {
  return Object.fromEntries(
    registry.routes.list({ service }).map((r) => [`${r.component}/${r.name}`, r.hostPort]),
  );
}

function inPool(port: number, pool: PortRange[] = POOL): boolean {
  return pool.some((r) => port >= r.from && port <= r.to);
}

/** The host port of a `-p <ip>:H:H` mapping. */
function publishedPort(mapping: string): number {
  const parts = mapping.split("/")[0]?.split(":") ?? [];
  return Number(parts[parts.length - 2]);
}

/** The single route port of a ContainerSpec. */
function routePortOf(spec: ContainerSpec | undefined): number {
  assert.ok(spec, "no spec");
  assert.equal(spec.ports.length, 1, `expected one -p in ${JSON.stringify(spec.ports)}`);
  return publishedPort(spec.ports[0] ?? "");
}

function eventKinds(registry: Registry, service: string): string[] {
  return registry.events
    .list({ service })
    .map((e) => e.kind)
    .reverse();
}

async function rejectsWith(p: Promise<unknown>, code: McpErrorCode, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof McpError, `not an McpError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** The ContainerSpec of `service`'s `component` on IMAGE and NODE: `fields`, nothing else set. */
function runSpec(
  service: string,
  component: string,
  fields: Partial<ContainerSpec>,
): ContainerSpec {
  return {
    name: containerName(service, component),
    image: IMAGE,
    labels: mcpLabels(service, component, NODE),
    ports: [],
    volumes: [],
    env: [],
    cmd: [],
    ...fields,
  };
}

// ------------------------------------------------------------------ deploy

describe("deploy: the examples", () => {
  test("hello: one unnamed route → -p bind:H:H and PORT=H, labels, recorded", async () => {
    const { ctx, runtime, registry } = harness();
    const results = await deployOk(ctx, example("hello"));
    const h = hostPorts(registry, "hello")["web/"];
    assert.ok(h !== undefined && inPool(h), `host port ${h} not in the pool`);
    assert.deepEqual(
      runtime.lastRun("hello-web"),
      runSpec("hello", "web", { ports: [`127.0.0.1:${h}:${h}`], env: [`PORT=${h}`] }),
    );
    assert.deepEqual(results, [
      ComponentResult.fromPartial({
        name: "web",
        success: true,
        error: "",
        container: "hello-web",
        routes: [{ name: "", port: 443, mode: "l7", hostname: "", protocol: "tcp", hostPort: h }],
        outcome: "ok",
      }),
    ]);
    assert.deepEqual(
      registry.services.list().map((s) => [s.name, s.active]),
      [["hello", true]],
    );
    const row = registry.components.get("hello", "web");
    assert.equal(row?.desiredState, "running");
    assert.equal(row?.observedState, "running");
    assert.equal(row?.containerId, runtime.containers.get("hello-web")?.id);
    assert.equal(row?.version, "v1");
    assert.ok(row?.startedAt, "startedAt recorded");
    assert.deepEqual(eventKinds(registry, "hello"), ["deploy"]);
    assert.match(registry.events.list({ service: "hello" })[0]?.message ?? "", /PORT=\d+/);
  });

  test("multi: named routes → PORT_REST/PORT_GRPC after the user's env; web gets PORT", async () => {
    const { ctx, runtime, registry } = harness();
    const results = await deployOk(ctx, example("multi"));
    assert.deepEqual(
      results.map((r) => r.name),
      ["api", "web"],
    );
    const ports = hostPorts(registry, "multi");
    const rest = ports["api/rest"];
    const grpc = ports["api/grpc"];
    const web = ports["web/"];
    assert.ok(rest && grpc && web);
    assert.equal(new Set([rest, grpc, web]).size, 3, "distinct host ports");
    for (const p of [rest, grpc, web]) assert.ok(inPool(p), `${p} outside the pool`);
    assert.deepEqual(
      runtime.lastRun("multi-api"),
      runSpec("multi", "api", {
        ports: [`127.0.0.1:${rest}:${rest}`, `127.0.0.1:${grpc}:${grpc}`],
        volumes: ["/srv/multi:/srv/multi"],
        env: ["GREETING=hi", "LOG_LEVEL=debug", `PORT_REST=${rest}`, `PORT_GRPC=${grpc}`],
      }),
    );
    assert.deepEqual(
      runtime.lastRun("multi-web"),
      runSpec("multi", "web", { ports: [`127.0.0.1:${web}:${web}`], env: [`PORT=${web}`] }),
    );
    // The results carry the routes with their host ports, in definition order.
    assert.deepEqual(
      results.map((r) => r.routes.map((x) => [x.name, x.port, x.mode, x.hostname, x.hostPort])),
      [
        [
          ["rest", 8443, "l4", "", rest],
          ["grpc", 9443, "l4", "", grpc],
        ],
        [["", 443, "l7", "multi.example.test", web]],
      ],
    );
  });

  test("legacy: explicit mapping unchanged, no route env; its 18080 is never a route's port", async () => {
    // A pool of five ports around 18080 and a probe that says everything is
    // free: only the registry's book can keep the four routes off 18080.
    const pool = [{ from: 18078, to: 18082 }];
    const { ctx, runtime, registry } = harness({ pool, probe: () => Promise.resolve(true) });
    await deployOk(ctx, example("legacy"));
    assert.deepEqual(
      runtime.lastRun("legacy"),
      runSpec("legacy", "legacy", {
        network: "podman",
        restart: "unless-stopped",
        ports: ["127.0.0.1:18080:8080"],
        env: ["PORT=8080"],
      }),
    );
    assert.deepEqual(registry.routes.list({ service: "legacy" }), []);

    await deployOk(ctx, example("hello"));
    await deployOk(ctx, example("multi"));
    const routePorts = registry.routes.list().map((r) => r.hostPort);
    assert.deepEqual(
      routePorts.sort((a, b) => a - b),
      [18078, 18079, 18081, 18082],
    );
    // Never even tried: no run was refused for the port (which the fake, like
    // podman, would report as in use), and 18080 is in no route's -p or env.
    assert.deepEqual(
      runtime.runs.map((r) => r.name),
      ["legacy", "hello-web", "multi-api", "multi-web"],
    );
    for (const spec of runtime.runs.slice(1)) {
      assert.ok(!JSON.stringify(spec).includes("18080"), JSON.stringify(spec));
    }
    // And a fifth route finds the pool full instead of taking 18080.
    const results = await deploy(ctx, request(simple("extra")));
    assert.equal(results[0]?.success, false);
    assert.match(
      results[0]?.error ?? "",
      /^allocate ports: no free tcp port for extra\/web\/ in 18078-18082/,
    );
    assert.equal(runtime.runs.length, 4, "no container for the fifth");
    assert.equal(registry.services.get("extra"), undefined, "failed first deploy leaves no rows");
    assert.equal(runtime.containers.has("extra-web"), false);
  });

  test("all three examples on one node: distinct host ports inside the pool", async () => {
    const { ctx, registry, runtime } = harness();
    for (const name of ["legacy", "hello", "multi"] as const) await deployOk(ctx, example(name));
    const held = registry.routes.heldHostPorts();
    assert.equal(held.length, 4);
    assert.equal(new Set(held.map((h) => h.port)).size, 4);
    for (const h of held) assert.ok(inPool(h.port), `${h.port} outside the pool`);
    assert.deepEqual([...runtime.containers.keys()].sort(), [
      "hello-web",
      "legacy",
      "multi-api",
      "multi-web",
    ]);
    // Every container carries the labels adoption and repair rely on.
    for (const c of runtime.containers.values()) {
      assert.equal(c.labels["mcp.node"], NODE);
      assert.ok(c.labels["mcp.service"] && c.labels["mcp.component"]);
    }
  });

  test("containerSpecFor: udp routes, IPv6 bind, user/network/restart copied, missing port refused", () => {
    const component = ComponentSpec.fromPartial({
      name: "dns",
      image: IMAGE,
      user: "1000:1000",
      network: "mcpnet",
      restart: "always",
      cmd: ["serve", "--udp"],
      env: ["A=1"],
      routes: [{ name: "dns", port: 53, mode: "l4", hostname: "", protocol: "udp" }],
    });
    const spec = containerSpecFor(
      { node: "n1", service: "resolver", bindAddress: "::1" },
      component,
      new Map([["dns", 20053]]),
    );
    assert.deepEqual(spec, {
      name: "resolver-dns",
      image: IMAGE,
      network: "mcpnet",
      user: "1000:1000",
      restart: "always",
      labels: { "mcp.component": "dns", "mcp.node": "n1", "mcp.service": "resolver" },
      ports: ["[::1]:20053:20053/udp"],
      volumes: [],
      env: ["A=1", "PORT_DNS=20053"],
      cmd: ["serve", "--udp"],
    });
    assert.throws(
      () =>
        containerSpecFor(
          { node: "n1", service: "resolver", bindAddress: "" },
          component,
          new Map(),
        ),
      /no host port allocated for route "dns"/,
    );
    assert.equal(routeKey("a", "b", ""), "a/b/");
  });
});

describe("deploy: resources, log size, the agent's limits", () => {
  test("containerSpecFor copies memory/cpus/pids and the log size cap", () => {
    const component = ComponentSpec.fromPartial({
      name: "web",
      image: IMAGE,
      memory: "64m",
      cpus: 1.5,
      pids: 32,
    });
    const target = { node: "n1", service: "res", bindAddress: "127.0.0.1", logMaxSize: "2m" };
    const spec = containerSpecFor(target, component, new Map());
    assert.deepEqual([spec.memory, spec.cpus, spec.pids, spec.logMaxSize], ["64m", 1.5, 32, "2m"]);
    const plain = containerSpecFor(
      { node: "n1", service: "res", bindAddress: "127.0.0.1" },
      ComponentSpec.fromPartial({ name: "web", image: IMAGE }),
      new Map(),
    );
    assert.deepEqual(
      ["memory", "cpus", "pids", "logMaxSize"].filter((k) => k in plain),
      [],
    );
  });

  test("every run gets the agent's log size cap and the component's resources", async () => {
    const { ctx, runtime } = harness({ settings: { logMaxSize: "5m" } });
    const spec = simple("res");
    Object.assign(spec.components[0] ?? {}, { memory: "128m", cpus: 0.25, pids: 64 });
    await deployOk(ctx, spec);
    const run = runtime.lastRun("res-web");
    assert.deepEqual(
      [run?.memory, run?.cpus, run?.pids, run?.logMaxSize],
      ["128m", 0.25, 64, "5m"],
    );
  });

  test("a spec over the agent's stricter limits is refused with the field path", async () => {
    const limits = { ...BUILTIN_LIMITS, maxRoutesPerComponent: 1, maxCommentBytes: 2 };
    const { ctx, registry } = harness({ settings: { limits } });
    const spec = example("multi");
    spec.comment = "long";
    await rejectsWith(
      deploy(ctx, request(spec)),
      "invalid_argument",
      new RegExp(
        [
          '^service multi: comment: expected at most 2 bytes, got "long" \\(4 bytes\\)',
          "service multi: components\\[0\\]\\.routes: expected at most 1 routes, got 2$",
        ].join("\n"),
      ),
    );
    assert.equal(registry.services.get("multi"), undefined);
    await deployOk(ctx, example("hello"));
  });

  test("an unvalidated name or component in a refusal is cut short", async () => {
    const { ctx } = harness();
    const huge = simple("x".repeat(100_000));
    await rejectsWith(deploy(ctx, request(huge)), "invalid_argument");
    const err = await deploy(ctx, request(huge)).catch((e: unknown) => e as Error);
    assert.ok(err instanceof Error);
    assert.ok(err.message.length < 400, err.message.slice(0, 500));
    assert.match(err.message, /^service "x{60}"… \(100000 bytes\): name: /);
    const missing = await deploy(ctx, request(simple("ok"), "c".repeat(100_000))).catch(
      (e: unknown) => e as Error,
    );
    assert.ok(missing instanceof McpError && missing.code === "not_found");
    assert.ok(missing.message.length < 200, missing.message.slice(0, 300));
  });
});

describe("deploy: volumes", () => {
  test("bind-mount sources inside the service's data dir are created, others are not", async () => {
    const data = join(dir, `data-${harnessCount + 1}`, "files");
    // The two outside ones are allowed by the policy, but are not the agent's to create.
    const { ctx, runtime } = harness({ volumeRoots: [`${data}-other`, join(dir, "outside")] });
    assert.equal(join(ctx.settings.dataRoot, "files"), data);
    const spec = simple("files");
    const web = spec.components[0];
    assert.ok(web);
    web.volumes = [
      `${data}/state:/srv/state`,
      // A sibling whose name merely starts with the service's (validation
      // already refuses `..`, so this is the way out to test).
      `${data}-other/x:/srv/other`,
      `${join(dir, "outside")}:/srv/outside:ro`,
    ];
    await deployOk(ctx, spec);
    assert.ok(existsSync(join(data, "state")));
    assert.equal(existsSync(`${data}-other`), false, "a prefix is not the directory");
    assert.equal(existsSync(join(dir, "outside")), false);
    // The -v values go to podman verbatim.
    assert.deepEqual(runtime.runs[0]?.volumes, web.volumes);
  });
});

/** What podman is asked on a redeploy of a running component, per strategy (steps/plan.ts). */
function redeployOps(container: string, strategy: "start-first" | "stop-first"): string[] {
  const trial = [`run ${container}.next`, `remove ${container}.next`];
  return [
    `inspect ${container}`,
    ...(strategy === "start-first" ? trial : []),
    `rename ${container}>${container}.prev`,
    `stop ${container}.prev`,
    `create ${container}`,
    `start ${container}`,
    `remove ${container}.prev`,
  ];
}

describe("deploy: stable ports", () => {
  test("redeploy keeps every host port: api stop-first (a volume), web start-first", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    const before = hostPorts(registry, "multi");
    const idBefore = runtime.containers.get("multi-api")?.id;
    runtime.clearCalls();
    await deployOk(ctx, example("multi"));
    assert.deepEqual(hostPorts(registry, "multi"), before);
    // The hot path: no image exists / pull, no list.
    assert.deepEqual(runtime.ops(), [
      ...redeployOps("multi-api", "stop-first"),
      ...redeployOps("multi-web", "start-first"),
    ]);
    assert.notEqual(runtime.containers.get("multi-api")?.id, idBefore, "a new container");
    assert.equal(
      registry.components.get("multi", "api")?.containerId,
      runtime.containers.get("multi-api")?.id,
    );
  });

  test("redeploy moves a route off its recorded port when something else took it", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const old = hostPorts(registry, "hello")["web/"];
    assert.ok(old);
    runtime.hostBusy.add(old); // another process grabbed it meanwhile
    await deployOk(ctx, example("hello"));
    const now = hostPorts(registry, "hello")["web/"];
    assert.ok(now && now !== old && inPool(now));
    assert.equal(routePortOf(runtime.runs.at(-1)), now);
  });

  test("a route renamed on redeploy loses its old port; kept routes keep theirs", async () => {
    const { ctx, registry } = harness();
    await deployOk(ctx, example("multi"));
    const before = hostPorts(registry, "multi");
    const spec = example("multi");
    const api = spec.components[0];
    assert.ok(api?.routes[1]);
    api.routes[1].name = "admin";
    api.env = [...api.env];
    await deployOk(ctx, spec);
    const after = hostPorts(registry, "multi");
    assert.equal(after["api/rest"], before["api/rest"]);
    assert.equal(after["web/"], before["web/"]);
    assert.equal(after["api/grpc"], undefined);
    assert.ok(after["api/admin"] && inPool(after["api/admin"]));
  });

  test("stop then start keeps ports; start recreates a missing container on the same ports", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    const ports = hostPorts(registry, "multi");

    const stopped = await stopService(ctx, "multi");
    assert.deepEqual(
      stopped.map((r) => [r.name, r.success]),
      [
        ["api", true],
        ["web", true],
      ],
    );
    assert.equal(runtime.containers.get("multi-api")?.state, "exited");
    assert.equal(registry.services.get("multi")?.active, false);
    for (const c of registry.components.list("multi")) {
      assert.equal(c.desiredState, "stopped");
      assert.equal(c.observedState, "exited");
    }
    assert.deepEqual(hostPorts(registry, "multi"), ports, "stop keeps ports");

    runtime.clearCalls();
    const started = await startService(ctx, "multi");
    assert.ok(started.every((r) => r.success));
    assert.deepEqual(runtime.ops(), [
      "inspect multi-api",
      "start multi-api",
      "inspect multi-web",
      "start multi-web",
    ]);
    assert.deepEqual(hostPorts(registry, "multi"), ports, "start keeps ports");
    assert.equal(registry.services.get("multi")?.active, true);
    for (const c of registry.components.list("multi")) {
      assert.equal(c.desiredState, "running");
      assert.equal(c.observedState, "running");
    }
    // Results of start carry the routes with their host ports.
    assert.equal(started[1]?.routes[0]?.hostPort, ports["web/"]);

    // Removed by hand while stopped: start recreates it from the stored spec.
    await stopService(ctx, "multi");
    runtime.containers.delete("multi-web");
    runtime.clearCalls();
    const again = await startService(ctx, "multi");
    assert.ok(
      again.every((r) => r.success),
      JSON.stringify(again),
    );
    assert.deepEqual(runtime.ops(), [
      "inspect multi-api",
      "start multi-api",
      "inspect multi-web",
      "inspect multi-web",
      "create multi-web",
      "start multi-web",
    ]);
    assert.equal(routePortOf(runtime.runs.at(-1)), ports["web/"]);
    assert.deepEqual(hostPorts(registry, "multi"), ports);
    assert.equal(registry.components.get("multi", "web")?.observedState, "running");
    assert.equal(
      registry.components.get("multi", "web")?.containerId,
      runtime.containers.get("multi-web")?.id,
    );
  });

  test("start after the port was taken while stopped: recreated on another port", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const old = hostPorts(registry, "hello")["web/"];
    assert.ok(old);
    await stopService(ctx, "hello");
    runtime.hostBusy.add(old); // something grabbed it while the container was stopped
    runtime.clearCalls();
    const results = await startService(ctx, "hello");
    assert.equal(results[0]?.success, true, results[0]?.error);
    // The stopped container is set aside, not removed, until the new one runs.
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      "start hello-web",
      "inspect hello-web",
      "rename hello-web>hello-web.prev",
      "create hello-web",
      "start hello-web",
      "remove hello-web.prev",
    ]);
    const now = hostPorts(registry, "hello")["web/"];
    assert.ok(now && now !== old && inPool(now));
    assert.equal(results[0]?.routes[0]?.hostPort, now);
    assert.equal(routePortOf(runtime.runs.at(-1)), now);
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.equal(registry.components.get("hello", "web")?.observedState, "running");
  });

  test("restart of a stopped container whose port was taken: recreated on another port", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const old = hostPorts(registry, "hello")["web/"];
    assert.ok(old);
    runtime.setState("hello-web", "exited");
    runtime.hostBusy.add(old);
    runtime.clearCalls();
    const results = await restartService(ctx, "hello");
    assert.equal(results[0]?.success, true, results[0]?.error);
    assert.deepEqual(runtime.ops(), [
      "restart hello-web",
      "inspect hello-web",
      "rename hello-web>hello-web.prev",
      "create hello-web",
      "start hello-web",
      "remove hello-web.prev",
    ]);
    const now = hostPorts(registry, "hello")["web/"];
    assert.ok(now && now !== old);
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
  });

  test("restart: in place when the container exists, recreated when gone; desired unchanged", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const port = hostPorts(registry, "hello")["web/"];
    runtime.clearCalls();
    assert.ok((await restartService(ctx, "hello")).every((r) => r.success));
    assert.deepEqual(runtime.ops(), ["restart hello-web"]);

    runtime.containers.delete("hello-web");
    runtime.clearCalls();
    assert.ok((await restartService(ctx, "hello")).every((r) => r.success));
    assert.deepEqual(runtime.ops(), [
      "restart hello-web",
      "inspect hello-web",
      "create hello-web",
      "start hello-web",
    ]);
    assert.equal(routePortOf(runtime.runs.at(-1)), port);
    assert.equal(registry.components.get("hello", "web")?.desiredState, "running");
    assert.deepEqual(eventKinds(registry, "hello"), ["deploy", "restart", "restart"]);
  });
});

describe("undeploy and lifecycle errors", () => {
  test("undeploy clears host ports, desired=stopped, observed=removed; a second one is harmless", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    await deployOk(ctx, example("hello"));
    assert.ok(registry.components.get("multi", "api")?.deployedAt, "deploy records deployed_at");
    const results = await undeployService(ctx, "multi");
    assert.ok(results.every((r) => r.success));
    assert.deepEqual(
      results.map((r) => r.routes.map((x) => x.hostPort)),
      [[0, 0], [0]],
    );
    assert.equal(runtime.containers.has("multi-api"), false);
    assert.equal(runtime.containers.has("multi-web"), false);
    assert.ok(runtime.containers.has("hello-web"), "other services untouched");
    assert.deepEqual(Object.values(hostPorts(registry, "multi")), [0, 0, 0]);
    assert.ok(hostPorts(registry, "hello")["web/"], "hello keeps its port");
    assert.equal(registry.services.get("multi")?.active, false);
    for (const c of registry.components.list("multi")) {
      assert.equal(c.desiredState, "stopped");
      assert.equal(c.observedState, "removed");
      assert.equal(c.containerId, "");
      assert.equal(c.startedAt, null);
      assert.equal(c.deployedAt, null, "an undeployed component is not recovered at start");
    }
    const undeployEvents = () => eventKinds(registry, "multi").filter((k) => k === "undeploy");
    assert.equal(undeployEvents().length, 2);
    assert.match(
      registry.events.list({ service: "multi", component: "api" })[0]?.message ?? "",
      /released 2 port/,
    );

    const second = await undeployService(ctx, "multi");
    assert.deepEqual(
      second.map((r) => [r.name, r.success, r.error]),
      [
        ["api", true, ""],
        ["web", true, ""],
      ],
    );
    assert.equal(undeployEvents().length, 2, "nothing changed, nothing logged");
    assert.equal(registry.components.list("multi").length, 2, "rows stay until purge");

    // Deploying again allocates afresh.
    await deployOk(ctx, example("multi"));
    for (const p of Object.values(hostPorts(registry, "multi"))) assert.ok(inPool(p));
  });

  test("unknown or empty service name: not_found / invalid_argument, runtime untouched", async () => {
    const { ctx, runtime } = harness();
    for (const op of [stopService, startService, restartService, undeployService]) {
      await rejectsWith(op(ctx, "nope"), "not_found", /unknown service "nope" on node local/);
      await rejectsWith(op(ctx, ""), "invalid_argument");
    }
    assert.deepEqual(runtime.calls, []);
  });

  test("a runtime failure in stop is that component's failure, with an event", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    runtime.failNext("stop", apiError("stop", 500, "the OCI runtime is wedged"));
    const results = await stopService(ctx, "multi");
    assert.equal(results[0]?.success, false);
    assert.match(
      results[0]?.error ?? "",
      /^stop: podman API stop HTTP 500: the OCI runtime is wedged/,
    );
    assert.equal(results[1]?.success, true);
    assert.ok(eventKinds(registry, "multi").includes("stop_failed"));
    // stop of a container that is already gone is not an error.
    runtime.containers.delete("multi-api");
    const again = await stopService(ctx, "multi");
    assert.ok(again.every((r) => r.success));
    assert.equal(registry.components.get("multi", "api")?.observedState, "removed");
  });
});

describe("deploy: validation", () => {
  test("no spec, invalid spec (problem path in the message), node mismatch", async () => {
    const { ctx, runtime, registry } = harness();
    await rejectsWith(deploy(ctx, { service: undefined, component: "" }), "invalid_argument");

    const bad = example("multi");
    const route = bad.components[0]?.routes[1];
    assert.ok(route);
    route.mode = "l9";
    await rejectsWith(
      deploy(ctx, request(bad)),
      "invalid_argument",
      /^service multi: components\[0\]\.routes\[1\]\.mode: /,
    );

    const badName = simple("Bad_Name");
    await rejectsWith(
      deploy(ctx, request(badName)),
      "invalid_argument",
      /service Bad_Name: name: /,
    );

    const elsewhere = example("hello");
    elsewhere.node = "other";
    await rejectsWith(
      deploy(ctx, request(elsewhere)),
      "invalid_argument",
      /defined for node "other", this agent is node "local"/,
    );

    const latest = simple("latest", "localhost/mcp-httpenv:latest");
    await rejectsWith(deploy(ctx, request(latest)), "invalid_argument", /latest/);

    assert.deepEqual(runtime.calls, []);
    assert.deepEqual(registry.services.list(), []);
  });

  test("one component: only it is deployed, the other is left alone", async () => {
    const { ctx, runtime, registry } = harness({ images: [IMAGE, IMAGE_V2] });
    // First deploy of only the api: the web is not even recorded.
    const first = await deployOk(ctx, example("multi"), "api");
    assert.deepEqual(
      first.map((r) => r.name),
      ["api"],
    );
    assert.deepEqual(
      registry.components.list("multi").map((c) => c.name),
      ["api"],
    );
    await deployOk(ctx, example("multi"));
    const apiId = runtime.containers.get("multi-api")?.id;
    const ports = hostPorts(registry, "multi");
    runtime.clearCalls();

    const results = await deployOk(ctx, withImage(example("multi"), IMAGE_V2), "web");
    assert.deepEqual(
      results.map((r) => r.name),
      ["web"],
    );
    const [inspect, ...rest] = redeployOps("multi-web", "start-first");
    assert.deepEqual(runtime.ops(), [inspect, `imageExists ${IMAGE_V2}`, ...rest]);
    assert.equal(runtime.containers.get("multi-api")?.id, apiId);
    assert.equal(runtime.containers.get("multi-web")?.image, IMAGE_V2);
    assert.equal(registry.components.get("multi", "api")?.image, IMAGE, "api's spec untouched");
    assert.equal(registry.components.get("multi", "web")?.image, IMAGE_V2);
    assert.deepEqual(hostPorts(registry, "multi"), ports);
  });

  test("unknown component → not_found naming the ones there are", async () => {
    const { ctx, runtime } = harness();
    await rejectsWith(
      deploy(ctx, request(example("multi"), "db")),
      "not_found",
      /service multi has no component "db" \(it has: api, web\)/,
    );
    assert.deepEqual(runtime.calls, []);
  });

  test("an inactive service is recorded (desired stopped) but not started", async () => {
    const { ctx, runtime, registry } = harness();
    const spec = example("hello");
    spec.active = false;
    const results = await deployOk(ctx, spec);
    assert.deepEqual(
      results.map((r) => [r.name, r.container]),
      [["web", "hello-web"]],
    );
    assert.deepEqual(runtime.ops(), ["stop hello-web"], "only makes sure nothing runs");
    assert.equal(registry.services.get("hello")?.active, false);
    assert.equal(registry.components.get("hello", "web")?.desiredState, "stopped");
    assert.equal(hostPorts(registry, "hello")["web/"], 0, "no port held for a stopped service");
  });

  test("deploying a running service as inactive stops its container (no drift), keeping its port", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const port = hostPorts(registry, "hello")["web/"];
    runtime.clearCalls();
    const spec = example("hello");
    spec.active = false;
    await deployOk(ctx, spec);
    assert.deepEqual(runtime.ops(), ["stop hello-web"]);
    const row = registry.components.get("hello", "web");
    assert.equal(row?.desiredState, "stopped");
    assert.equal(row?.observedState, "exited");
    assert.equal(hostPorts(registry, "hello")["web/"], port);
  });
});

describe("deploy: image cache", () => {
  test("a present image is checked once; a redeploy spawns no image exists / pull", async () => {
    const { ctx, runtime } = harness();
    await deployOk(ctx, example("hello"));
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      `imageExists ${IMAGE}`,
      "create hello-web",
      "start hello-web",
    ]);
    runtime.clearCalls();
    await deployOk(ctx, example("multi")); // same image, other service
    assert.deepEqual(runtime.ops(), [
      "inspect multi-api",
      "create multi-api",
      "start multi-api",
      "inspect multi-web",
      "create multi-web",
      "start multi-web",
    ]);
  });

  test("a missing image is pulled once", async () => {
    const { ctx, runtime } = harness({ images: [] });
    await deployOk(ctx, example("hello"));
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      `imageExists ${IMAGE}`,
      `pull ${IMAGE}`,
      "create hello-web",
      "start hello-web",
    ]);
    runtime.clearCalls();
    await deployOk(ctx, example("hello"));
    assert.deepEqual(runtime.ops(), redeployOps("hello-web", "start-first"));
  });

  test(":latest (allowed by config) is pulled on every deploy", async () => {
    const latest = "localhost/mcp-httpenv:latest";
    const { ctx, runtime } = harness({ allowLatest: true, images: [latest] });
    runtime.clearCalls();
    await deployOk(ctx, simple("edge", latest));
    assert.deepEqual(runtime.ops(), [
      "inspect edge-web",
      `pull ${latest}`,
      "create edge-web",
      "start edge-web",
    ]);
    runtime.clearCalls();
    await deployOk(ctx, simple("edge", latest));
    const [inspect, ...rest] = redeployOps("edge-web", "start-first");
    assert.deepEqual(runtime.ops(), [inspect, `pull ${latest}`, ...rest]);
  });

  test("isMutableReference / ImageCache.forget", async () => {
    assert.equal(isMutableReference("localhost/app:latest"), true);
    assert.equal(isMutableReference("localhost/app"), true);
    assert.equal(isMutableReference("localhost:5000/app:v1"), false);
    assert.equal(isMutableReference("localhost/app:latest@sha256:" + "a".repeat(64)), false);
    const runtime = new FakeRuntime({ images: [IMAGE] });
    const cache = new ImageCache(runtime);
    assert.equal(await cache.ensure(IMAGE), false);
    assert.equal(await cache.ensure(IMAGE), false);
    cache.forget(IMAGE);
    runtime.images.delete(IMAGE);
    assert.equal(await cache.ensure(IMAGE), true);
    assert.deepEqual(runtime.ops(), [
      `imageExists ${IMAGE}`,
      `imageExists ${IMAGE}`,
      `pull ${IMAGE}`,
    ]);
  });

  test("an image removed behind the agent's back: run fails, the cache forgets it, the next deploy pulls", async () => {
    const { ctx, runtime } = harness();
    await deployOk(ctx, example("hello"));
    runtime.images.delete(IMAGE);
    const failed = await deploy(ctx, request(example("hello")));
    assert.equal(failed[0]?.success, false);
    // The trial is the first container the redeploy starts.
    assert.match(failed[0]?.error ?? "", /^start trial: .*image not known/);
    assert.equal(runtime.containers.get("hello-web")?.state, "running", "the old one serves");
    runtime.clearCalls();
    await deployOk(ctx, example("hello"));
    const [inspect, ...rest] = redeployOps("hello-web", "start-first");
    assert.deepEqual(runtime.ops(), [inspect, `imageExists ${IMAGE}`, `pull ${IMAGE}`, ...rest]);
  });
});

describe("deploy: failures roll back", () => {
  test("failed pull on a first deploy: pull: error, no rows, no ports, a deploy_failed event", async () => {
    const { ctx, runtime, registry } = harness({ images: [] });
    // Both components use the image: each tries (and fails) to pull it.
    runtime.failNext("pull", (image) => pullRefused(image), 2);
    const results = await deploy(ctx, request(example("multi")));
    assert.equal(results.length, 2);
    for (const r of results) {
      assert.equal(r.success, false);
      assert.ok(r.error.startsWith("pull: "), r.error);
      assert.deepEqual(r.routes, []);
    }
    assert.match(results[0]?.error ?? "", /^pull: podman API pull failed: initializing source/);
    assert.equal(registry.services.get("multi"), undefined);
    assert.deepEqual(registry.components.list(), []);
    assert.deepEqual(registry.routes.list(), []);
    assert.deepEqual(registry.routes.heldHostPorts(), []);
    assert.equal(ctx.allocator.stats().held, 0);
    const events = registry.events.list({ service: "multi" });
    assert.ok(events.length > 0);
    assert.ok(
      events.every((e) => e.kind === "deploy_failed"),
      JSON.stringify(events),
    );
    assert.match(events.at(-1)?.message ?? "", /^pull: /);
    // No container was touched.
    assert.deepEqual(runtime.callsOf("remove"), []);
    assert.deepEqual(runtime.runs, []);
  });

  test("failed pull on a redeploy: the old container is untouched and the ports are kept", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const ports = hostPorts(registry, "hello");
    const id = runtime.containers.get("hello-web")?.id;
    runtime.clearCalls();
    runtime.failNext("pull", (image) => pullRefused(image));
    const results = await deploy(ctx, request(withImage(example("hello"), IMAGE_V2)));
    assert.equal(results[0]?.success, false);
    assert.ok(results[0]?.error.startsWith("pull: "));
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      `imageExists ${IMAGE_V2}`,
      `pull ${IMAGE_V2}`,
    ]);
    const c = runtime.containers.get("hello-web");
    assert.equal(c?.id, id);
    assert.equal(c?.image, IMAGE);
    assert.equal(c?.state, "running");
    assert.deepEqual(hostPorts(registry, "hello"), ports);
    const row = registry.components.get("hello", "web");
    assert.equal(row?.observedState, "running");
    assert.equal(row?.containerId, id);
    assert.equal(row?.image, IMAGE, "the registry describes the container that still runs");
    assert.equal(row?.spec.image, IMAGE);
    assert.deepEqual(eventKinds(registry, "hello"), ["deploy", "deploy_failed"]);
  });

  test("failed pull on a redeploy that renamed a route: the old route and its port come back", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    const before = registry.routes.list({ service: "multi", component: "api" });
    const renamed = withImage(example("multi"), IMAGE_V2);
    const api = renamed.components.find((c) => c.name === "api");
    assert.ok(api?.routes[0]);
    api.routes[0].name = "http";
    runtime.failNext("pull", (image) => pullRefused(image));
    const results = await deploy(ctx, request(renamed));
    assert.equal(results[0]?.success, false);
    assert.deepEqual(registry.routes.list({ service: "multi", component: "api" }), before);
  });

  test("podman stop failing on a redeploy: the registry still says what runs (running, ports held)", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    const ports = hostPorts(registry, "hello");
    const id = runtime.containers.get("hello-web")?.id;
    // podman is wedged: the stop of the old container fails, so it keeps running.
    runtime.failNext(
      "stop",
      apiError(
        "stop",
        500,
        "cannot stop container: container state improper",
        "container state improper",
      ),
    );
    const results = await deploy(ctx, request(example("hello")));
    assert.equal(results[0]?.success, false);
    assert.match(results[0]?.error ?? "", /^stop old container: podman API stop HTTP 500/);
    assert.equal(results[0]?.outcome, "failed");
    assert.equal(runtime.containers.get("hello-web")?.state, "running");
    assert.deepEqual(
      runtime.runs.map((c) => c.name),
      ["hello-web", "hello-web.next", "hello-web"],
      "the trial ran, the new container was only created, and both are gone",
    );
    assert.deepEqual(
      runtime.callsOf("start").map((c) => c.arg),
      ["hello-web", "hello-web"],
      "the first deploy's start, then the old container's (it still ran)",
    );
    assert.deepEqual([...runtime.containers.keys()], ["hello-web"]);
    const row = registry.components.get("hello", "web");
    assert.equal(row?.observedState, "running");
    assert.equal(row?.containerId, id);
    assert.deepEqual(
      hostPorts(registry, "hello"),
      ports,
      "the running container's port stays held",
    );
    assert.deepEqual(eventKinds(registry, "hello"), ["deploy", "deploy_failed"]);
  });

  test("address in use twice, then the start succeeds: other ports, recorded", async () => {
    const { ctx, runtime, registry } = harness();
    runtime.failNext("start", runtime.portTakenAtStart, 2);
    const results = await deployOk(ctx, example("hello"));
    const tried = runtime.runs.map(routePortOf);
    assert.equal(tried.length, 3);
    assert.equal(new Set(tried).size, 3, `each attempt on another port: ${tried.join(",")}`);
    const recorded = hostPorts(registry, "hello")["web/"];
    assert.equal(recorded, tried[2]);
    assert.equal(results[0]?.routes[0]?.hostPort, recorded);
    assert.deepEqual(runtime.lastRun("hello-web")?.env, [`PORT=${recorded}`]);
    assert.deepEqual(
      registry.routes.heldHostPorts().map((h) => h.port),
      [recorded],
    );
  });

  test("address in use on a redeploy: the route moves off its recorded port", async () => {
    const { ctx, runtime, registry } = harness();
    const spec = example("hello");
    spec.components[0]!.strategy = "stop-first"; // no trial: the first run is on the stable port
    await deployOk(ctx, spec);
    const old = hostPorts(registry, "hello")["web/"];
    runtime.clearCalls();
    runtime.failNext("start", runtime.portTakenAtStart, 2);
    await deployOk(ctx, spec);
    const tried = runtime.runs.map(routePortOf);
    assert.equal(tried[0], old, "the recorded port is tried first");
    const now = hostPorts(registry, "hello")["web/"];
    assert.ok(now !== old && now === tried[2]);
  });

  test("address in use three times: start container: error, ports released, no container, no rows", async () => {
    const { ctx, runtime, registry } = harness();
    runtime.failNext("start", runtime.portTakenAtStart, 3);
    const results = await deploy(ctx, request(example("hello")));
    assert.equal(results[0]?.success, false);
    assert.match(
      results[0]?.error ?? "",
      /^start container: podman API start HTTP 500: .*address already in use$/,
    );
    assert.equal(runtime.runs.length, 3);
    assert.equal(runtime.containers.size, 0);
    assert.deepEqual(registry.routes.heldHostPorts(), []);
    assert.equal(registry.services.get("hello"), undefined);
    assert.deepEqual(eventKinds(registry, "hello"), ["deploy_failed"]);
  });

  test("address in use three times on a stop-first redeploy: the old container runs again on its ports", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("multi"));
    const before = hostPorts(registry, "multi");
    const oldId = runtime.containers.get("multi-api")?.id;
    runtime.failNext("start", runtime.portTakenAtStart, 3);
    const results = await deploy(ctx, request(example("multi")));
    assert.deepEqual(
      results.map((r) => [r.success, r.outcome]),
      [
        [false, "rolled back"],
        [true, "ok"],
      ],
    );
    assert.equal(results[0]?.failedStep, "start container");
    assert.equal(runtime.containers.get("multi-api")?.id, oldId, "the old container is back");
    assert.equal(runtime.containers.get("multi-api")?.state, "running");
    assert.deepEqual([...runtime.containers.keys()].sort(), ["multi-api", "multi-web"]);
    assert.deepEqual(hostPorts(registry, "multi"), before, "the same ports");
    const api = registry.components.get("multi", "api");
    assert.equal(api?.observedState, "running");
    assert.equal(api?.containerId, oldId);
    assert.equal(api?.pending, null);
  });

  test("another run failure is not retried; ports released; the first component of a new service only", async () => {
    const { ctx, runtime, registry } = harness();
    runtime.failNext("start", runFailed());
    const results = await deploy(ctx, request(example("multi")));
    assert.deepEqual(
      results.map((r) => [r.name, r.success]),
      [
        ["api", false],
        ["web", true],
      ],
    );
    assert.match(results[0]?.error ?? "", /^start container: podman API start HTTP 500: crun: /);
    assert.equal(runtime.callsOf("start").filter((c) => c.arg === "multi-api").length, 1);
    assert.equal(runtime.containers.has("multi-api"), false, "the created container is gone");
    // The failed brand-new component is dropped; the service stays for the web.
    assert.deepEqual(
      registry.components.list("multi").map((c) => c.name),
      ["web"],
    );
    assert.deepEqual(
      registry.routes.heldHostPorts().map((h) => `${h.component}/${h.name}`),
      ["web/"],
    );
  });

  test("run reporting the image missing forgets the cache entry (the next deploy checks again)", async () => {
    const { ctx, runtime } = harness();
    await deployOk(ctx, example("hello"));
    runtime.failNext("run", (_name, spec) => imageNotKnown(spec?.image ?? ""));
    const failed = await deploy(ctx, request(example("hello")));
    assert.match(failed[0]?.error ?? "", /^start trial: .*image not known/);
    runtime.clearCalls();
    await deployOk(ctx, example("hello"));
    assert.deepEqual(runtime.ops().slice(0, 2), ["inspect hello-web", `imageExists ${IMAGE}`]);
  });

  test("create reporting the image missing forgets the cache entry too", async () => {
    const { ctx, runtime } = harness();
    const spec = example("hello");
    spec.components[0]!.strategy = "stop-first";
    await deployOk(ctx, spec);
    runtime.failNext("create", (_name, spec) => imageNotKnown(spec?.image ?? ""));
    const failed = await deploy(ctx, request(spec));
    assert.match(failed[0]?.error ?? "", /^create container: .*image not known/);
    assert.equal(failed[0]?.outcome, "rolled back");
    runtime.clearCalls();
    await deployOk(ctx, spec);
    assert.deepEqual(runtime.ops().slice(0, 2), ["inspect hello-web", `imageExists ${IMAGE}`]);
  });
});

describe("deploy: concurrency", () => {
  test("20 concurrent deploys of different services get 20 distinct ports", async () => {
    const pool = [{ from: 21000, to: 21029 }];
    const { ctx, runtime, registry } = harness({ pool });
    const names = Array.from({ length: 20 }, (_, i) => `svc-${String(i).padStart(2, "0")}`);
    const all = await Promise.all(names.map((name) => deploy(ctx, request(simple(name)))));
    for (const results of all) assert.equal(results[0]?.success, true, results[0]?.error);
    const held = registry.routes.heldHostPorts();
    assert.equal(held.length, 20);
    assert.equal(new Set(held.map((h) => h.port)).size, 20);
    for (const h of held) assert.ok(inPool(h.port, pool));
    const running = runtime.runs.map(routePortOf);
    assert.equal(new Set(running).size, 20, "podman was never given the same port twice");
  });

  test("concurrent deploys of one service run one after the other", async () => {
    const { ctx, runtime } = harness();
    await Promise.all([
      deploy(ctx, request(example("hello"))),
      deploy(ctx, request(example("hello"))),
    ]);
    assert.deepEqual(runtime.ops(), [
      "inspect hello-web",
      `imageExists ${IMAGE}`,
      "create hello-web",
      "start hello-web",
      ...redeployOps("hello-web", "start-first"),
    ]);
  });
});

// ------------------------------------------------------------------ observe

function container(name: string, fields: Partial<ContainerStatus> = {}): ContainerStatus {
  return {
    id: `id-${name}`,
    name,
    image: IMAGE,
    state: "running",
    startedAt: new Date("2026-11-27T10:00:00Z"),
    labels: {},
    ports: [],
    ...fields,
  };
}

describe("observe", () => {
  test("matchContainers: by labels first, then by name against known services (mc-proxy)", () => {
    const components = [
      { service: "mc", name: "web" },
      { service: "mc-proxy", name: "mc-proxy" },
      { service: "hello", name: "web" },
    ];
    const labelled = container("renamed-by-hand", {
      labels: { "mcp.service": "hello", "mcp.component": "web", "mcp.node": NODE },
    });
    const strangerWithLabels = container("x", {
      labels: { "mcp.service": "gone", "mcp.component": "web" },
    });
    const { byKey, unmanaged } = matchContainers(
      [
        container("mc-proxy"),
        container("mc-web"),
        labelled,
        strangerWithLabels,
        container("postgres"),
        container("mc-db"),
      ],
      components,
    );
    assert.deepEqual([...byKey.keys()].sort(), ["hello/web", "mc-proxy/mc-proxy", "mc/web"]);
    assert.equal(byKey.get("mc-proxy/mc-proxy")?.name, "mc-proxy", "not read as mc + proxy");
    assert.equal(byKey.get("hello/web")?.name, "renamed-by-hand");
    assert.deepEqual(
      unmanaged.map((c) => c.name),
      ["x", "postgres", "mc-db"],
    );
  });

  test("isDrift", () => {
    const table: [string, string, boolean][] = [
      ["running", "running", false],
      ["running", "exited", true],
      ["running", "removed", true],
      ["running", "created", true],
      ["running", "unknown", true],
      ["stopped", "running", true],
      ["stopped", "paused", true],
      ["stopped", "exited", false],
      ["stopped", "removed", false],
      ["stopped", "created", false],
      ["ignore", "running", false],
      ["ignore", "removed", false],
    ];
    for (const [desired, observed, drift] of table) {
      assert.equal(isDrift(desired, observed), drift, `${desired}/${observed}`);
    }
  });

  test("refreshObserved writes a state event only when the state changes", async () => {
    const { ctx, runtime, registry } = harness();
    await deployOk(ctx, example("hello"));
    runtime.addContainer({ name: "postgres", image: "docker.io/library/postgres:16" });
    const stateEvents = () =>
      registry.events
        .list({ service: "hello", component: "web" })
        .filter((e) => e.kind === "state");

    const first = await refreshObserved(ctx);
    assert.deepEqual(stateEvents(), []);
    assert.deepEqual(
      first.unmanaged.map((c) => c.name),
      ["postgres"],
    );
    assert.equal(first.byKey.get("hello/web")?.name, "hello-web");

    runtime.setState("hello-web", "exited", 137);
    const second = await refreshObserved(ctx);
    assert.equal(second.components.find((c) => c.name === "web")?.observedState, "exited");
    assert.deepEqual(
      stateEvents().map((e) => [e.prevState, e.newState]),
      [["running", "exited"]],
    );
    await refreshObserved(ctx);
    assert.equal(stateEvents().length, 1, "no change, no event");

    // Recreated by hand with the same state: the id is updated, no event.
    runtime.containers.delete("hello-web");
    const newId = runtime.addContainer({ name: "hello-web", image: IMAGE, state: "exited" }).id;
    await refreshObserved(ctx);
    assert.equal(registry.components.get("hello", "web")?.containerId, newId);
    assert.equal(stateEvents().length, 1);

    runtime.containers.delete("hello-web");
    await refreshObserved(ctx);
    const row = registry.components.get("hello", "web");
    assert.equal(row?.observedState, "removed");
    assert.equal(row?.containerId, "");
    assert.equal(row?.startedAt, null);
    assert.deepEqual(
      stateEvents().map((e) => [e.prevState, e.newState]),
      [
        ["exited", "removed"],
        ["running", "exited"],
      ],
    );
  });
});

// ------------------------------------------------------------------ status

function componentRow(
  fields: Partial<ComponentRow> & Pick<ComponentRow, "service" | "name">,
): ComponentRow {
  const spec = ComponentSpec.fromPartial({
    name: fields.name,
    image: IMAGE,
    ports: ["127.0.0.1:18080:8080"],
  });
  return {
    image: IMAGE,
    version: "v1",
    deployedAt: "2026-11-27T09:00:00.000Z",
    ord: 0,
    pending: null,
    health: NO_HEALTH,
    spec,
    desiredState: "running",
    observedState: "running",
    containerId: "abc",
    startedAt: "2026-11-27T09:00:00.000Z",
    createdAt: "2026-11-27T09:00:00.000Z",
    updatedAt: "2026-11-27T09:00:00.000Z",
    ...fields,
  };
}

describe("status", () => {
  const services = [
    { name: "hello", active: true, comment: "hi", createdAt: "", updatedAt: "" },
    { name: "idle", active: false, comment: "", createdAt: "", updatedAt: "" },
  ];
  // The registry already says v2 (a redeploy whose pull failed); v1 still runs.
  const rows = [
    componentRow({ service: "hello", name: "web", image: IMAGE_V2, version: "v2" }),
    componentRow({ service: "hello", name: "worker", image: IMAGE_V2, version: "v2" }),
  ];
  const routes = [
    {
      service: "hello",
      component: "web",
      name: "",
      port: 443,
      mode: "l7",
      hostname: "",
      protocol: "tcp",
      hostPort: 20001,
      standbyPort: 0,
    },
  ];

  test("serviceInfos without spec: listings carry neither spec nor comment", () => {
    const [hello] = serviceInfos(services, rows, routes, { node: "n1", bindAddress: "::1" });
    assert.equal(hello?.comment, "");
    assert.equal(hello?.spec, undefined);
    assert.equal(hello?.bindAddress, "", "the bind address goes with the spec only");
    assert.deepEqual(
      hello?.components.map((c) => c.name),
      ["web", "worker"],
    );
  });

  test("serviceInfos from the registry: recorded image and state", () => {
    const [hello, idle] = serviceInfos(services, rows, routes, {
      node: "n1",
      withSpec: true,
      bindAddress: "127.0.0.1",
    });
    assert.equal(hello?.comment, "hi");
    assert.equal(hello?.bindAddress, "127.0.0.1", "service export needs it with the spec");
    assert.deepEqual(
      hello?.components.map((c) => [c.name, c.image, c.version, c.observedState, c.container]),
      [
        ["web", IMAGE_V2, "v2", "running", "hello-web"],
        ["worker", IMAGE_V2, "v2", "running", "hello-worker"],
      ],
    );
    assert.deepEqual(hello?.components[0]?.routes[0]?.hostPort, 20001);
    assert.deepEqual(hello?.components[1]?.routes, []);
    assert.deepEqual(hello?.components[0]?.ports, ["127.0.0.1:18080:8080"]);
    assert.deepEqual(hello?.components[0]?.startedAt, new Date("2026-11-27T09:00:00.000Z"));
    assert.deepEqual(idle, {
      name: "idle",
      active: false,
      comment: "",
      components: [],
      spec: { name: "idle", active: false, comment: "", node: "n1", components: [] },
      bindAddress: "127.0.0.1",
    });
    assert.deepEqual(
      hello?.spec?.components.map((c) => c.name),
      ["web", "worker"],
      "the spec the agent holds",
    );
  });

  test("serviceInfos with live containers: the container's image gives the version", () => {
    const started = new Date("2026-11-27T10:00:00Z");
    const live = new Map([
      ["hello/web", container("hello-web", { state: "exited", startedAt: started })],
    ]);
    const [hello] = serviceInfos(services, rows, routes, { live });
    const [web, worker] = hello?.components ?? [];
    assert.equal(web?.image, IMAGE);
    assert.equal(web?.version, "v1");
    assert.equal(web?.observedState, "exited");
    assert.deepEqual(web?.startedAt, started);
    // Not in the live map: gone, whatever the registry last saw.
    assert.equal(worker?.observedState, "removed");
    assert.equal(worker?.version, "v2");
  });

  test("driftOf lists only the components whose observed state disagrees", () => {
    const drift = driftOf([
      componentRow({ service: "a", name: "ok" }),
      componentRow({ service: "a", name: "down", observedState: "exited" }),
      componentRow({
        service: "b",
        name: "zombie",
        desiredState: "stopped",
        observedState: "running",
      }),
      componentRow({
        service: "b",
        name: "parked",
        desiredState: "stopped",
        observedState: "removed",
      }),
      componentRow({
        service: "c",
        name: "adopted",
        desiredState: "ignore",
        observedState: "removed",
      }),
    ]);
    assert.deepEqual(drift, [
      { service: "a", component: "down", desired: "running", observed: "exited" },
      { service: "b", component: "zombie", desired: "stopped", observed: "running" },
    ]);
  });
});

// ------------------------------------------------------------------ node status

describe("nodeStatus", () => {
  test("names the node, versions, counts and the port pool", async () => {
    const { ctx, runtime } = harness();
    runtime.versionString = "4.3.1";
    await deployOk(ctx, example("hello"));
    await deployOk(ctx, example("multi"));
    runtime.setState("multi-web", "exited");
    await refreshObserved(ctx);
    const s = await nodeStatus(ctx);
    assert.equal(s.nodeName, NODE);
    assert.equal(s.runtime, "podman");
    assert.equal(s.runtimeVersion, "4.3.1");
    assert.equal(s.agentVersion, "0.0.0-test");
    assert.equal(s.serviceCount, 2);
    assert.equal(s.componentCount, 3);
    assert.equal(s.runningCount, 2);
    assert.equal(s.portRange, describePool(POOL));
    assert.equal(s.portRange, "20000-20099");
    assert.equal(s.portsAllocated, 4);
    assert.equal(s.uptimeSince, ctx.startedAt);
    assert.ok(s.cpuCount >= 1);
    assert.ok(s.cpuUsagePercent >= 0 && s.cpuUsagePercent <= 100);
    assert.ok(s.memoryTotalBytes > 0 && s.memoryFreeBytes <= s.memoryTotalBytes);
    assert.ok(s.diskTotalBytes > 0 && s.diskFreeBytes <= s.diskTotalBytes);
  });

  test("runtime version: asked of each agent's own runtime; a failure is not remembered", async () => {
    const a = harness();
    const b = harness();
    a.runtime.versionString = "4.3.1";
    b.runtime.versionString = "5.0.2";
    b.runtime.failNext("version", noAnswer("version"));
    assert.equal((await nodeStatus(a.ctx)).runtimeVersion, "4.3.1");
    assert.equal((await nodeStatus(b.ctx)).runtimeVersion, "", "failed: empty, not an error");
    assert.equal((await nodeStatus(b.ctx)).runtimeVersion, "5.0.2", "asked again");
    assert.equal((await nodeStatus(b.ctx)).runtimeVersion, "5.0.2");
    assert.equal(b.runtime.callsOf("version").length, 2, "then remembered");
  });
});

// ------------------------------------------------------------------ handlers and rpc

/** Calls a grpc-js unary handler the way the server would, without a server. */
function invoke<Req, Res>(handler: handleUnaryCall<Req, Res> | undefined, req: Req): Promise<Res> {
  assert.ok(handler, "no such handler");
  return new Promise((resolve, reject) => {
    const call = { request: req } as unknown as ServerUnaryCall<Req, Res>;
    handler(call, (err, value) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err.details)));
      else resolve(value as Res);
    });
  });
}

async function rejectsWithStatus(p: Promise<unknown>, code: grpcStatus, mcpCode: McpErrorCode) {
  await assert.rejects(p, (err: unknown) => {
    const e = err as ServerErrorResponse;
    assert.equal(e.code, code, e.message);
    assert.ok(e.metadata instanceof Metadata);
    assert.deepEqual(e.metadata.get(ERROR_CODE_KEY), [mcpCode]);
    return true;
  });
}

describe("handlers and rpc", () => {
  test("toServiceError: McpError codes map to gRPC statuses, anything else is internal", () => {
    const e = toServiceError(new McpError("ports_exhausted", "no free tcp port"));
    assert.equal(e.code, grpcStatus.RESOURCE_EXHAUSTED);
    assert.equal(e.details, "no free tcp port");
    assert.deepEqual(e.metadata?.get(ERROR_CODE_KEY), ["ports_exhausted"]);
    const plain = toServiceError(new TypeError("boom"));
    assert.equal(plain.code, grpcStatus.INTERNAL);
    assert.equal(plain.details, "boom");
    assert.deepEqual(plain.metadata?.get(ERROR_CODE_KEY), ["internal"]);
    assert.equal(toServiceError(new McpError("not_found", "x")).code, grpcStatus.NOT_FOUND);
    assert.equal(
      toServiceError(new McpError("invalid_argument", "x")).code,
      grpcStatus.INVALID_ARGUMENT,
    );
  });

  test("unary: a thrown error answers with the mapped status", async () => {
    const h = unary<{ n: number }, { n: number }>((req) =>
      req.n > 0
        ? Promise.resolve({ n: req.n * 2 })
        : Promise.reject(new McpError("not_found", "none")),
    );
    assert.deepEqual(await invoke(h, { n: 2 }), { n: 4 });
    await rejectsWithStatus(invoke(h, { n: 0 }), grpcStatus.NOT_FOUND, "not_found");
  });

  test("deploy, listServices, liveCheck, getServiceStatus, undeploy through the handlers", async () => {
    const { ctx, runtime } = harness();
    const h = createHandlers(ctx);
    const deployed = await invoke(h.deploy, { service: example("hello"), component: "" });
    assert.equal(deployed.results[0]?.success, true);
    const port = deployed.results[0]?.routes[0]?.hostPort;
    assert.ok(port && inPool(port));

    await rejectsWithStatus(
      invoke(h.deploy, { service: { ...example("hello"), node: "other" }, component: "" }),
      grpcStatus.INVALID_ARGUMENT,
      "invalid_argument",
    );

    const list = await invoke(h.listServices, { name: "", includeSpec: false });
    assert.deepEqual(
      list.services.map((s) => [s.name, s.components.map((c) => [c.name, c.routes[0]?.hostPort])]),
      [["hello", [["web", port]]]],
    );

    runtime.addContainer({ name: "postgres", image: "docker.io/library/postgres:16" });
    runtime.setState("hello-web", "exited");
    const live = await invoke(h.liveCheck, {});
    assert.equal(live.node, NODE);
    assert.equal(live.services[0]?.components[0]?.observedState, "exited");
    assert.deepEqual(
      live.unmanaged.map((c) => [c.name, c.state]),
      [["postgres", "running"]],
    );

    const st = await invoke(h.getServiceStatus, { name: "hello", eventLimit: 0 });
    assert.deepEqual(st.drift, [
      { service: "hello", component: "web", desired: "running", observed: "exited" },
    ]);
    assert.deepEqual(
      st.recentEvents.map((e) => e.kind),
      ["state", "deploy"],
    );
    const limited = await invoke(h.getServiceStatus, { name: "", eventLimit: 1 });
    assert.equal(limited.recentEvents.length, 1);
    assert.deepEqual(
      limited.services.map((s) => s.name),
      ["hello"],
    );
    await rejectsWithStatus(
      invoke(h.getServiceStatus, { name: "nope", eventLimit: 0 }),
      grpcStatus.NOT_FOUND,
      "not_found",
    );

    const undeployed = await invoke(h.undeployService, { name: "hello" });
    assert.deepEqual(undeployed.results[0]?.routes[0]?.hostPort, 0);
    await rejectsWithStatus(
      invoke(h.stopService, { name: "nope" }),
      grpcStatus.NOT_FOUND,
      "not_found",
    );
  });
});
