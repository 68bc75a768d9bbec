/**
 * PodmanApiRuntime against the real podman on this machine, through a
 * `podman system service` this test starts on a socket in a temp dir
 * (service.ts, startApiRuntime), with the offline test image from
 * scripts/setup.sh. Where it matters podman's own CLI is asked too (the
 * storage, the version, a hand-typed `podman run` of the same spec): the API
 * must give what a person at the shell gets. No skipping: a machine without
 * podman fails here, loudly.
 */
import assert from "node:assert/strict";
import type net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  isAddressInUse,
  isInvalidSince,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  LibpodError,
  mcpLabels,
  PodmanApiRuntime,
  type ContainerSpec,
} from "../../src/runtime/index.js";
import { stateAfter, watchEvents, type ContainerEvent } from "../../src/runtime/libpod/events.js";
import { errorMessage } from "../../src/util/errors.js";
import { freePort } from "../helpers/agent.js";
import { TEST_IMAGE } from "../helpers/live-agent.js";
import {
  listen,
  readAll,
  runtimeTestNames,
  startApiRuntime,
  waitForHttp,
  type ApiRuntimeFixture,
} from "../helpers/runtime-tests.js";
import { runCommand } from "../../src/util/exec.js";

const { prefix: PREFIX, created, uniqueName, httpSpec } = runtimeTestNames("mcp-libpod-test");

let rt: ApiRuntimeFixture;
let api: PodmanApiRuntime;

function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail("expected a failure"),
    (e: unknown) => e,
  );
}

/** `podman container inspect` of one container, raw, for comparing what each runtime created. */
async function rawInspect(name: string): Promise<Record<string, Record<string, unknown>>> {
  const { stdout } = await runCommand(["podman", "container", "inspect", "--format", "json", name]);
  const [entry] = JSON.parse(stdout) as Record<string, Record<string, unknown>>[];
  assert.ok(entry, `inspect ${name}`);
  return entry;
}

const ready = startApiRuntime().then((f) => {
  rt = f;
  api = f.api;
});
ready.catch(() => {}); // reported by the test below, not as an unhandled rejection

/** What `podman <args>` prints, trimmed: podman's own answer, beside the API's. */
async function podman(...args: string[]): Promise<string> {
  return (await runCommand(["podman", ...args])).stdout.trim();
}

test("the service starts on our socket and serves the storage and version podman itself has", async () => {
  await ready;
  assert.ok(rt.service.pid, "a service process runs");
  const paths = (
    await podman("info", "--format", "{{.Store.GraphRoot}}\n{{.Store.RunRoot}}")
  ).split("\n");
  assert.deepEqual([rt.storage.graphRoot, rt.storage.runRoot], paths);
  assert.deepEqual(await api.storagePaths(), paths);
  assert.equal(await api.version(), await podman("version", "--format", "{{.Client.Version}}"));
});

after(async () => {
  await ready.catch(() => {});
  await rt?.stop(created);
});

