/**
 * `mcp rollback` against a real agent on real podman, through the real CLI:
 * deploy v1, v2, roll back → v1 answers on the same host port; `--to`;
 * history shows the rollback revisions; status says the file differs;
 * recovery at agent start recreates from the last deployed revision, not
 * from a spec `sync` recorded since.
 *
 * v1 and v2 differ in image tag (a second tag of the test image, made here
 * and removed after) and in an env variable the test image's page shows,
 * so an HTTP request says which version answers.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import {
  LiveAgent,
  TEST_IMAGE,
  httpGet,
  ok,
  parseEnvPage,
  webDefinition,
} from "../helpers/live-agent.js";

const NODE = "st-rb-node";
const SERVICE = "st-rb";
const V2_IMAGE = "localhost/mcp-httpenv:st-rb-v2";

const definition = (version: 1 | 2 | 3) =>
  webDefinition(
    SERVICE,
    NODE,
    [`env = ["ST_VERSION=${version}"]`, "", "[[components.routes]]", "port = 443"],
    version === 1 ? TEST_IMAGE : V2_IMAGE,
  );

interface HistoryJson {
  revisions: {
    revision: number;
    component: string;
    image: string;
    outcome: string;
    kind: string;
    rollbackTo: number;
  }[];
}

describe("mcp rollback", { timeout: 180_000 }, () => {
  let agent: LiveAgent;
  let file = "";
  let port = 0;
  const version = async () => parseEnvPage(await httpGet(port)).ST_VERSION;
  const history = async () =>
    (
      JSON.parse(
        ok(await agent.cli(["history", SERVICE, "--json"]), "history").stdout,
      ) as HistoryJson
    ).revisions;

  before(async () => {
    await runCommand(["podman", "tag", TEST_IMAGE, V2_IMAGE]);
    agent = await LiveAgent.start({ node: NODE });
  });
  after(async () => {
    await agent.cleanup();
    // Only our own tag; the image itself stays (it is v1's).
    await runCommand(["podman", "untag", V2_IMAGE, V2_IMAGE]).catch(() => undefined);
  });

  test("deploy v1, v2, rollback: v1 answers again on the same host port", async () => {
    file = await agent.addDefinition(SERVICE, definition(1));
    const first = ok(await agent.cli(["deploy", SERVICE, "--quiet"]), "deploy v1");
    port = Number(/PORT=(\d+)/.exec(first.stdout)?.[1]);
    assert.equal(await version(), "1");
    await agent.addDefinition(SERVICE, definition(2));
    ok(await agent.cli(["deploy", SERVICE, "--quiet"]), "deploy v2");
    assert.equal(await version(), "2");

    const run = ok(await agent.cli(["rollback", SERVICE]), "rollback");
    const lines = run.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `web: rollback to revision 1 (${TEST_IMAGE})`);
    assert.ok(
      lines.some((l) => /^web: start container ✓ \d+\.\ds$/.test(l)),
      run.stdout,
    );
    // The summary; a stop-first replacement also says how long nothing served.
    const summary = lines.slice(lines.findIndex((l) => l.startsWith("  web: ")));
    assert.equal(summary[0], `  web: ok  PORT=${port}`);
    assert.match(summary.slice(1).join("\n"), /^( {4}downtime (<0\.1|\d+\.\d)s)?$/);
    assert.equal(await version(), "1");

    // The file is left alone (it still says v2), and status says so.
    const status = ok(await agent.cli(["status", SERVICE]), "status").stdout;
    assert.ok(
      status.includes(
        `web: runs a different spec than ${file} (running → file: image ${TEST_IMAGE} → ${V2_IMAGE}; env ~ST_VERSION)`,
      ),
      status,
    );
  });

  test("history shows the rollback as a revision of its own", async () => {
    const text = ok(await agent.cli(["history", SERVICE]), "history").stdout;
    const lines = text.trimEnd().split("\n");
    assert.match(
      lines[1] ?? "",
      new RegExp(`^3\\s+web\\s+${TEST_IMAGE}\\s+\\S+ \\S+Z\\s+ok \\(rollback to 1\\)$`),
    );
    assert.match(lines[2] ?? "", new RegExp(`^2\\s+web\\s+${V2_IMAGE}\\s+\\S+ \\S+Z\\s+ok$`));
    assert.match(lines[3] ?? "", new RegExp(`^1\\s+web\\s+${TEST_IMAGE}\\s+\\S+ \\S+Z\\s+ok$`));
  });

  test("--to 2 with --json; --to an unknown revision exits 2", async () => {
    const run = ok(await agent.cli(["rollback", SERVICE, "--to", "2", "--json"]), "--to 2");
    const parsed = JSON.parse(run.stdout) as {
      revision: number;
      results: { name: string; success: boolean; routes: { hostPort: number }[] }[];
    };
    assert.equal(parsed.revision, 4);
    assert.deepEqual(
      parsed.results.map((r) => [r.name, r.success, r.routes[0]?.hostPort]),
      [["web", true, port]],
    );
    assert.equal(await version(), "2");
    const [latest] = await history();
    assert.deepEqual(
      [latest?.revision, latest?.image, latest?.kind, latest?.rollbackTo],
      [4, V2_IMAGE, "rollback", 2],
    );

    const unknown = await agent.cli(["rollback", SERVICE, "--to", "99"]);
    assert.equal(unknown.code, 2, unknown.stdout + unknown.stderr);
    assert.match(
      unknown.stderr,
      /service st-rb has no revision 99 \(the agent keeps revisions 1-4;/,
    );
    const component = await agent.cli(["rollback", `${SERVICE}/db`]);
    assert.equal(component.code, 2);
    assert.match(component.stderr, /service st-rb has no component "db"/);
  });

  test("recovery recreates from the last deployed revision, not from what sync recorded", async () => {
    // The file now says v3; sync records it as the component's spec, deploys nothing.
    await agent.addDefinition(SERVICE, definition(3));
    const sync = await agent.cli(["sync"]);
    assert.equal(sync.code, 0, sync.stdout + sync.stderr);
    const show = ok(await agent.cli(["service", "show", SERVICE]), "show").stdout;
    assert.match(show, /ST_VERSION=3/, "sync overwrote the deployed component's spec");
    assert.equal(await version(), "2");

    // The container goes while the agent is down (a reboot); the agent comes back.
    await agent.kill("SIGTERM");
    await runCommand(["podman", "rm", "-f", "-t", "0", `${SERVICE}-web`]);
    await agent.launch();
    // Revision 4's spec (v2) is back on its port; the registry says so again.
    assert.equal(await version(), "2");
    const after = ok(await agent.cli(["service", "show", SERVICE]), "show").stdout;
    assert.match(after, /ST_VERSION=2/);
    const status = ok(await agent.cli(["status", SERVICE]), "status").stdout;
    assert.match(status, /recreated from revision 4, not the synced spec/);
    assert.match(status, /web: runs a different spec than .* env ~ST_VERSION\)/);
  });
});
