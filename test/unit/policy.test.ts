/**
 * The exposure and volume policy: the pure checks (policy.ts) on each case
 * of the hardening issue, the `[policy]` config, and the agent applying them
 * (deploy, sync, start from a stored spec, push/pull, the port-holder check
 * in the allocator's critical section) over a FakeRuntime and a real
 * registry. test/integration/policy*.test.ts cover the same over gRPC and
 * against real podman.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

import { containerSpecFor } from "../../src/agent/operations/container-spec.js";
import { withHostAddress } from "../../src/servicedef/publish.js";
import { createAgentContext, type AgentContext } from "../../src/agent/context.js";
import { deploy } from "../../src/agent/operations/deploy.js";
import { pullFile, pushFile } from "../../src/agent/operations/files.js";
import { initAgentDir } from "../../src/agent/server/init.js";
import { startService, stopService } from "../../src/agent/operations/lifecycle.js";
import {
  checkDataDirectory,
  checkExposure,
  checkPortClaims,
  checkVolumes,
  defaultPolicy,
  describeHolder,
  mergeProblems,
  policyFromConfig,
  policyProblems,
  resolveHostPath,
  volumeRootProblems,
  type AgentPolicy,
  type PolicyTarget,
} from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator } from "../../src/agent/ports/allocator.js";
import { syncDesiredState } from "../../src/agent/operations/sync.js";
import { agentConfigFromObject, loadAgentConfig } from "../../src/config/agent.js";
import { ComponentSpec, type ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import { validateServiceSpec } from "../../src/servicedef/spec.js";
import { McpError, ValidationError, type Problem } from "../../src/util/errors.js";
import { silentLogger } from "../../src/util/log.js";
import { FakeRuntime } from "../helpers/fake-runtime.js";
import { ScriptedProber } from "../helpers/fake-health.js";

const IMAGE = "localhost/mcp-httpenv:v1";
const NODE = "local";

const dir = mkdtempSync(join(tmpdir(), "mcp-policy-unit-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

let count = 0;
/** A fresh directory under the test's temp dir. */
function fresh(name: string): string {
  const d = join(dir, `${name}-${++count}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function component(fields: Partial<ComponentSpec> = {}): ComponentSpec {
  return ComponentSpec.fromPartial({ name: "web", image: IMAGE, ...fields });
}

function service(name: string, ...components: ComponentSpec[]): ServiceSpec {
  return { name, node: NODE, active: undefined, comment: "", components };
}

const ROUTE = { name: "", port: 443, mode: "l7", hostname: "", protocol: "", proxyProtocol: false };

function policy(fields: Partial<AgentPolicy> = {}): AgentPolicy {
  return { ...defaultPolicy(["127.0.0.1"]), ...fields };
}

/** `path: message` lines, the shape the agent reports them in. */
function lines(problems: Problem[]): string[] {
  return problems.map((p) => `${p.path}: ${p.message}`);
}

// ------------------------------------------------------------------ exposure

describe("exposure policy (pure)", () => {
  const ports = (ports: string[], p = policy()) =>
    lines(checkExposure(component({ ports }), p, "components[0]"));

  test("0.0.0.0:80:80 publishes on every IPv4 interface and on a privileged port", () => {
    assert.deepEqual(ports(["0.0.0.0:80:80"]), [
      "components[0].ports[0]: publishes on 0.0.0.0 (every IPv4 interface), but this agent publishes only on [ports] bind_addresses (127.0.0.1); leave the address out to publish on 127.0.0.1",
      "components[0].ports[0]: host port 80 is below 1024 (a privileged port); set [policy] allow_low_ports = true to allow it",
    ]);
  });

  test("[::]:8080:80 publishes on every interface", () => {
    assert.deepEqual(ports(["[::]:8080:80"]), [
      "components[0].ports[0]: publishes on :: (every interface), but this agent publishes only on [ports] bind_addresses (127.0.0.1); leave the address out to publish on 127.0.0.1",
    ]);
  });

  test("127.0.0.1:22:22 is on the bind address but below 1024: refused unless allowed", () => {
    assert.deepEqual(ports(["127.0.0.1:22:22"]), [
      "components[0].ports[0]: host port 22 is below 1024 (a privileged port); set [policy] allow_low_ports = true to allow it",
    ]);
    assert.deepEqual(ports(["127.0.0.1:22:22"], policy({ allowLowPorts: true })), []);
    assert.deepEqual(ports(["1023:80"]).length, 1);
    assert.deepEqual(ports(["1024:80"]), []);
  });

  test("any bind address passes, in any spelling; other addresses do not", () => {
    const p = policy({ bindAddresses: ["127.0.0.1", "10.0.0.5", "::1"] });
    assert.deepEqual(
      ports(["10.0.0.5:18080:80", "[0:0:0:0:0:0:0:1]:18081:80/udp", "127.0.0.1:18082:80"], p),
      [],
    );
    const refused = ports(["10.0.0.6:18080:80", "[::ffff:127.0.0.1]:18081:80"], p);
    assert.equal(refused.length, 2);
    assert.match(refused[0] ?? "", /^components\[0\]\.ports\[0\]: publishes on 10\.0\.0\.6, but/);
    assert.match(
      refused[1] ?? "",
      /^components\[0\]\.ports\[1\]: publishes on ::ffff:127\.0\.0\.1/,
    );
  });

  test("18080:8080 is allowed and gets the first bind address when the container is built", () => {
    assert.deepEqual(ports(["18080:8080", "18081:53/udp"]), []);
    const spec = containerSpecFor(
      { node: NODE, service: "pol-web", bindAddress: "127.0.0.1" },
      component({ ports: ["18080:8080", "18081:53/udp", "127.0.0.1:18082:80"] }),
      new Map(),
    );
    assert.deepEqual(spec.ports, [
      "127.0.0.1:18080:8080",
      "127.0.0.1:18081:53/udp",
      "127.0.0.1:18082:80",
    ]);
    assert.equal(withHostAddress("18080:8080", "::1"), "[::1]:18080:8080");
    assert.equal(withHostAddress("[::1]:18080:8080", "127.0.0.1"), "[::1]:18080:8080");
    assert.equal(withHostAddress("18080:8080", ""), "18080:8080");
  });

  test('network = "host": refused unless allowed, and never with routes or ports', () => {
    const host = (fields: Partial<ComponentSpec>, p = policy()) =>
      lines(checkExposure(component({ network: "host", ...fields }), p, "components[1]"));
    assert.deepEqual(host({}), [
      'components[1].network: network = "host" is refused: the container would bind the host\'s interfaces directly, outside [ports] bind_addresses and the port registry; set [policy] allow_host_network = true to allow it',
    ]);
    const allowed = policy({ allowHostNetwork: true });
    assert.deepEqual(host({}, allowed), []);
    assert.deepEqual(host({ routes: [ROUTE] }, allowed), [
      'components[1].network: network = "host" cannot be combined with routes: the container would listen on every interface on $PORT while the registry records a host port podman never published',
    ]);
    assert.deepEqual(host({ ports: ["127.0.0.1:18080:80"] }, allowed), [
      'components[1].network: network = "host" cannot be combined with ports: host networking publishes nothing, the container binds the host\'s interfaces itself',
    ]);
    // Spelled otherwise, it is still the host's network as far as the policy cares.
    assert.equal(host({ network: "HOST" }).length, 1);
    assert.deepEqual(lines(checkExposure(component({ network: "podman" }), policy(), "c")), []);
  });

  test('network = "none": no routes or ports (podman would publish none of them)', () => {
    const none = (fields: Partial<ComponentSpec>) =>
      lines(checkExposure(component({ network: "none", ...fields }), policy(), "components[0]"));
    assert.deepEqual(none({}), []);
    const refused =
      'components[0].network: network = "none" cannot be combined with routes or ports: a container without a network publishes nothing, so its host ports would be reserved and never reachable';
    assert.deepEqual(none({ routes: [ROUTE] }), [refused]);
    assert.deepEqual(none({ ports: ["127.0.0.1:18080:80"] }), [refused]);
  });

  test("a held port names its holder; the component's own mappings are its own", () => {
    const holders = [
      { port: 18080, service: "svc", component: "web", route: "rest" },
      { port: 18081, service: "pol-a", component: "web", route: "" },
      { port: 18082, service: "legacy", component: "legacy" },
      { port: 18083, service: "pol-b", component: "web" },
      { port: 18084, service: "pol-b", component: "web", route: "" },
    ];
    const placed = [
      {
        component: component({
          ports: ["18080:80", "18081:80", "18082:80", "18083:80", "18084:80", "18085:80"],
        }),
        path: "components[0]",
      },
    ];
    assert.deepEqual(lines(checkPortClaims("pol-b", placed, holders)), [
      "components[0].ports[0]: port 18080 is held by route svc/web/rest",
      "components[0].ports[1]: port 18081 is held by route pol-a/web ($PORT)",
      "components[0].ports[2]: port 18082 is held by the ports of legacy/legacy",
      // 18083: its own mapping. 18084: its own route keeps that port, so it is taken.
      "components[0].ports[4]: port 18084 is held by route pol-b/web ($PORT)",
    ]);
    assert.equal(describeHolder({ port: 1, service: "s", component: "c" }), "the ports of s/c");
  });
});

// ------------------------------------------------------------------ volumes

describe("volume policy (pure, on real temp directories)", () => {
  /** data_root in a temp dir; the service `pol-web`'s data dir exists. */
  function setup(fields: Partial<AgentPolicy> = {}) {
    const root = fresh("vol");
    const dataRoot = join(root, "data");
    const data = join(dataRoot, "pol-web");
    mkdirSync(data, { recursive: true });
    const target: PolicyTarget = { dataRoot, policy: policy(fields) };
    const check = (volumes: string[], t = target) =>
      lines(checkVolumes("pol-web", component({ volumes }), t, "components[0]"));
    return { root, dataRoot, data, target, check };
  }

  test("/:/host and /etc:/etc are outside the data directory", () => {
    const { data, check } = setup();
    assert.deepEqual(check(["/:/host", "/etc:/etc"]), [
      `components[0].volumes[0]: host path / is outside the service's data directory ${data}; other roots must be listed in [policy] volume_roots`,
      `components[0].volumes[1]: host path /etc is outside the service's data directory ${data}; other roots must be listed in [policy] volume_roots`,
    ]);
  });

  test("paths inside the data directory pass, in any lexical spelling, existing or not", () => {
    const { data, check } = setup();
    assert.deepEqual(
      check([
        `${data}:/data`,
        `${data}/state:/state:ro`,
        `/${data}//./conf/:/conf:rw,nosuid,nodev`,
        `${data}/x:/x:Z`,
      ]),
      [],
    );
    // A sibling whose name starts with the service's is not inside.
    assert.equal(check([`${data}-other:/x`]).length, 1);
  });

  test("a symlink in the data directory pointing to /etc is judged where it leads", () => {
    const { data, check } = setup();
    symlinkSync("/etc", join(data, "link"));
    assert.deepEqual(check([`${data}/link:/x`, `${data}/link/ssh:/y`]), [
      `components[0].volumes[0]: host path ${data}/link (resolving to /etc) is outside the service's data directory ${data}; other roots must be listed in [policy] volume_roots`,
      `components[0].volumes[1]: host path ${data}/link/ssh (resolving to /etc/ssh) is outside the service's data directory ${data}; other roots must be listed in [policy] volume_roots`,
    ]);
    // A dangling link cannot be judged: refused.
    symlinkSync(join(data, "nowhere"), join(data, "dangling"));
    assert.deepEqual(check([`${data}/dangling/sub:/z`]), [
      `components[0].volumes[0]: host path ${data}/dangling/sub cannot be resolved (a dangling symlink or a symlink loop)`,
    ]);
    assert.equal(resolveHostPath(join(data, "dangling")), undefined);
  });

  test("a .. segment is refused even when it would stay inside", () => {
    const { data, check } = setup();
    assert.deepEqual(check([`${data}/a/../b:/b`, "relative:/x", `${data}:relative`]), [
      `components[0].volumes[0]: expected "/host/path:/container/path[:options]" with absolute paths and no ".." segments, got "${data}/a/../b:/b"`,
      `components[0].volumes[1]: expected "/host/path:/container/path[:options]" with absolute paths and no ".." segments, got "relative:/x"`,
      `components[0].volumes[2]: expected "/host/path:/container/path[:options]" with absolute paths and no ".." segments, got "${data}:relative"`,
    ]);
  });

  test("volume_roots allowing /data: /data/app passes, /datax and /etc do not", () => {
    const { data, check } = setup({ volumeRoots: ["/data"] });
    assert.deepEqual(check(["/data/app:/app", "/data:/all:ro"]), []);
    assert.deepEqual(check(["/datax/app:/app", "/etc:/etc"]), [
      `components[0].volumes[0]: host path /datax/app is outside the service's data directory ${data} and the [policy] volume_roots (/data)`,
      `components[0].volumes[1]: host path /etc is outside the service's data directory ${data} and the [policy] volume_roots (/data)`,
    ]);
    // Without the root, /data/app is refused.
    assert.equal(setup().check(["/data/app:/app"]).length, 1);
  });

  test("relabel (z/Z) only under the service's data directory", () => {
    const { data, check } = setup({ volumeRoots: ["/data"] });
    assert.deepEqual(check(["/data/app:/app:Z", "/data/app:/app2:ro,z"]), [
      `components[0].volumes[0]: option "Z" relabels the host path for SELinux: only allowed under the service's data directory ${data}`,
      `components[0].volumes[1]: option "z" relabels the host path for SELinux: only allowed under the service's data directory ${data}`,
    ]);
    assert.deepEqual(check([`${data}/app:/app:z`]), []);
  });

  test("options: an allow-list, one per group", () => {
    const { data, check } = setup();
    assert.deepEqual(check([`${data}:/a:ro,rw`, `${data}:/b:U`, `${data}:/c:rshared`]), [
      'components[0].volumes[0]: options "ro" and "rw" conflict (one access option at most)',
      `components[0].volumes[1]: option "U" is refused: it chowns the host path to the container's user`,
      `components[0].volumes[2]: option "rshared" is refused: it propagates the container's mounts to the host`,
    ]);
    const unknown = check([`${data}:/d:exec`, `${data}:/e:ro,,nocopy`]);
    assert.match(
      unknown[0] ?? "",
      /^components\[0\]\.volumes\[0\]: unknown option "exec" \(allowed: ro, rw, z, Z,/,
    );
    assert.match(unknown[1] ?? "", /^components\[0\]\.volumes\[1\]: unknown option ""/);
    assert.deepEqual(check([`${data}:/f:ro,Z,rbind,rslave,nocopy,nosuid,nodev,noexec`]), []);
  });

  test("inside an allowed root, protected directories are still out of reach", () => {
    const { root, check, dataRoot } = setup();
    const agentDir = join(root, "shared", "agent");
    mkdirSync(agentDir, { recursive: true });
    const target: PolicyTarget = {
      dataRoot,
      policy: policy({
        volumeRoots: [join(root, "shared")],
        protectedDirs: [
          ...defaultPolicy().protectedDirs,
          { path: agentDir, kind: "agent", what: "the agent's own directory" },
        ],
      }),
    };
    assert.deepEqual(
      check([`${root}/shared:/s`, `${agentDir}/ca-key.pem:/k`, `${root}/shared/other:/o`], target),
      [
        `components[0].volumes[0]: host path ${root}/shared contains the agent's own directory ${agentDir}, which no volume may reach`,
        `components[0].volumes[1]: host path ${agentDir}/ca-key.pem is inside the agent's own directory ${agentDir}, which no volume may reach`,
      ],
    );
  });
});

