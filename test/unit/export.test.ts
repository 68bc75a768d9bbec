/**
 * `mcp service export --format kube|compose`: the pure builders
 * (src/cli/export/), asserted on the objects and the notes for every field,
 * the rendered file (YAML 1.1 that reads back to the same object), and the
 * repo's examples through both formats.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { formatServiceExport } from "../../src/cli/commands/service.js";
import { buildCompose } from "../../src/cli/export/compose.js";
import { buildKubePod, kubeMemory, kubeRestartPolicy } from "../../src/cli/export/kube.js";
import { renderExport } from "../../src/cli/export/render.js";
import { exportSource, type ExportSource } from "../../src/cli/export/source.js";
import {
  ComponentSpec,
  HealthSpec,
  type ServiceInfo,
  type ServiceSpec,
} from "../../src/gen/mcp/v1/mcp.js";
import { parseServiceDef } from "../../src/servicedef/parse.js";
import { toServiceSpec } from "../../src/servicedef/spec.js";

const IMAGE = "localhost/mcp-httpenv:v1";

/** What the agent answers for `spec`, every route given a host port from 23100 on. */
function infoOf(spec: ServiceSpec, bindAddress = "127.0.0.1", desired = "running"): ServiceInfo {
  let next = 23100;
  return {
    name: spec.name,
    active: spec.active ?? true,
    comment: "",
    spec,
    bindAddress,
    components: spec.components.map((c) => ({
      name: c.name,
      image: c.image,
      version: "v1",
      desiredState: desired,
      observedState: "running",
      startedAt: undefined,
      routes: c.routes.map((r) => ({ ...r, hostPort: next++ })),
      container: `${spec.name}-${c.name}`,
      ports: c.ports,
      health: "",
      healthOutput: "",
      healthCheckedAt: undefined,
    })),
  };
}

function source(components: Partial<ComponentSpec>[], bindAddress = "127.0.0.1"): ExportSource {
  const spec: ServiceSpec = {
    name: "svc",
    active: true,
    comment: "",
    node: "n1",
    components: components.map((c) => ComponentSpec.fromPartial({ image: IMAGE, ...c })),
  };
  return exportSource("n1", infoOf(spec, bindAddress));
}

function health(h: Partial<HealthSpec>): HealthSpec {
  return HealthSpec.fromPartial({ type: "none", ...h });
}

const route = (name: string, port = 443, protocol = "tcp") => ({
  name,
  port,
  mode: "l4",
  hostname: "",
  protocol,
  proxyProtocol: false,
});

const hasNote = (notes: string[], re: RegExp) =>
  assert.ok(
    notes.some((n) => re.test(n)),
    `no note matching ${re}:\n${notes.join("\n")}`,
  );
const noNote = (notes: string[], re: RegExp) =>
  assert.ok(!notes.some((n) => re.test(n)), `a note matches ${re}:\n${notes.join("\n")}`);

