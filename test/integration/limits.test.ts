/**
 * Resource limits and log rotation on real podman, through the real CLI and
 * a real agent: `memory`, `cpus` and `pids` of a component and the agent's
 * `[containers] log_max_size` end up on the container (podman inspect), a
 * chatty container's log stays under the cap, the agent's stricter
 * `[limits]` refuse what the CLI's built-ins let through, and the CLI's own
 * refusals name the file and the field.
 *
 * Every service and the node are named `lim-…`, so nothing here clashes
 * with the other integration tests.
 */
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { errorMessage } from "../../src/util/errors.js";
import { runCommand } from "../../src/util/exec.js";
import {
  LiveAgent,
  httpGet,
  ok,
  parseEnvPage,
  webDefinition,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "lim-node";

function definition(name: string, component: string[], routes = ""): string {
  return webDefinition(name, NODE, [...component, routes]);
}

/** `podman container inspect` of one container, as JSON. */
async function inspect(name: string): Promise<Record<string, Record<string, unknown>>> {
  const { stdout } = await runCommand(["podman", "container", "inspect", name]);
  const [first] = JSON.parse(stdout) as Record<string, Record<string, unknown>>[];
  assert.ok(first, `no container ${name}`);
  return first;
}

describe("resource limits and log rotation on real podman", { timeout: 180_000 }, () => {
  let agent: LiveAgent;

  before(async () => {
    agent = await LiveAgent.start({
      node: NODE,
      config: {
        containers: { log_max_size: "1m" },
        limits: { max_routes_per_component: 2 },
      },
    });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("memory, cpus, pids and the log size cap are set on the container", async () => {
    await agent.addDefinition(
      "lim-res",
      definition(
        "lim-res",
        ['memory = "64m"', "cpus = 0.5", "pids = 128"],
        "[[components.routes]]\nport = 443",
      ),
    );
    ok(await agent.cli(["deploy", "lim-res"]), "deploy lim-res");

    const c = await inspect("lim-res-web");
    const host = c.HostConfig ?? {};
    assert.equal(host.Memory, 64 * 1024 * 1024);
    assert.equal(host.NanoCpus, 500_000_000);
    assert.equal(host.PidsLimit, 128);
    const log = host.LogConfig as { Type: string; Size: string };
    assert.equal(log.Type, "k8s-file");
    assert.equal(log.Size, "1MB");

    // Still a working container: its route answers with $PORT set.
    const nodes = JSON.parse(
      ok(await agent.cli(["list", "--json"]), "list").stdout,
    ) as NodeServicesJson[];
    const route = nodes[0]?.services.find((s) => s.name === "lim-res")?.components[0]?.routes[0];
    assert.ok(route && route.hostPort > 0, JSON.stringify(nodes));
    assert.equal(parseEnvPage(await httpGet(route.hostPort)).PORT, String(route.hostPort));

    // And `service show` says them as the definition does.
    const show = ok(await agent.cli(["service", "show", "lim-res"]), "service show").stdout;
    assert.match(show, /\nmemory = "64m"\ncpus = 0\.5\npids = 128\n/);
  });

  test("one chatty container cannot fill the disk: its log stays under the cap", async () => {
    const chatter =
      "yes 0123456789012345678901234567890123456789 | head -c 8000000; echo lim-done; sleep 600";
    await agent.addDefinition(
      "lim-chatty",
      definition("lim-chatty", [`cmd = ["sh", "-c", ${JSON.stringify(chatter)}]`]),
    );
    ok(await agent.cli(["deploy", "lim-chatty"]), "deploy lim-chatty");
    const deadline = Date.now() + 30_000;
    for (;;) {
      // While conmon truncates the file at the cap, podman may read half a
      // line ("… is not a valid container log line"): that passes, so retry.
      const stdout = await runCommand(["podman", "logs", "--tail", "1", "lim-chatty-web"]).then(
        (r) => r.stdout,
        (err: unknown) => {
          if (/not a valid container log line/.test(errorMessage(err))) return "";
          throw err;
        },
      );
      if (stdout.includes("lim-done")) break;
      assert.ok(Date.now() < deadline, "the container did not finish writing in 30 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    const log = (await inspect("lim-chatty-web")).HostConfig?.LogConfig as { Path: string };
    const { size } = await stat(log.Path);
    // 8 MB written (more with k8s-file's framing); at most 1 MiB kept.
    assert.ok(size > 0 && size <= 1024 * 1024, `log file is ${size} bytes`);
  });

  test("the agent's stricter [limits] refuse what the CLI's built-in ones let through", async () => {
    const routes = [1, 2, 3].map((i) => `[[components.routes]]\nname = "r${i}"\nport = ${i}`);
    await agent.addDefinition("lim-routes", definition("lim-routes", [], routes.join("\n")));
    const run = await agent.cli(["deploy", "lim-routes"]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /service lim-routes: components\[0\]\.routes: expected at most 2 routes, got 3/,
    );
    const { stdout } = await runCommand(["podman", "ps", "-a", "--format", "{{.Names}}"]);
    assert.ok(!stdout.split("\n").includes("lim-routes-web"), stdout);
  });

  test("the CLI refuses options-looking values and unknown nodes, naming file and field", async () => {
    const file = await agent.addDefinition(
      "lim-flag",
      definition("lim-flag", ['user = "--privileged"']),
    );
    const flag = await agent.cli(["deploy", "lim-flag"]);
    assert.equal(flag.code, 2, "bad input");
    assert.match(
      flag.stderr,
      new RegExp(`^mcp: ${file}: components\\[0\\]\\.user: expected "user" or "user:group"`),
    );

    const nowhere = await agent.addDefinition(
      "lim-nowhere",
      definition("lim-nowhere", []).replace(`node = "${NODE}"`, 'node = "lim-x"'),
    );
    const unknown = await agent.cli(["deploy", "lim-nowhere"]);
    assert.equal(unknown.code, 2, "bad input");
    assert.equal(unknown.stderr, `mcp: ${nowhere}: node: unknown node "lim-x" (known: ${NODE})\n`);
  });
});
