/**
 * Hostile service specs straight over gRPC: a real agent server in-process
 * (TLS 1.3, bearer token, the real handlers, registry and allocator, the
 * policy as serve.ts builds it from an `mcp-agent init` config) over a
 * FakeRuntime that records every container it is asked to run. A few hundred
 * generated specs, built from the tricks of the hardening issue and a few
 * more, go in as Deploy, or as SyncDesiredState followed by StartService (a
 * recorded spec is created later). Whatever the agent answers, nothing the
 * policy forbids may reach the runtime: every recorded ContainerSpec is
 * checked against the policy by code independent of policy.ts.
 *
 * The layout is the defaults' in miniature: data_root is ROOT, the agent's
 * directory ROOT/mcp (so a service `mcp` would get it as its data directory),
 * plus one volume root outside both.
 */
import assert from "node:assert/strict";
import { lstatSync, mkdirSync, realpathSync, symlinkSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Metadata, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { createSecureContext } from "node:tls";
import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import { createHandlers } from "../../src/agent/server/handlers.js";
import { initAgentDir, type InitResult } from "../../src/agent/server/init.js";
import { policyFromConfig } from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { startAgentServer, type AgentServer } from "../../src/agent/server/server.js";
import { FileTokenStore } from "../../src/auth/tokens.js";
import { loadAgentConfig } from "../../src/config/agent.js";
import {
  ComponentSpec,
  McpAgentServiceClient,
  type ComponentResult,
  type DeployResponse,
  type ServiceSpec,
  type StartServiceResponse,
  type StopServiceResponse,
  type SyncDesiredStateResponse,
} from "../../src/gen/mcp/v1/mcp.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import type { ContainerSpec } from "../../src/runtime/types.js";
import { parsePortMapping } from "../../src/servicedef/ports.js";
import { silentLogger } from "../../src/util/log.js";
import { ScriptedProber } from "../helpers/fake-health.js";
import { FakeRuntime } from "../helpers/fake-runtime.js";
import { freePort, tempDir } from "../helpers/agent.js";

const IMAGE = "localhost/mcp-httpenv:v1";
const NODE = "pol-hostile";
const SPECS = 400;
const BIND = "127.0.0.1";

// ------------------------------------------------------------------ the agent

let root: string; // data_root
let shared: string; // [policy] volume_roots
let init: InitResult;
let registry: Registry;
let runtime: FakeRuntime;
let ctx: AgentContext;
let server: AgentServer;
let client: McpAgentServiceClient;

before(async () => {
  const top = await tempDir("mcp-pol-hostile-");
  root = realpathSync(path.join(top));
  shared = path.join(root, "..", `${path.basename(root)}-shared`);
  mkdirSync(shared);
  const port = await freePort();
  init = await initAgentDir({
    dir: path.join(root, "mcp"),
    node: NODE,
    listen: `127.0.0.1:${port}`,
    dataRoot: root,
  });
  const config = await loadAgentConfig(init.agentConfig);
  config.policy.volumeRoots = [shared];
  registry = openRegistry(config.database.path);
  runtime = new FakeRuntime({ images: [IMAGE] });
  ctx = createAgentContext({
    settings: {
      node: NODE,
      bindAddress: BIND,
      allowLatest: false,
      dataRoot: config.agent.dataRoot,
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      policy: policyFromConfig(config, init.dir),
    },
    registry,
    runtime,
    allocator: new PortAllocator({
      pool: [{ from: 30000, to: 30999 }],
      bindAddresses: [BIND],
      book: new RegistryPortBook(registry),
      probe: runtime.probe,
    }),
    logger: silentLogger(),
    health: new ScriptedProber(),
  });
  const [cert, key, ca, token] = await Promise.all(
    [init.cert, init.key, init.caCert, init.tokenFile].map((f) => readFile(f, "utf8")),
  );
  server = await startAgentServer({
    listen: `127.0.0.1:${port}`,
    tls: { cert: cert!, key: key! },
    impl: createHandlers(ctx),
    validator: await FileTokenStore.open(init.tokensFile),
    logger: silentLogger(),
  });
  const tls = credentials.createFromSecureContext(createSecureContext({ ca: ca! }));
  const auth = credentials.createFromMetadataGenerator((_p, cb) => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${token!.trim()}`);
    cb(null, md);
  });
  client = new McpAgentServiceClient(
    `localhost:${server.port}`,
    credentials.combineChannelCredentials(tls, auth),
  );
});

after(async () => {
  client?.close();
  await server?.close(1000);
  registry?.close();
  await rm(root, { recursive: true, force: true });
  await rm(shared, { recursive: true, force: true });
});

type Outcome = { ok: true; results: unknown[] } | { ok: false; err: ServiceError };

/** One unary call, as `rpc((cb) => client.deploy(req, cb))`. */
function rpc<Res extends { results: unknown[] }>(
  start: (cb: (err: ServiceError | null, res: Res) => void) => unknown,
): Promise<Outcome> {
  return new Promise((resolve) => {
    start((err, res) => resolve(err ? { ok: false, err } : { ok: true, results: res.results }));
  });
}

// ------------------------------------------------------------------ the generator

/** mulberry32: the same specs on every run, so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Specs built benign, then given 0-3 hostile mutations each (a quarter none),
 * so that many specs are refused for one precise reason and plenty still run.
 */
function generator(seed: number, heldPort: number) {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const upTo = (max: number) => Math.floor(rand() * (max + 1));

  const goodPorts = (i: number) => [
    `${20000 + i}:8080`,
    `${BIND}:${21000 + i}:8080`,
    `${22000 + i}:53/udp`,
  ];
  const badPorts = (i: number) => [
    // The cases and their relatives.
    "0.0.0.0:80:80",
    "[::]:8080:80",
    "127.0.0.1:22:22",
    "0.0.0.0:18099:8080",
    `0.0.0.0:${23000 + i}:80`,
    `[::1]:${24000 + i}:80`,
    `[::ffff:127.0.0.1]:${25000 + i}:80`,
    `10.9.9.9:${26000 + i}:80`,
    "80:80",
    "1023:80",
    "1:1",
    "0:80",
    "65536:80",
    "18000-18010:80",
    "127.0.0.1::80",
    "8080",
    "-p",
    "--privileged",
    `${BIND}:${27000 + i}:80/sctp`,
    ` ${28000 + i}:80`,
    `${heldPort}:80`, // a stopped service's route port
    `${BIND}:${heldPort}:8080`,
  ];
  const goodVolumes = (name: string) => {
    const data = path.join(root, name);
    return [
      `${data}/d:/d`,
      `${data}:/data:ro`,
      `${data}/s:/s:Z`,
      `${data}/o:/o:ro,rslave,nosuid,nodev`,
      `${shared}/x:/x`,
      `${shared}:/shared:ro,nosuid`,
    ];
  };
  const badVolumes = (name: string) => {
    const data = path.join(root, name);
    return [
      "/:/host",
      "/etc:/etc",
      "/etc/:/etc",
      "//etc:/x",
      "/./etc/./:/x",
      "/proc:/p",
      "/sys:/s",
      "/dev:/d",
      "/run:/r",
      "/run/podman/podman.sock:/sock",
      "/var/lib/containers:/c",
      "/var/lib/containers/storage/overlay:/o",
      "/run/containers/storage:/rc",
      "/var:/v",
      "/home:/h",
      "/root/.ssh:/ssh",
      `${init.dir}:/agent`,
      `${init.dir}/ca-key.pem:/k`,
      `${init.dir}/mcp.db:/db`,
      `${root}:/all`,
      `${root}/other:/o`,
      `${data}/../mcp:/x`,
      `${data}/../../etc:/x`,
      `${data}/link-etc:/x`,
      `${data}/link-etc/ssh:/x`,
      `${data}/link-agent/token:/t`,
      `${data}/link-root:/x`,
      `${data}/dangling/x:/x`,
      `${shared}/z:/z:Z`,
      `${shared}/link-etc:/x`,
      `${data}/d:/d:U`,
      `${data}/d:/d:rshared`,
      `${data}/d:/d:ro,rw`,
      `${data}/d:/d:--privileged`,
      `${data}/d:/d:O`,
      `${data}/d:/d:`,
      `${data}/d:/d:ro:extra`,
      "relative:/x",
      `${data}/d:relative`,
      "-v:/x",
      "/tmp:/tmp",
      `${shared}-evil/x:/x`,
    ];
  };
  const route = () => ({
    name: "",
    port: 443,
    mode: "l4",
    hostname: "",
    protocol: "",
    proxyProtocol: false,
  });

  type Mutation = (spec: ServiceSpec, c: ComponentSpec, i: number) => void;
  const mutations: Mutation[] = [
    (_s, c, i) => c.ports.push(pick(badPorts(i))),
    (_s, c, i) => c.ports.push(pick(badPorts(i))),
    (s, c) => c.volumes.push(pick(badVolumes(s.name))),
    (s, c) => c.volumes.push(pick(badVolumes(s.name))),
    (s, c) => c.volumes.push(pick(badVolumes(s.name))),
    (_s, c) => {
      c.network = pick([
        "host",
        "HOST",
        "--network=host",
        "-host",
        "ns:/proc/1/ns/net",
        "container:x",
      ]);
      if (rand() < 0.5) c.routes = [route()];
    },
    (_s, c) => (c.user = pick(["-1", "--privileged", ".x", "-u=0"])),
    (_s, c) => (c.restart = pick(["--rm", "-d"])),
    (_s, c) => (c.image = pick(["-x:v1", "--privileged:v1", "localhost/x:latest"])),
    (_s, c) => (c.env = [pick(["-e=1", "--privileged", "A"])]),
    (_s, c) => (c.name = pick(["--x", "-c", "c/0"])),
    (s) => (s.name = pick(["mcp", "-pol", "pol/x", "pol-x-", ""])),
    (s) => (s.node = "elsewhere"),
  ];

  return (i: number): ServiceSpec => {
    const name = `pol-h-${i}`;
    const components = Array.from({ length: 1 + upTo(1) }, (_, c) =>
      ComponentSpec.fromPartial({
        name: `c${c}`,
        image: IMAGE,
        network: pick(["", "", "podman"]),
        user: pick(["", "1000", "1000:1000"]),
        restart: pick(["", "always", "unless-stopped"]),
        ports: Array.from({ length: upTo(1) }, () => pick(goodPorts(i * 2 + c))),
        volumes: Array.from({ length: upTo(2) }, () => pick(goodVolumes(name))),
        env: ["A=1"],
        // After the image: the container's own arguments, never podman's.
        cmd: rand() < 0.3 ? ["--privileged", "-v", "/:/host"] : [],
        routes: rand() < 0.5 ? [route()] : [],
      }),
    );
    const spec: ServiceSpec = { name, node: NODE, active: undefined, comment: "", components };
    const r = rand();
    const count = r < 0.25 ? 0 : r < 0.75 ? 1 : 2 + upTo(1);
    for (let k = 0; k < count; k++) {
      pick(mutations)(spec, pick(components), i);
    }
    return spec;
  };
}

/** Symlinks a container could have left in its data directory (or the shared root). */
function plantLinks(name: string): void {
  const data = path.join(root, name);
  mkdirSync(data, { recursive: true });
  const link = (target: string, at: string) => {
    try {
      lstatSync(at);
    } catch {
      symlinkSync(target, at);
    }
  };
  link("/etc", path.join(data, "link-etc"));
  link(init.dir, path.join(data, "link-agent"));
  link("/", path.join(data, "link-root"));
  link(path.join(data, "nowhere"), path.join(data, "dangling"));
  link("/etc", path.join(shared, "link-etc"));
}

// ------------------------------------------------------------------ the independent check

const PROTECTED = [
  "/etc",
  "/proc",
  "/sys",
  "/dev",
  "/run",
  "/var/lib/containers",
  "/run/containers",
];
const VOLUME_OPTIONS = new Set([
  "ro",
  "rw",
  "z",
  "Z",
  "bind",
  "rbind",
  "private",
  "rprivate",
  "slave",
  "rslave",
  "nocopy",
  "nosuid",
  "nodev",
  "noexec",
]);

const within = (base: string, p: string) =>
  p === base || p.startsWith(base.endsWith("/") ? base : `${base}/`);

/** realpath of the longest existing prefix, the rest appended (what podman would mount). */
function realOf(p: string): string {
  const rest: string[] = [];
  let head = path.posix.normalize(p);
  for (;;) {
    try {
      return path.join(realpathSync(head), ...rest.reverse());
    } catch {
      rest.push(path.basename(head));
      head = path.dirname(head);
    }
  }
}

/** Why a container spec breaks the policy; [] when it does not. */
function violations(spec: ContainerSpec): string[] {
  const out: string[] = [];
  const service = spec.labels["mcp.service"] ?? "";
  if (service === "mcp") out.push("a service named mcp ran (its data directory is the agent's)");
  if (spec.network?.toLowerCase().includes("host")) out.push(`network ${spec.network}`);
  for (const p of spec.ports) {
    const m = parsePortMapping(p);
    if (!m || m.hostPort === undefined) out.push(`unparsable -p ${p}`);
    else {
      if (m.hostIp !== BIND) out.push(`-p ${p} not on ${BIND}`);
      if (m.hostPort < 1024) out.push(`-p ${p} below 1024`);
    }
  }
  const dataDir = path.join(root, service);
  for (const v of spec.volumes) {
    const [host = "", , options, ...extra] = v.split(":");
    if (!host.startsWith("/") || host.split("/").includes("..") || extra.length > 0) {
      out.push(`-v ${v}: not an absolute ..-free host path`);
      continue;
    }
    const real = realOf(host);
    const inData = within(realOf(dataDir), real);
    if (!inData && !within(realOf(shared), real))
      out.push(`-v ${v}: ${real} outside the allowed roots`);
    if (real === "/") out.push(`-v ${v}: the root directory`);
    for (const d of [...PROTECTED, init.dir]) {
      if (within(d, real) || within(real, d)) out.push(`-v ${v}: ${real} reaches ${d}`);
    }
    for (const o of options === undefined ? [] : options.split(",")) {
      if (!VOLUME_OPTIONS.has(o)) out.push(`-v ${v}: option ${o}`);
      if ((o === "z" || o === "Z") && !inData) out.push(`-v ${v}: relabel outside the data dir`);
    }
  }
  // No value that a podman command line would read as an option (validate.ts allows none).
  const values = [spec.name, spec.network, spec.user, spec.restart, spec.image];
  values.push(...Object.keys(spec.labels), ...spec.ports, ...spec.volumes, ...spec.env);
  for (const v of values) if (v?.startsWith("-")) out.push(`${v}: a value starting with "-"`);
  return out;
}

// ------------------------------------------------------------------ the test

describe("hostile specs over gRPC", { timeout: 120_000 }, () => {
  test(`${SPECS} generated specs: nothing the policy forbids reaches the runtime`, async () => {
    // A service holding a route port, stopped: its port must not be taken.
    const anchor: ServiceSpec = {
      name: "pol-anchor",
      node: NODE,
      active: undefined,
      comment: "",
      components: [
        ComponentSpec.fromPartial({
          name: "web",
          image: IMAGE,
          routes: [
            { name: "", port: 443, mode: "l4", hostname: "", protocol: "", proxyProtocol: false },
          ],
        }),
      ],
    };
    const first = await rpc<DeployResponse>((cb) =>
      client.deploy({ service: anchor, component: "" }, cb),
    );
    assert.ok(first.ok && (first.results[0] as ComponentResult).success, JSON.stringify(first));
    const heldPort = registry.routes.list({ service: "pol-anchor" })[0]?.hostPort ?? 0;
    assert.ok(heldPort > 0);
    assert.ok(
      (await rpc<StopServiceResponse>((cb) => client.stopService({ name: "pol-anchor" }, cb))).ok,
    );
    const anchorContainer = runtime.containers.get("pol-anchor-web")?.id;

    const generate = generator(20240611, heldPort);
    const specs = Array.from({ length: SPECS }, (_, i) => generate(i));
    for (const s of specs) if (/^[a-z0-9-]+$/.test(s.name)) plantLinks(s.name);

    let accepted = 0;
    let refused = 0;
    const unexpected: string[] = [];
    const runOne = async (spec: ServiceSpec, i: number) => {
      const viaSync = i % 3 === 0;
      const outcome = viaSync
        ? await rpc<SyncDesiredStateResponse>((cb) =>
            client.syncDesiredState({ services: [spec], dryRun: false }, cb),
          )
        : await rpc<DeployResponse>((cb) => client.deploy({ service: spec, component: "" }, cb));
      if (!outcome.ok) {
        refused++;
        if (outcome.err.code !== status.INVALID_ARGUMENT) {
          unexpected.push(`${spec.name}: code ${outcome.err.code}: ${outcome.err.details}`);
        }
        // Every line names the service (and a field, for a spec problem).
        for (const line of outcome.err.details.split("\n")) {
          if (!/^service[ :]/.test(line))
            unexpected.push(`${spec.name}: unlabelled problem: ${line}`);
        }
        return;
      }
      accepted++;
      if (viaSync) {
        await rpc<StartServiceResponse>((cb) => client.startService({ name: spec.name }, cb));
      }
    };
    // Eight at a time: concurrent deploys, as an operator's scripts would send them.
    for (let i = 0; i < specs.length; i += 8) {
      await Promise.all(specs.slice(i, i + 8).map((s, j) => runOne(s, i + j)));
    }
    assert.deepEqual(unexpected, []);

    const bad = runtime.runs.flatMap((spec) => violations(spec).map((v) => `${spec.name}: ${v}`));
    assert.deepEqual(bad, [], `${bad.length} forbidden things reached the runtime`);

    // Not vacuous: most specs were refused, yet plenty of containers did run,
    // with volumes and explicit ports among them.
    assert.ok(refused >= SPECS / 2, `only ${refused} refused`);
    assert.ok(accepted >= 40, `only ${accepted} accepted`);
    const runs = runtime.runs.filter((r) => r.name !== "pol-anchor-web");
    assert.ok(runs.length >= 40, `only ${runs.length} runs`);
    assert.ok(runs.some((r) => r.volumes.length > 0) && runs.some((r) => r.ports.length > 0));
    // The anchor kept its port and its container.
    assert.equal(registry.routes.list({ service: "pol-anchor" })[0]?.hostPort, heldPort);
    assert.equal(runtime.containers.get("pol-anchor-web")?.id, anchorContainer);
    assert.equal(registry.services.get("mcp"), undefined, "service mcp never recorded");
  });
});