describe("a container's life through the API", () => {
  let name: string;
  let port: number;
  let firstStart: Date | null = null;

  before(async () => {
    await ready;
    name = uniqueName("life");
    port = await freePort();
  });

  test("run starts it and it serves $PORT and the env", async () => {
    const id = await api.run(httpSpec(name, port));
    assert.match(id, /^[0-9a-f]{64}$/);
    const body = await waitForHttp(`http://127.0.0.1:${port}/`);
    assert.match(body, new RegExp(`^PORT=${port}$`, "m"));
    assert.match(body, /^GREETING=hello world$/m);
    assert.equal(await waitForHttp(`http://127.0.0.1:${port}/health`), "ok\n");
  });

  test("inspect and list show it running, with its labels and ports", async () => {
    const status = await api.inspect(name);
    assert.ok(status, "inspect found the container");
    assert.equal(status.name, name);
    assert.equal(status.state, "running");
    assert.equal(status.image, TEST_IMAGE);
    assert.deepEqual(status.ports, [`127.0.0.1:${port}:${port}`]);
    assert.equal(status.labels["mcp.service"], "mcp-libpod-test");
    assert.equal(status.labels["mcp.component"], "life");
    assert.equal(status.labels["mcp.node"], "local");
    assert.ok(status.startedAt && Date.now() - status.startedAt.getTime() < 60_000);
    firstStart = status.startedAt;

    const listed = (await api.list()).find((c) => c.name === name);
    assert.ok(listed, "list includes the container");
    assert.equal(listed.id, status.id);
    assert.equal(listed.image, status.image);
    assert.equal(listed.state, "running");
    assert.deepEqual(listed.labels, status.labels);
    assert.deepEqual(listed.ports, status.ports);
  });

  test("a second run with the same name: name in use, the first one untouched", async () => {
    const err = await rejection(api.run(httpSpec(name, await freePort())));
    assert.ok(err instanceof LibpodError, errorMessage(err));
    assert.ok(isNameInUse(err), errorMessage(err));
    assert.equal((await api.inspect(name))?.state, "running");
  });

  test("exec: output and exit code", async () => {
    const ok = await api.exec(name, ["sh", "-c", "echo out; echo err >&2"], 5000);
    assert.deepEqual(ok, { exitCode: 0, output: "out\nerr\n", timedOut: false });
    const three = await api.exec(name, ["sh", "-c", "echo failing; exit 3"], 5000);
    assert.deepEqual(three, { exitCode: 3, output: "failing\n", timedOut: false });
    const missing = await api.exec(name, ["/nonexistent"], 5000);
    assert.equal(missing.exitCode, 127);
  });

  test("exec: the timeout cuts it and says so", async () => {
    const started = Date.now();
    const r = await api.exec(name, ["sh", "-c", "echo begun; sleep 5"], 300);
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  test("logs with tail and timestamps", async () => {
    const stream = api.logs(name, { tail: 10, timestamps: true });
    const [out] = await Promise.all([readAll(stream.stdout), readAll(stream.stderr), stream.done]);
    assert.match(out, new RegExp(`^\\S+Z serve-env: listening on 0.0.0.0:${port}$`, "m"));
    const none = api.logs(name, { tail: 0 });
    const [empty] = await Promise.all([readAll(none.stdout), readAll(none.stderr), none.done]);
    assert.equal(empty, "");
  });

  test("logs --follow streams until killed", async () => {
    const stream = api.logs(name, { follow: true, tail: 1 });
    stream.stderr.resume();
    const first = await new Promise<string>((resolve) =>
      stream.stdout.once("data", (c) => resolve(String(c))),
    );
    assert.match(first, /listening/);
    // Still following: a new line arrives (the image logs each request).
    await fetch(`http://127.0.0.1:${port}/health`);
    stream.kill();
    await stream.done; // resolves: we asked it to stop
  });

  test("restart gives a new start time and it serves again", async () => {
    await api.restart(name, 1);
    const status = await api.inspect(name);
    assert.equal(status?.state, "running");
    assert.ok(firstStart && status.startedAt && status.startedAt > firstStart);
    await waitForHttp(`http://127.0.0.1:${port}/health`);
  });

  test("stop leaves it exited with its code; stop again is fine; start brings it back", async () => {
    await api.stop(name, 1);
    const stopped = await api.inspect(name);
    assert.equal(stopped?.state, "exited");
    assert.equal(typeof stopped.exitCode, "number");
    await api.stop(name, 1);
    await assert.rejects(api.exec(name, ["true"], 2000), (e) => e instanceof LibpodError);
    await api.start(name);
    await api.start(name); // already running: fine, as `podman start`
    assert.equal((await api.inspect(name))?.state, "running");
    await waitForHttp(`http://127.0.0.1:${port}/health`);
  });

  test("rename, running; renaming onto a taken name is a name in use", async () => {
    const other = uniqueName("life2");
    await api.rename(name, other);
    assert.equal(await api.inspect(name), undefined);
    assert.equal((await api.inspect(other))?.state, "running");
    const taken = uniqueName("taken");
    await api.run({ ...httpSpec(taken, await freePort()), cmd: [] });
    const err = await rejection(api.rename(other, taken));
    assert.ok(isNameInUse(err), errorMessage(err));
    await api.rename(other, name);
    assert.equal((await api.inspect(name))?.state, "running");
  });

  test("remove deletes it; removing again is fine", async () => {
    await api.remove(name, { force: true, timeoutSeconds: 1 });
    assert.equal(await api.inspect(name), undefined);
    assert.equal(
      (await api.list()).find((c) => c.name === name),
      undefined,
    );
    await api.remove(name);
    await api.remove(name, { force: true });
  });
});

describe("the event stream", () => {
  test("a watched container's start, kill and removal arrive in order, others' not at all", async () => {
    await ready;
    const name = uniqueName("events");
    const label = `mcp.node=${PREFIX}events`;
    const seen: ContainerEvent[] = [];
    const watch = watchEvents(api.client, [label], (e) => seen.push(e));
    try {
      // The request is accepted before podman subscribes: give it a moment.
      await new Promise((r) => setTimeout(r, 300));
      const other = uniqueName("events-other");
      await api.run({
        ...httpSpec(other, await freePort()),
        labels: { "mcp.node": "someone-else" },
      });
      await api.run({
        ...httpSpec(name, await freePort()),
        labels: { "mcp.node": `${PREFIX}events` },
      });
      await runCommand(["podman", "kill", name]);
      await api.remove(name, { force: true, timeoutSeconds: 0 });
      const deadline = Date.now() + 10_000;
      while (!seen.some((e) => e.action === "remove") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const actions = seen.map((e) => e.action);
      for (const action of ["start", "died", "remove"])
        assert.ok(actions.includes(action), actions.join(","));
      assert.ok(actions.indexOf("start") < actions.indexOf("died"));
      assert.ok(actions.indexOf("died") < actions.indexOf("remove"));
      assert.ok(
        seen.every((e) => e.name === name),
        "only the watched label",
      );
      assert.equal(seen.find((e) => e.action === "died")?.exitCode, 137);
      assert.equal(seen[0]?.labels["mcp.node"], `${PREFIX}events`);
      assert.equal(stateAfter("died"), "exited");
    } finally {
      watch.stop();
      await watch.ended;
    }
  });
});

/** The labels httpSpec gives container `name`. */
const labels = (name: string) => mcpLabels("mcp-libpod-test", name.slice(PREFIX.length), "local");

describe("a spec through the API makes the container a hand-typed podman run makes", () => {
  before(() => ready);

  test("every field of a ContainerSpec, compared in podman's own inspect", async () => {
    const [a, c] = [uniqueName("same-api"), uniqueName("same-cli")];
    const pa = await freePort();
    const pc = await freePort();
    const spec: Required<ContainerSpec> = {
      ...httpSpec(a, pa),
      network: "podman",
      user: "0:0",
      restart: "on-failure:3",
      memory: "256m",
      cpus: 0.5,
      pids: 128,
      logMaxSize: "10m",
      ports: [`127.0.0.1:${pa}:${pa}`, `127.0.0.1:${pa + 1}:${pa + 1}/udp`],
      volumes: [`${rt.dir}:/data:ro`],
      cmd: ["/bin/serve-env"],
    };
    await api.run(spec);
    // What a person would type for the same spec (every field, as `podman run` flags).
    await podman(
      ...["run", "-d", "--name", c, "--network", "podman", "--user", "0:0"],
      ...["--restart", "on-failure:3", "--memory", "256m", "--cpus", "0.5"],
      ...["--pids-limit", "128", "--log-opt", "max-size=10m"],
      ...Object.entries(labels(c)).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
      ...["-p", `127.0.0.1:${pc}:${pc}`, "-p", `127.0.0.1:${pc + 1}:${pc + 1}/udp`],
      ...["-v", `${rt.dir}:/data:ro`, "-e", `PORT=${pc}`, "-e", "GREETING=hello world"],
      ...[TEST_IMAGE, "/bin/serve-env"],
    );
    const [ra, rc] = await Promise.all([rawInspect(a), rawInspect(c)]);
    const pick = (r: Record<string, Record<string, unknown>>) => {
      const h = r.HostConfig ?? {};
      const cfg = r.Config ?? {};
      return {
        network: h.NetworkMode,
        networks: Object.keys((r.NetworkSettings?.Networks as object | undefined) ?? {}),
        restart: h.RestartPolicy,
        memory: [h.Memory, h.MemorySwap],
        cpu: [h.CpuQuota, h.CpuPeriod],
        pids: h.PidsLimit,
        log: [
          (h.LogConfig as Record<string, unknown>).Type,
          (h.LogConfig as Record<string, unknown>).Size,
        ],
        ulimits: h.Ulimits,
        binds: h.Binds,
        mounts: r.Mounts,
        user: cfg.User,
        env: [...(cfg.Env as string[])] // PORT and HOSTNAME differ by container; every other variable must match.
          .filter((e) => !/^(PORT|HOSTNAME)=/.test(e))
          .sort(),
        cmd: cfg.Cmd,
        labels: cfg.Labels,
        ports: Object.keys(h.PortBindings as object).length,
      };
    };
    const wa = pick(ra);
    const wc = pick(rc);
    assert.deepEqual(wa.labels, { ...(wc.labels as object), ...labels(a) });
    assert.deepEqual({ ...wa, labels: {} }, { ...wc, labels: {} });
    assert.equal((await api.inspect(a))?.ports.length, 2);
    await waitForHttp(`http://127.0.0.1:${pa}/health`);
  });
});

describe("failures leave nothing behind and keep their meaning", () => {
  before(() => ready);

  test("a host port held by someone else: address in use, no container", async () => {
    const server = await listen(0);
    try {
      const { port } = server.address() as net.AddressInfo;
      const name = uniqueName("port-taken");
      const err = await rejection(api.run(httpSpec(name, port)));
      assert.ok(isAddressInUse(err), errorMessage(err));
      assert.match(errorMessage(err), /^podman API start HTTP 500: .*address already in use/);
      assert.equal(await api.inspect(name), undefined, "the Created container was removed");
    } finally {
      server.close();
    }
  });

  test("create binds no port: a held port fails the start only, and the container starts once it is free", async () => {
    // What a stop-first redeploy relies on: the new container is created
    // while the old one still holds the port (steps/component.ts).
    const server = await listen(0);
    const { port } = server.address() as net.AddressInfo;
    const name = uniqueName("create-first");
    try {
      const id = await api.create(httpSpec(name, port));
      assert.equal((await api.inspect(name))?.state, "created");
      const err = await rejection(api.start(name));
      assert.ok(isAddressInUse(err), errorMessage(err));
      assert.equal((await api.inspect(name))?.id, id, "still there, for another start");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    await api.start(name);
    assert.equal((await api.inspect(name))?.state, "running");
    await waitForHttp(`http://127.0.0.1:${port}/health`);
  });

  test("an image that is not here: no such image, no container", async () => {
    const image = "localhost/mcp-libpod-test-nonexistent:v1";
    assert.equal(await api.imageExists(image), false);
    assert.equal(await api.imageExists(TEST_IMAGE), true);
    const name = uniqueName("no-image");
    const err = await rejection(api.run(httpSpec(name, await freePort(), image)));
    // Unlike `podman run`, create never pulls: the image is simply not known.
    assert.ok(isNoSuchImage(err), errorMessage(err));
    assert.equal(await api.inspect(name), undefined);
  });

  test("a pull the registry cannot serve: pull failure", async () => {
    const err = await rejection(api.pull("localhost/mcp-libpod-test-nonexistent:v1"));
    assert.ok(isPullFailure(err), errorMessage(err));
  });

  test("calls on a missing container: no such container", async () => {
    const name = uniqueName("missing");
    assert.equal(await api.inspect(name), undefined);
    await api.remove(name);
    await api.remove(name, { force: true, timeoutSeconds: 0 });
    for (const op of [
      () => api.stop(name),
      () => api.start(name),
      () => api.restart(name),
      () => api.rename(name, `${name}.prev`),
      () => api.exec(name, ["true"], 2000),
    ]) {
      await assert.rejects(op(), (err) => isNoSuchContainer(err));
    }
    const stream = api.logs(name, {});
    stream.stdout.resume();
    stream.stderr.resume();
    await assert.rejects(stream.done, (err) => isNoSuchContainer(err));
  });
});

describe("logs with a since podman cannot read", () => {
  before(() => ready);

  test("is an invalid since", async () => {
    const name = uniqueName("since");
    await api.run(httpSpec(name, await freePort()));
    const stream = api.logs(name, { since: "garbage" });
    stream.stdout.resume();
    stream.stderr.resume();
    await assert.rejects(stream.done, (err) => isInvalidSince(err));
  });
});

describe("the service", () => {
  before(() => ready);

  test("restarts when its process dies, and calls work again", async () => {
    const pid = rt.service.pid;
    assert.ok(pid);
    process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 50));
    await rt.service.ready(15_000);
    assert.notEqual(rt.service.pid, pid);
    assert.equal(rt.service.restarts, 1);
    assert.ok(Array.isArray(await api.list()));
  });

  test("a socket nobody serves: a LibpodError with status 0, quickly", async () => {
    const dead = new PodmanApiRuntime({ socketPath: path.join(rt.dir, "nobody.sock") });
    const err = await rejection(dead.list());
    assert.ok(err instanceof LibpodError);
    assert.equal(err.status, 0);
    assert.match(err.message, /^podman API list failed: .*ENOENT/);
    dead.close();
  });
});
