/**
 * SIGKILL of a real agent at every step of a two-component deploy and
 * redeploy (MCP_CRASH_AT, src/agent/operations/crash-points.ts), then a normal start:
 * registry and podman agree for every component (the spec the agent holds is
 * the one its container runs), there is exactly one container per
 * component, and nothing is left "desired running" that never ran.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { planSteps } from "../../src/agent/operations/steps/plan.js";
import { runCommand } from "../../src/util/exec.js";
import { LiveAgent, TEST_IMAGE, ok } from "../helpers/live-agent.js";

const NODE = "crash-node";
const SERVICE = "crash";

function definition(version: string): string {
  return ["api", "web"]
    .map((c) =>
      [
        "[[components]]",
        `name = "${c}"`,
        `image = "${TEST_IMAGE}"`,
        `env = ["RELEASE=${version}"]`,
        // api replaces its container stop-first, web start-first (a trial beside the old one).
        `strategy = "${c === "api" ? "stop-first" : "start-first"}"`,
        "[[components.routes]]",
        "port = 443",
      ].join("\n"),
    )
    .reduce((text, c) => `${text}\n${c}\n`, `name = "${SERVICE}"\nnode = "${NODE}"\n`);
}

async function podman(...args: string[]): Promise<string> {
  return (await runCommand(["podman", ...args])).stdout.trim();
}

interface ShownSpec {
  service: {
    spec?: { components: { name: string; env: string[] }[] };
    components: { name: string; desiredState: string; observedState: string }[];
  };
}

/** What the agent holds and what podman runs, checked against each other. */
async function assertAgree(agent: LiveAgent, what: string): Promise<Map<string, string>> {
  const names = (
    await podman("ps", "-a", "--format", "{{.Names}}", "--filter", `label=mcp.node=${NODE}`)
  )
    .split("\n")
    .filter(Boolean)
    .sort();
  const shown = await agent.cli(["service", "show", SERVICE, "--json"]);
  const releases = new Map<string, string>();
  if (shown.code !== 0) {
    // The service is gone altogether (a first deploy undone): so are its containers.
    assert.match(shown.stderr, /unknown service/, `${what}: ${shown.stderr}`);
    assert.deepEqual(names, [], `${what}: containers of an unknown service`);
    return releases;
  }
  const { service } = JSON.parse(shown.stdout) as ShownSpec;
  const expected = service.components.map((c) => `${SERVICE}-${c.name}`).sort();
  assert.deepEqual(names, expected, `${what}: one container per component, nothing else`);
  for (const c of service.components) {
    assert.equal(c.desiredState, "running", `${what}: ${c.name} desired`);
    const spec = service.spec?.components.find((s) => s.name === c.name);
    const held = spec?.env.find((e) => e.startsWith("RELEASE=")) ?? "";
    const env = await podman("inspect", `${SERVICE}-${c.name}`, "--format", "{{json .Config.Env}}");
    const state = await podman("inspect", `${SERVICE}-${c.name}`, "--format", "{{.State.Status}}");
    assert.equal(state, "running", `${what}: ${c.name} runs`);
    assert.ok((JSON.parse(env) as string[]).includes(held), `${what}: ${c.name} runs ${held}`);
    releases.set(c.name, held);
  }
  return releases;
}

describe("SIGKILL at every step of a deploy, then start", { concurrency: false }, () => {
  let agent: LiveAgent;
  before(async () => {
    agent = await LiveAgent.start({ node: NODE });
  });
  after(async () => {
    await agent.cleanup();
  });

  /**
   * Deploys `version` with the agent set to die at `at`; then starts it
   * normally. `answered`: the agent dies after it answered (the last
   * component's old container is removed after the answer), so the CLI may
   * have been told the deploy succeeded, which it did.
   */
  async function crashAndRestart(version: string, at: string, answered = false): Promise<void> {
    await agent.kill("SIGTERM");
    await agent.launch({ MCP_CRASH_AT: at });
    await agent.addDefinition(SERVICE, definition(version));
    const run = await agent.cli(["deploy", SERVICE]);
    if (!answered) assert.notEqual(run.code, 0, `${at}: the deploy cannot have succeeded`);
    assert.equal(await agent.exited(), "SIGKILL", `${at}: the agent killed itself`);
    await agent.launch();
  }

  const redeploySteps = {
    api: planSteps({ strategy: "stop-first", old: "running", gated: true, pull: true }),
    web: planSteps({ strategy: "start-first", old: "running", gated: true, pull: true }),
  };
  for (const component of ["api", "web"] as const) {
    for (const step of redeploySteps[component]) {
      const at = `deploy:${step}@${component}`;
      test(`redeploy killed at ${at}`, async () => {
        await agent.addDefinition(SERVICE, definition("v1"));
        ok(await agent.cli(["deploy", SERVICE]), "deploy v1");
        await crashAndRestart("v2", at, component === "web" && step === "remove old container");
        const releases = await assertAgree(agent, at);
        // Components before the one killed are on v2; the killed one only
        // when it had committed (a deploy's unproven version is undone).
        const done = (c: string) =>
          (component === "web" && c === "api") ||
          (c === component && step === "remove old container");
        for (const c of ["api", "web"]) {
          assert.equal(releases.get(c), `RELEASE=${done(c) ? "v2" : "v1"}`, `${at}: ${c}`);
        }
      });
    }
  }

  for (const step of planSteps({ strategy: "start-first", old: "none", gated: true, pull: true })) {
    const at = `deploy:${step}@web`;
    test(`first deploy killed at ${at}`, async () => {
      ok(await agent.cli(["undeploy", SERVICE]), "undeploy");
      // purge removes only what is no longer defined locally.
      await rm(path.join(agent.servicesDir, `${SERVICE}.toml`));
      ok(await agent.cli(["purge", SERVICE]), "purge");
      await crashAndRestart("v1", at);
      const releases = await assertAgree(agent, at);
      assert.deepEqual([...releases.keys()], ["api"], `${at}: api committed, web undone`);
    });
  }
});
