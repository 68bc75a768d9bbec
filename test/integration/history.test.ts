/**
 * `mcp history` against a real agent on real podman: a good deploy and a
 * failed one are two revisions, newest first, the failure with its step.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LiveAgent, ok, oneRouteDefinition } from "../helpers/live-agent.js";

const NODE = "hist-node";
const SERVICE = "hist-web";

describe("mcp history", () => {
  let agent: LiveAgent;
  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
  });
  after(async () => {
    await agent.cleanup();
  });

  test("a good and a failed deploy are two revisions, newest first", async () => {
    await agent.addDefinition(SERVICE, oneRouteDefinition(SERVICE, NODE));
    ok(await agent.cli(["deploy", SERVICE]), "deploy v1");
    // Not in local storage, and no registry reachable: the pull fails.
    const missing = "localhost/mcp-httpenv:v9";
    await agent.addDefinition(SERVICE, oneRouteDefinition(SERVICE, NODE, missing));
    const failed = await agent.cli(["deploy", SERVICE]);
    assert.equal(failed.code, 1, failed.stderr);

    const text = ok(await agent.cli(["history", SERVICE]), "history").stdout;
    const lines = text.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^REV\s+COMPONENT\s+IMAGE\s+DEPLOYED\s+OUTCOME$/);
    assert.match(lines[1] ?? "", new RegExp(`^2\\s+web\\s+${missing}\\s+\\S+ \\S+Z\\s+failed$`));
    assert.match(lines[2] ?? "", /^ {4}pull: /);
    assert.match(lines[3] ?? "", /^1\s+web\s+localhost\/mcp-httpenv:v1\s+\S+ \S+Z\s+ok$/);

    const json = JSON.parse(
      ok(await agent.cli(["history", SERVICE, "--json"]), "--json").stdout,
    ) as {
      node: string;
      revisions: { revision: number; outcome: string }[];
    };
    assert.equal(json.node, NODE);
    assert.deepEqual(
      json.revisions.map((r) => [r.revision, r.outcome]),
      [
        [2, "failed"],
        [1, "ok"],
      ],
    );
    const unknown = await agent.cli(["history", "hist-nope", "--node", NODE]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown service "hist-nope"/);
  });
});
