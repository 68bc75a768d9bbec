/**
 * src/runtime's pure parts beside the API's requests: the names and labels
 * MCP gives containers (names.ts), and the container JSON read into
 * ContainerStatus (libpod/status.ts), on captured answers.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  containerName,
  mcpLabels,
  parseInspectObject,
  parsePsJson,
  splitContainerName,
} from "../../src/runtime/index.js";

describe("container names", () => {
  test("containerName", () => {
    assert.equal(containerName("metacrypt", "api"), "metacrypt-api");
    assert.equal(containerName("mc-proxy", "mc-proxy"), "mc-proxy");
  });

  test("a known service wins over the first dash (mc-proxy)", () => {
    assert.deepEqual(splitContainerName("mc-proxy", ["mc-proxy", "mcq"]), {
      service: "mc-proxy",
      component: "mc-proxy",
    });
    assert.deepEqual(splitContainerName("mc-proxy-admin", ["mc-proxy"]), {
      service: "mc-proxy",
      component: "admin",
    });
  });

  test("the longest known service wins", () => {
    const known = ["mc", "mc-proxy"];
    assert.deepEqual(splitContainerName("mc-proxy-web", known), {
      service: "mc-proxy",
      component: "web",
    });
    assert.deepEqual(splitContainerName("mc-web", known), { service: "mc", component: "web" });
  });

  test("a known service must be followed by '-' to match", () => {
    assert.deepEqual(splitContainerName("mcq-web", ["mc"]), { service: "mcq", component: "web" });
  });

  test("unknown names split at the first dash", () => {
    assert.deepEqual(splitContainerName("metacrypt-api-v2", []), {
      service: "metacrypt",
      component: "api-v2",
    });
    assert.deepEqual(splitContainerName("mcq", []), { service: "mcq", component: "mcq" });
  });

  test("names with an empty part are not ours", () => {
    assert.equal(splitContainerName("-api", []), undefined);
    assert.equal(splitContainerName("svc-", []), undefined);
    assert.equal(splitContainerName("", []), undefined);
  });

  test("the known services as a Set (matching many containers): the same rules", () => {
    const known = new Set(["mc", "mc-proxy", "svc"]);
    const split = (name: string) => splitContainerName(name, known);
    assert.deepEqual(split("mc-proxy"), { service: "mc-proxy", component: "mc-proxy" });
    assert.deepEqual(split("mc-proxy-web"), { service: "mc-proxy", component: "web" });
    assert.deepEqual(split("mc-web"), { service: "mc", component: "web" });
    assert.deepEqual(split("mc--web"), { service: "mc", component: "-web" });
    assert.deepEqual(split("mcq-web"), { service: "mcq", component: "web" });
    assert.equal(split("svc-"), undefined);
  });

  test("round trip", () => {
    for (const [s, c] of [
      ["mc-proxy", "mc-proxy"],
      ["mc-proxy", "web"],
      ["mcq", "mcq"],
      ["metacrypt", "api"],
    ] as const) {
      assert.deepEqual(splitContainerName(containerName(s, c), ["mc-proxy", "mcq", "metacrypt"]), {
        service: s,
        component: c,
      });
    }
  });

  test("mcpLabels", () => {
    assert.deepEqual(mcpLabels("mcq", "web", "rift"), {
      "mcp.service": "mcq",
      "mcp.component": "web",
      "mcp.node": "rift",
    });
  });
});

// Captured from `podman ps -a --format json` (podman 4.3.1, this machine; the
// API's list answers the same JSON), trimmed:
// a running container with mcp labels, one that exited 3, one only created (Go's
// zero time in StartedAt, a published range and a udp port), and one from an
// image without labels (Labels: null).
const PS_SAMPLE = `[
  {
    "AutoRemove": false,
    "Command": ["/bin/serve-env"],
    "CreatedAt": "Less than a second ago",
    "Exited": false,
    "ExitedAt": -62135596800,
    "ExitCode": 0,
    "Id": "5e28a9369e1285121e28575315f909c813718146d9f0f6d32f544fcb6352ee3a",
    "Image": "localhost/mcp-httpenv:v1",
    "ImageID": "23560f83fc89e4315689894d3f3fdac87dd19f8a081558c19b1ad9bf3391b427",
    "IsInfra": false,
    "Labels": {
      "io.buildah.version": "1.28.2",
      "mcp.build": "df749316f88fe9fa",
      "mcp.component": "a",
      "mcp.service": "probe"
    },
    "Mounts": [],
    "Names": ["mcp-probe-a"],
    "Namespaces": {},
    "Networks": ["podman"],
    "Pid": 5763,
    "Pod": "",
    "PodName": "",
    "Ports": [
      { "host_ip": "127.0.0.1", "container_port": 18081, "host_port": 18081, "range": 1, "protocol": "tcp" }
    ],
    "Size": null,
    "StartedAt": 1795773991,
    "State": "running",
    "Status": "Up 1 second ago",
    "Created": 1795773991
  },
  {
    "Command": ["sh", "-c", "exit 3"],
    "Exited": true,
    "ExitedAt": 1795774040,
    "ExitCode": 3,
    "Id": "08c6ad1dc396e1a36a4d31b3d0822f005e996d0bbc6f8883234d1a04579a969b",
    "Image": "localhost/mcp-httpenv:v1",
    "Labels": { "io.buildah.version": "1.28.2", "mcp.build": "df749316f88fe9fa" },
    "Names": ["mcp-probe-d"],
    "Ports": null,
    "StartedAt": 1795774040,
    "State": "exited",
    "Status": "Exited (3) Less than a second ago"
  },
  {
    "Command": ["/bin/serve-env"],
    "Exited": false,
    "ExitedAt": -62135596800,
    "ExitCode": 0,
    "Id": "0b7a1c2d3e4f",
    "Image": "localhost/mcp-httpenv:v1",
    "Labels": {},
    "Names": ["mcp-probe-e"],
    "Ports": [
      { "host_ip": "127.0.0.1", "container_port": 18100, "host_port": 18100, "range": 2, "protocol": "tcp" },
      { "host_ip": "", "container_port": 18102, "host_port": 18102, "range": 1, "protocol": "udp" }
    ],
    "StartedAt": -62135596800,
    "State": "created",
    "Status": "Created"
  },
  {
    "Command": ["/bin/busybox", "true"],
    "ExitCode": 0,
    "Id": "ffee",
    "Image": "localhost/mcp-probe-nolabel:v1",
    "Labels": null,
    "Names": ["mcp-probe-nl"],
    "Ports": [],
    "StartedAt": -62135596800,
    "State": "created"
  }
]`;

describe("parsePsJson", () => {
  const list = parsePsJson(PS_SAMPLE);

  test("one status per entry", () => assert.equal(list.length, 4));

  test("running container", () => {
    assert.deepEqual(list[0], {
      id: "5e28a9369e1285121e28575315f909c813718146d9f0f6d32f544fcb6352ee3a",
      name: "mcp-probe-a",
      image: "localhost/mcp-httpenv:v1",
      state: "running",
      startedAt: new Date(1795773991 * 1000),
      labels: {
        "io.buildah.version": "1.28.2",
        "mcp.build": "df749316f88fe9fa",
        "mcp.component": "a",
        "mcp.service": "probe",
      },
      ports: ["127.0.0.1:18081:18081"],
    });
  });

  test("exited container carries its exit code; null Ports is no ports", () => {
    assert.equal(list[1]?.state, "exited");
    assert.equal(list[1]?.exitCode, 3);
    assert.deepEqual(list[1]?.ports, []);
  });

  test("created container: never started, ranges expanded, udp marked", () => {
    assert.equal(list[2]?.startedAt, null);
    assert.equal(list[2]?.exitCode, undefined);
    assert.deepEqual(list[2]?.ports, [
      "127.0.0.1:18100:18100",
      "127.0.0.1:18101:18101",
      "18102:18102/udp",
    ]);
  });

  test("Labels null is an empty map", () => assert.deepEqual(list[3]?.labels, {}));

  test("empty and null output", () => {
    assert.deepEqual(parsePsJson("[]"), []);
    assert.deepEqual(parsePsJson("null"), []);
  });

  test("garbage is a runtime error, not a crash", () => {
    assert.throws(() => parsePsJson("Error: oops"), { name: "McpError", code: "runtime" });
    assert.throws(() => parsePsJson("{}"), { code: "runtime" });
  });
});

// Captured from `podman container inspect --format json` (podman 4.3.1; the API's
// inspect answers each entry alone), trimmed to the fields we read plus a few neighbours.
const INSPECT_SAMPLE = `[
  {
    "Id": "5e28a9369e1285121e28575315f909c813718146d9f0f6d32f544fcb6352ee3a",
    "Created": "2026-11-27T10:06:31.555761386Z",
    "Path": "/bin/serve-env",
    "Args": ["/bin/serve-env"],
    "State": {
      "OciVersion": "1.0.2-dev",
      "Status": "exited",
      "Running": false,
      "Paused": false,
      "Pid": 0,
      "ExitCode": 0,
      "Error": "",
      "StartedAt": "2026-11-27T10:07:16.310458304Z",
      "FinishedAt": "2026-11-27T10:07:16.354880591Z"
    },
    "Image": "23560f83fc89e4315689894d3f3fdac87dd19f8a081558c19b1ad9bf3391b427",
    "ImageName": "localhost/mcp-httpenv:v1",
    "Name": "mcp-probe-a",
    "RestartCount": 0,
    "NetworkSettings": { "Ports": { "18081/tcp": [{ "HostIp": "127.0.0.1", "HostPort": "18081" }] } },
    "Config": {
      "Hostname": "5e28a9369e12",
      "Env": ["PORT=18081", "PATH=/bin"],
      "Cmd": ["/bin/serve-env"],
      "Image": "localhost/mcp-httpenv:v1",
      "Labels": { "mcp.component": "a", "mcp.service": "probe" }
    },
    "HostConfig": {
      "PortBindings": {
        "18101/tcp": [{ "HostIp": "127.0.0.1", "HostPort": "18101" }],
        "18081/tcp": [{ "HostIp": "127.0.0.1", "HostPort": "18081" }],
        "18102/udp": [{ "HostIp": "", "HostPort": "18102" }]
      },
      "RestartPolicy": { "Name": "", "MaximumRetryCount": 0 }
    }
  },
  {
    "Id": "08c6ad1dc396",
    "State": { "Status": "created", "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z" },
    "ImageName": "localhost/mcp-httpenv:v1",
    "Name": "mcp-probe-d",
    "Config": { "Labels": null },
    "HostConfig": { "PortBindings": {} }
  }
]`;

describe("parseInspectObject", () => {
  const [exited, created] = (JSON.parse(INSPECT_SAMPLE) as unknown[]).map(parseInspectObject);

  test("exited container", () => {
    assert.deepEqual(exited, {
      id: "5e28a9369e1285121e28575315f909c813718146d9f0f6d32f544fcb6352ee3a",
      name: "mcp-probe-a",
      image: "localhost/mcp-httpenv:v1",
      state: "exited",
      startedAt: new Date("2026-11-27T10:07:16.310Z"),
      labels: { "mcp.component": "a", "mcp.service": "probe" },
      ports: ["127.0.0.1:18081:18081", "127.0.0.1:18101:18101", "18102:18102/udp"],
      exitCode: 0,
    });
  });

  test("never started: Go zero time is null; null labels are empty", () => {
    assert.equal(created?.startedAt, null);
    assert.deepEqual(created?.labels, {});
    assert.equal(created?.exitCode, undefined);
  });
});
