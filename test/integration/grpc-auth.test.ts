/**
 * Real gRPC over TLS on loopback: `mcp-agent init` output, startAgentServer,
 * the bearer-token guard on unary and streaming calls, TLS 1.3 only, CA
 * pinning, and the CLI config written by init.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect as tlsConnect, createSecureContext } from "node:tls";
import { after, before, describe, test } from "node:test";
import {
  credentials,
  Metadata,
  status,
  type ServiceError,
  type ServerWritableStream,
} from "@grpc/grpc-js";
import { initAgentDir } from "../../src/agent/server/init.js";
import { callerIdentity } from "../../src/auth/guard.js";
import { addTokenToFile, FileTokenStore, generateToken, hashToken } from "../../src/auth/tokens.js";
import {
  AgentVersionError,
  NodeNotAnsweringError,
  connectNode,
  dialAgent,
  type AgentClient,
} from "../../src/cli/client.js";
import { loadCliConfig, resolveNode } from "../../src/config/cli.js";
import { loadAgentConfig } from "../../src/config/agent.js";
import {
  LogsResponse,
  McpAgentServiceClient,
  NodeStatusResponse,
  type LogsRequest,
  type McpAgentServiceServer,
} from "../../src/gen/mcp/v1/mcp.js";
import { McpError } from "../../src/util/errors.js";
import { memoryLogger, startTestAgent, tempDir, type TestAgent } from "../helpers/agent.js";

const NODE = "n1";

const impl: Partial<McpAgentServiceServer> = {
  nodeStatus: (call, cb) => {
    const who = callerIdentity(call.metadata);
    cb(
      null,
      NodeStatusResponse.fromPartial({
        nodeName: NODE,
        // Echo what the handler sees: who called, and whether the secret leaked through.
        runtime: `${who?.name}/${who?.role}/auth=${call.metadata.get("authorization").length}`,
      }),
    );
  },
  logs: (call: ServerWritableStream<LogsRequest, LogsResponse>) => {
    call.write(LogsResponse.fromPartial({ data: Buffer.from("one\n") }));
    call.write(LogsResponse.fromPartial({ data: Buffer.from("two\n") }));
    call.end();
  },
  // An async handler that throws: must become a status, not an unhandled rejection.
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- that is the point
  getServiceStatus: async (call) => {
    await Promise.resolve();
    throw new McpError("not_found", `unknown service "${call.request.name}"`);
  },
};

/** A raw generated client: TLS pinned, token only if given (to test its absence). */
function rawClient(agent: TestAgent, token?: string): McpAgentServiceClient {
  const tls = credentials.createFromSecureContext(createSecureContext({ ca: agent.caCertPem }));
  const creds =
    token === undefined
      ? tls
      : credentials.combineChannelCredentials(
          tls,
          credentials.createFromMetadataGenerator((_p, cb) => {
            const md = new Metadata();
            md.set("authorization", token);
            cb(null, md);
          }),
        );
  return new McpAgentServiceClient(`localhost:${agent.port}`, creds);
}

function unaryStatus(client: McpAgentServiceClient): Promise<ServiceError | null> {
  return new Promise((resolve) => client.nodeStatus({}, (err) => resolve(err)));
}

function streamStatus(
  client: McpAgentServiceClient,
): Promise<{ err?: ServiceError; chunks: string[] }> {
  return new Promise((resolve) => {
    const chunks: string[] = [];
    const s = client.logs({
      service: "x",
      component: "",
      tail: 0,
      follow: false,
      timestamps: false,
      since: "",
    });
    s.on("data", (m: LogsResponse) => chunks.push(m.data.toString()));
    s.on("error", (err: ServiceError) => resolve({ err, chunks }));
    s.on("end", () => resolve({ chunks }));
  });
}

async function collect(client: AgentClient): Promise<string> {
  let out = "";
  for await (const m of client.stream("logs", {
    service: "x",
    component: "",
    tail: 0,
    follow: false,
    timestamps: false,
    since: "",
  })) {
    out += m.data.toString();
  }
  return out;
}