// ------------------------------------------------------------------ data directory

describe("data directory policy (pure)", () => {
  const agentDir = (p: string) => ({
    path: p,
    kind: "agent" as const,
    what: "the agent's own directory",
  });

  test('a service named "mcp" under the defaults gets the agent\'s own directory: refused', () => {
    const target = {
      dataRoot: "/srv",
      policy: policy({ protectedDirs: [...defaultPolicy().protectedDirs, agentDir("/srv/mcp")] }),
    };
    assert.deepEqual(lines(checkDataDirectory("mcp", target)), [
      "name: its data directory /srv/mcp is the agent's own directory /srv/mcp; rename the service or set [agent] data_root",
    ]);
    assert.deepEqual(lines(checkDataDirectory("hello", target)), []);
  });

  test("a data directory containing the agent's, or a system directory, is refused; one below the agent's is not", () => {
    const deep = {
      dataRoot: "/srv",
      policy: policy({ protectedDirs: [agentDir("/srv/mcp/agent")] }),
    };
    assert.deepEqual(lines(checkDataDirectory("mcp", deep)), [
      "name: its data directory /srv/mcp contains the agent's own directory /srv/mcp/agent; rename the service or set [agent] data_root",
    ]);
    const rootData = { dataRoot: "/", policy: policy() };
    assert.deepEqual(lines(checkDataDirectory("etc", rootData)), [
      "name: its data directory /etc is the host's configuration directory /etc; rename the service or set [agent] data_root",
    ]);
    const underRun = { dataRoot: "/run/data", policy: policy() };
    assert.match(
      lines(checkDataDirectory("x", underRun))[0] ?? "",
      /is inside the host's runtime directory \/run;/,
    );
    // data_root = <agent dir>/data, as mcp-agent init in a temp dir gives the tests.
    const testLayout = {
      dataRoot: "/tmp/a/data",
      policy: policy({ protectedDirs: [agentDir("/tmp/a")] }),
    };
    assert.deepEqual(lines(checkDataDirectory("mcp", testLayout)), []);
  });

  test("from an initialised agent: /…/srv/mcp is the agent's dir, service mcp is refused", async () => {
    const srv = fresh("srv");
    const init = await initAgentDir({ dir: join(srv, "mcp"), node: "pol", dataRoot: srv });
    const config = await loadAgentConfig(init.agentConfig);
    const target = { dataRoot: config.agent.dataRoot, policy: policyFromConfig(config, init.dir) };
    assert.deepEqual(lines(checkDataDirectory("mcp", target)), [
      `name: its data directory ${srv}/mcp is the agent's own directory ${srv}/mcp; rename the service or set [agent] data_root`,
    ]);
    // Its volumes would be refused for the same reason.
    const spec = service("mcp", component({ volumes: [`${srv}/mcp:/x`] }));
    assert.ok(policyProblems(spec, target).length >= 2);
  });
});

