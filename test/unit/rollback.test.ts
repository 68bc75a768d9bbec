/**
 * Rollback: which spec each component goes back to (selectRollback, pure),
 * the operation over a fake runtime (one new revision that says rollback,
 * the old spec on the same host port), and recovery recreating a component
 * from its last deployed revision rather than a spec sync recorded later.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deploy } from "../../src/agent/operations/deploy.js";
import type { StepProgress } from "../../src/agent/operations/progress.js";
import { recoverAtStart, recoverySpec } from "../../src/agent/operations/recover.js";
import { rollback, selectRollback } from "../../src/agent/operations/rollback.js";
import { syncDesiredState } from "../../src/agent/operations/sync.js";
import { ComponentSpec } from "../../src/gen/mcp/v1/mcp.js";
import type { RevisionOutcome, RevisionRow } from "../../src/registry/index.js";
import { containerName } from "../../src/runtime/names.js";
import { McpError } from "../../src/util/errors.js";
import { IMAGE, IMAGE_V2, agent, example, withImage } from "../helpers/fake-agent.js";

const IMAGE_V3 = "localhost/mcp-httpenv:v3";

function row(
  revision: number,
  component: string,
  image: string,
  outcome: RevisionOutcome = "ok",
): RevisionRow {
  return {
    service: "svc",
    revision,
    component,
    image,
    spec: ComponentSpec.fromPartial({ name: component, image }),
    outcome,
    message: outcome === "ok" ? "" : "run: boom",
    deployedAt: `2026-01-0${revision}T00:00:00.000Z`,
    kind: "deploy",
    rollbackTo: 0,
  };
}

const select = (
  rows: RevisionRow[],
  components: string[],
  extra: { named?: boolean; toRevision?: number } = {},
) =>
  selectRollback(rows, {
    service: "svc",
    components,
    named: extra.named ?? false,
    toRevision: extra.toRevision ?? 0,
  });

const picked = (s: ReturnType<typeof select>) =>
  s.targets.map((t) => [t.component, t.revision, t.spec.image]);

function rejects(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof McpError);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

describe("selectRollback", () => {
  test("default: each component's ok revision before its current (newest ok) one", () => {
    const rows = [row(1, "web", "a:1"), row(2, "web", "a:2"), row(3, "web", "a:3")];
    assert.deepEqual(picked(select(rows, ["web"])), [["web", 2, "a:2"]]);
  });

  test("failed and rolled-back attempts are never current nor a target", () => {
    const rows = [
      row(1, "web", "a:1"),
      row(2, "web", "a:2", "failed"),
      row(3, "web", "a:3"),
      row(4, "web", "a:4", "rolled back"),
    ];
    // a:3 runs (4 was rolled back): back to a:1, skipping the failed a:2.
    assert.deepEqual(picked(select(rows, ["web"])), [["web", 1, "a:1"]]);
  });

  test("a redeploy of the same spec is no version to go back to", () => {
    const rows = [row(1, "web", "a:1"), row(2, "web", "a:2"), row(3, "web", "a:2")];
    assert.deepEqual(picked(select(rows, ["web"])), [["web", 1, "a:1"]]);
  });

  test("after a rollback, rolling back again goes to the version it replaced", () => {
    const rows = [row(1, "web", "a:1"), row(2, "web", "a:2"), row(3, "web", "a:1")];
    assert.deepEqual(picked(select(rows, ["web"])), [["web", 2, "a:2"]]);
  });

  test("service-wide: a component with nothing earlier is left as it is, and said so", () => {
    // 1 deployed api and web; 2 only api.
    const rows = [row(1, "api", "a:1"), row(1, "web", "w:1"), row(2, "api", "a:2")];
    const s = select(rows, ["api", "web"]);
    assert.deepEqual(picked(s), [["api", 1, "a:1"]]);
    assert.deepEqual(s.skipped, [
      { component: "web", reason: "no good revision with another spec before 1 (its current one)" },
    ]);
  });

  test("no component with an earlier good revision, or a named one without: an error naming it", () => {
    const rows = [row(1, "api", "a:1"), row(1, "web", "w:1"), row(2, "api", "a:2")];
    rejects(
      () => select(rows, ["web"], { named: true }),
      "not_found",
      /^svc\/web has no good revision with another spec before 1 \(its current one\)$/,
    );
    rejects(
      () => select([row(1, "web", "w:1")], ["web"]),
      "not_found",
      /svc\/web has no good revision/,
    );
    rejects(
      () => select([row(1, "web", "w:1", "failed")], ["web"]),
      "not_found",
      /^svc\/web has no successful revision$/,
    );
  });

  test("--to REV: each component's spec at REV, or its newest ok one before REV", () => {
    const rows = [
      row(1, "api", "a:1"),
      row(1, "web", "w:1"),
      row(2, "api", "a:2"),
      row(3, "web", "w:3", "failed"),
      row(4, "api", "a:4"),
      row(4, "web", "w:4"),
    ];
    assert.deepEqual(picked(select(rows, ["api", "web"], { toRevision: 3 })), [
      ["api", 2, "a:2"],
      ["web", 1, "w:1"],
    ]);
    assert.deepEqual(picked(select(rows, ["api"], { toRevision: 1, named: true })), [
      ["api", 1, "a:1"],
    ]);
  });

  test("--to REV: a component that had no good spec by then is an error naming it", () => {
    const rows = [row(1, "api", "a:1"), row(2, "api", "a:2"), row(2, "web", "w:2")];
    rejects(
      () => select(rows, ["api", "web"], { toRevision: 1 }),
      "not_found",
      /^svc\/web has no successful revision at or before 1 \(roll back the others one by one: mcp rollback svc\/<component> --to 1\)$/,
    );
  });

  test("an unknown revision: an error saying which ones the agent keeps", () => {
    const rows = [row(2, "web", "a:2"), row(3, "web", "a:3"), row(5, "web", "a:5")];
    rejects(
      () => select(rows, ["web"], { toRevision: 4 }),
      "not_found",
      /^service svc has no revision 4 \(the agent keeps revisions 2-3, 5; see mcp history svc\)$/,
    );
    rejects(
      () => select([], ["web"], { toRevision: 1 }),
      "not_found",
      /has no revision 1 \(it has no revisions/,
    );
  });
});

describe("rollback over a fake runtime", () => {
  test("deploy v1, v2, rollback: v1's spec runs on the same host port, as revision 3 (rollback to 1)", async () => {
    const { ctx, runtime, registry } = agent();
    await deploy(ctx, { service: example("hello"), component: "" });
    const port = registry.routes.list({ service: "hello" })[0]?.hostPort;
    await deploy(ctx, { service: withImage(example("hello"), IMAGE_V2), component: "" });
    const events: StepProgress[] = [];
    let revision = 0;
    const results = await rollback(
      ctx,
      { service: "hello", component: "", toRevision: 0 },
      { progress: (p) => events.push(p), taken: (n) => (revision = n) },
    );
    assert.deepEqual(
      results.map((r) => [r.name, r.success, r.outcome]),
      [["web", true, "ok"]],
    );
    assert.equal(revision, 3);
    assert.equal(registry.components.get("hello", "web")?.spec.image, IMAGE);
    assert.equal(runtime.containers.get(containerName("hello", "web"))?.image, IMAGE);
    assert.equal(registry.routes.list({ service: "hello" })[0]?.hostPort, port);
    const [latest] = registry.revisions.list("hello");
    assert.deepEqual(
      [latest?.revision, latest?.kind, latest?.rollbackTo, latest?.outcome, latest?.image],
      [3, "rollback", 1, "ok", IMAGE],
    );
    // It says what it chose, then reports the deploy's steps.
    assert.deepEqual(events[0], {
      component: "web",
      step: "rollback",
      phase: "info",
      elapsedMs: 0,
      detail: `to revision 1 (${IMAGE})`,
    });
    assert.ok(events.some((e) => e.step === "start container" && e.phase === "ok"));

    // --to 2: v2 again, recorded as a rollback to 2.
    await rollback(ctx, { service: "hello", component: "", toRevision: 2 });
    assert.equal(registry.components.get("hello", "web")?.spec.image, IMAGE_V2);
    assert.deepEqual(
      registry.revisions.list("hello").map((r) => [r.revision, r.kind, r.rollbackTo]),
      [
        [4, "rollback", 2],
        [3, "rollback", 1],
        [2, "deploy", 0],
        [1, "deploy", 0],
      ],
    );
  });

  test("one component: only it goes back; the others keep running untouched", async () => {
    const { ctx, runtime, registry } = agent();
    await deploy(ctx, { service: example("multi"), component: "" });
    await deploy(ctx, { service: withImage(example("multi"), IMAGE_V2), component: "" });
    const webBefore = runtime.containers.get(containerName("multi", "web"))?.id;
    await rollback(ctx, { service: "multi", component: "api", toRevision: 0 });
    assert.equal(registry.components.get("multi", "api")?.spec.image, IMAGE);
    assert.equal(registry.components.get("multi", "web")?.spec.image, IMAGE_V2);
    assert.equal(runtime.containers.get(containerName("multi", "web"))?.id, webBefore);
    const rows = registry.revisions.list("multi").filter((r) => r.revision === 3);
    assert.deepEqual(
      rows.map((r) => [r.component, r.kind]),
      [["api", "rollback"]],
    );
  });

  test("clear errors: unknown service, unknown component, nothing to go back to", async () => {
    const { ctx } = agent();
    await deploy(ctx, { service: example("hello"), component: "" });
    await assert.rejects(rollback(ctx, { service: "nope", component: "", toRevision: 0 }), {
      code: "not_found",
      message: 'unknown service "nope" on node local',
    });
    await assert.rejects(rollback(ctx, { service: "hello", component: "db", toRevision: 0 }), {
      code: "not_found",
      message: 'service hello has no component "db" on node local (it has: web)',
    });
    await assert.rejects(rollback(ctx, { service: "hello", component: "", toRevision: 0 }), {
      code: "not_found",
      message: "hello/web has no good revision with another spec before 1 (its current one)",
    });
    await assert.rejects(rollback(ctx, { service: "hello", component: "", toRevision: 7 }), {
      message: /hello has no revision 7/,
    });
  });

  test("a rollback whose deploy fails is recorded as a failed rollback; the current version stays", async () => {
    const first = agent();
    first.runtime.images.add(IMAGE_V3);
    await deploy(first.ctx, { service: withImage(example("hello"), IMAGE_V3), component: "" });
    await deploy(first.ctx, { service: withImage(example("hello"), IMAGE_V2), component: "" });
    // v3 is gone from local storage (an agent restarted since: nothing cached) and cannot be pulled.
    const { ctx, runtime, registry } = agent({ runtime: first.runtime, dbPath: first.dbPath });
    runtime.images.delete(IMAGE_V3);
    runtime.failNext("pull", new Error("pull refused"));
    const [result] = await rollback(ctx, { service: "hello", component: "", toRevision: 0 });
    assert.match(result?.error ?? "", /^pull: pull refused/);
    assert.equal(result?.success, false);
    const [latest] = registry.revisions.list("hello");
    assert.deepEqual(
      [latest?.kind, latest?.outcome, latest?.rollbackTo],
      ["rollback", "failed", 1],
    );
    assert.equal(registry.components.get("hello", "web")?.spec.image, IMAGE_V2);
  });
});

describe("recovery recreates from the last deployed revision", () => {
  test("sync overwrites a deployed component's spec; recovery still recreates what was deployed", async () => {
    const first = agent();
    await deploy(first.ctx, { service: example("hello"), component: "" });
    const port = first.registry.routes.list({ service: "hello" })[0]?.hostPort;
    await syncDesiredState(first.ctx, {
      services: [withImage(example("hello"), IMAGE_V2)],
      dryRun: false,
    });
    // The difference: sync did record v2 as the component's spec, though v1 runs.
    const synced = first.registry.components.get("hello", "web");
    assert.ok(synced);
    assert.equal(synced.spec.image, IMAGE_V2);
    assert.equal(first.runtime.containers.get(containerName("hello", "web"))?.image, IMAGE);
    assert.deepEqual(
      {
        ...recoverySpec(synced, first.registry.revisions.list("hello")),
        spec: undefined,
      },
      { spec: undefined, record: true, revision: 1 },
    );

    // The container goes (a reboot); the next agent start recreates v1, not v2.
    first.runtime.containers.delete(containerName("hello", "web"));
    const next = agent({ runtime: first.runtime, dbPath: first.dbPath });
    const report = await recoverAtStart(next.ctx);
    assert.deepEqual(report.recovered, ["hello/web"]);
    assert.equal(next.runtime.containers.get(containerName("hello", "web"))?.image, IMAGE);
    // The registry describes what runs again, on the same port.
    assert.equal(next.registry.components.get("hello", "web")?.spec.image, IMAGE);
    assert.equal(next.registry.routes.list({ service: "hello" })[0]?.hostPort, port);
    const recover = next.registry.events
      .list({ service: "hello" })
      .find((e) => e.kind === "recover");
    assert.match(recover?.message ?? "", /recreated from revision 1, not the synced spec/);
  });

  test("without a revision (deployed before history existed) the row's spec is used", () => {
    const spec = ComponentSpec.fromPartial({ name: "web", image: IMAGE });
    assert.deepEqual(recoverySpec({ name: "web", spec }, []), { spec, record: false });
    const same = recoverySpec({ name: "web", spec }, [{ ...row(1, "web", IMAGE), spec }]);
    assert.deepEqual(same, { spec, record: false, revision: 1 });
  });
});
