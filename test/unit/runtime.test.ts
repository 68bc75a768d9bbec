import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  buildExecArgs,
  buildImageExistsArgs,
  buildInspectArgs,
  buildListArgs,
  buildLogsArgs,
  buildPullArgs,
  buildRemoveArgs,
  buildRenameArgs,
  buildRestartArgs,
  buildRunArgs,
  buildStartArgs,
  buildStopArgs,
  buildStoragePathsArgs,
  buildVersionArgs,
  containerName,
  isAddressInUse,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  mcpLabels,
  parseInspectJson,
  parsePsJson,
  splitContainerName,
  type ContainerSpec,
} from "../../src/runtime/index.js";
import { CommandError } from "../../src/util/exec.js";

function spec(
  fields: Partial<ContainerSpec> & Pick<ContainerSpec, "name" | "image">,
): ContainerSpec {
  return { labels: {}, ports: [], volumes: [], env: [], cmd: [], ...fields };
}

describe("buildRunArgs", () => {
  test("original example: env only", () => {
    const args = buildRunArgs(
      spec({ name: "test-app", image: "img:latest", env: ["PORT=12345", "PORT_GRPC=12346"] }),
    );
    assert.deepEqual(
      args.join(" "),
      "run -d --name test-app -e PORT=12345 -e PORT_GRPC=12346 img:latest",
    );
  });

  test("original example: network, port, volume, env", () => {
    const args = buildRunArgs(
      spec({
        name: "svc-api",
        image: "img:latest",
        network: "net",
        ports: ["127.0.0.1:12345:8443"],
        volumes: ["/srv:/srv"],
        env: ["PORT=12345"],
      }),
    );
    assert.deepEqual(args, [
      "run", "-d", "--name", "svc-api",
      "--network", "net",
      "-p", "127.0.0.1:12345:8443",
      "-v", "/srv:/srv",
      "-e", "PORT=12345",
      "img:latest",
    ]); // prettier-ignore
  });

  test("every field, in order: flags, sorted labels, -p, -v, -e, image, cmd", () => {
    const args = buildRunArgs({
      name: "mcq",
      image: "localhost/mcq:v0.3.2",
      network: "mcpnet",
      user: "0:0",
      restart: "unless-stopped",
      labels: { "mcp.service": "mcq", "mcp.component": "mcq", "mcp.node": "rift" },
      ports: ["127.0.0.1:57546:57546", "127.0.0.1:57547:57547/udp"],
      volumes: ["/srv/mcq:/srv/mcq", "/etc/ssl:/etc/ssl:ro"],
      env: ["LOG=debug", "PORT=57546"],
      cmd: ["server", "--config", "/srv/mcq/mcq.toml"],
    });
    assert.deepEqual(args, [
      "run", "-d", "--name", "mcq",
      "--network", "mcpnet",
      "--user", "0:0",
      "--restart", "unless-stopped",
      "--label", "mcp.component=mcq",
      "--label", "mcp.node=rift",
      "--label", "mcp.service=mcq",
      "-p", "127.0.0.1:57546:57546",
      "-p", "127.0.0.1:57547:57547/udp",
      "-v", "/srv/mcq:/srv/mcq",
      "-v", "/etc/ssl:/etc/ssl:ro",
      "-e", "LOG=debug",
      "-e", "PORT=57546",
      "localhost/mcq:v0.3.2",
      "server", "--config", "/srv/mcq/mcq.toml",
    ]); // prettier-ignore
  });

  test("resource limits and the log size cap come after the other flags", () => {
    const args = buildRunArgs(
      spec({
        name: "api",
        image: "localhost/api:v1",
        restart: "always",
        memory: "256m",
        cpus: 0.5,
        pids: 128,
        logMaxSize: "10m",
        env: ["A=1"],
      }),
    );
    assert.deepEqual(args, [
      "run", "-d", "--name", "api",
      "--restart", "always",
      "--memory", "256m",
      "--cpus", "0.5",
      "--pids-limit", "128",
      "--log-opt", "max-size=10m",
      "-e", "A=1",
      "localhost/api:v1",
    ]); // prettier-ignore
  });

  test("absent or zero resources add nothing", () => {
    const args = buildRunArgs(
      spec({ name: "a", image: "localhost/a:v1", memory: "", cpus: 0, pids: 0, logMaxSize: "" }),
    );
    assert.deepEqual(args, ["run", "-d", "--name", "a", "localhost/a:v1"]);
  });

  test("empty optional flags are omitted and nothing is added (no --pull)", () => {
    const args = buildRunArgs(spec({ name: "a", image: "localhost/a:v1", network: "", user: "" }));
    assert.deepEqual(args, ["run", "-d", "--name", "a", "localhost/a:v1"]);
  });

  test("values with spaces or shell characters stay single argv entries", () => {
    const args = buildRunArgs(spec({ name: "a", image: "i:v1", env: ["MSG=a b; rm -rf /"] }));
    assert.deepEqual(args.slice(4), ["-e", "MSG=a b; rm -rf /", "i:v1"]);
  });
});