describe("agent gRPC auth over TLS", () => {
  let agent: TestAgent;
  let guestToken: string;
  const { logger, lines } = memoryLogger();
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  const clients: AgentClient[] = [];
  const dial = (token: string) => {
    const c = dialAgent({ address: agent.address, caCertPem: agent.caCertPem, token, name: NODE });
    clients.push(c);
    return c;
  };

  before(async () => {
    process.on("warning", onWarning);
    agent = await startTestAgent({ impl, node: NODE, logger });
    // Added after the server started: the store must pick it up (mtime reload).
    guestToken = generateToken();
    await addTokenToFile(agent.init.tokensFile, {
      name: "visitor",
      role: "guest",
      token: guestToken,
    });
  });

  after(async () => {
    process.off("warning", onWarning);
    for (const c of clients) c.close();
    await agent.close();
  });

  test("valid token: unary call succeeds and the handler sees the caller, not the token", async () => {
    const res = await dial(agent.token).call("nodeStatus", {});
    assert.equal(res.nodeName, NODE);
    assert.equal(res.runtime, "operator/operator/auth=0");
  });

  test("valid token: server stream delivers both chunks", async () => {
    assert.equal(await collect(dial(agent.token)), "one\ntwo\n");
  });

  test("no token: UNAUTHENTICATED for unary and stream", async () => {
    const c = rawClient(agent);
    assert.equal((await unaryStatus(c))?.code, status.UNAUTHENTICATED);
    const s = await streamStatus(c);
    assert.equal(s.err?.code, status.UNAUTHENTICATED);
    assert.deepEqual(s.chunks, []);
    c.close();
  });

  test("malformed authorization: UNAUTHENTICATED", async () => {
    const c = rawClient(agent, `Basic ${agent.token}`);
    assert.equal((await unaryStatus(c))?.code, status.UNAUTHENTICATED);
    c.close();
  });

  test("unknown token: UNAUTHENTICATED, as a one-line McpError from dialAgent", async () => {
    const c = rawClient(agent, `Bearer ${generateToken()}`);
    assert.equal((await unaryStatus(c))?.code, status.UNAUTHENTICATED);
    c.close();
    await assert.rejects(dial(generateToken()).call("nodeStatus", {}), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.match(err.message, /^node n1 rejected the token/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    await assert.rejects(collect(dial(generateToken())), /rejected the token/);
  });

  test("guest token: PERMISSION_DENIED for unary and stream", async () => {
    const c = rawClient(agent, `Bearer ${guestToken}`);
    assert.equal((await unaryStatus(c))?.code, status.PERMISSION_DENIED);
    const s = await streamStatus(c);
    assert.equal(s.err?.code, status.PERMISSION_DENIED);
    assert.deepEqual(s.chunks, []);
    c.close();
    await assert.rejects(
      dial(guestToken).call("nodeStatus", {}),
      /refused the call: visitor has role guest/,
    );
  });

  test("method without a handler: UNIMPLEMENTED, but only after auth", async () => {
    await assert.rejects(
      dial(agent.token).call("deploy", { service: undefined, component: "" }),
      // The version gate asked NodeStatus, which reports no agent version here.
      (err: unknown) =>
        err instanceof AgentVersionError &&
        err.message === "agent on node n1 does not know Deploy; this needs 0.1.0 or later",
    );
    const anon = rawClient(agent);
    const code = await new Promise<number | undefined>((resolve) =>
      anon.pushFile({ service: "x", path: "a", content: Buffer.alloc(0), mode: 0 }, (err) =>
        resolve(err?.code),
      ),
    );
    assert.equal(code, status.UNAUTHENTICATED);
    anon.close();
  });

  test("a handler's McpError reaches the CLI with its code and message", async () => {
    await assert.rejects(
      dial(agent.token).call("getServiceStatus", { name: "ghost", eventLimit: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "not_found");
        assert.equal(err.message, 'node n1: unknown service "ghost"');
        return true;
      },
    );
  });

  test("audit log: accepted calls name method and caller; the token is never logged", async () => {
    await dial(agent.token).call("nodeStatus", {});
    const entries = lines();
    assert.ok(
      entries.some(
        (l) =>
          l.msg === "rpc" &&
          l.method === "/mcp.v1.McpAgentService/NodeStatus" &&
          l.caller === "operator",
      ),
    );
    assert.ok(entries.some((l) => l.msg === "rpc rejected" && l.caller === "visitor"));
    const all = JSON.stringify(entries);
    assert.ok(!all.includes(agent.token) && !all.includes(guestToken));
  });

  test("TLS 1.2-only clients fail the handshake; TLS 1.3 works", async () => {
    const handshake = (maxVersion: "TLSv1.2" | "TLSv1.3") =>
      new Promise<string>((resolve, reject) => {
        const sock = tlsConnect({
          host: "127.0.0.1",
          port: agent.port,
          servername: "localhost",
          ca: agent.caCertPem,
          maxVersion,
          ALPNProtocols: ["h2"],
        });
        sock.once("secureConnect", () => {
          const proto = sock.getProtocol() ?? "";
          sock.destroy();
          resolve(proto);
        });
        sock.once("error", (err: Error) => {
          sock.destroy();
          reject(err);
        });
      });
    assert.equal(await handshake("TLSv1.3"), "TLSv1.3");
    await assert.rejects(handshake("TLSv1.2"), /protocol version|unsupported protocol|alert/i);
  });

  test("a client pinning a different CA cannot connect", async () => {
    const other = await tempDir();
    try {
      const init = await initAgentDir({ dir: other, node: "other", listen: "127.0.0.1:9444" });
      const c = dialAgent({
        address: agent.address,
        caCertPem: await readFile(init.caCert, "utf8"),
        token: agent.token,
        name: NODE,
      });
      clients.push(c);
      await assert.rejects(c.call("nodeStatus", {}, { timeoutMs: 5000 }), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal(err.code, "unavailable");
        assert.match(err.message, /TLS verification failed/);
        return true;
      });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  test("the mcp.toml written by init works as-is through dialAgent", async () => {
    const cfg = await loadCliConfig(agent.init.cliConfig);
    const node = resolveNode(cfg, NODE);
    assert.equal(node.address, agent.address);
    const c = await connectNode(node);
    clients.push(c);
    assert.equal((await c.call("nodeStatus", {})).nodeName, NODE);
  });

  test("no DEP0123 warning (the TLS server name is never an IP)", () => {
    assert.deepEqual(
      warnings.filter((w) => (w as NodeJS.ErrnoException).code === "DEP0123").map((w) => w.message),
      [],
    );
  });

  test("a node nobody listens on is a one-line unavailable error with a hint", async () => {
    const c = dialAgent({
      address: "127.0.0.1:1",
      caCertPem: agent.caCertPem,
      token: agent.token,
      name: "gone",
    });
    clients.push(c);
    await assert.rejects(c.call("nodeStatus", {}, { timeoutMs: 5000 }), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.equal(err.code, "unavailable");
      assert.ok(err instanceof NodeNotAnsweringError);
      assert.equal(err.message, "node gone (127.0.0.1:1) is not answering: is mcp-agent running?");
      assert.match(
        err.hint,
        /^connection refused; start it on the node: mcp-agent serve --config /,
      );
      return true;
    });
  });
});

describe("mcp-agent init", () => {
  test("writes every file with safe modes, a loadable config and a cert with the right SANs", async () => {
    const dir = await tempDir();
    try {
      const r = await initAgentDir({
        dir,
        node: "rift",
        listen: "100.95.252.120:9444",
        sans: ["rift.example.net"],
      });
      for (const f of [r.caKey!, r.key, r.tokenFile, r.agentConfig]) {
        assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      }
      const cert = new X509Certificate(await readFile(r.cert, "utf8"));
      const ca = new X509Certificate(await readFile(r.caCert, "utf8"));
      assert.ok(cert.verify(ca.publicKey));
      assert.ok(ca.ca && !cert.ca);
      for (const san of [
        "IP Address:100.95.252.120",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "DNS:rift",
        "DNS:rift.example.net",
      ]) {
        assert.ok(cert.subjectAltName?.includes(san), `${san} in ${cert.subjectAltName}`);
      }
      assert.ok(cert.checkHost("localhost") && cert.checkIP("127.0.0.1"));

      const token = (await readFile(r.tokenFile, "utf8")).trim();
      assert.match(token, /^mcp_[A-Za-z0-9_-]{43}$/);
      const tokens = await readFile(r.tokensFile, "utf8");
      assert.ok(!tokens.includes(token), "tokens.toml holds hashes only");
      assert.ok(tokens.includes(hashToken(token)));
      assert.deepEqual(await new FileTokenStore(r.tokensFile).validate(token), {
        name: "operator",
        role: "operator",
      });

      const cfg = await loadAgentConfig(r.agentConfig);
      assert.equal(cfg.agent.nodeName, "rift");
      assert.equal(cfg.server.listen, "100.95.252.120:9444");
      assert.equal(cfg.database.path, join(dir, "mcp.db"));
      assert.equal(cfg.auth.tokensFile, r.tokensFile);
      const cli = await loadCliConfig(r.cliConfig);
      assert.deepEqual(resolveNode(cli, "rift"), {
        name: "rift",
        address: "100.95.252.120:9444",
        caCert: r.caCert,
        tokenPath: r.tokenFile,
      });
      assert.equal(cli.services.dir, r.servicesDir);

      await assert.rejects(initAgentDir({ dir, node: "rift" }), /already initialised.*--force/);
      const again = await initAgentDir({ dir, node: "rift", force: true });
      const token2 = (await readFile(again.tokenFile, "utf8")).trim();
      assert.notEqual(token2, token);
      const store = new FileTokenStore(again.tokensFile);
      assert.equal(await store.validate(token), undefined, "old token revoked by --force");
      assert.ok(await store.validate(token2));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("--ca-dir signs with an existing CA and does not copy its key", async () => {
    const caDir = await tempDir();
    const dir = await tempDir();
    try {
      const first = await initAgentDir({ dir: caDir, node: "a" });
      const r = await initAgentDir({ dir, node: "b", caDir });
      assert.equal(r.caKey, undefined);
      await assert.rejects(stat(join(dir, "ca-key.pem")), /ENOENT/);
      assert.equal(await readFile(r.caCert, "utf8"), await readFile(first.caCert, "utf8"));
      const ca = new X509Certificate(await readFile(first.caCert, "utf8"));
      assert.ok(new X509Certificate(await readFile(r.cert, "utf8")).verify(ca.publicKey));
    } finally {
      await rm(caDir, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("bad input is refused before anything is written", async () => {
    const dir = await tempDir();
    try {
      await assert.rejects(initAgentDir({ dir, node: "Bad_Name" }), /bad node name/);
      await assert.rejects(initAgentDir({ dir, node: "ok", listen: "nope" }), /invalid address/);
      await assert.rejects(
        initAgentDir({ dir, node: "ok", sans: ["bad name!"] }),
        /bad certificate name/,
      );
      await assert.rejects(stat(join(dir, "mcp-agent.toml")), /ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("FileTokenStore", () => {
  test("reloads on change and fails closed on a broken file", async () => {
    const dir = await tempDir();
    try {
      const file = join(dir, "tokens.toml");
      const t1 = generateToken();
      await addTokenToFile(file, { name: "a", role: "operator", token: t1 });
      await assert.rejects(
        addTokenToFile(file, { name: "a", role: "operator", token: t1 }),
        /already exists/,
      );
      const store = await FileTokenStore.open(file);
      assert.deepEqual(await store.validate(t1), { name: "a", role: "operator" });
      assert.equal(await store.validate("mcp_nope"), undefined);
      await writeFile(file, "[[tokens]]\nname = \n");
      await assert.rejects(store.validate(t1), /tokens\.toml:2:8: TOML syntax error/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
