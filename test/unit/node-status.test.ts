/**
 * `mcp node status` formatting, and the time limits that keep one dead or hung
 * node from stalling a fan-out command: against a real TLS agent server on
 * loopback, a TCP listener that never speaks TLS (a hung agent) and a closed
 * port (a stopped agent).
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { sendUnaryData } from "@grpc/grpc-js";
import {
  formatBytes,
  formatNodeStatus,
  nodeStatusCommand,
  nodeStatusLines,
  poolSize,
} from "../../src/cli/commands/node-status.js";
import { CliContext } from "../../src/cli/context.js";
import { NodeNotAnsweringError, connectNode } from "../../src/cli/client.js";
import {
  callTimeout,
  formatLimit,
  nodeReason,
  waitConnected,
  withNodeDeadline,
} from "../../src/cli/deadline.js";
import type { ResolvedNode } from "../../src/config/cli.js";
import type { NodeStatusResponse } from "../../src/gen/mcp/v1/mcp.js";
import { McpError } from "../../src/util/errors.js";
import { freePort, startTestAgent, tempDir, type TestAgent } from "../helpers/agent.js";

const NOW = new Date("2026-11-27T12:00:00Z");
const GiB = 1024 ** 3;

function status(fields: Partial<NodeStatusResponse> = {}): NodeStatusResponse {
  return {
    nodeName: "rift",
    runtime: "podman",
    runtimeVersion: "4.3.1",
    agentVersion: "0.1.0",
    serviceCount: 2,
    componentCount: 3,
    runningCount: 2,
    diskTotalBytes: 100 * GiB,
    diskFreeBytes: 25 * GiB,
    memoryTotalBytes: 8 * GiB,
    memoryFreeBytes: 6 * GiB,
    cpuUsagePercent: 12.4,
    uptimeSince: new Date(NOW.getTime() - (3 * 3600 + 12 * 60) * 1000),
    cpuCount: 2,
    portRange: "10000-32767,61000-61999",
    portsAllocated: 4,
    ...fields,
  };
}

describe("node status formatting", () => {
  test("formatBytes uses binary units, one decimal from KiB on", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(5 * 1024 ** 2), "5.0 MiB");
    assert.equal(formatBytes(12.34 * GiB), "12.3 GiB");
    assert.equal(formatBytes(3 * 1024 ** 4), "3.0 TiB");
    assert.equal(formatBytes(-5), "0 B");
  });

  test("poolSize counts inclusive ranges and single ports", () => {
    assert.equal(poolSize("10000-32767"), 22768);
    assert.equal(poolSize("10000-32767,61000-61999"), 23768);
    assert.equal(poolSize("20000,20002-20003"), 3);
    assert.equal(poolSize("none"), 0);
    assert.equal(poolSize(""), undefined);
    assert.equal(poolSize("20-10"), undefined);
    assert.equal(poolSize("abc"), undefined);
  });

  test("one node's lines: versions, counts, pool, resources, uptime", () => {
    assert.deepEqual(nodeStatusLines(status(), NOW), [
      ["agent", "0.1.0"],
      ["runtime", "podman 4.3.1"],
      ["services", "2 (3 components, 2 running)"],
      ["ports", "4 allocated (pool of 23768: 10000-32767,61000-61999)"],
      ["disk", "25.0 GiB free of 100.0 GiB (75% used)"],
      ["memory", "6.0 GiB free of 8.0 GiB (25% used)"],
      ["cpu", "2 cores, load 12% (1-min average)"],
      ["up since", "2026-11-27T08:48:00.000Z (3h12m)"],
    ]);
  });

  test("missing figures read as unknown, singulars are singular", () => {
    const lines = new Map(
      nodeStatusLines(
        status({
          runtimeVersion: "",
          componentCount: 1,
          diskTotalBytes: 0,
          diskFreeBytes: 0,
          cpuCount: 1,
          portRange: "",
          uptimeSince: undefined,
        }),
        NOW,
      ),
    );
    assert.equal(lines.get("runtime"), "podman (version unknown)");
    assert.equal(lines.get("services"), "2 (1 component, 2 running)");
    assert.equal(lines.get("disk"), "unknown");
    assert.equal(lines.get("cpu"), "1 core, load 12% (1-min average)");
    assert.equal(lines.get("ports"), "4 allocated (pool unknown)");
    assert.equal(lines.get("up since"), "-");
  });

  test("blocks per node; an unreachable node says why", () => {
    const text = formatNodeStatus(
      [
        { name: "rift", address: "10.0.0.1:9444", status: status() },
        { name: "orion", address: "10.0.0.2:9444", error: "did not answer within 5 s" },
      ],
      NOW,
    );
    assert.equal(
      text,
      [
        "NODE rift (10.0.0.1:9444)",
        "  status    ok",
        "  agent     0.1.0",
        "  runtime   podman 4.3.1",
        "  services  2 (3 components, 2 running)",
        "  ports     4 allocated (pool of 23768: 10000-32767,61000-61999)",
        "  disk      25.0 GiB free of 100.0 GiB (75% used)",
        "  memory    6.0 GiB free of 8.0 GiB (25% used)",
        "  cpu       2 cores, load 12% (1-min average)",
        "  up since  2026-11-27T08:48:00.000Z (3h12m)",
        "",
        "NODE orion (10.0.0.2:9444)",
        "  status  unreachable: did not answer within 5 s",
        "",
      ].join("\n"),
    );
  });
});

describe("node status command", () => {
  test("a config without nodes is an error, not an empty answer", async () => {
    const dir = await tempDir();
    try {
      const file = path.join(dir, "mcp.toml");
      await writeFile(file, '[services]\ndir = "services"\n');
      let out = "";
      const ctx = new CliContext(file, {
        out: (t) => void (out += t),
        err: (t) => void (out += t),
      });
      await assert.rejects(nodeStatusCommand(ctx, undefined, {}), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "not_found");
        assert.match(
          err.message,
          /^no nodes are configured in .*mcp\.toml; add one with "mcp node add/,
        );
        return true;
      });
      await assert.rejects(nodeStatusCommand(ctx, "rift", {}), /unknown node "rift"/);
      assert.equal(out, "");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("deadline helpers", () => {
  test("callTimeout: the requested time, cut to what is left, never negative", () => {
    assert.equal(callTimeout(undefined, 10_000, 4_000), 6_000);
    assert.equal(callTimeout(1_000, 10_000, 4_000), 1_000);
    assert.equal(callTimeout(undefined, 10_000, 9_000, 500), 500);
    assert.equal(callTimeout(undefined, 10_000, 12_000), 0);
  });

  test("formatLimit", () => {
    assert.equal(formatLimit(5000), "5 s");
    assert.equal(formatLimit(1500), "1.5 s");
    assert.equal(formatLimit(250), "250 ms");
  });

  test("nodeReason drops the node prefix the client adds", () => {
    assert.equal(
      nodeReason("node n2 (10.0.0.2:9444) unreachable: connect ECONNREFUSED 10.0.0.2:9444", "n2"),
      "connect ECONNREFUSED 10.0.0.2:9444",
    );
    assert.equal(
      nodeReason("node n2 (10.0.0.2:9444) did not answer within 5 s", "n2"),
      "did not answer within 5 s",
    );
    assert.equal(
      nodeReason("node n2: cannot read token file /x: ENOENT", "n2"),
      "cannot read token file /x: ENOENT",
    );
    assert.equal(
      nodeReason("node n2 rejected the token (bad): check token_path", "n2"),
      "rejected the token (bad): check token_path",
    );
    // Another node's name, or a dot that is not a wildcard, is left alone.
    assert.equal(nodeReason("node n2x: boom", "n2"), "node n2x: boom");
    assert.equal(nodeReason("node a-b: boom", "a.b"), "node a-b: boom");
  });
});

describe("time limits against real sockets", { timeout: 30_000 }, () => {
  let agent: TestAgent;
  let hung: Server;
  const hungSockets = new Set<Socket>();
  let hungPort: number;
  let closedPort: number;
  /** How long the test agent takes to answer NodeStatus. */
  let slowMs = 0;

  const node = (address: string): ResolvedNode => ({
    name: "n-test",
    address,
    caCert: agent.init.caCert,
    tokenPath: agent.init.tokenFile,
  });

  before(async () => {
    agent = await startTestAgent({
      node: "n-test",
      impl: {
        // Answers after `slowMs` (a slow agent when > 0).
        nodeStatus: (_call: unknown, cb: sendUnaryData<NodeStatusResponse>) => {
          setTimeout(() => cb(null, status({ nodeName: "n-test" })), slowMs);
        },
      },
    });
    // Accepts TCP and never answers: the TLS handshake waits forever.
    hung = createServer((socket) => {
      hungSockets.add(socket);
      socket.on("close", () => hungSockets.delete(socket));
    });
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    const addr = hung.address();
    hungPort = typeof addr === "object" && addr ? addr.port : 0;
    closedPort = await freePort();
  });

  after(async () => {
    for (const s of hungSockets) s.destroy();
    await new Promise((resolve) => hung.close(resolve));
    await agent.close();
  });

  test("a hung agent: waitConnected gives up after the limit", async () => {
    const client = await connectNode(node(`127.0.0.1:${hungPort}`));
    const start = Date.now();
    try {
      await assert.rejects(waitConnected(client, 300), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "unavailable");
        assert.equal(
          err.message,
          `node n-test (127.0.0.1:${hungPort}) did not answer within 300 ms`,
        );
        return true;
      });
    } finally {
      client.close();
    }
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 250 && elapsed < 1500, `took ${elapsed} ms`);
  });

  test("a closed port: waitConnected returns at once and the call says why", async () => {
    const client = await connectNode(node(`127.0.0.1:${closedPort}`));
    const start = Date.now();
    try {
      await waitConnected(client, 5000);
      assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
      await assert.rejects(client.call("nodeStatus", {}), (err: unknown) => {
        assert.ok(err instanceof NodeNotAnsweringError);
        assert.equal(
          err.message,
          `node n-test (127.0.0.1:${closedPort}) is not answering: is mcp-agent running?`,
        );
        assert.equal(err.why, "connection refused");
        return true;
      });
    } finally {
      client.close();
    }
  });

  test("withNodeDeadline: an answer within the limit comes back", async () => {
    slowMs = 0;
    const res = await withNodeDeadline(node(agent.address), 2000, (c) => c.call("nodeStatus", {}));
    assert.equal(res.nodeName, "n-test");
  });

  test("withNodeDeadline bounds connect + call: a slow answer and a hung agent", async () => {
    slowMs = 1500;
    let start = Date.now();
    await assert.rejects(
      withNodeDeadline(node(agent.address), 400, (c) => c.call("nodeStatus", {})),
      (err: unknown) =>
        err instanceof McpError &&
        err.code === "unavailable" &&
        err.message === `node n-test (${agent.address}) did not answer within 400 ms`,
    );
    let elapsed = Date.now() - start;
    assert.ok(elapsed >= 350 && elapsed < 1200, `slow answer: took ${elapsed} ms`);

    start = Date.now();
    await assert.rejects(
      withNodeDeadline(node(`127.0.0.1:${hungPort}`), 400, (c) => c.call("nodeStatus", {})),
      /did not answer within 400 ms/,
    );
    elapsed = Date.now() - start;
    assert.ok(elapsed >= 350 && elapsed < 1200, `hung agent: took ${elapsed} ms`);
    slowMs = 0;
  });

  test("withNodeDeadline: the connect limit and the whole-exchange limit are separate", async () => {
    let start = Date.now();
    await assert.rejects(
      withNodeDeadline(node(`127.0.0.1:${hungPort}`), { connectMs: 300, totalMs: 3000 }, (c) =>
        c.call("nodeStatus", {}),
      ),
      (err: unknown) =>
        err instanceof McpError &&
        err.message === `node n-test (127.0.0.1:${hungPort}) did not answer within 300 ms`,
    );
    let elapsed = Date.now() - start;
    assert.ok(elapsed >= 250 && elapsed < 1500, `hung agent: took ${elapsed} ms`);

    // A call slower than the connect limit but within the total is answered.
    slowMs = 600;
    const res = await withNodeDeadline(
      node(agent.address),
      { connectMs: 300, totalMs: 3000 },
      (c) => c.call("nodeStatus", {}),
    );
    assert.equal(res.nodeName, "n-test");
    start = Date.now();
    await assert.rejects(
      withNodeDeadline(node(agent.address), { connectMs: 300, totalMs: 450 }, (c) =>
        c.call("nodeStatus", {}),
      ),
      /did not answer within 450 ms$/,
    );
    elapsed = Date.now() - start;
    assert.ok(elapsed >= 400 && elapsed < 1200, `slow answer: took ${elapsed} ms`);
    slowMs = 0;
  });

  test("withNodeDeadline: a missing token file is reported, not waited for", async () => {
    await assert.rejects(
      withNodeDeadline({ ...node(agent.address), tokenPath: "/nonexistent/token" }, 2000, (c) =>
        c.call("nodeStatus", {}),
      ),
      /cannot read token file \/nonexistent\/token/,
    );
  });
});