describe("buildExecArgs", () => {
  test("the command follows the container, verbatim", () =>
    assert.deepEqual(buildExecArgs("hello-web", ["/bin/check", "--fast", "a b"]), [
      "exec",
      "hello-web",
      "/bin/check",
      "--fast",
      "a b",
    ]));
});

describe("buildLogsArgs", () => {
  test("no options", () => assert.deepEqual(buildLogsArgs("mcq", {}), ["logs", "mcq"]));
  test("all options", () =>
    assert.deepEqual(
      buildLogsArgs("mcq", { tail: 0, follow: true, timestamps: true, since: "10m" }),
      ["logs", "--tail", "0", "--follow", "--timestamps", "--since", "10m", "mcq"],
    ));
});

// One row per case: the exact argv podman.ts sends for that call.
describe("the other command builders", () => {
  const cases: [string, string[], string[]][] = [
    ["buildPullArgs: quiet", buildPullArgs("localhost/mcq:v1"), ["pull", "--quiet", "localhost/mcq:v1"]],
    ["buildImageExistsArgs", buildImageExistsArgs("localhost/mcq:v1"), ["image", "exists", "localhost/mcq:v1"]],
    ["buildStopArgs: the grace period in -t", buildStopArgs("mcq", 10), ["stop", "-t", "10", "mcq"]],
    ["buildStopArgs: zero is kept (stop at once)", buildStopArgs("mcq", 0), ["stop", "-t", "0", "mcq"]],
    ["buildStartArgs", buildStartArgs("mcq"), ["start", "mcq"]],
    // podman 4.3.1 refuses -t without -f, so an unforced rm carries no timeout.
    ["buildRemoveArgs: not forced, no -t", buildRemoveArgs("mcq", { timeoutSeconds: 10 }), ["rm", "--ignore", "mcq"]],
    ["buildRemoveArgs: force false is not forced", buildRemoveArgs("mcq", { force: false, timeoutSeconds: 10 }), ["rm", "--ignore", "mcq"]],
    ["buildRemoveArgs: forced, with the grace period", buildRemoveArgs("mcq", { force: true, timeoutSeconds: 0 }), ["rm", "-f", "-t", "0", "--ignore", "mcq"]],
    ["buildRestartArgs: the grace period in -t", buildRestartArgs("mcq", 5), ["restart", "-t", "5", "mcq"]],
    ["buildRenameArgs: from, then to", buildRenameArgs("mcq", "mcq.prev"), ["rename", "mcq", "mcq.prev"]],
    ["buildInspectArgs: container inspect (never an image)", buildInspectArgs("mcq"), ["container", "inspect", "--format", "json", "mcq"]],
    ["buildListArgs: all containers", buildListArgs(), ["ps", "-a", "--format", "json"]],
    ["buildVersionArgs: the client version", buildVersionArgs(), ["version", "--format", "{{.Client.Version}}"]],
    ["buildStoragePathsArgs: one path a line", buildStoragePathsArgs(), ["info", "--format", "{{.Store.GraphRoot}}\n{{.Store.RunRoot}}"]],
  ]; // prettier-ignore
  for (const [name, actual, expected] of cases)
    test(name, () => assert.deepEqual(actual, expected));
});

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

// Captured from `podman ps -a --format json` (podman 4.3.1, this machine), trimmed:
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

