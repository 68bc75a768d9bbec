/**
 * Transport limits of the agent's gRPC listener (src/agent/server/transport.ts,
 * src/protocol/limits.ts), against a real `mcp-agent serve` process with
 * `[server] first_request_timeout = "1s"` (20 s by default; 1 s keeps this
 * fast): silent TLS clients, raw TCP clients and clients whose calls are all
 * refused are cut; authenticated connections stay; 500 concurrent clients are
 * all served. The connection cap and the message-size limits use an
 * in-process server (startTestAgent) with small limits.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  connect as http2Connect,
  type ClientHttp2Session,
  type IncomingHttpHeaders,
} from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, test } from "node:test";
import { connectNode, dialAgent, type AgentClient } from "../../src/cli/client.js";
import { loadCliConfig, resolveNode } from "../../src/config/cli.js";
import { NodeStatusResponse } from "../../src/gen/mcp/v1/mcp.js";
import { McpError } from "../../src/util/errors.js";
import { startTestAgent, type TestAgent } from "../helpers/agent.js";
import { LiveAgent, ok } from "../helpers/live-agent.js";

const NODE = "tr-transport";
const LIMIT_MS = 1000;
/** How late a cut may come: timers, a loaded CI machine. */
const SLACK_MS = 2000;

/**
 * Resolves with how long after `start` the socket (or session) closed, or
 * Infinity when it is still open after 10 s. A socket is read from (and its
 * data dropped), or it would never see the agent's FIN.
 */
function closedAfter(s: Socket | ClientHttp2Session, start: number): Promise<number> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.destroy();
      resolve(Infinity);
    }, 10_000);
    s.on("error", () => {});
    if ("resume" in s) s.resume();
    s.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

function assertCutInTime(ms: number, what: string): void {
  assert.ok(ms >= LIMIT_MS - 100, `${what} was cut after ${ms} ms, before the limit`);
  assert.ok(ms <= LIMIT_MS + SLACK_MS, `${what} was cut only after ${ms} ms`);
}

/** An empty gRPC message: flag 0, length 0. */
const EMPTY_MESSAGE = Buffer.alloc(5);

/** One raw gRPC call on an HTTP/2 session; resolves with its grpc-status. */
function rawCall(
  session: ClientHttp2Session,
  token?: string,
  method = "ListServices",
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": `/mcp.v1.McpAgentService/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    });
    let status: string | undefined;
    const take = (h: IncomingHttpHeaders) => {
      const value = h["grpc-status"];
      if (typeof value === "string") status = value;
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => {});
    req.on("error", reject);
    req.on("close", () =>
      status === undefined ? reject(new Error("no status")) : resolve(status),
    );
    req.end(EMPTY_MESSAGE);
  });
}