describe("policyProblems / mergeProblems", () => {
  test("every problem of a spec with its field path; validation's own are not repeated", () => {
    const target = { dataRoot: fresh("pp"), policy: policy() };
    const spec = service(
      "pol-web",
      component({ name: "a", ports: ["127.0.0.1:18080:80"] }),
      component({
        name: "b",
        ports: ["18080:81", "8080"],
        volumes: ["/etc:/etc"],
        network: "host",
      }),
    );
    const problems = policyProblems(spec, target, { holders: [] });
    assert.deepEqual(
      problems.map((p) => p.path),
      [
        "components[1].network", // host: not allowed
        "components[1].network", // host: with ports
        "components[1].ports[1]",
        "components[1].volumes[0]",
        "components[1].ports[0]",
      ],
    );
    assert.match(
      problems[4]?.message ?? "",
      /host port 18080\/tcp is also published by components\[0\]\.ports\[0\]/,
    );
    const validation = validateServiceSpec(spec);
    assert.deepEqual(
      validation.map((p) => p.path),
      ["components[1].ports[1]"],
    );
    const merged = mergeProblems(validation, problems);
    assert.equal(merged.filter((p) => p.path === "components[1].ports[1]").length, 1);
    assert.equal(merged.length, problems.length);
  });

  test('validation refuses a user starting with "-" (it follows --user in the argv)', () => {
    const spec = service("pol-web", component({ user: "--privileged" }));
    assert.deepEqual(
      validateServiceSpec(spec).map((p) => p.path),
      ["components[0].user"],
    );
    assert.deepEqual(validateServiceSpec(service("pol-web", component({ user: "1000:1000" }))), []);
  });
});

