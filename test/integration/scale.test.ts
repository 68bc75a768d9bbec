/**
 * One agent under the load of many services: 100 parallel `mcp deploy`
 * (every CLI answers, every service gets its own host port), and a node
 * whose listings keep answering after a huge comment was refused, since
 * listings carry no spec and no comment.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connectNode } from "../../src/cli/client.js";
import { loadCliConfig, resolveNode } from "../../src/config/cli.js";
import { toServiceSpec } from "../../src/servicedef/spec.js";
import { parseServiceDef } from "../../src/servicedef/parse.js";
import { McpError } from "../../src/util/errors.js";
import { LiveAgent, oneRouteDefinition, ok, type NodeServicesJson } from "../helpers/live-agent.js";

const NODE = "scale-node";
const COUNT = 100;
const names = Array.from({ length: COUNT }, (_, i) => `sc-${String(i).padStart(3, "0")}`);

describe("100 services on one agent", { concurrency: false }, () => {
  let agent: LiveAgent;
  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
    for (const name of names) await agent.addDefinition(name, oneRouteDefinition(name, NODE));
  });
  after(async () => {
    await agent.cleanup();
  });

  test("100 parallel deploys all answer, on 100 distinct host ports", async () => {
    const runs = await Promise.all(names.map((name) => agent.cli(["deploy", name])));
    for (const [i, run] of runs.entries()) ok(run, `deploy ${names[i]}`);
    const ports = runs.map((r) => Number(/\bPORT=(\d+)/.exec(r.stdout)?.[1]));
    assert.equal(new Set(ports).size, COUNT, "distinct host ports");
  });

  test("a 20 MB comment is refused, by the CLI and by the agent", async () => {
    const huge = "x".repeat(20 * 1024 * 1024);
    const text = `${oneRouteDefinition("sc-huge", NODE)}\n`.replace(
      'node = "scale-node"',
      `node = "scale-node"\ncomment = "${huge}"`,
    );
    await agent.addDefinition("sc-huge", text);
    const run = await agent.cli(["deploy", "sc-huge"]);
    assert.notEqual(run.code, 0);
    assert.ok(run.stderr.length < 2000, "the refusal does not echo the comment");
    assert.match(run.stderr, /sc-huge/);

    // Straight over gRPC, past the CLI's own checks.
    const config = await loadCliConfig(agent.cliConfig);
    const client = await connectNode(resolveNode(config, NODE));
    try {
      const spec = toServiceSpec(parseServiceDef(oneRouteDefinition("sc-huge", NODE), "x.toml"));
      await assert.rejects(
        client.call("deploy", { service: { ...spec, comment: huge }, component: "" }),
        (err: unknown) => {
          assert.ok(err instanceof McpError);
          assert.equal(err.code, "invalid_argument");
          assert.match(err.message, /comment/);
          assert.ok(err.message.length < 2000, "the refusal does not echo the comment");
          return true;
        },
      );
    } finally {
      client.close();
    }
  });

  test("ps, list and status answer for all of them, without specs or comments", async () => {
    const ps = ok(await agent.cli(["ps", "--json"]), "ps");
    assert.equal((JSON.parse(ps.stdout) as unknown[]).length, COUNT);
    const list = ok(await agent.cli(["list", "--json"]), "list");
    const [node] = JSON.parse(list.stdout) as NodeServicesJson[];
    assert.equal(node?.services.length, COUNT);
    assert.ok(
      node?.services.every((s) => !("spec" in s) || (s as { spec?: unknown }).spec === undefined),
      "no spec in listings",
    );
    const status = ok(await agent.cli(["status", "--json"]), "status");
    assert.ok(status.stdout.includes("sc-099"));
    assert.ok(list.stdout.length < 1024 * 1024, `list is ${list.stdout.length} bytes`);
    // service show still has the spec.
    const show = ok(await agent.cli(["service", "show", "sc-042", "--json"]), "show");
    const shown = JSON.parse(show.stdout) as { service: { spec?: { name: string } } };
    assert.equal(shown.service.spec?.name, "sc-042");
  });
});