// Captured from `podman container inspect --format json` (podman 4.3.1), trimmed to
// the fields we read plus a few neighbours.
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

describe("parseInspectJson", () => {
  const [exited, created] = parseInspectJson(INSPECT_SAMPLE);

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

  test("podman's empty answer for a missing container", () =>
    assert.deepEqual(parseInspectJson("[]"), []));
});

/** A CommandError as `podman <sub>` would raise it, with stderr captured on this machine. */
function podmanError(sub: string, exitCode: number, stderr: string): CommandError {
  return new CommandError({ argv: ["podman", sub], exitCode, stderr });
}

// Real stderr from podman 4.3.1 here (see test/integration/podman.test.ts for the live checks).
const PORT_TAKEN = podmanError(
  "run",
  126,
  "Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:18090: bind: address already in use\n",
);
const IMAGE_NOT_KNOWN = podmanError(
  "run",
  125,
  "Error: localhost/mcp-nonexistent:v1: image not known\n",
);
const PULL_REFUSED = podmanError(
  "run",
  125,
  [
    "Trying to pull localhost/mcp-nonexistent:v1...",
    'time="2026-11-27T10:06:48Z" level=warning msg="Failed, retrying in 1s ... (1/3). Error: initializing source docker://localhost/mcp-nonexistent:v1: pinging container registry localhost: Get \\"https://localhost/v2/\\": dial tcp 127.0.0.1:443: connect: connection refused"',
    'Error: initializing source docker://localhost/mcp-nonexistent:v1: pinging container registry localhost: Get "https://localhost/v2/": dial tcp 127.0.0.1:443: connect: connection refused',
    "",
  ].join("\n"),
);
const NO_CONTAINER = podmanError(
  "stop",
  125,
  'Error: no container with name or ID "nope" found: no such container\n',
);
const INSPECT_NO_CONTAINER = podmanError(
  "container",
  125,
  "Error: inspecting object: no such container nope\n",
);
const INSPECT_NO_OBJECT = podmanError(
  "inspect",
  125,
  'Error: inspecting object: no such object: "nope"\n',
);
const NAME_IN_USE = podmanError(
  "run",
  125,
  'Error: creating container storage: the container name "mcp-probe-a" is already in use by 5e28a9369e1285121e28575315f909c813718146d9f0f6d32f544fcb6352ee3a. You have to remove that container to be able to reuse that name: that name is already in use\n',
);
const ALL = [
  PORT_TAKEN,
  IMAGE_NOT_KNOWN,
  PULL_REFUSED,
  NO_CONTAINER,
  INSPECT_NO_CONTAINER,
  INSPECT_NO_OBJECT,
  NAME_IN_USE,
];

describe("error classifiers", () => {
  const only = (pred: (e: unknown) => boolean, expected: CommandError[]) =>
    assert.deepEqual(
      ALL.filter(pred).map((e) => e.stderr),
      expected.map((e) => e.stderr),
    );

  test("isAddressInUse", () => only(isAddressInUse, [PORT_TAKEN]));
  test("isNoSuchImage", () => only(isNoSuchImage, [IMAGE_NOT_KNOWN]));
  test("isPullFailure", () => only(isPullFailure, [PULL_REFUSED]));
  test("isNoSuchContainer (not the image-or-container `inspect`)", () =>
    only(isNoSuchContainer, [NO_CONTAINER, INSPECT_NO_CONTAINER]));
  test("isNameInUse", () => only(isNameInUse, [NAME_IN_USE]));

  test("anything that is not a CommandError is unclassified", () => {
    const plain = new Error("address already in use");
    for (const pred of [isAddressInUse, isNoSuchImage, isNoSuchContainer, isNameInUse]) {
      assert.equal(pred(plain), false);
      assert.equal(pred(undefined), false);
    }
  });

  test("the message names the command, exit status and podman's last line", () => {
    assert.equal(
      PORT_TAKEN.message,
      "podman run exited 126: Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:18090: bind: address already in use",
    );
    assert.equal(PORT_TAKEN.code, "runtime");
    assert.match(PULL_REFUSED.message, /^podman run exited 125: Error: initializing source/);
  });
});