// ------------------------------------------------------------------ config

describe("agent config [policy]", () => {
  const base = {
    agent: { node_name: "rift" },
    server: { tls_cert: "cert.pem", tls_key: "key.pem" },
    database: { path: "mcp.db" },
    auth: { tokens_file: "tokens.toml" },
  };
  const load = (extra: Record<string, unknown>) =>
    agentConfigFromObject({ ...base, ...extra }, "/srv/mcp", "mcp-agent.toml");
  function problemsOf(extra: Record<string, unknown>): string[] {
    try {
      load(extra);
    } catch (err) {
      assert.ok(err instanceof ValidationError, String(err));
      return lines(err.problems);
    }
    assert.fail("expected a ValidationError");
  }

  test("off by default; every key read; volume roots normalised", () => {
    assert.deepEqual(load({}).policy, {
      allowHostNetwork: false,
      allowLowPorts: false,
      volumeRoots: [],
    });
    assert.deepEqual(
      load({
        policy: {
          allow_host_network: true,
          allow_low_ports: true,
          volume_roots: ["/data/", "//srv2/./x"],
        },
        ports: { range: [80, 100] },
      }).policy,
      { allowHostNetwork: true, allowLowPorts: true, volumeRoots: ["/data", "/srv2/x"] },
    );
  });

  test("a volume root of /, /etc, or one reaching Podman's storage or the agent is a config error", () => {
    assert.deepEqual(
      problemsOf({
        policy: {
          volume_roots: [
            "/",
            "/etc",
            "/etc/app",
            "/var",
            "/srv/mcp",
            "/srv",
            "/srv/mcp/x",
            "data",
            "/a/../b",
            "/data",
          ],
          allow_host_network: "yes",
          colour: 1,
        },
      }),
      [
        "policy.colour: unknown key",
        'policy.allow_host_network: expected a boolean, got "yes"',
        'policy.volume_roots[7]: expected an absolute path without ".." segments, got "data"',
        'policy.volume_roots[8]: expected an absolute path without ".." segments, got "/a/../b"',
        "policy.volume_roots[0]: / is the host's root directory /: never allowed as a volume root",
        "policy.volume_roots[1]: /etc is the host's configuration directory /etc: never allowed as a volume root",
        "policy.volume_roots[2]: /etc/app is inside the host's configuration directory /etc: never allowed as a volume root",
        "policy.volume_roots[3]: /var contains Podman's storage /var/lib/containers: never allowed as a volume root",
        "policy.volume_roots[4]: /srv/mcp is the agent's own directory /srv/mcp: never allowed as a volume root",
        "policy.volume_roots[5]: /srv contains the agent's own directory /srv/mcp: never allowed as a volume root",
        "policy.volume_roots[6]: /srv/mcp/x is inside the agent's own directory /srv/mcp: never allowed as a volume root",
      ],
    );
  });

  test("a root containing data_root, data_root = the agent's dir, a low port range: config errors", () => {
    assert.deepEqual(
      problemsOf({
        agent: { node_name: "rift", data_root: "/data/svcs" },
        policy: { volume_roots: ["/data", "/data/svcs/shared"] },
        ports: { range: [443, 2000] },
      }),
      [
        "policy.volume_roots[0]: /data contains data_root /data/svcs: every service could mount every other service's data directory",
        "ports.range: starts at 443, below 1024 (privileged ports); set [policy] allow_low_ports = true to allow it",
      ],
    );
    assert.deepEqual(problemsOf({ agent: { node_name: "rift", data_root: "/srv/mcp" } }), [
      "agent.data_root: /srv/mcp is the agent's own directory: service data directories would be the agent's files; use another directory (the default is /srv)",
    ]);
  });

  test("the agent's directories come from every file it uses; podman info's storage is protected too", () => {
    const cfg = agentConfigFromObject(
      {
        ...base,
        server: { tls_cert: "/etc/mcp/cert.pem", tls_key: "key.pem" },
        database: { path: "/var/lib/mcp/mcp.db" },
      },
      "/srv/mcp",
      "mcp-agent.toml",
    );
    const p = policyFromConfig(cfg, "/srv/mcp", ["/data/containers/storage", "relative"]);
    assert.deepEqual(
      p.protectedDirs.filter((d) => d.kind !== "system").map((d) => `${d.kind} ${d.path}`),
      [
        "storage /var/lib/containers",
        "storage /run/containers",
        "storage /data/containers/storage",
        "agent /srv/mcp",
        "agent /var/lib/mcp",
        "agent /etc/mcp",
      ],
    );
    assert.deepEqual(lines(volumeRootProblems({ ...p, volumeRoots: ["/data", "/opt/app"] })), [
      "policy.volume_roots[0]: /data contains Podman's storage /data/containers/storage: never allowed as a volume root",
    ]);
  });
});

