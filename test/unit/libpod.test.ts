/**
 * The libpod API runtime's pure parts: the create body for each ContainerSpec
 * field (as `podman run` reads its flag), the path and query of every other
 * call, the answers' parsers, the frame decoder, and the error classifiers on
 * the API's error bodies (captured from the real socket, podman 4.3.1, this
 * machine).
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import {
  isAddressInUse,
  isInvalidSince,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  parseInspectObject,
  type ContainerSpec,
} from "../../src/runtime/index.js";
import { demuxFrames, FrameDecoder } from "../../src/runtime/libpod/client.js";
import { LibpodError, libpodErrorFromBody } from "../../src/runtime/libpod/errors.js";
import { parseEvent, stateAfter } from "../../src/runtime/libpod/events.js";
import {
  buildCreateBody,
  createRequest,
  cpuQuota,
  execCreateRequest,
  execInspectRequest,
  execStartRequest,
  humanSize,
  imageExistsRequest,
  infoRequest,
  inspectRequest,
  listRequest,
  logsRequest,
  networkMode,
  parsePullStream,
  pingRequest,
  pullRequest,
  ramInBytes,
  removeReportError,
  removeRequest,
  renameRequest,
  restartPolicy,
  restartRequest,
  startRequest,
  stopRequest,
  versionRequest,
  eventsRequest,
} from "../../src/runtime/libpod/requests.js";
import { buildServiceArgs } from "../../src/runtime/libpod/service.js";

function spec(
  fields: Partial<ContainerSpec> & Pick<ContainerSpec, "name" | "image">,
): ContainerSpec {
  return { labels: {}, ports: [], volumes: [], env: [], cmd: [], ...fields };
}

const P = "/v4.0.0/libpod";

describe("buildCreateBody: one field per ContainerSpec field", () => {
  test("name and image only: nothing else (podman's defaults, as a bare `podman run`)", () => {
    const s = spec({ name: "a", image: "localhost/a:v1" });
    assert.deepEqual(buildCreateBody(s), { name: "a", image: "localhost/a:v1" });
  });

  test("empty or zero optional fields are left out, as a person would leave out their flags", () => {
    const s = spec({
      name: "a",
      image: "localhost/a:v1",
      network: "",
      user: "",
      restart: "",
      memory: "",
      cpus: 0,
      pids: 0,
      logMaxSize: "",
    });
    assert.deepEqual(buildCreateBody(s), { name: "a", image: "localhost/a:v1" });
  });

  test("cmd: the arguments after the image are `command`", () =>
    assert.deepEqual(
      buildCreateBody(spec({ name: "a", image: "i", cmd: ["server", "--config", "/a b"] })).command,
      ["server", "--config", "/a b"],
    ));

  test("-e: a map; values keep spaces, `=` and shell characters; the last entry for a key wins", () =>
    assert.deepEqual(
      buildCreateBody(
        spec({ name: "a", image: "i", env: ["MSG=a b; rm -rf /", "EQ=x=y", "A=1", "A=2", "E="] }),
      ).env,
      { MSG: "a b; rm -rf /", EQ: "x=y", A: "2", E: "" },
    ));

  test("-e KEY without a value is refused (only the CLI's own environment could fill it)", () =>
    assert.throws(() => buildCreateBody(spec({ name: "a", image: "i", env: ["KEY"] })), {
      code: "invalid_argument",
    }));

  test("--label: the labels, as given", () =>
    assert.deepEqual(
      buildCreateBody(spec({ name: "a", image: "i", labels: { "mcp.node": "rift", x: "a=b" } }))
        .labels,
      { "mcp.node": "rift", x: "a=b" },
    ));

  test("--user", () =>
    assert.equal(buildCreateBody(spec({ name: "a", image: "i", user: "0:0" })).user, "0:0"));

  test("-p: host address, host port, container port, protocol", () =>
    assert.deepEqual(
      buildCreateBody(
        spec({
          name: "a",
          image: "i",
          ports: [
            "127.0.0.1:57546:8443",
            "57547:57547/udp",
            "[::1]:8080:80",
            "9000",
            "10.0.0.1::9001",
          ],
        }),
      ).portmappings,
      [
        { host_ip: "127.0.0.1", host_port: 57546, container_port: 8443, protocol: "tcp" },
        { host_port: 57547, container_port: 57547, protocol: "udp" },
        { host_ip: "::1", host_port: 8080, container_port: 80, protocol: "tcp" },
        // No host port: podman picks one, as with `-p 9000`.
        { container_port: 9000, protocol: "tcp" },
        { host_ip: "10.0.0.1", container_port: 9001, protocol: "tcp" },
      ],
    ));

  test("-p forms it does not know (ranges, other protocols) are refused", () => {
    for (const p of ["8000-8001:8000-8001", "80/sctp", "a:b:c", "1.2.3.4:80:80:80"]) {
      assert.throws(() => buildCreateBody(spec({ name: "a", image: "i", ports: [p] })), {
        code: "invalid_argument",
      });
    }
  });

  test("-v: an absolute source is a bind mount with the options split", () =>
    assert.deepEqual(
      buildCreateBody(
        spec({ name: "a", image: "i", volumes: ["/srv/mcq:/srv/mcq", "/etc/ssl:/etc/ssl:ro,z"] }),
      ).mounts,
      [
        { type: "bind", source: "/srv/mcq", destination: "/srv/mcq" },
        { type: "bind", source: "/etc/ssl", destination: "/etc/ssl", options: ["ro", "z"] },
      ],
    ));

  test("-v: a named volume", () => {
    const body = buildCreateBody(spec({ name: "a", image: "i", volumes: ["data:/data:ro"] }));
    assert.deepEqual(body.volumes, [{ Name: "data", Dest: "/data", Options: ["ro"] }]);
    assert.equal(body.mounts, undefined);
  });

  test("-v forms it does not know are refused", () => {
    for (const v of ["/only", "/a:relative", "/a:/b:ro:x", ":/b", "/a:/b:O"]) {
      assert.throws(() => buildCreateBody(spec({ name: "a", image: "i", volumes: [v] })), {
        code: "invalid_argument",
      });
    }
  });

  test("--restart: the policy, and on-failure's retry count", () => {
    assert.deepEqual(restartPolicy("always"), { restart_policy: "always" });
    assert.deepEqual(restartPolicy("unless-stopped"), { restart_policy: "unless-stopped" });
    assert.deepEqual(restartPolicy("no"), { restart_policy: "no" });
    assert.deepEqual(restartPolicy("on-failure"), { restart_policy: "on-failure" });
    assert.deepEqual(restartPolicy("on-failure:3"), {
      restart_policy: "on-failure",
      restart_tries: 3,
    });
    const body = buildCreateBody(spec({ name: "a", image: "i", restart: "on-failure:5" }));
    assert.equal(body.restart_policy, "on-failure");
    assert.equal(body.restart_tries, 5);
    for (const bad of ["sometimes", "always:3", "on-failure:x"]) {
      assert.throws(() => restartPolicy(bad), { code: "invalid_argument" });
    }
  });

  test("--network: modes, container:/ns:, and network names", () => {
    assert.deepEqual(networkMode("host"), { netns: { nsmode: "host" } });
    assert.deepEqual(networkMode("none"), { netns: { nsmode: "none" } });
    assert.deepEqual(networkMode("bridge"), { netns: { nsmode: "bridge" } });
    assert.deepEqual(networkMode("slirp4netns"), { netns: { nsmode: "slirp4netns" } });
    assert.deepEqual(networkMode("container:abc"), {
      netns: { nsmode: "container", value: "abc" },
    });
    assert.deepEqual(networkMode("ns:/run/netns/n1"), {
      netns: { nsmode: "ns", value: "/run/netns/n1" },
    });
    assert.deepEqual(networkMode("mcpnet"), {
      netns: { nsmode: "bridge" },
      Networks: { mcpnet: {} },
    });
    assert.deepEqual(networkMode("a,b"), {
      netns: { nsmode: "bridge" },
      Networks: { a: {}, b: {} },
    });
    assert.throws(() => networkMode("bogus:x"), { code: "invalid_argument" });
    const body = buildCreateBody(spec({ name: "a", image: "i", network: "host" }));
    assert.deepEqual(body.netns, { nsmode: "host" });
  });

  test("--memory: binary units, as podman's parser", () => {
    assert.equal(ramInBytes("256m"), 256 * 1024 * 1024);
    assert.equal(ramInBytes("6M"), 6 * 1024 * 1024);
    assert.equal(ramInBytes("1g"), 1024 ** 3);
    assert.equal(ramInBytes("1.5g"), 1610612736); // `podman create --memory 1.5g` here
    assert.equal(ramInBytes("512k"), 512 * 1024);
    assert.equal(ramInBytes("100b"), 100);
    assert.equal(ramInBytes("1024"), 1024);
    assert.equal(ramInBytes("64mb"), 64 * 1024 * 1024);
    assert.throws(() => ramInBytes("lots"), { code: "invalid_argument" });
    const body = buildCreateBody(spec({ name: "a", image: "i", memory: "256m" }));
    assert.deepEqual(body.resource_limits, { memory: { limit: 268435456 } });
  });

  test("--cpus: quota per 100 ms period, truncated like the CLI (0.29 → 28999 here)", () => {
    assert.deepEqual(cpuQuota(0.5), { quota: 50_000, period: 100_000 });
    assert.deepEqual(cpuQuota(2), { quota: 200_000, period: 100_000 });
    assert.deepEqual(cpuQuota(0.29), { quota: 28_999, period: 100_000 });
    const body = buildCreateBody(spec({ name: "a", image: "i", cpus: 0.5 }));
    assert.deepEqual(body.resource_limits, { cpu: { quota: 50_000, period: 100_000 } });
  });

  test("--pids-limit", () =>
    assert.deepEqual(buildCreateBody(spec({ name: "a", image: "i", pids: 128 })).resource_limits, {
      pids: { limit: 128 },
    }));

  test("--log-opt max-size: decimal units, as podman's parser (inspect shows 10MB)", () => {
    assert.equal(humanSize("10m"), 10_000_000);
    assert.equal(humanSize("64k"), 64_000);
    assert.equal(humanSize("1g"), 1_000_000_000);
    assert.deepEqual(
      buildCreateBody(spec({ name: "a", image: "i", logMaxSize: "10m" })).log_configuration,
      { size: 10_000_000 },
    );
  });

  test("every field at once", () => {
    // Required: a field added to ContainerSpec must be set here, and so get its part of the body.
    const s: Required<ContainerSpec> = {
      name: "mcq",
      image: "localhost/mcq:v0.3.2",
      network: "mcpnet",
      user: "0:0",
      restart: "unless-stopped",
      memory: "256m",
      cpus: 0.5,
      pids: 128,
      logMaxSize: "10m",
      labels: { "mcp.service": "mcq", "mcp.component": "mcq", "mcp.node": "rift" },
      ports: ["127.0.0.1:57546:57546", "127.0.0.1:57547:57547/udp"],
      volumes: ["/srv/mcq:/srv/mcq", "/etc/ssl:/etc/ssl:ro"],
      env: ["LOG=debug", "PORT=57546"],
      cmd: ["server", "--config", "/srv/mcq/mcq.toml"],
    };
    assert.deepEqual(buildCreateBody(s), {
      name: "mcq",
      image: "localhost/mcq:v0.3.2",
      command: ["server", "--config", "/srv/mcq/mcq.toml"],
      env: { LOG: "debug", PORT: "57546" },
      labels: { "mcp.service": "mcq", "mcp.component": "mcq", "mcp.node": "rift" },
      user: "0:0",
      restart_policy: "unless-stopped",
      netns: { nsmode: "bridge" },
      Networks: { mcpnet: {} },
      portmappings: [
        { host_ip: "127.0.0.1", host_port: 57546, container_port: 57546, protocol: "tcp" },
        { host_ip: "127.0.0.1", host_port: 57547, container_port: 57547, protocol: "udp" },
      ],
      mounts: [
        { type: "bind", source: "/srv/mcq", destination: "/srv/mcq" },
        { type: "bind", source: "/etc/ssl", destination: "/etc/ssl", options: ["ro"] },
      ],
      resource_limits: {
        memory: { limit: 268435456 },
        cpu: { quota: 50_000, period: 100_000 },
        pids: { limit: 128 },
      },
      log_configuration: { size: 10_000_000 },
    });
  });
});

// One row per call: method and path (with query) the API runtime sends.
describe("the other requests", () => {
  const cases: [string, { method: string; path: string; body?: unknown }, [string, string]][] = [
    ["create: POST with the body", createRequest(spec({ name: "a", image: "i" })), ["POST", `${P}/containers/create`]],
    ["start", startRequest("mcq"), ["POST", `${P}/containers/mcq/start`]],
    ["stop: the grace period in timeout", stopRequest("mcq", 10), ["POST", `${P}/containers/mcq/stop?timeout=10`]],
    ["stop: zero is kept (stop at once)", stopRequest("mcq", 0), ["POST", `${P}/containers/mcq/stop?timeout=0`]],
    // 4.3.1 ignores the documented `t` (measured): the grace period goes in `timeout`.
    ["restart: the grace period in timeout, not t", restartRequest("mcq", 5), ["POST", `${P}/containers/mcq/restart?timeout=5`]],
    ["remove: not forced, no timeout, a missing one ignored", removeRequest("mcq", { timeoutSeconds: 10 }), ["DELETE", `${P}/containers/mcq?ignore=true`]],
    ["remove: forced, with the grace period", removeRequest("mcq", { force: true, timeoutSeconds: 0 }), ["DELETE", `${P}/containers/mcq?force=true&timeout=0&ignore=true`]],
    ["rename: the new name in the query", renameRequest("mcq", "mcq.prev"), ["POST", `${P}/containers/mcq/rename?name=mcq.prev`]],
    ["inspect: the container's JSON", inspectRequest("mcq.next"), ["GET", `${P}/containers/mcq.next/json`]],
    ["list: all containers", listRequest(), ["GET", `${P}/containers/json?all=true`]],
    ["list: narrowed by label on podman's side", listRequest({ labels: ["mcp.node=rift"] }), ["GET", `${P}/containers/json?all=true&filters=${encodeURIComponent('{"label":["mcp.node=rift"]}')}`]],
    ["pull: quiet", pullRequest("localhost/mcq:v1"), ["POST", `${P}/images/pull?reference=localhost%2Fmcq%3Av1&quiet=true`]],
    ["image exists: slashes stay separators", imageExistsRequest("localhost/mcq:v1"), ["GET", `${P}/images/localhost/mcq%3Av1/exists`]],
    ["logs: both streams, nothing else", logsRequest("mcq", {}), ["GET", `${P}/containers/mcq/logs?stdout=true&stderr=true`]],
    ["logs: every option", logsRequest("mcq", { tail: 0, follow: true, timestamps: true, since: "10m" }), ["GET", `${P}/containers/mcq/logs?stdout=true&stderr=true&follow=true&tail=0&timestamps=true&since=10m`]],
    ["exec create", execCreateRequest("mcq", ["/bin/check", "a b"]), ["POST", `${P}/containers/mcq/exec`]],
    ["exec start", execStartRequest("e1"), ["POST", `${P}/exec/e1/start`]],
    ["exec inspect", execInspectRequest("e1"), ["GET", `${P}/exec/e1/json`]],
    ["version", versionRequest(), ["GET", `${P}/version`]],
    ["info", infoRequest(), ["GET", `${P}/info`]],
    ["ping: unversioned", pingRequest(), ["GET", "/libpod/_ping"]],
  ]; // prettier-ignore
  for (const [name, req, [method, path]] of cases) {
    test(name, () => assert.deepEqual([req.method, req.path], [method, path]));
  }

  test("exec create attaches both streams; exec start runs attached without a TTY", () => {
    assert.deepEqual(execCreateRequest("mcq", ["/bin/check", "a b"]).body, {
      Cmd: ["/bin/check", "a b"],
      AttachStdout: true,
      AttachStderr: true,
    });
    assert.deepEqual(execStartRequest("e1").body, { Detach: false, Tty: false });
  });

  test("names are encoded in paths", () =>
    assert.equal(startRequest("a/../b").path, `${P}/containers/a%2F..%2Fb/start`));

  test("the service's argv: no idle timeout, our socket", () =>
    assert.deepEqual(buildServiceArgs("/var/lib/mcp/podman.sock"), [
      "system",
      "service",
      "--time=0",
      "unix:///var/lib/mcp/podman.sock",
    ]));
});

describe("answers", () => {
  test("a pull that worked: the image id", () =>
    assert.deepEqual(
      parsePullStream(
        '{"stream":"Trying to pull localhost:5000/a:v1...\\n"}\n{"images":["1a2b"],"id":"1a2b"}\n',
      ),
      { id: "1a2b" },
    ));

  test("a pull that failed inside its 200 answer (captured)", () =>
    assert.deepEqual(parsePullStream(PULL_STREAM_REFUSED), { error: PULL_REFUSED_TEXT }));

  test("a remove's reports: the first Err, or nothing", () => {
    assert.equal(removeReportError('[{"Id":"9133","RawInput":"mcp-libpod-test-e3"}]'), undefined);
    assert.equal(removeReportError("[]"), undefined);
    assert.equal(removeReportError('[{"Id":"a","Err":"it is busy"}]'), "it is busy");
    assert.equal(removeReportError("garbage"), undefined);
  });

  test("an inspect object, as the API answers it", () => {
    const s = parseInspectObject({
      Id: "5e28",
      Name: "mcp-probe-a",
      ImageName: "localhost/mcp-httpenv:v1",
      State: { Status: "running", ExitCode: 0, StartedAt: "2026-11-27T10:07:16.310458304Z" },
      Config: { Labels: { "mcp.node": "rift" } },
      HostConfig: { PortBindings: { "18081/tcp": [{ HostIp: "127.0.0.1", HostPort: "18081" }] } },
    });
    assert.deepEqual(s, {
      id: "5e28",
      name: "mcp-probe-a",
      image: "localhost/mcp-httpenv:v1",
      state: "running",
      startedAt: new Date("2026-11-27T10:07:16.310Z"),
      labels: { "mcp.node": "rift" },
      ports: ["127.0.0.1:18081:18081"],
    });
    assert.equal(parseInspectObject(null), undefined);
  });
});

function frame(stream: number, text: string): Buffer {
  const data = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

describe("FrameDecoder", () => {
  // Captured: `exec` of `echo out; echo err >&2` through the socket.
  const captured = Buffer.from(
    "0100000000000004" + "6f75740a" + "0200000000000004" + "6572720a",
    "hex",
  );

  test("a captured exec answer: stdout then stderr frames", () => {
    const d = new FrameDecoder();
    assert.deepEqual(
      d.push(captured).map((f) => [f.stream, f.data.toString()]),
      [
        [1, "out\n"],
        [2, "err\n"],
      ],
    );
    assert.equal(d.pending, 0);
  });

  test("split at every byte: the same frames, in order", () => {
    const d = new FrameDecoder();
    const got: [number, string][] = [];
    for (let i = 0; i < captured.length; i++) {
      for (const f of d.push(captured.subarray(i, i + 1))) got.push([f.stream, f.data.toString()]);
    }
    assert.deepEqual(got, [
      [1, "out\n"],
      [2, "err\n"],
    ]);
  });

  test("an incomplete frame waits; an empty frame is a frame", () => {
    const d = new FrameDecoder();
    const whole = Buffer.concat([frame(1, ""), frame(2, "abcdef")]);
    assert.deepEqual(
      d.push(whole.subarray(0, 12)).map((f) => f.data.length),
      [0],
    );
    assert.equal(d.pending, 4);
    assert.deepEqual(
      d.push(whole.subarray(12)).map((f) => f.data.toString()),
      ["abcdef"],
    );
  });

  test("a large frame over many chunks", () => {
    const big = "x".repeat(100_000);
    const whole = frame(1, big);
    const d = new FrameDecoder();
    let out = "";
    for (let i = 0; i < whole.length; i += 4096) {
      for (const f of d.push(whole.subarray(i, i + 4096))) out += f.data.toString();
    }
    assert.equal(out, big);
  });
});

describe("demuxFrames", () => {
  const collect = async (s: PassThrough) => {
    let t = "";
    for await (const c of s) t += String(c);
    return t;
  };

  test("stdout and stderr apart; ended resolves at a clean end", async () => {
    const body = new PassThrough();
    const { stdout, stderr, ended } = demuxFrames(body);
    body.write(frame(1, "a"));
    body.write(frame(2, "b"));
    body.end(Buffer.concat([frame(1, "c"), frame(3, "podman says")]));
    const [o, e] = await Promise.all([collect(stdout), collect(stderr), ended]);
    assert.equal(o, "ac");
    assert.equal(e, "bpodman says");
  });

  test("cut inside a frame: ended rejects, the streams still end", async () => {
    const body = new PassThrough();
    const { stdout, stderr, ended } = demuxFrames(body);
    body.end(frame(1, "hello").subarray(0, 10));
    await assert.rejects(ended, /inside a frame/);
    assert.equal(await collect(stdout), "");
    assert.equal(await collect(stderr), "");
  });

  test("destroyed (an abort): ended rejects, the streams end", async () => {
    const body = new PassThrough();
    const { stdout, ended } = demuxFrames(body);
    body.write(frame(1, "a"));
    await new Promise((r) => setImmediate(r));
    body.destroy();
    await assert.rejects(ended);
    assert.equal(await collect(stdout), "a");
  });
});

// ------------------------------------------------------------------ errors
// The bodies podman 4.3.1's API answered here for each failure.

const PULL_REFUSED_TEXT =
  'initializing source docker://localhost/mcp-nonexistent:v1: pinging container registry localhost: Get "https://localhost/v2/": dial tcp 127.0.0.1:443: connect: connection refused';
const PULL_STREAM_REFUSED = JSON.stringify({ error: PULL_REFUSED_TEXT }) + "\n";

const API = {
  addressInUse: libpodErrorFromBody(
    "start",
    500,
    '{"cause":"address already in use","message":"cannot listen on the TCP port: listen tcp4 127.0.0.1:18777: bind: address already in use","response":500}',
  ),
  imageNotKnown: libpodErrorFromBody(
    "create",
    500,
    '{"cause":"image not known","message":"localhost/mcp-nonexistent:v1: image not known","response":500}',
  ),
  pullRefused: new LibpodError({ what: "pull", status: 200, apiMessage: PULL_REFUSED_TEXT }),
  noContainer: libpodErrorFromBody(
    "stop",
    404,
    '{"cause":"no such container","message":"no container with name or ID \\"nope-xyz\\" found: no such container","response":404}',
  ),
  // An inspect racing the container's removal (seen after a podman event).
  goneMeanwhile: libpodErrorFromBody(
    "inspect",
    500,
    '{"cause":"no such container","message":"container cc98d71e984432c5c141fb1741092f3fd1580dfec3d1657bd88c24af0ec46d3a does not exist in database: no such container","response":500}',
  ),
  nameInUse: libpodErrorFromBody(
    "create",
    500,
    '{"cause":"that name is already in use","message":"creating container storage: the container name \\"mcp-libpod-test-e2\\" is already in use by a96394bd496a17e4161ef5538a08d721d56b4d7df39f370ce27bc3d61cdab362. You have to remove that container to be able to reuse that name: that name is already in use","response":500}',
  ),
  renameTaken: libpodErrorFromBody(
    "rename",
    409,
    '{"cause":"container already exists","message":"renaming container a96394bd496a: name mcp-libpod-test-e3 already in use, cannot rename container a96394bd496a: container already exists","response":409}',
  ),
  notRunning: libpodErrorFromBody(
    "exec",
    500,
    '{"cause":"container state improper","message":"can only create exec sessions on running containers: container state improper","response":500}',
  ),
  imageMissing: libpodErrorFromBody(
    "image exists",
    404,
    '{"cause":"failed to find image localhost/mcp-nonexistent:v1","message":"failed to find image localhost/mcp-nonexistent:v1","response":404}',
  ),
  badSince: libpodErrorFromBody(
    "logs",
    400,
    '{"cause":"unable to interpret time value","message":"failed to parse query parameter \'since\': \\"garbage\\": unable to interpret time value","response":400}',
  ),
};
const ALL = Object.entries(API);

describe("error classifiers on the API's errors", () => {
  const only = (pred: (e: unknown) => boolean, expected: string[]) =>
    assert.deepEqual(
      ALL.filter(([, e]) => pred(e)).map(([k]) => k),
      expected,
    );

  test("isAddressInUse", () => only(isAddressInUse, ["addressInUse"]));
  test("isNoSuchImage", () => only(isNoSuchImage, ["imageNotKnown"]));
  test("isPullFailure", () => only(isPullFailure, ["pullRefused"]));
  test("isNoSuchContainer", () => only(isNoSuchContainer, ["noContainer", "goneMeanwhile"]));
  test("isNameInUse: a create's clash and a rename's", () =>
    only(isNameInUse, ["nameInUse", "renameTaken"]));

  test("isInvalidSince", () => only(isInvalidSince, ["badSince"]));

  test("only podman's answers are classified: the same words elsewhere are not", () => {
    const plain = new Error("no such container: address already in use");
    for (const pred of [isAddressInUse, isNoSuchImage, isNoSuchContainer, isNameInUse]) {
      assert.equal(pred(plain), false);
      assert.equal(pred(undefined), false);
    }
  });

  test("the error carries status, message and cause, and names the call", () => {
    const e = API.addressInUse;
    assert.ok(e instanceof LibpodError);
    assert.equal(e.code, "runtime");
    assert.equal(e.status, 500);
    assert.equal(e.apiCause, "address already in use");
    assert.equal(
      e.message,
      "podman API start HTTP 500: cannot listen on the TCP port: listen tcp4 127.0.0.1:18777: bind: address already in use",
    );
  });

  test("a body that is not podman's JSON keeps its first line", () => {
    const e = libpodErrorFromBody("list", 502, "Bad Gateway\nmore");
    assert.equal(e.apiMessage, "Bad Gateway");
    assert.equal(e.message, "podman API list HTTP 502: Bad Gateway");
  });

  test("no answer: status 0, timed out or why", () => {
    const t = new LibpodError({
      what: "stop",
      status: 0,
      timedOut: true,
      reason: "no answer after 5 ms",
    });
    assert.equal(t.message, "podman API stop timed out: no answer after 5 ms");
    const r = new LibpodError({ what: "ping", status: 0, reason: "connect ECONNREFUSED /x.sock" });
    assert.equal(r.message, "podman API ping failed: connect ECONNREFUSED /x.sock");
    for (const pred of [
      isAddressInUse,
      isNoSuchImage,
      isNoSuchContainer,
      isNameInUse,
      isPullFailure,
    ]) {
      assert.equal(pred(t), false);
    }
  });
});

describe("the event stream's lines", () => {
  const line = (action: string, attributes: Record<string, string>) =>
    JSON.stringify({
      status: action,
      id: "4c2b",
      Type: "container",
      Action: action,
      Actor: {
        ID: "4c2b",
        Attributes: {
          image: "localhost/x:v1",
          name: "hello-web",
          podId: "",
          containerExitCode: "0",
          ...attributes,
        },
      },
      scope: "local",
      time: 1796146892,
      timeNano: 1796146892480665600,
    });

  test("a container event: action, id, name, labels without podman's own attributes, time", () => {
    const e = parseEvent(line("start", { "mcp.node": "local", "mcp.service": "hello" }));
    assert.deepEqual(e, {
      action: "start",
      id: "4c2b",
      name: "hello-web",
      labels: { "mcp.node": "local", "mcp.service": "hello" },
      time: new Date(1796146892480665600 / 1e6),
    });
  });

  test("died carries the exit code; other types and noise are not container events", () => {
    assert.equal(parseEvent(line("died", { containerExitCode: "137" }))?.exitCode, 137);
    assert.equal(parseEvent(line("kill", { containerExitCode: "0" }))?.exitCode, undefined);
    assert.equal(parseEvent(JSON.stringify({ Type: "image", Action: "pull" })), undefined);
    assert.equal(parseEvent("not json"), undefined);
    assert.equal(parseEvent("[]"), undefined);
  });

  test("the state each action leaves, none for those that change nothing", () => {
    assert.deepEqual(
      ["create", "start", "died", "pause", "unpause", "remove", "kill", "cleanup", "exec"].map(
        stateAfter,
      ),
      [
        "created",
        "running",
        "exited",
        "paused",
        "running",
        "removed",
        undefined,
        undefined,
        undefined,
      ],
    );
  });

  test("the request: container events with every label, streamed", () => {
    const req = eventsRequest({ labels: ["mcp.node=local"] });
    assert.equal(req.method, "GET");
    const url = new URL(req.path, "http://d");
    assert.equal(url.pathname, "/v4.0.0/libpod/events");
    assert.equal(url.searchParams.get("stream"), "true");
    assert.deepEqual(JSON.parse(url.searchParams.get("filters") ?? ""), {
      type: ["container"],
      label: ["mcp.node=local"],
    });
  });
});
