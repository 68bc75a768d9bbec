/**
 * How deploy and rollback show an operation: step lines, the summary with a
 * failure's details, the terminal's running-step line, the interrupted
 * message, history's outcome column, and following the event stream
 * (fallback, Ctrl-C, a stream without a result).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AgentVersionError } from "../../src/cli/client.js";
import { formatOutcome } from "../../src/cli/commands/history.js";
import { parseRevision } from "../../src/cli/commands/rollback.js";
import { followOperation, interruptedMessage } from "../../src/cli/operation-stream.js";
import {
  ProgressPrinter,
  formatSeconds,
  formatStep,
  formatSummary,
} from "../../src/cli/progress.js";
import { definitionDifferences } from "../../src/cli/commands/status.js";
import {
  ComponentResult,
  ComponentSpec,
  ServiceInfo,
  ServiceSpec,
  type DeployEvent,
  type StepProgress,
} from "../../src/gen/mcp/v1/mcp.js";
import { specDifferences } from "../../src/servicedef/diff.js";

const step = (p: Partial<StepProgress>): StepProgress => ({
  component: "web",
  step: "pull",
  phase: "ok",
  elapsedMs: 0,
  detail: "",
  ...p,
});

describe("step lines", () => {
  test("ok, failed, undo and info; a start prints nothing", () => {
    assert.equal(formatStep(step({ elapsedMs: 312 })), "web: pull ✓ 0.3s");
    assert.equal(
      formatStep(
        step({
          step: "health",
          phase: "failed",
          elapsedMs: 60_000,
          detail: "connect ECONNREFUSED",
        }),
      ),
      "web: health ✗ 60.0s connect ECONNREFUSED",
    );
    assert.equal(
      formatStep(step({ step: "health", phase: "info", detail: "2/3 connect ECONNREFUSED" })),
      "web: health 2/3 connect ECONNREFUSED",
    );
    assert.equal(formatStep(step({ step: "run", phase: "undo" })), "web: undo run");
    assert.equal(formatStep(step({ phase: "start" })), undefined);
    // A multi-line reason (podman's stderr) stays one line.
    assert.equal(
      formatStep(step({ step: "run", phase: "failed", elapsedMs: 50, detail: "a\n  b\n" })),
      "web: run ✗ 0.1s a b",
    );
  });

  test("a long detail is cut on the step line; the summary has it whole, on one line", () => {
    const body = "<HTML>\n<BODY>404 Not Found</BODY>\n</HTML>" + "x".repeat(300);
    const line = formatStep(step({ step: "health", phase: "failed", detail: body })) ?? "";
    assert.equal(line.length, "web: health ✗ 0.0s ".length + 160);
    assert.ok(line.startsWith("web: health ✗ 0.0s <HTML> <BODY>404 Not Found</BODY> </HTML>xx"));
    assert.ok(line.endsWith("x…"));
    const summary = formatSummary([
      ComponentResult.fromPartial({ name: "web", success: false, error: `health: ${body}` }),
    ]);
    assert.equal(
      summary,
      `  web: failed: health: <HTML> <BODY>404 Not Found</BODY> </HTML>${"x".repeat(300)}\n`,
    );
  });

  test("seconds with one decimal", () => {
    assert.equal(formatSeconds(0), "0.0s");
    assert.equal(formatSeconds(49), "0.0s");
    assert.equal(formatSeconds(1250), "1.3s");
    assert.equal(formatSeconds(125_300), "125.3s");
  });
});

describe("the summary", () => {
  test("ok lines as formatResults, a failure with its step, health output and log lines", () => {
    const text = formatSummary([
      ComponentResult.fromPartial({
        name: "api",
        success: true,
        outcome: "ok",
        routes: [{ name: "rest", hostPort: 20001 }],
      }),
      ComponentResult.fromPartial({
        name: "web",
        success: false,
        error: "health: not healthy within 60s",
        container: "st-web-web",
        failedStep: "health",
        healthOutput: "connect ECONNREFUSED 127.0.0.1:20002\n",
        logLines: ["listening on :8080", "panic: no config  "],
        outcome: "failed",
      }),
    ]);
    assert.equal(
      text,
      [
        "  api: ok  PORT_REST=20001",
        "  web: failed: health: not healthy within 60s",
        "    failed step: health",
        "    last health check: connect ECONNREFUSED 127.0.0.1:20002",
        "    last log lines of st-web-web:",
        "      listening on :8080",
        "      panic: no config",
        "",
      ].join("\n"),
    );
  });

  test("rolled back: the old version serves again; downtime when there was some", () => {
    const text = formatSummary([
      ComponentResult.fromPartial({
        name: "web",
        success: false,
        error: "health: 3/3 HTTP 500",
        failedStep: "health",
        outcome: "rolled back",
        downtimeMs: 0,
      }),
      ComponentResult.fromPartial({
        name: "db",
        success: true,
        outcome: "ok",
        downtimeMs: 2350,
      }),
      ComponentResult.fromPartial({ name: "api", success: true, outcome: "ok", downtimeMs: 3 }),
    ]);
    assert.equal(
      text,
      [
        "  web: rolled back: health: 3/3 HTTP 500",
        "    failed step: health",
        "    the old version serves again",
        "  db: ok",
        "    downtime 2.4s",
        "  api: ok",
        "    downtime <0.1s",
        "",
      ].join("\n"),
    );
  });

  test("an older agent's result (no new fields) reads as before", () => {
    assert.equal(
      formatSummary([ComponentResult.fromPartial({ name: "web", success: false, error: "x: y" })]),
      "  web: failed: x: y\n",
    );
  });
});

describe("ProgressPrinter", () => {
  const events = [
    step({ step: "pull", phase: "start" }),
    step({ step: "pull", phase: "ok", elapsedMs: 300 }),
    step({ step: "health", phase: "start" }),
    step({ step: "health", phase: "info", detail: "1/3 connect ECONNREFUSED" }),
  ];

  test("not a terminal: only whole lines, as steps end", () => {
    let out = "";
    const p = new ProgressPrinter((t) => (out += t), false);
    for (const e of events) p.event(e);
    p.clear();
    assert.equal(out, "web: pull ✓ 0.3s\nweb: health 1/3 connect ECONNREFUSED\n");
  });

  test("a terminal: the running step shows until the next line replaces it", () => {
    let out = "";
    const p = new ProgressPrinter((t) => (out += t), true);
    for (const e of events) p.event(e);
    p.event(step({ step: "run", phase: "start" }));
    p.clear();
    assert.equal(
      out,
      "web: pull …\r\x1b[Kweb: pull ✓ 0.3s\nweb: health …\r\x1b[Kweb: health 1/3 connect ECONNREFUSED\nweb: run …\r\x1b[K",
    );
  });
});

describe("interrupted, history, --to", () => {
  test("the interrupted message says the agent goes on, and where to look", () => {
    const what = { verb: "deploy", service: "st-web", node: "local" } as const;
    assert.equal(
      interruptedMessage(what, true),
      "interrupted: the agent on node local goes on and finishes or rolls back the deploy; see mcp history st-web / mcp status st-web",
    );
    assert.match(
      interruptedMessage({ ...what, verb: "rollback" }, false),
      /^interrupted: the agent on node local may have received the rollback; if so it goes on and finishes or undoes the rollback;/,
    );
  });

  test("history's outcome column names a rollback's target", () => {
    assert.equal(formatOutcome({ outcome: "ok", kind: "deploy", rollbackTo: 0 }), "ok");
    assert.equal(formatOutcome({ outcome: "ok", kind: "", rollbackTo: 0 }), "ok");
    assert.equal(
      formatOutcome({ outcome: "ok", kind: "rollback", rollbackTo: 3 }),
      "ok (rollback to 3)",
    );
    assert.equal(
      formatOutcome({ outcome: "rolled back", kind: "rollback", rollbackTo: 1 }),
      "rolled back (rollback to 1)",
    );
  });

  test("--to takes a revision number", () => {
    assert.equal(parseRevision("3"), 3);
    for (const bad of ["0", "-1", "x", "1.5", "", "99999999999"]) {
      assert.throws(() => parseRevision(bad), /--to: expected a revision number/, bad);
    }
  });
});

describe("following the event stream", () => {
  // What client.ts's stream helper throws for an agent without DeployStream.
  const unimplemented = new AgentVersionError("n1", "deployStream", "0.2.0", "0.1.0");
  const progress = { progress: step({}), revision: 0 } satisfies DeployEvent;
  const result = {
    result: { results: [ComponentResult.fromPartial({ name: "web", success: true })] },
    revision: 4,
  } satisfies DeployEvent;
  const never = () => () => undefined;
  async function* events(list: DeployEvent[], fail?: Error) {
    for (const e of list) yield await Promise.resolve(e);
    if (fail) throw fail;
  }

  test("progress to the sink, then the result with its revision", async () => {
    const seen: StepProgress[] = [];
    const f = await followOperation({ name: "n1" }, () => events([progress, result]), {
      onProgress: (p) => seen.push(p),
      interrupts: never,
    });
    assert.deepEqual(f, {
      interrupted: false,
      result: { results: result.result.results, revision: 4, streamed: true },
    });
    assert.equal(seen.length, 1);
  });

  test("UNIMPLEMENTED before any event: the fallback; after one, or without a fallback: an error", async () => {
    const fallback = () => Promise.resolve({ results: [] });
    const f = await followOperation({ name: "n1" }, () => events([], unimplemented), {
      onProgress: () => undefined,
      interrupts: never,
      fallback,
    });
    assert.deepEqual(f, {
      interrupted: false,
      result: { results: [], revision: 0, streamed: false },
    });
    await assert.rejects(
      followOperation({ name: "n1" }, () => events([progress], unimplemented), {
        onProgress: () => undefined,
        interrupts: never,
        fallback,
      }),
      /agent on node n1 is version 0.1.0; this needs 0.2.0 or later/,
    );
    await assert.rejects(
      followOperation({ name: "n1" }, () => events([], unimplemented), {
        onProgress: () => undefined,
        interrupts: never,
      }),
      /agent on node n1 is version 0.1.0; this needs 0.2.0 or later/,
    );
  });

  test("Ctrl-C: stops waiting at once and says whether the agent had begun", async () => {
    let fire: () => void = () => undefined;
    let unsubscribed = false;
    const interrupts = (stop: () => void) => {
      fire = stop;
      return () => (unsubscribed = true);
    };
    async function* hanging() {
      yield await Promise.resolve(progress);
      await new Promise(() => undefined);
    }
    const following = followOperation({ name: "n1" }, hanging, {
      onProgress: () => fire(),
      interrupts,
    });
    assert.deepEqual(await following, { interrupted: true, started: true });
    assert.ok(unsubscribed);
  });

  test("a stream that ends without a result is an error", async () => {
    await assert.rejects(
      followOperation({ name: "n1" }, () => events([progress]), {
        onProgress: () => undefined,
        interrupts: never,
      }),
      /node n1: the agent ended the stream without a result/,
    );
  });
});

describe("mcp status: the definition file against the agent's spec", () => {
  const spec = (components: Partial<ComponentSpec>[]): ServiceSpec =>
    ServiceSpec.fromPartial({ name: "svc", components });
  const held = (components: Partial<ComponentSpec>[]): ServiceInfo =>
    ServiceInfo.fromPartial({ name: "svc", spec: spec(components) });

  test("a line per component that differs, or that only one side has", () => {
    const file = "services/svc.toml";
    assert.deepEqual(
      definitionDifferences(
        file,
        spec([
          { name: "web", image: "a:v2", env: ["X=1"] },
          { name: "api", image: "b:v1" },
          { name: "new", image: "c:v1" },
        ]),
        held([
          { name: "web", image: "a:v1", env: ["X=2"] },
          { name: "api", image: "b:v1" },
          { name: "old", image: "d:v1" },
        ]),
      ),
      [
        "web: runs a different spec than services/svc.toml (running → file: image a:v1 → a:v2; env ~X)",
        "new: in services/svc.toml, not on the agent",
        "old: on the agent, not in services/svc.toml",
      ],
    );
    assert.deepEqual(
      definitionDifferences(
        file,
        spec([{ name: "web", image: "a:v1" }]),
        held([{ name: "web", image: "a:v1" }]),
      ),
      [],
    );
  });

  test("strategy and health count too", () => {
    assert.deepEqual(
      specDifferences(
        ComponentSpec.fromPartial({ name: "web", image: "a", strategy: "stop-first" }),
        ComponentSpec.fromPartial({
          name: "web",
          image: "a",
          health: { type: "tcp" },
        }),
      ),
      ["strategy stop-first → (none)", "health check"],
    );
  });
});