// ------------------------------------------------------------------ the agent applies it

interface Harness {
  ctx: AgentContext;
  runtime: FakeRuntime;
  registry: Registry;
}

function harness(fields: { dataRoot?: string; policy?: AgentPolicy } = {}): Harness {
  const registry = openRegistry(join(fresh("reg"), "mcp.db"));
  registries.push(registry);
  const runtime = new FakeRuntime({ images: [IMAGE] });
  const ctx = createAgentContext({
    settings: {
      node: NODE,
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot: fields.dataRoot ?? fresh("data"),
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      policy: fields.policy ?? policy(),
    },
    registry,
    runtime,
    allocator: new PortAllocator({
      pool: [{ from: 22000, to: 22009 }],
      bindAddresses: ["127.0.0.1"],
      book: new RegistryPortBook(registry),
      probe: runtime.probe,
    }),
    logger: silentLogger(),
    health: new ScriptedProber(),
  });
  return { ctx, runtime, registry };
}

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, "invalid_argument", err.message);
    return err.message;
  }
  assert.fail("expected a refusal");
}

describe("the agent applies the policy", () => {
  test("deploy: every problem listed with its field path; nothing recorded, nothing run", async () => {
    const { ctx, runtime, registry } = harness();
    const spec = service(
      "pol-web",
      component({ ports: ["0.0.0.0:18099:8080", "127.0.0.1:22:22"], volumes: ["/etc:/etc"] }),
    );
    const message = await refused(deploy(ctx, { service: spec, component: "" }));
    const data = join(ctx.settings.dataRoot, "pol-web");
    assert.deepEqual(message.split("\n"), [
      "service pol-web: components[0].ports[0]: publishes on 0.0.0.0 (every IPv4 interface), but this agent publishes only on [ports] bind_addresses (127.0.0.1); leave the address out to publish on 127.0.0.1",
      "service pol-web: components[0].ports[1]: host port 22 is below 1024 (a privileged port); set [policy] allow_low_ports = true to allow it",
      `service pol-web: components[0].volumes[0]: host path /etc is outside the service's data directory ${data}; other roots must be listed in [policy] volume_roots`,
    ]);
    assert.equal(registry.services.get("pol-web"), undefined);
    assert.deepEqual(runtime.calls, []);
  });

  test("deploy: 18080:8080 runs on the first bind address and is recorded as written", async () => {
    const { ctx, runtime, registry } = harness();
    const spec = service("pol-web", component({ ports: ["18080:8080"] }));
    const [result] = await deploy(ctx, { service: spec, component: "" });
    assert.equal(result?.success, true, result?.error);
    assert.deepEqual(runtime.runs[0]?.ports, ["127.0.0.1:18080:8080"]);
    assert.deepEqual(registry.components.get("pol-web", "web")?.spec.ports, ["18080:8080"]);
  });

  test("sync: a spec the policy forbids is not recorded, nor is the rest of the request", async () => {
    const { ctx, registry } = harness();
    const good = service("pol-good", component({ routes: [ROUTE] }));
    const bad = service("pol-bad", component({ network: "host", routes: [ROUTE] }));
    const message = await refused(syncDesiredState(ctx, { services: [good, bad], dryRun: false }));
    const found = message.split("\n");
    assert.equal(found.length, 2, message);
    for (const line of found) {
      assert.ok(line.startsWith('service pol-bad: components[0].network: network = "host" '), line);
    }
    assert.deepEqual(registry.services.list(), []);
    // Two definitions of one request claiming one port.
    const a = service("pol-a", component({ ports: ["18090:80"] }));
    const b = service("pol-b", component({ ports: ["127.0.0.1:18090:81"] }));
    assert.equal(
      await refused(syncDesiredState(ctx, { services: [a, b], dryRun: true })),
      "service pol-b: components[0].ports[0]: port 18090 is also claimed by service pol-a: components[0].ports[0]",
    );
  });

  test('service "mcp" whose data dir is the agent\'s: refused at deploy, sync, push and pull', async () => {
    const srv = fresh("srv");
    const agentDir = join(srv, "mcp");
    mkdirSync(agentDir);
    writeFileSync(join(agentDir, "token"), "secret\n");
    const { ctx, registry, runtime } = harness({
      dataRoot: srv,
      policy: policy({
        protectedDirs: [
          ...defaultPolicy().protectedDirs,
          { path: agentDir, kind: "agent", what: "the agent's own directory" },
        ],
      }),
    });
    const why = `its data directory ${agentDir} is the agent's own directory ${agentDir}; rename the service or set [agent] data_root`;
    const spec = service("mcp", component({ routes: [ROUTE] }));
    assert.equal(
      await refused(deploy(ctx, { service: spec, component: "" })),
      `service mcp: name: ${why}`,
    );
    assert.equal(
      await refused(syncDesiredState(ctx, { services: [spec], dryRun: false })),
      `service mcp: name: ${why}`,
    );
    assert.equal(registry.services.get("mcp"), undefined);
    assert.deepEqual(runtime.calls, []);
    // A registry row from before the policy: push and pull still refuse.
    registry.services.upsert({ name: "mcp", active: true, comment: "" });
    assert.equal(
      await refused(pullFile(ctx, { service: "mcp", path: "token" })),
      `service mcp: ${why}`,
    );
    assert.equal(
      await refused(
        pushFile(ctx, { service: "mcp", path: "token", content: Buffer.from("x"), mode: 0 }),
      ),
      `service mcp: ${why}`,
    );
  });

  test("a stopped service's route port cannot be taken by another's explicit mapping; its start still works", async () => {
    const { ctx, runtime, registry } = harness();
    const a = service("pol-a", component({ routes: [ROUTE] }));
    assert.equal((await deploy(ctx, { service: a, component: "" }))[0]?.success, true);
    const port = registry.routes.list({ service: "pol-a" })[0]?.hostPort ?? 0;
    assert.ok(port > 0);
    await stopService(ctx, "pol-a");
    const before = { ...runtime.containers.get("pol-a-web")! };
    runtime.clearCalls();

    const b = service("pol-b", component({ ports: [`127.0.0.1:${port}:8080`] }));
    assert.equal(
      await refused(deploy(ctx, { service: b, component: "" })),
      `service pol-b: components[0].ports[0]: port ${port} is held by route pol-a/web ($PORT)`,
    );
    assert.equal(registry.services.get("pol-b"), undefined);
    assert.deepEqual(runtime.runs, []);

    const [started] = await startService(ctx, "pol-a");
    assert.equal(started?.success, true, started?.error);
    const after = runtime.containers.get("pol-a-web");
    assert.equal(after?.id, before.id, "started in place, not recreated");
    assert.deepEqual(after?.ports, [`127.0.0.1:${port}:${port}`]);
    assert.equal(after?.state, "running");
    assert.deepEqual(runtime.ops(), ["inspect pol-a-web", "start pol-a-web"]);
    assert.equal(registry.routes.list({ service: "pol-a" })[0]?.hostPort, port);
  });

  test("inside the allocator's critical section: a stored conflicting spec is refused at start", async () => {
    const { ctx, runtime, registry } = harness();
    const a = service("pol-a", component({ routes: [ROUTE] }));
    await deploy(ctx, { service: a, component: "" });
    const port = registry.routes.list({ service: "pol-a" })[0]?.hostPort ?? 0;
    // Recorded before the check existed (an older agent): no deploy-time check ran.
    registry.services.upsert({ name: "pol-b", active: true, comment: "" });
    registry.components.upsert({
      service: "pol-b",
      name: "web",
      spec: component({ ports: [`${port}:8080`] }),
      desiredState: "running",
      ord: 0,
    });
    await stopService(ctx, "pol-a");
    runtime.clearCalls();
    const [b] = await startService(ctx, "pol-b");
    assert.equal(b?.success, false);
    assert.equal(
      b?.error,
      `allocate ports: service pol-b: components[0].ports[0]: port ${port} is held by route pol-a/web ($PORT)`,
    );
    assert.deepEqual(runtime.runs, []);
    assert.equal(runtime.containers.get("pol-a-web")?.state, "exited", "A untouched");
    assert.equal((await startService(ctx, "pol-a"))[0]?.success, true);
  });

  test("concurrent deploys claiming one port: never both", async () => {
    for (let round = 0; round < 10; round++) {
      const { ctx, runtime } = harness();
      const port = 18100 + round;
      const specs = ["pol-x", "pol-y", "pol-z"].map((name) =>
        service(name, component({ ports: [`127.0.0.1:${port}:80`] })),
      );
      const results = await Promise.all(
        specs.map((spec) =>
          deploy(ctx, { service: spec, component: "" }).then(
            (r) => r[0]?.success === true,
            () => false,
          ),
        ),
      );
      assert.ok(results.filter(Boolean).length <= 1, `round ${round}: ${results.join(",")}`);
      // The losers never reach podman (which would refuse the second bind
      // anyway, as the fake does): the claim is refused before `run`.
      const runs = runtime.runs.filter((r) => r.ports.some((p) => p.includes(`:${port}:`)));
      assert.ok(runs.length <= 1, `round ${round}: ${runs.length} runs`);
    }
  });

  test("a policy tightened after the deploy holds when the container is recreated", async () => {
    const { ctx, runtime, registry } = harness({
      policy: policy({ allowHostNetwork: true, allowLowPorts: true }),
    });
    const spec = service(
      "pol-host",
      component({ name: "net", network: "host" }),
      component({ name: "low", ports: ["127.0.0.1:80:8080"] }),
    );
    for (const r of await deploy(ctx, { service: spec, component: "" })) {
      assert.equal(r.success, true, r.error);
    }
    ctx.settings.policy = policy();
    runtime.containers.clear(); // gone (a reboot, a podman rm)
    runtime.clearCalls();
    const results = await startService(ctx, "pol-host");
    assert.deepEqual(
      results.map((r) => r.error),
      [
        'policy: service pol-host: components[0].network: network = "host" is refused: the container would bind the host\'s interfaces directly, outside [ports] bind_addresses and the port registry; set [policy] allow_host_network = true to allow it',
        "policy: service pol-host: components[1].ports[0]: host port 80 is below 1024 (a privileged port); set [policy] allow_low_ports = true to allow it",
      ],
    );
    assert.deepEqual(runtime.runs, []);
    assert.deepEqual(runtime.callsOf("pull"), []);
    assert.ok(registry.components.get("pol-host", "net"), "the rows stay");
  });
});
