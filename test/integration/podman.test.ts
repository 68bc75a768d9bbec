/**
 * PodmanRuntime against the real podman on this machine, with the offline
 * test image from scripts/setup.sh. No skipping: a machine without podman
 * fails here, loudly.
 */
import assert from "node:assert/strict";
import type net from "node:net";
import { after, before, describe, test } from "node:test";
import {
  isAddressInUse,
  isNameInUse,
  isNoSuchContainer,
  isNoSuchImage,
  isPullFailure,
  PodmanRuntime,
} from "../../src/runtime/index.js";
import { errorMessage } from "../../src/util/errors.js";
import { freePort } from "../helpers/agent.js";
import { TEST_IMAGE } from "../helpers/live-agent.js";
import { listen, readAll, runtimeTestNames, waitForHttp } from "../helpers/runtime-tests.js";

const { created, uniqueName, httpSpec } = runtimeTestNames("mcp-rt-test");

const runtime = new PodmanRuntime({ stopTimeoutSeconds: 2 });

/** Rejects with the fix when this machine is not set up; every suite waits on it. */
async function checkPodman(): Promise<void> {
  try {
    await runtime.version();
  } catch (err) {
    throw new Error(`podman is not usable here (${errorMessage(err)}): run scripts/setup.sh`, {
      cause: err,
    });
  }
  if (!(await runtime.imageExists(TEST_IMAGE))) {
    throw new Error(`test image ${TEST_IMAGE} is missing: run scripts/setup.sh`);
  }
}
const ready = checkPodman();
ready.catch(() => {}); // reported by the test below, not as an unhandled rejection

// A test of its own, so a machine without podman shows one clear failure.
test("podman and the test image are available", () => ready);

after(async () => {
  await Promise.all([...created].map((n) => runtime.remove(n, { force: true, timeoutSeconds: 0 })));
});

describe("a container's life", () => {
  let name: string;
  let port: number;
  let firstStart: Date | null = null;

  before(async () => {
    await ready;
    name = uniqueName("life");
    port = await freePort();
  });

  test("run starts it and it serves $PORT", async () => {
    const id = await runtime.run(httpSpec(name, port));
    assert.match(id, /^[0-9a-f]{64}$/);
    const body = await waitForHttp(`http://127.0.0.1:${port}/`);
    assert.match(body, new RegExp(`^PORT=${port}$`, "m"));
    assert.match(body, /^GREETING=hello world$/m);
    assert.equal(await waitForHttp(`http://127.0.0.1:${port}/health`), "ok\n");
  });

  test("inspect and list show it running, with labels and ports", async () => {
    const status = await runtime.inspect(name);
    assert.ok(status, "inspect found the container");
    assert.equal(status.name, name);
    assert.equal(status.image, TEST_IMAGE);
    assert.equal(status.state, "running");
    assert.equal(status.labels["mcp.service"], "mcp-rt-test");
    assert.equal(status.labels["mcp.component"], "life");
    assert.equal(status.labels["mcp.node"], "local");
    assert.deepEqual(status.ports, [`127.0.0.1:${port}:${port}`]);
    assert.ok(status.startedAt && Date.now() - status.startedAt.getTime() < 60_000);
    firstStart = status.startedAt;

    const listed = (await runtime.list()).find((c) => c.name === name);
    assert.ok(listed, "list includes the container");
    assert.equal(listed.id, status.id);
    assert.equal(listed.state, "running");
    assert.deepEqual(listed.labels, status.labels);
    assert.deepEqual(listed.ports, status.ports);
  });

  test("a second run with the same name fails and leaves the first one alone", async () => {
    const err = await runtime.run(httpSpec(name, await freePort())).then(
      () => assert.fail("second run succeeded"),
      (e: unknown) => e,
    );
    assert.ok(isNameInUse(err), errorMessage(err));
    assert.equal((await runtime.inspect(name))?.state, "running");
  });

  test("logs returns the container's output", async () => {
    const stream = runtime.logs(name, { tail: 10, timestamps: true });
    const [out] = await Promise.all([readAll(stream.stdout), stream.done]);
    assert.match(out, new RegExp(`^\\S+Z serve-env: listening on 0.0.0.0:${port}$`, "m"));
  });

  test("logs --follow streams until killed", async () => {
    const stream = runtime.logs(name, { follow: true, tail: 1 });
    const first = await new Promise<string>((resolve) =>
      stream.stdout.once("data", (c) => resolve(String(c))),
    );
    assert.match(first, /listening/);
    stream.kill();
    await stream.done; // resolves: we asked it to stop
  });

  test("restart gives a new start time and it serves again", async () => {
    await runtime.restart(name, 1);
    const status = await runtime.inspect(name);
    assert.equal(status?.state, "running");
    assert.ok(firstStart && status.startedAt && status.startedAt > firstStart);
    await waitForHttp(`http://127.0.0.1:${port}/health`);
  });

  test("stop leaves it exited; start brings it back", async () => {
    await runtime.stop(name, 1);
    const stopped = await runtime.inspect(name);
    assert.equal(stopped?.state, "exited");
    assert.equal(typeof stopped.exitCode, "number");
    await runtime.start(name);
    assert.equal((await runtime.inspect(name))?.state, "running");
  });

  test("remove deletes it; removing again is fine", async () => {
    await runtime.remove(name, { force: true, timeoutSeconds: 1 });
    assert.equal(await runtime.inspect(name), undefined);
    assert.equal(
      (await runtime.list()).find((c) => c.name === name),
      undefined,
    );
    await runtime.remove(name);
    await runtime.remove(name, { force: true });
  });
});

describe("failures leave nothing behind", () => {
  before(() => ready);

  test("a host port held by someone else: address in use, no container", async () => {
    const server = await listen(0);
    try {
      const { port } = server.address() as net.AddressInfo;
      const name = uniqueName("port-taken");
      const err = await runtime.run(httpSpec(name, port)).then(
        () => assert.fail("run succeeded on a taken port"),
        (e: unknown) => e,
      );
      assert.ok(isAddressInUse(err), errorMessage(err));
      assert.match(errorMessage(err), /^podman run exited \d+: .*address already in use/);
      assert.equal(await runtime.inspect(name), undefined, "the Created container was removed");
    } finally {
      server.close();
    }
  });

  test("an image that does not exist: classified, no container", async () => {
    const image = "localhost/mcp-rt-test-nonexistent:v1";
    assert.equal(await runtime.imageExists(image), false);
    const name = uniqueName("no-image");
    const err = await runtime.run(httpSpec(name, await freePort(), image)).then(
      () => assert.fail("run succeeded without an image"),
      (e: unknown) => e,
    );
    // Plain `podman run` tries to pull a missing image; with no registry on
    // localhost that is a pull failure (a registry would answer "manifest unknown").
    assert.ok(isPullFailure(err) || isNoSuchImage(err), errorMessage(err));
    assert.equal(await runtime.inspect(name), undefined);
  });

  test("commands on a missing container", async () => {
    const name = uniqueName("missing");
    assert.equal(await runtime.inspect(name), undefined);
    await runtime.remove(name);
    for (const op of [() => runtime.stop(name), () => runtime.start(name)]) {
      await assert.rejects(op(), (err) => isNoSuchContainer(err));
    }
    const stream = runtime.logs(name, {});
    stream.stdout.resume();
    await assert.rejects(stream.done, (err) => isNoSuchContainer(err));
  });
});