describe("export source", () => {
  test("a route without a host port is refused, naming it", () => {
    const spec = toServiceSpec(
      parseServiceDef(readFileSync("examples/hello.toml", "utf8"), "hello.toml"),
    );
    const info = infoOf(spec);
    for (const c of info.components) for (const r of c.routes) r.hostPort = 0;
    assert.throws(() => exportSource("local", info), {
      code: "failed_precondition",
      message: /hello\/web: no host port allocated for the unnamed route on node local/,
    });
  });

  test("no spec (an older agent) is refused", () => {
    const info = { ...infoOf({ name: "x", comment: "", node: "", components: [] }) };
    delete (info as { spec?: unknown }).spec;
    assert.throws(() => exportSource("n1", info), { code: "failed_precondition" });
  });

  test("an agent that sends no bind address: 127.0.0.1 assumed, and said", () => {
    const s = source([{ name: "web", routes: [route("")] }], "");
    assert.equal(s.bindAddress, "127.0.0.1");
    hasNote(buildKubePod(s).notes, /did not say its bind address.*127\.0\.0\.1/);
  });

  test("common notes: MCP's proxy per tcp route, inactive service, components not desired running", () => {
    const spec: ServiceSpec = {
      name: "svc",
      active: false,
      comment: "",
      node: "n1",
      components: [
        ComponentSpec.fromPartial({
          name: "web",
          image: IMAGE,
          routes: [
            { ...route("rest", 8443), hostname: "a.example", proxyProtocol: true },
            route("dns", 53, "udp"),
          ],
        }),
      ],
    };
    const { notes } = buildCompose(exportSource("n1", infoOf(spec, "127.0.0.1", "stopped")));
    hasNote(notes, /^MCP's deploys .* and its monitor/);
    hasNote(
      notes,
      /web: route "rest" \(listener 8443\/l4, hostname a\.example, PROXY protocol v2 header\) is served by MCP's proxy.*host port 23100/,
    );
    noNote(notes, /route "dns"/);
    hasNote(notes, /inactive in MCP/);
    hasNote(notes, /web: desired stopped in MCP/);
  });
});

describe("kube: the Pod", () => {
  test("ports: hostPort = containerPort = the route's host port on the bind address; udp; explicit mappings", () => {
    const { document, notes } = buildKubePod(
      source(
        [
          {
            name: "api",
            routes: [route("rest"), route("dns", 53, "udp")],
            ports: ["18080:8080", "127.0.0.1::8081", "127.0.0.1:18082:8082/udp"],
          },
        ],
        "::1",
      ),
    );
    assert.deepEqual(document.spec.containers[0]?.ports, [
      { containerPort: 8080, hostPort: 18080, hostIP: "::1" },
      { containerPort: 8081, hostIP: "127.0.0.1" },
      { containerPort: 8082, hostPort: 18082, hostIP: "127.0.0.1", protocol: "UDP" },
      { containerPort: 23100, hostPort: 23100, hostIP: "::1" },
      { containerPort: 23101, hostPort: 23101, hostIP: "::1", protocol: "UDP" },
    ]);
    hasNote(notes, /"127.0.0.1::8081" lets podman pick the host port/);
  });

  test("env: the user's then the port variables, a later key wins; cmd is args; $( escaped and said", () => {
    const { document, notes } = buildKubePod(
      source([
        {
          name: "api",
          env: ["A=1", "B=$(A)", "A=2"],
          cmd: ["serve", "--x=$(B)"],
          routes: [route("rest"), route("grpc")],
        },
      ]),
    );
    const c = document.spec.containers[0];
    assert.deepEqual(c?.env, [
      { name: "A", value: "2" },
      { name: "B", value: "$$(A)" },
      { name: "PORT_REST", value: "23100" },
      { name: "PORT_GRPC", value: "23101" },
    ]);
    assert.deepEqual(c?.args, ["serve", "--x=$$(B)"]);
    assert.equal(c?.imagePullPolicy, "IfNotPresent");
    assert.equal(c?.image, IMAGE);
    hasNote(notes, /api: "\$\(" in env values and args is written "\$\$\("/);
  });

  test("volumes: hostPath with the spec's path, ro → readOnly, other options noted", () => {
    const { document, notes } = buildKubePod(
      source([
        { name: "api", volumes: ["/srv/svc/data:/data:ro,nosuid", "/srv/svc/conf:/conf:rw,rbind"] },
      ]),
    );
    assert.deepEqual(document.spec.volumes, [
      { name: "api-0", hostPath: { path: "/srv/svc/data" } },
      { name: "api-1", hostPath: { path: "/srv/svc/conf" } },
    ]);
    assert.deepEqual(document.spec.containers[0]?.volumeMounts, [
      { name: "api-0", mountPath: "/data", readOnly: true },
      { name: "api-1", mountPath: "/conf" },
    ]);
    hasNote(notes, /"\/srv\/svc\/data:\/data:ro,nosuid": options nosuid/);
    noNote(notes, /conf/);
  });

  test("restart: one policy per Pod, the most restarting one, differences noted", () => {
    assert.equal(kubeRestartPolicy(""), "Never");
    assert.equal(kubeRestartPolicy("no"), "Never");
    assert.equal(kubeRestartPolicy("on-failure:3"), "OnFailure");
    assert.equal(kubeRestartPolicy("always"), "Always");
    assert.equal(kubeRestartPolicy("unless-stopped"), "Always");
    const one = buildKubePod(source([{ name: "a" }]));
    assert.equal(one.document.spec.restartPolicy, "Never");
    const mixed = buildKubePod(source([{ name: "a", restart: "on-failure:3" }, { name: "b" }]));
    assert.equal(mixed.document.spec.restartPolicy, "OnFailure");
    hasNote(mixed.notes, /a: restart "on-failure:3": Kubernetes has no retry limit/);
    hasNote(mixed.notes, /b: restart "no" in MCP; .* OnFailure here/);
    hasNote(
      buildKubePod(source([{ name: "a", restart: "unless-stopped" }])).notes,
      /unless-stopped" is Always/,
    );
  });

  test("user, resources, network", () => {
    const { document, notes } = buildKubePod(
      source([
        { name: "a", user: "1000:1001", memory: "256m", cpus: 0.5, pids: 64 },
        { name: "b", user: "nobody", memory: "1g", cpus: 2, network: "podman" },
        { name: "c", user: "33", memory: "100k" },
      ]),
    );
    const [a, b, c] = document.spec.containers;
    assert.deepEqual(a?.securityContext, { runAsUser: 1000, runAsGroup: 1001 });
    assert.deepEqual(a?.resources, { limits: { memory: "256Mi", cpu: "500m" } });
    assert.equal(b?.securityContext, undefined);
    assert.deepEqual(b?.resources, { limits: { memory: "1Gi", cpu: "2000m" } });
    assert.deepEqual(c?.securityContext, { runAsUser: 33 });
    assert.equal(kubeMemory("6m"), "6Mi");
    assert.equal(kubeMemory("100b"), "100");
    hasNote(notes, /a: pids = 64/);
    hasNote(notes, /b: user "nobody" is a name/);
    hasNote(notes, /b: network "podman" has no Pod field \(podman kube play --network podman/);
    hasNote(notes, /share the Pod's network namespace/);
    const host = buildKubePod(source([{ name: "a", network: "host" }]));
    assert.equal(host.document.spec.hostNetwork, true);
    noNote(host.notes, /network/);
  });

  test("two components on one container port: one network namespace, noted", () => {
    const { notes } = buildKubePod(
      source([
        { name: "a", ports: ["18080:8080"] },
        { name: "b", ports: ["18081:8080"] },
      ]),
    );
    hasNote(notes, /container port 8080\/tcp is used by a and b/);
  });

  test("health → readinessProbe: http, tcp, exec, default, none; timings", () => {
    const probe = (h: HealthSpec | undefined, routes = [route("rest"), route("grpc")]) =>
      buildKubePod(source([{ name: "a", routes, ...(h ? { health: h } : {}) }]));
    assert.deepEqual(
      probe(
        health({
          type: "http",
          route: "grpc",
          path: "/up",
          interval: "5s",
          timeout: "1500ms",
          retries: 4,
          startPeriod: "20s",
        }),
      ).document.spec.containers[0]?.readinessProbe,
      {
        httpGet: { path: "/up", port: 23101 },
        periodSeconds: 5,
        timeoutSeconds: 2,
        failureThreshold: 4,
        initialDelaySeconds: 20,
      },
    );
    const rounded = probe(health({ type: "tcp", timeout: "1500ms", startPeriod: "20s" }));
    hasNote(rounded.notes, /rounded up to whole seconds/);
    hasNote(rounded.notes, /initialDelaySeconds/);
    assert.deepEqual(
      probe(health({ type: "exec", cmd: ["/bin/check", "-q"] })).document.spec.containers[0]
        ?.readinessProbe,
      {
        exec: { command: ["/bin/check", "-q"] },
        periodSeconds: 10,
        timeoutSeconds: 2,
        failureThreshold: 3,
      },
    );
    const byDefault = probe(undefined);
    assert.deepEqual(byDefault.document.spec.containers[0]?.readinessProbe?.tcpSocket, {
      port: 23100,
    });
    hasNote(byDefault.notes, /a: MCP checks a TCP connect on ports 23100, 23101; .* on 23100/);
    assert.equal(
      probe(health({ type: "none" })).document.spec.containers[0]?.readinessProbe,
      undefined,
    );
    assert.equal(probe(undefined, []).document.spec.containers[0]?.readinessProbe, undefined);
  });
});

describe("compose: the file", () => {
  test("every field of a component, $ escaped", () => {
    const { document, notes } = buildCompose(
      source([
        {
          name: "api",
          env: ["GREETING=hi $HOME", "A=1"],
          cmd: ["serve", "$X"],
          routes: [route("rest"), route("dns", 53, "udp")],
          ports: ["18080:8080"],
          volumes: ["/srv/svc:/data:ro"],
          restart: "on-failure:3",
          user: "1000:1000",
          memory: "256m",
          cpus: 0.5,
          pids: 64,
          health: health({
            type: "exec",
            cmd: ["check", "$Y"],
            interval: "90s",
            startPeriod: "1500ms",
          }),
        },
      ]),
    );
    assert.deepEqual(document, {
      name: "svc",
      services: {
        api: {
          image: IMAGE,
          command: ["serve", "$$X"],
          environment: {
            GREETING: "hi $$HOME",
            A: "1",
            PORT_REST: "23100",
            PORT_DNS: "23101",
          },
          ports: ["127.0.0.1:18080:8080", "127.0.0.1:23100:23100", "127.0.0.1:23101:23101/udp"],
          volumes: ["/srv/svc:/data:ro"],
          restart: "on-failure:3",
          user: "1000:1000",
          mem_limit: "256m",
          cpus: 0.5,
          pids_limit: 64,
          healthcheck: {
            test: ["CMD", "check", "$$Y"],
            interval: "1m30s",
            timeout: "2s",
            retries: 3,
            start_period: "1s500ms",
          },
        },
      },
      networks: { default: { name: "podman", external: true } },
    });
    noNote(notes, /healthcheck/);
  });

  test("http and tcp checks run from the host: left out, and said", () => {
    const http = buildCompose(
      source([{ name: "a", routes: [route("")], health: health({ type: "http", path: "/up" }) }]),
    );
    assert.equal(http.document.services.a?.healthcheck, undefined);
    hasNote(http.notes, /a: MCP's health check is an HTTP GET of \/up on port 23100 from the host/);
    hasNote(
      buildCompose(source([{ name: "a", routes: [route("x"), route("y")] }])).notes,
      /a TCP connect on ports 23100, 23101/,
    );
  });

  test("networks: the default is podman's, external; named ones external; modes are network_mode", () => {
    const { document } = buildCompose(
      source([
        { name: "a", network: "mcpnet" },
        { name: "b", network: "host" },
        { name: "c", network: "bridge" },
      ]),
    );
    assert.deepEqual(document.services.a?.networks, ["mcpnet"]);
    assert.equal(document.services.b?.network_mode, "host");
    assert.equal(document.services.c?.networks, undefined);
    assert.deepEqual(document.networks, {
      mcpnet: { external: true },
      default: { name: "podman", external: true },
    });
    const onlyNamed = buildCompose(source([{ name: "a", network: "mcpnet" }]));
    assert.deepEqual(onlyNamed.document.networks, { mcpnet: { external: true } });
  });
});

describe("the rendered files", () => {
  test("header and notes as comments, YAML 1.1 that reads back to the document", () => {
    const text = renderExport(["Title line."], "Not expressible:", {
      document: { restart: "no", on: "yes", ports: ["[::1]:23100:23100", "8080:80"], n: "0755" },
      notes: [`a long note ${"word ".repeat(40)}end`],
    });
    const lines = text.split("\n");
    assert.equal(lines[0], "# Title line.");
    assert.equal(lines[2], "# Not expressible:");
    assert.match(lines[3] ?? "", /^# - a long note word/);
    assert.ok(
      lines.every((l) => l.length <= 100),
      "comments wrapped at 100",
    );
    assert.match(text, /restart: "no"/, "PyYAML would read an unquoted no as false");
    assert.deepEqual(parse(text, { version: "1.1" }), {
      restart: "no",
      on: "yes",
      ports: ["[::1]:23100:23100", "8080:80"],
      n: "0755",
    });
  });

  for (const file of ["examples/hello.toml", "examples/multi.toml", "examples/legacy.toml"]) {
    test(`${file} through both formats`, () => {
      const spec = toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file));
      const info = infoOf(spec);
      const kube = formatServiceExport("kube", "local", info);
      const compose = formatServiceExport("compose", "local", info);
      assert.match(kube, new RegExp(`^# Kubernetes Pod of MCP service ${spec.name} as node local`));
      assert.match(
        compose,
        new RegExp(`^# Compose file of MCP service ${spec.name} as node local`),
      );
      assert.match(compose, new RegExp(`podman-compose -p ${spec.name} -f FILE up -d`));
      const pod = parse(kube, { version: "1.1" }) as ReturnType<typeof buildKubePod>["document"];
      const doc = parse(compose, { version: "1.1" }) as ReturnType<typeof buildCompose>["document"];
      assert.deepEqual(pod, buildKubePod(exportSource("local", info)).document);
      assert.deepEqual(doc, buildCompose(exportSource("local", info)).document);
      assert.deepEqual(
        pod.spec.containers.map((c) => c.name),
        spec.components.map((c) => c.name),
      );
      assert.deepEqual(
        Object.keys(doc.services),
        spec.components.map((c) => c.name),
      );
      // Every route's variable is its published host port, in both files.
      for (const [i, c] of info.components.entries()) {
        const env = new Map(pod.spec.containers[i]?.env?.map((e) => [e.name, e.value]));
        for (const r of c.routes) {
          const name = r.name ? `PORT_${r.name.toUpperCase()}` : "PORT";
          assert.equal(env.get(name), String(r.hostPort));
          assert.equal(doc.services[c.name]?.environment?.[name], String(r.hostPort));
          assert.ok(doc.services[c.name]?.ports?.includes(`127.0.0.1:${r.hostPort}:${r.hostPort}`));
        }
      }
    });
  }

  test("legacy: explicit port, network and restart as MCP runs them", () => {
    const file = "examples/legacy.toml";
    const info = infoOf(toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file)));
    const { document: pod, notes } = buildKubePod(exportSource("local", info));
    assert.deepEqual(pod.spec.containers[0]?.ports, [
      { containerPort: 8080, hostPort: 18080, hostIP: "127.0.0.1" },
    ]);
    assert.equal(pod.spec.restartPolicy, "Always");
    hasNote(notes, /legacy: network "podman"/);
    const { document: compose } = buildCompose(exportSource("local", info));
    assert.deepEqual(compose.services.legacy, {
      image: IMAGE,
      environment: { PORT: "8080" },
      ports: ["127.0.0.1:18080:8080"],
      restart: "unless-stopped",
      networks: ["podman"],
    });
  });
});
