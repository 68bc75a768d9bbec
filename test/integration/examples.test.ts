/**
 * The operator's path, end to end: the real `mcp` CLI talks gRPC over TLS to
 * a real `mcp-agent serve` process, which runs the repo's example
 * definitions on real Podman; the containers' pages are fetched over HTTP.
 *
 * The examples are used verbatim, so their container names (hello-web,
 * multi-api, multi-web, legacy) and legacy's 127.0.0.1:18080 must be free on
 * this machine: a running demo (scripts/demo.sh) conflicts with this test.
 */
import assert from "node:assert/strict";
import { copyFile, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import {
  EXAMPLES_DIR,
  LiveAgent,
  httpGet,
  parseEnvPage,
  ok,
  type ComponentJson,
  type NodeServicesJson,
} from "../helpers/live-agent.js";
import { startApiRuntime, type ApiRuntimeFixture } from "../helpers/runtime-tests.js";

describe("the examples on real podman through the CLI", { timeout: 240_000 }, () => {
  let agent: LiveAgent;
  /** Podman's view, apart from the agent's (a service of the test's own). */
  let podman: ApiRuntimeFixture;

  /** host ports by `service/component/route` from `mcp list --json` */
  async function hostPorts(): Promise<Map<string, number>> {
    const nodes = JSON.parse(
      ok(await agent.cli(["list", "--json"]), "list").stdout,
    ) as NodeServicesJson[];
    const ports = new Map<string, number>();
    for (const s of nodes.flatMap((n) => n.services)) {
      for (const c of s.components) {
        for (const r of c.routes) ports.set(`${s.name}/${c.name}/${r.name}`, r.hostPort);
      }
    }
    return ports;
  }

  function port(ports: Map<string, number>, key: string): number {
    const p = ports.get(key);
    assert.ok(p && p > 0, `no host port for ${key}: ${JSON.stringify([...ports])}`);
    return p;
  }

  /** `name state` of every container labelled for this node, sorted. */
  async function containerNames(): Promise<string[]> {
    const all = await podman.api.list();
    return all
      .filter((c) => c.labels["mcp.node"] === agent.node)
      .map((c) => `${c.name} ${c.state}`)
      .sort();
  }

  before(async () => {
    const { stdout } = await runCommand(["podman", "ps", "-a", "--format", "{{.Names}}"]);
    const taken = stdout
      .split("\n")
      .filter((n) => ["hello-web", "multi-api", "multi-web", "legacy"].includes(n));
    assert.deepEqual(
      taken,
      [],
      "example containers already exist here (a demo running?): remove them first",
    );
    podman = await startApiRuntime();
    // data_root /srv: multi mounts /srv/multi, which the agent creates for it.
    agent = await LiveAgent.start({ node: "local", dataRoot: "/srv" });
    for (const name of ["hello", "multi", "legacy"]) {
      await copyFile(
        path.join(EXAMPLES_DIR, `${name}.toml`),
        path.join(agent.servicesDir, `${name}.toml`),
      );
    }
  });

  after(async () => {
    await agent?.cleanup();
    await podman?.stop();
  });

  test("all three deploy and answer HTTP with their own variables", async () => {
    for (const name of ["hello", "multi", "legacy"]) {
      const run = ok(await agent.cli(["deploy", name]), `deploy ${name}`);
      assert.match(run.stdout, /: ok/);
    }
    const ports = await hostPorts();

    const helloPort = port(ports, "hello/web/");
    const hello = parseEnvPage(await httpGet(helloPort));
    assert.equal(hello.PORT, String(helloPort));

    const rest = port(ports, "multi/api/rest");
    const grpc = port(ports, "multi/api/grpc");
    assert.notEqual(rest, grpc);
    for (const p of [rest, grpc]) {
      const api = parseEnvPage(await httpGet(p));
      assert.equal(api.PORT_REST, String(rest));
      assert.equal(api.PORT_GRPC, String(grpc));
      assert.equal(api.PORT, undefined, "named routes set no $PORT");
      assert.equal(api.GREETING, "hi");
      assert.equal(api.LOG_LEVEL, "debug");
    }
    const webPort = port(ports, "multi/web/");
    const web = parseEnvPage(await httpGet(webPort));
    assert.equal(web.PORT, String(webPort));
    assert.equal(web.PORT_REST, undefined);

    // legacy keeps its explicit mapping: host 18080 → container 8080, PORT=8080.
    const legacy = parseEnvPage(await httpGet(18080));
    assert.equal(legacy.PORT, "8080");

    const all = [helloPort, rest, grpc, webPort];
    assert.equal(new Set(all).size, all.length, "every route has its own host port");
    assert.ok(!all.includes(18080));
    // Default config: nothing in the kernel's ephemeral range.
    const [lo, hi] = (await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8"))
      .trim()
      .split(/\s+/)
      .map(Number);
    for (const p of all) {
      assert.ok(p >= 10000 && p < 60000, `${p} outside [10000, 60000)`);
      assert.ok(p < lo! || p > hi!, `${p} is in the ephemeral range ${lo}-${hi}`);
    }
  });

  test("mcp ps shows every component running with its version", async () => {
    const run = ok(await agent.cli(["ps"]), "ps");
    const lines = run.stdout.trimEnd().split("\n");
    assert.match(
      lines[0] ?? "",
      /^SERVICE\s+COMPONENT\s+NODE\s+STATE\s+HEALTH\s+VERSION\s+UPTIME$/,
    );
    const cells = lines.slice(1).map((l) => l.split(/\s+/));
    // Just deployed: the health loop may not have checked them yet.
    for (const c of cells) assert.match(c[4] ?? "", /^(-|starting|healthy)$/, c.join(" "));
    const rows = cells.map((c) => [...c.slice(0, 4), c[5]].join(" "));
    assert.deepEqual(rows, [
      "hello web local running v1",
      "legacy legacy local running v1",
      "multi api local running v1",
      "multi web local running v1",
    ]);
  });

  test("redeploy and stop/start keep every route's host port", async () => {
    const before = await hostPorts();
    ok(await agent.cli(["deploy", "multi"]), "redeploy multi");
    ok(await agent.cli(["deploy", "hello/web"]), "redeploy hello/web");
    assert.deepEqual(await hostPorts(), before);

    const file = path.join(agent.servicesDir, "multi.toml");
    ok(await agent.cli(["stop", "multi"]), "stop multi");
    const stopped = await readFile(file, "utf8");
    assert.match(stopped, /^active = false$/m);
    assert.match(stopped, /^# Two components; the api has two named routes/m, "comments kept");
    assert.ok((await containerNames()).includes("multi-api exited"));

    ok(await agent.cli(["start", "multi"]), "start multi");
    assert.match(await readFile(file, "utf8"), /^active = true$/m);
    assert.deepEqual(await hostPorts(), before);
    const rest = port(before, "multi/api/rest");
    assert.equal(parseEnvPage(await httpGet(rest)).PORT_REST, String(rest));
  });

  test("a bad definition is refused with file:line:col and deploys nothing", async () => {
    const file = await agent.addDefinition(
      "broken",
      'name = "broken"\nnode = "local"\n[[components]\n',
    );
    const run = await agent.cli(["deploy", "broken"]);
    assert.equal(run.code, 2, "bad input");
    assert.match(run.stderr, new RegExp(`^mcp: ${file.replace(/[.]/g, "\\.")}:3:\\d+: `));

    await agent.addDefinition(
      "badmode",
      'name = "badmode"\nnode = "local"\n[[components]]\nname = "web"\nimage = "localhost/mcp-httpenv:v1"\n[[components.routes]]\nport = 443\nmode = "l5"\n',
    );
    const bad = await agent.cli(["deploy", "badmode"]);
    assert.equal(bad.code, 2, "bad input");
    assert.match(bad.stderr, /components\[0\]\.routes\[0\]\.mode: expected "l4" or "l7", got "l5"/);
    assert.ok(
      !(await containerNames()).some((n) => n.startsWith("broken") || n.startsWith("badmode")),
    );
  });

  test("a missing image fails at the pull step and leaves no container and no port", async () => {
    await agent.addDefinition(
      "ghost",
      'name = "ghost"\nnode = "local"\n[[components]]\nname = "web"\nimage = "localhost/mcp-does-not-exist:v1"\n[[components.routes]]\nport = 443\n',
    );
    const before = await hostPorts();
    const run = await agent.cli(["deploy", "ghost"]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /web: failed: pull: /);
    assert.ok(!(await containerNames()).some((n) => n.startsWith("ghost")));
    const after = await hostPorts();
    assert.deepEqual(after, before, "no port recorded for ghost");
  });

  test("undeploy removes the containers and releases the ports; a second undeploy is a no-op", async () => {
    ok(await agent.cli(["undeploy", "hello"]), "undeploy hello");
    assert.ok(!(await containerNames()).some((n) => n.startsWith("hello-web")));
    assert.equal((await hostPorts()).get("hello/web/"), 0);
    ok(await agent.cli(["undeploy", "hello"]), "second undeploy");
  });

  test("after a crash and restart, registry, ps and podman agree, and new deploys do not collide", async () => {
    const before = await hostPorts();
    await agent.kill("SIGKILL");
    await agent.launch();

    assert.deepEqual(await hostPorts(), before);
    const ps = ok(await agent.cli(["ps", "--json"]), "ps --json");
    const rows = (
      JSON.parse(ps.stdout) as { service: string; component: string; info: ComponentJson }[]
    ).map((r) => `${r.service}-${r.component} ${r.info.observedState}`);
    const live = await containerNames();
    assert.deepEqual(
      rows.filter((r) => !r.endsWith(" removed")),
      ["legacy-legacy running", "multi-api running", "multi-web running"],
    );
    assert.deepEqual(live, ["legacy running", "multi-api running", "multi-web running"]);

    ok(await agent.cli(["deploy", "hello"]), "deploy hello after restart");
    const after = await hostPorts();
    const used = [...after.values()].filter((p) => p > 0);
    assert.equal(new Set(used).size, used.length, `ports collide: ${JSON.stringify([...after])}`);
    const helloPort = port(after, "hello/web/");
    assert.equal(parseEnvPage(await httpGet(helloPort)).PORT, String(helloPort));
  });

  test("definitions on disk are untouched by deploy", async () => {
    const text = await readFile(path.join(agent.servicesDir, "hello.toml"), "utf8");
    assert.equal(text, await readFile(path.join(EXAMPLES_DIR, "hello.toml"), "utf8"));
  });
});
