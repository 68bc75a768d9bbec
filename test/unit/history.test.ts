/**
 * Revisions: every deploy of a service is one revision with a row per
 * component it touched, kept up to `[history] keep`, listed by ListRevisions
 * and printed by `mcp history`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deploy } from "../../src/agent/operations/deploy.js";
import { createHandlers } from "../../src/agent/server/handlers.js";
import { formatHistory } from "../../src/cli/commands/history.js";
import type { ListRevisionsResponse } from "../../src/gen/mcp/v1/mcp.js";
import { IMAGE, IMAGE_V2, agent, example, withImage } from "../helpers/fake-agent.js";
import { pullRefused } from "../helpers/fake-runtime.js";

describe("revisions", () => {
  test("each deploy is one revision; each component it touched has a row with its outcome", async () => {
    const { ctx, runtime, registry } = agent();
    await deploy(ctx, { service: example("multi"), component: "" });
    await deploy(ctx, { service: withImage(example("multi"), IMAGE_V2), component: "web" });
    runtime.images.delete("localhost/mcp-httpenv:v3");
    runtime.failNext("pull", (image) => pullRefused(image));
    const v3 = withImage(example("multi"), "localhost/mcp-httpenv:v3");
    const failed = await deploy(ctx, { service: v3, component: "api" });
    assert.equal(failed[0]?.success, false);
    const rows = registry.revisions.list("multi");
    assert.deepEqual(
      rows.map((r) => [r.revision, r.component, r.image, r.outcome]),
      [
        [3, "api", "localhost/mcp-httpenv:v3", "failed"],
        [2, "web", IMAGE_V2, "ok"],
        [1, "api", IMAGE, "ok"],
        [1, "web", IMAGE, "ok"],
      ],
    );
    assert.match(rows[0]?.message ?? "", /^pull: /);
    assert.equal(rows[1]?.message, "");
    assert.deepEqual(rows[1]?.spec, withImage(example("multi"), IMAGE_V2).components[1]);
  });

  test("the agent keeps the newest [history] keep revisions of each service", async () => {
    const { ctx, registry } = agent({ settings: { historyKeep: 2 } });
    for (const image of [IMAGE, IMAGE_V2, IMAGE]) {
      await deploy(ctx, { service: withImage(example("hello"), image), component: "" });
    }
    await deploy(ctx, { service: example("multi"), component: "" });
    assert.deepEqual(
      registry.revisions.list("hello").map((r) => r.revision),
      [3, 2],
    );
    assert.deepEqual(
      registry.revisions.list("multi").map((r) => r.revision),
      [1, 1],
    );
  });

  test("ListRevisions: newest first; an unknown service is NOT_FOUND", async () => {
    const { ctx } = agent();
    await deploy(ctx, { service: example("hello"), component: "" });
    const handlers = createHandlers(ctx);
    const call = (service: string) =>
      new Promise<ListRevisionsResponse>((resolve, reject) => {
        const handler = handlers.listRevisions;
        assert.ok(handler);
        handler({ request: { service } } as never, (err, res) =>
          err
            ? reject(err instanceof Error ? err : new Error(String(err.details)))
            : resolve(res as ListRevisionsResponse),
        );
      });
    const res = await call("hello");
    assert.deepEqual(
      res.revisions.map((r) => [r.revision, r.component, r.image, r.outcome]),
      [[1, "web", IMAGE, "ok"]],
    );
    assert.ok(res.revisions[0]?.deployedAt instanceof Date);
    await assert.rejects(call("nope"), /unknown service "nope"/);
  });
});

describe("mcp history output", () => {
  test("a table, newest first, with a failure's reason under its line", () => {
    const at = new Date("2026-12-01T11:58:03.250Z");
    const text = formatHistory([
      {
        revision: 2,
        component: "api",
        image: "localhost/app:v2",
        deployedAt: at,
        outcome: "failed",
        message: "pull: no such image",
        kind: "deploy",
        rollbackTo: 0,
      },
      {
        revision: 1,
        component: "api",
        image: "localhost/app:v1",
        deployedAt: at,
        outcome: "ok",
        message: "",
        kind: "",
        rollbackTo: 0,
      },
    ]);
    assert.equal(
      text,
      [
        "REV  COMPONENT  IMAGE             DEPLOYED              OUTCOME",
        "2    api        localhost/app:v2  2026-12-01 11:58:03Z  failed",
        "    pull: no such image",
        "1    api        localhost/app:v1  2026-12-01 11:58:03Z  ok",
        "",
      ].join("\n"),
    );
    assert.equal(formatHistory([]), "no revisions\n");
  });
});
