/**
 * The exposure and volume policy end to end: a real `mcp-agent serve`, the
 * real CLI and real podman. Refused definitions name the field and create no
 * container; a mapping without an address is published on the bind address
 * only; a stopped service's route port cannot be taken by another service's
 * explicit mapping, and the stopped service starts again in place.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import { freePort } from "../helpers/agent.js";
import {
  LiveAgent,
  httpGet,
  ok,
  oneRouteDefinition,
  parseEnvPage,
  webDefinition,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "pol-node";

function definition(name: string, lines: string[]): string {
  return webDefinition(name, NODE, lines);
}

async function containers(label: string): Promise<string[]> {
  const { stdout } = await runCommand(["podman", "ps", "-aq", "--filter", `label=${label}`]);
  return stdout.split("\n").filter(Boolean);
}

async function containerId(name: string): Promise<string> {
  const { stdout } = await runCommand(["podman", "inspect", "--format", "{{.Id}}", name]);
  return stdout.trim();
}

describe("exposure and volume policy on real podman", { timeout: 120_000 }, () => {
  let agent: LiveAgent;

  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test("/etc:/etc and 0.0.0.0:18099:8080 are refused with the field path; no container", async () => {
    await agent.addDefinition("pol-etc", definition("pol-etc", ['volumes = ["/etc:/etc"]']));
    await agent.addDefinition(
      "pol-all",
      definition("pol-all", ['ports = ["0.0.0.0:18099:8080"]', 'env = ["PORT=8080"]']),
    );
    const etc = await agent.cli(["deploy", "pol-etc"]);
    assert.notEqual(etc.code, 0, etc.stdout);
    assert.match(
      etc.stderr,
      /service pol-etc: components\[0\]\.volumes\[0\]: host path \/etc is outside the service's data directory \S+\/pol-etc; other roots must be listed in \[policy\] volume_roots/,
    );
    const all = await agent.cli(["deploy", "pol-all"]);
    assert.notEqual(all.code, 0, all.stdout);
    assert.match(
      all.stderr,
      /service pol-all: components\[0\]\.ports\[0\]: publishes on 0\.0\.0\.0 \(every IPv4 interface\), but this agent publishes only on \[ports\] bind_addresses \(127\.0\.0\.1\)/,
    );
    // Sync refuses them too, so neither can be started later.
    const sync = await agent.cli(["sync"]);
    assert.notEqual(sync.code, 0, sync.stdout);
    assert.match(sync.stderr, /service pol-etc: components\[0\]\.volumes\[0\]/);

    assert.deepEqual(await containers("mcp.service=pol-etc"), []);
    assert.deepEqual(await containers("mcp.service=pol-all"), []);
    assert.deepEqual(await containers(`mcp.node=${NODE}`), []);
    const list = JSON.parse(
      ok(await agent.cli(["list", "--json"]), "list").stdout,
    ) as NodeServicesJson[];
    assert.deepEqual(
      list.flatMap((n) => n.services.map((s) => s.name)),
      [],
      "nothing recorded",
    );
  });

  test("a mapping without an address is published on the bind address only", async () => {
    const port = await freePort();
    await agent.addDefinition(
      "pol-bind",
      definition("pol-bind", [`ports = ["${port}:8080"]`, 'env = ["PORT=8080"]']),
    );
    ok(await agent.cli(["deploy", "pol-bind"]), "deploy pol-bind");
    const { stdout } = await runCommand(["podman", "port", "pol-bind-web"]);
    assert.deepEqual(stdout.trim().split("\n"), [`8080/tcp -> 127.0.0.1:${port}`]);
    assert.equal(parseEnvPage(await httpGet(port)).PORT, "8080");
    // Recorded as written.
    const shown = ok(await agent.cli(["service", "show", "pol-bind"]), "show").stdout;
    assert.match(shown, new RegExp(`ports = \\["${port}:8080"\\]`));
    ok(await agent.cli(["undeploy", "pol-bind"]), "undeploy pol-bind");
  });

  test("a stopped service's route port is refused to another's mapping; its start is in place", async () => {
    await agent.addDefinition("pol-a", oneRouteDefinition("pol-a", NODE));
    ok(await agent.cli(["deploy", "pol-a"]), "deploy pol-a");
    const list = JSON.parse(
      ok(await agent.cli(["list", "--json"]), "list").stdout,
    ) as NodeServicesJson[];
    const port = list[0]?.services.find((s) => s.name === "pol-a")?.components[0]?.routes[0]
      ?.hostPort;
    assert.ok(port, JSON.stringify(list));
    ok(await agent.cli(["stop", "pol-a"]), "stop pol-a");
    const id = await containerId("pol-a-web");

    await agent.addDefinition(
      "pol-b",
      definition("pol-b", [`ports = ["127.0.0.1:${port}:8080"]`, 'env = ["PORT=8080"]']),
    );
    const b = await agent.cli(["deploy", "pol-b"]);
    assert.notEqual(b.code, 0, b.stdout);
    assert.match(
      b.stderr,
      new RegExp(
        `service pol-b: components\\[0\\]\\.ports\\[0\\]: port ${port} is held by route pol-a/web \\(\\$PORT\\)`,
      ),
    );
    assert.deepEqual(await containers("mcp.service=pol-b"), []);

    ok(await agent.cli(["start", "pol-a"]), "start pol-a");
    assert.equal(await containerId("pol-a-web"), id, "the same container, started again");
    assert.equal(parseEnvPage(await httpGet(port)).PORT, String(port));
  });
});