describe("transport limits of a real agent (first_request_timeout = 1s)", () => {
  let agent: LiveAgent;
  let ca: string;
  let token: string;
  const open = (): ClientHttp2Session =>
    http2Connect(`https://127.0.0.1:${agent.port}`, { ca, servername: "localhost" });

  before(async () => {
    agent = await LiveAgent.start({
      node: NODE,
      config: { server: { first_request_timeout: "1s" } },
    });
    ca = await readFile(join(agent.dir, "ca.pem"), "utf8");
    token = (await readFile(join(agent.dir, "token"), "utf8")).trim();
  });
  after(async () => {
    await agent.cleanup();
  });

  test("a TLS client that completes the handshake and sends nothing is cut", async () => {
    const start = Date.now();
    const sock = tlsConnect({
      host: "127.0.0.1",
      port: agent.port,
      servername: "localhost",
      ca,
      ALPNProtocols: ["h2"],
    });
    const closed = closedAfter(sock, start);
    await new Promise<void>((resolve, reject) => {
      sock.once("secureConnect", resolve);
      sock.once("error", reject);
    });
    assert.equal(sock.alpnProtocol, "h2");
    assert.equal(sock.authorized, true);
    assertCutInTime(await closed, "a silent TLS client");
  });

  test("a TCP client that never starts TLS is cut", async () => {
    const start = Date.now();
    const sock = netConnect({ host: "127.0.0.1", port: agent.port });
    assertCutInTime(await closedAfter(sock, start), "a raw TCP client");
  });

  test("an HTTP/2 client whose calls are all refused (no token) is cut all the same", async () => {
    const start = Date.now();
    const session = open();
    const closed = closedAfter(session, start);
    let refused = 0;
    let done = false;
    void closed.then(() => (done = true));
    while (!done && Date.now() - start < LIMIT_MS + SLACK_MS) {
      try {
        if ((await rawCall(session)) === "16") refused += 1; // UNAUTHENTICATED
      } catch {
        break; // the session went away under the call
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(refused >= 3, `only ${refused} refused calls before the cut`);
    assertCutInTime(await closed, "an unauthenticated HTTP/2 client");
  });

  test("a connection that made an authenticated call stays open past the limit", async () => {
    const session = open();
    let closed = false;
    session.on("error", () => {});
    session.once("close", () => (closed = true));
    try {
      assert.equal(await rawCall(session, token), "0");
      await new Promise((r) => setTimeout(r, 2 * LIMIT_MS + 500));
      assert.equal(closed, false, "an authenticated connection was cut");
      assert.equal(await rawCall(session, token), "0", "a second call on the same connection");
    } finally {
      session.close();
    }
    // The cuts are logged, never the token.
    assert.match(agent.log, /"msg":"connection closed: no authenticated call in time"/);
    assert.ok(!agent.log.includes(token));
  });
});

describe("load on a real agent with the default limits", () => {
  // 500 handshakes arrive at once: with a 1 s first-request timeout the last
  // of them would be cut while they wait for the agent's one thread, which is
  // what the 20 s default leaves room for.
  const LOAD_NODE = "tr-load";
  let load: LiveAgent;
  before(async () => {
    load = await LiveAgent.start({ node: LOAD_NODE });
  });
  after(async () => {
    await load.cleanup();
  });

  test("500 concurrent clients, one connection each, are all served", async () => {
    const node = resolveNode(await loadCliConfig(load.cliConfig), LOAD_NODE);
    const clients: AgentClient[] = await Promise.all(
      Array.from({ length: 500 }, () => connectNode(node)),
    );
    const before = load.log.length;
    const start = Date.now();
    try {
      const answers = await Promise.allSettled(
        clients.map((c) => c.call("listServices", { name: "", includeSpec: false })),
      );
      const elapsed = Date.now() - start;
      const failed = answers.filter((a): a is PromiseRejectedResult => a.status === "rejected");
      assert.deepEqual(
        failed.slice(0, 3).map((f) => String(f.reason)),
        [],
        `${failed.length} of 500 failed`,
      );
      assert.ok(elapsed < 30_000, `500 clients took ${elapsed} ms`);
    } finally {
      for (const c of clients) c.close();
    }
    // One connection per client: 500 distinct peers in the agent's audit log.
    const peers = new Set(
      load.log
        .slice(before)
        .split("\n")
        .filter((l) => l.includes('"msg":"rpc"') && l.includes("ListServices"))
        .map((l) => (JSON.parse(l) as { peer: string }).peer),
    );
    assert.equal(peers.size, 500);
    ok(await load.cli(["node", "status", LOAD_NODE]), "node status after 500 clients");
  });

  test("500 concurrent calls on one connection (over max_concurrent_streams = 100) all succeed", async () => {
    const node = resolveNode(await loadCliConfig(load.cliConfig), LOAD_NODE);
    const client = await connectNode(node);
    try {
      const answers = await Promise.all(
        Array.from({ length: 500 }, () =>
          client.call("listServices", { name: "", includeSpec: false }),
        ),
      );
      assert.equal(answers.length, 500);
    } finally {
      client.close();
    }
  });
});

describe("connection cap and message sizes (in-process server, small limits)", () => {
  let capped: TestAgent;
  let small: TestAgent;
  let idle: TestAgent;
  let answerBytes = 0;
  const impl = {
    nodeStatus: (_call: unknown, cb: (err: null, res: NodeStatusResponse) => void) =>
      cb(null, NodeStatusResponse.fromPartial({ nodeName: "n", runtime: "x".repeat(answerBytes) })),
  };
  const clients: AgentClient[] = [];
  const dial = (agent: TestAgent, maxMessageBytes?: number) => {
    const c = dialAgent({
      address: agent.address,
      caCertPem: agent.caCertPem,
      token: agent.token,
      name: "n",
      ...(maxMessageBytes ? { maxMessageBytes } : {}),
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    capped = await startTestAgent({ impl, limits: { maxConnections: 5 } });
    small = await startTestAgent({ impl, limits: { maxMessageBytes: 1024 * 1024 } });
    idle = await startTestAgent({ impl, limits: { idleTimeoutMs: 500 } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await capped.close();
    await small.close();
    await idle.close();
  });

  test("an authenticated connection with no call in flight for idle_timeout is closed", async () => {
    const session = http2Connect(`https://127.0.0.1:${idle.port}`, {
      ca: idle.caCertPem,
      servername: "localhost",
    });
    const t0 = Date.now();
    const closed = closedAfter(session, t0);
    assert.equal(await rawCall(session, idle.token, "NodeStatus"), "0");
    const callEnded = Date.now();
    const idleFor = t0 + (await closed) - callEnded;
    assert.ok(idleFor >= 400, `closed ${idleFor} ms after the call, before idle_timeout`);
    assert.ok(idleFor <= 500 + SLACK_MS, `closed only ${idleFor} ms after the call`);
  });

  test("past max_connections, new connections are refused at once; the open ones stay", async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const s = netConnect({ host: "127.0.0.1", port: capped.port });
        s.on("error", () => {});
        held.push(s);
        await new Promise((r) => s.once("connect", r));
      }
      await new Promise((r) => setTimeout(r, 200)); // let the server accept all five
      const start = Date.now();
      const extra = netConnect({ host: "127.0.0.1", port: capped.port });
      const cut = await closedAfter(extra, start);
      assert.ok(cut < 1000, `the sixth connection was closed after ${cut} ms`);
      assert.ok(
        held.every((s) => !s.destroyed),
        "the five open connections were left alone",
      );
    } finally {
      for (const s of held) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    answerBytes = 0;
    assert.equal((await dial(capped).call("nodeStatus", {})).nodeName, "n");
  });

  test("explicit 64 MiB on both sides: 5 MiB goes through (grpc-js's default is 4 MiB in)", async () => {
    answerBytes = 5 * 1024 * 1024;
    const res = await dial(capped).call("nodeStatus", {});
    assert.equal(res.runtime.length, answerBytes);
    // A 5 MiB request reaches the (missing) handler instead of being refused for size.
    await assert.rejects(
      dial(capped).call("pushFile", {
        service: "x",
        path: "a",
        content: Buffer.alloc(5 * 1024 * 1024),
        mode: 0o644,
      }),
      /agent on node \S+ does not know PushFile; this needs 0\.1\.0 or later/,
    );
  });

  test("an answer over the agent's limit fails with a message naming the limit", async () => {
    answerBytes = 2 * 1024 * 1024;
    await assert.rejects(dial(small).call("nodeStatus", {}), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.match(
        err.message,
        /^node n: the agent's answer, 2\.0 MiB \(\d+ bytes\), is over its 1\.0 MiB gRPC message limit$/,
      );
      return true;
    });
  });

  test("a request over the agent's limit, and an answer over the CLI's, name theirs", async () => {
    await assert.rejects(
      dial(small).call("pushFile", {
        service: "x",
        path: "a",
        content: Buffer.alloc(2 * 1024 * 1024),
        mode: 0o644,
      }),
      /^McpError: node n: a message of 2\.0 MiB \(\d+ bytes\) is over the 1\.0 MiB gRPC message limit$/,
    );
    answerBytes = 4096;
    await assert.rejects(
      dial(capped, 1024).call("nodeStatus", {}),
      /^McpError: node n: a message of 4\.0 KiB \(\d+ bytes\) is over the 1\.0 KiB gRPC message limit$/,
    );
  });
});
