/**
 * Several nodes driven by one CLI: two real agents, each in its own network
 * namespace with its own Podman storage (scripts/nodes.sh), each with its own
 * CA and token in the CLI config (`mcp node add --ca --token-file`). Services
 * go to the agent of their definition's node; `ps`, `list`, `status`, `node
 * list` and `node status` ask both; a stopped, hung or blackholed node is
 * named while the others are still shown, within the fan-out timeout, and the
 * exit code is 1. A node signed with an existing CA (`mcp-agent init
 * --ca-dir`) works with the shared default CA.
 *
 * Traffic stays on loopback and on the namespace addresses (10.231.0.0/24,
 * routed from the host to the namespaces only). Names use the prefix `mn`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { runCommand } from "../../src/util/exec.js";
import { VERSION } from "../../src/version.js";
import { tempDir } from "../helpers/agent.js";
import { notAnsweringStderr } from "../helpers/cli-messages.js";
import {
  AGENT_BIN,
  LiveAgent,
  oneRouteDefinition,
  parseEnvPage,
  runMcp,
  ok,
} from "../helpers/live-agent.js";
import {
  NODE_AGENT_PORT,
  ensureNodes,
  httpGetAt,
  nodeContainers,
  removeNodes,
  startNodeAgent,
  type NetnsNode,
} from "../helpers/netns-nodes.js";

const N1 = "mn-n1";
const N2 = "mn-n2";
const HOLE = "mn-hole";
/** A port in node 2's namespace whose packets are dropped: a blackholed address. */
const HOLE_PORT = 9555;

interface PsRow {
  service: string;
  component: string;
  node: string;
  info: { observedState: string };
}

/** `service component node state` of every `mcp ps` table row, sorted. */
function psRows(stdout: string): string[] {
  return stdout
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.split(/\s+/).slice(0, 4).join(" "))
    .sort();
}

describe("several nodes driven by one CLI", { timeout: 120_000 }, () => {
  let n1: NetnsNode;
  let n2: NetnsNode;
  let createdNodes = false;
  let a1: LiveAgent;
  let a2: LiveAgent;
  let a3: LiveAgent | undefined;
  let initDir: string | undefined;
  const ports = new Map<string, number>();
  let holeRule: string[] | undefined;

  const mcp = (...args: string[]) => runMcp(["--config", a1.cliConfig, ...args]);

  before(async () => {
    const up = await ensureNodes(2);
    createdNodes = up.created;
    const [first, second] = up.nodes;
    assert.ok(first && second, "scripts/nodes.sh did not describe two nodes");
    [n1, n2] = [first, second];
    // Each agent makes its own CA and token (LiveAgent runs `mcp-agent init`).
    [a1, a2] = await Promise.all([
      startNodeAgent(n1, { name: N1 }),
      startNodeAgent(n2, { name: N2 }),
    ]);
    // The CLI config from node 1's init (its CA and token as the shared
    // default) plus node 2 with its own CA and token.
    ok(
      await mcp(
        "node",
        "add",
        N2,
        `${n2.address}:${NODE_AGENT_PORT}`,
        "--ca",
        path.join(a2.dir, "ca.pem"),
        "--token-file",
        path.join(a2.dir, "token"),
      ),
      "node add",
    );
    await a1.addDefinition("mn-a", oneRouteDefinition("mn-a", N1));
    await a1.addDefinition("mn-b", oneRouteDefinition("mn-b", N2));
  });

  after(async () => {
    if (a1 && a2) {
      // A failed hung-agent test must not leave node 2's agent stopped.
      if (a2.pid) process.kill(a2.pid, "SIGCONT");
      await Promise.all([a1.cleanup(), a2.cleanup(), a3?.cleanup()]);
    }
    if (initDir) await rm(initDir, { recursive: true, force: true });
    if (holeRule) await runCommand(holeRule).catch(() => undefined);
    if (createdNodes) await removeNodes();
  });

  test("the CLI config holds node 2's own CA and token", async () => {
    const text = await readFile(a1.cliConfig, "utf8");
    assert.match(text, new RegExp(`ca_cert = "${path.join(a2.dir, "ca.pem")}"`));
    assert.match(text, new RegExp(`token_path = "${path.join(a2.dir, "token")}"`));
    // Different CAs and tokens: neither node's would work for the other.
    const read = (dir: string, file: string) => readFile(path.join(dir, file), "utf8");
    const [ca1, ca2, t1, t2] = await Promise.all([
      read(a1.dir, "ca.pem"),
      read(a2.dir, "ca.pem"),
      read(a1.dir, "token"),
      read(a2.dir, "token"),
    ]);
    assert.notEqual(ca1, ca2);
    assert.notEqual(t1, t2);
  });

  test("a service deployed to each node runs on that node only", async () => {
    const [ra, rb] = await Promise.all([mcp("deploy", "mn-a"), mcp("deploy", "mn-b")]);
    for (const [name, run] of [
      ["mn-a", ra],
      ["mn-b", rb],
    ] as const) {
      ok(run, `deploy ${name}`);
      const port = Number(/\bPORT=(\d+)/.exec(run.stdout)?.[1]);
      assert.ok(port > 0, `no PORT in deploy output of ${name}: ${run.stdout}`);
      ports.set(name, port);
    }
    // Podman inside each node sees its own container and not the other's.
    assert.deepEqual(await nodeContainers(n1), ["mn-a-web"]);
    assert.deepEqual(await nodeContainers(n2), ["mn-b-web"]);
    const { stdout } = await runCommand(["podman", "ps", "-a", "--format", "{{.Names}}"]);
    assert.ok(!/^mn-[ab]-web$/m.test(stdout), `host podman sees a node's container:\n${stdout}`);
    // Each answers HTTP on its node's address (the agents publish there).
    const pa = ports.get("mn-a") ?? 0;
    const pb = ports.get("mn-b") ?? 0;
    assert.equal(parseEnvPage(await httpGetAt(n1.address, pa)).PORT, String(pa));
    assert.equal(parseEnvPage(await httpGetAt(n2.address, pb)).PORT, String(pb));
  });

  test("mcp ps lists both nodes' containers", async () => {
    const run = ok(await mcp("ps"), "ps");
    assert.deepEqual(psRows(run.stdout), [`mn-a web ${N1} running`, `mn-b web ${N2} running`]);
    const json = JSON.parse(ok(await mcp("ps", "--json"), "ps --json").stdout) as PsRow[];
    assert.deepEqual(
      json.map((r) => `${r.service}/${r.component}@${r.node}=${r.info.observedState}`).sort(),
      [`mn-a/web@${N1}=running`, `mn-b/web@${N2}=running`],
    );
  });

  test("mcp node list shows each agent's version; node status shows resources", async () => {
    const list = ok(await mcp("node", "list"), "node list");
    assert.match(list.stdout, new RegExp(`^${N1}\\s+${n1.address}:9444\\s+${VERSION}\\s+ok$`, "m"));
    assert.match(list.stdout, new RegExp(`^${N2}\\s+${n2.address}:9444\\s+${VERSION}\\s+ok$`, "m"));

    const one = ok(await mcp("node", "status", N1), "node status");
    assert.match(one.stdout, new RegExp(`^NODE ${N1} \\(${n1.address}:9444\\)$`, "m"));
    assert.ok(!one.stdout.includes(N2), `node status ${N1} shows another node:\n${one.stdout}`);
    for (const line of [
      /^ {2}status\s+ok$/m,
      new RegExp(`^ {2}agent\\s+${VERSION}$`, "m"),
      /^ {2}runtime\s+podman \d+\.\d+\.\d+$/m,
      /^ {2}services\s+1 \(1 component, 1 running\)$/m,
      /^ {2}ports\s+1 allocated \(pool of \d+: [\d,-]+\)$/m,
      /^ {2}disk\s+[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB \(\d+% used\)$/m,
      /^ {2}memory\s+[\d.]+ [KMGT]iB free of [\d.]+ [KMGT]iB \(\d+% used\)$/m,
      /^ {2}cpu\s+\d+ cores?, load \d+% \(1-min average\)$/m,
      /^ {2}up since\s+\d{4}-\d\d-\d\dT[\d:.]+Z \(\d+[smhd]/m,
    ]) {
      assert.match(one.stdout, line);
    }

    const json = JSON.parse(
      ok(await mcp("node", "status", "--json"), "node status --json").stdout,
    ) as {
      name: string;
      status: {
        nodeName: string;
        serviceCount: number;
        portsAllocated: number;
        memoryTotalBytes: number;
        agentVersion: string;
      };
    }[];
    assert.deepEqual(
      json.map((r) => [
        r.name,
        r.status.nodeName,
        r.status.serviceCount,
        r.status.portsAllocated,
        r.status.agentVersion,
      ]),
      [
        [N1, N1, 1, 1, VERSION],
        [N2, N2, 1, 1, VERSION],
      ],
    );
    assert.ok(json.every((r) => r.status.memoryTotalBytes > 0));
  });

  test("node status: unknown node and bad arguments fail with one line", async () => {
    const unknown = await mcp("node", "status", "mn-nope");
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, "");
    assert.match(
      unknown.stderr,
      /^mcp: unknown node "mn-nope" \(configured nodes: mn-n1, mn-n2\)\n$/,
    );
    const extra = await mcp("node", "status", N1, N2);
    assert.notEqual(extra.code, 0);
    assert.match(extra.stderr, /too many arguments/);
    const help = ok(await mcp("node", "status", "--help"), "node status --help");
    assert.match(help.stdout, /Usage: mcp node status \[options\] \[node\]/);
  });

  test("a hung agent and a blackholed address: the others are shown within the timeout", async () => {
    // Packets to node 2's port 9555 are dropped: a connect there never completes.
    const rule = ["-p", "tcp", "--dport", String(HOLE_PORT), "-j", "DROP"];
    await runCommand([...n2.prefix, "iptables", "-I", "INPUT", ...rule]);
    holeRule = [...n2.prefix, "iptables", "-D", "INPUT", ...rule];
    ok(await mcp("node", "add", HOLE, `${n2.address}:${HOLE_PORT}`), "node add hole");
    // Node 2's agent stops answering: TCP is accepted by the kernel, TLS never completes.
    const pid = a2.pid;
    assert.ok(pid);
    process.kill(pid, "SIGSTOP");
    try {
      const start = Date.now();
      // 5 s to connect (the default is 15 s), 10 s per node in all.
      const run = await mcp("--timeout", "5s", "ps");
      const elapsed = Date.now() - start;
      assert.equal(run.code, 1, `ps: ${run.stdout}${run.stderr}`);
      assert.deepEqual(psRows(run.stdout), [`mn-a web ${N1} running`]);
      assert.deepEqual(run.stderr.split("\n").filter(Boolean).sort(), [
        `mcp: node ${HOLE}: did not answer within 5 s`,
        `mcp: node ${N2}: did not answer within 5 s`,
      ]);
      assert.ok(elapsed < 6000, `mcp ps took ${elapsed} ms with a hung and a blackholed node`);
    } finally {
      process.kill(pid, "SIGCONT");
      ok(await mcp("node", "remove", HOLE), "node remove hole");
    }
  });

  test("a stopped agent: ps, list, status still show the other node and exit 1", async () => {
    await a2.kill();
    const missing = notAnsweringStderr(N2, `${n2.address}:9444`);
    const start = Date.now();
    const ps = await mcp("ps");
    assert.ok(Date.now() - start < 6000);
    assert.equal(ps.code, 1);
    assert.deepEqual(psRows(ps.stdout), [`mn-a web ${N1} running`]);
    assert.match(ps.stderr, missing);

    const list = await mcp("list");
    assert.equal(list.code, 1);
    assert.match(list.stdout, new RegExp(`^mn-a\\s+web\\s+${N1}\\s`, "m"));
    assert.ok(!list.stdout.includes("mn-b"), list.stdout);
    assert.match(list.stderr, missing);

    const status = await mcp("status");
    assert.equal(status.code, 1);
    assert.match(status.stdout, new RegExp(`^mn-a\\s+web\\s+${N1}\\s`, "m"));
    assert.match(status.stderr, missing);

    // A service command for the missing node fails with the same line and hint; the other node's work.
    const restartB = await mcp("restart", "mn-b");
    assert.equal(restartB.code, 1);
    assert.match(restartB.stderr, notAnsweringStderr("mn-n2", "10.231.0.12:9444"));
    ok(await mcp("restart", "mn-a"), "restart mn-a");

    const nodes = await mcp("node", "list");
    assert.equal(nodes.code, 1);
    assert.match(nodes.stdout, new RegExp(`^${N1}\\s+\\S+\\s+${VERSION}\\s+ok$`, "m"));
    assert.match(
      nodes.stdout,
      new RegExp(`^${N2}\\s+\\S+\\s+-\\s+unreachable: connection refused$`, "m"),
    );

    const st = await mcp("node", "status");
    assert.equal(st.code, 1);
    assert.match(st.stdout, new RegExp(`NODE ${N1} .*\\n {2}status\\s+ok\\n`));
    assert.match(
      st.stdout,
      new RegExp(`NODE ${N2} .*\\n {2}status\\s+unreachable: connection refused\\n`),
    );
    assert.match(nodes.stderr, missing);
    assert.match(st.stderr, missing);
    const st2 = await mcp("node", "status", N2);
    assert.equal(st2.code, 1);
    assert.ok(!st2.stdout.includes(N1));
  });

  test("mcp-agent init --ca-dir signs a new node with an existing CA", async () => {
    // The real binary: a certificate from node 1's CA, no CA key copied.
    initDir = await tempDir("mcp-mn-init-");
    const { stdout } = await promisify(execFile)(process.execPath, [
      AGENT_BIN,
      "init",
      "--dir",
      initDir,
      "--node",
      "mn-n3",
      "--listen",
      `${n2.address}:9445`,
      "--ca-dir",
      a1.dir,
      "--no-proxy",
    ]);
    assert.match(stdout, /initialised .* for node mn-n3/);
    assert.equal(existsSync(path.join(initDir, "ca-key.pem")), false);
    const caPem = await readFile(path.join(a1.dir, "ca.pem"), "utf8");
    assert.equal(await readFile(path.join(initDir, "ca.pem"), "utf8"), caPem);
    const cert = new X509Certificate(await readFile(path.join(initDir, "cert.pem")));
    const ca = new X509Certificate(caPem);
    assert.ok(cert.verify(ca.publicKey), "cert.pem is not signed by node 1's CA");
    assert.ok(cert.checkIP(n2.address), `no IP SAN ${n2.address}: ${cert.subjectAltName}`);

    // Node 2 again, now signed by node 1's CA with its own token.
    a3 = await startNodeAgent(n2, { name: N2, caDir: a1.dir });
    // The config still pins node 2's old CA: TLS verification must fail.
    const pinned = await mcp("node", "list");
    assert.equal(pinned.code, 1);
    assert.match(pinned.stdout, new RegExp(`^${N2}\\s+.*TLS verification failed`, "m"));
    // With the shared default CA (node 1's) and node 2's new token, it answers.
    ok(await mcp("node", "remove", N2), "node remove");
    ok(
      await mcp(
        "node",
        "add",
        N2,
        `${n2.address}:${NODE_AGENT_PORT}`,
        "--token-file",
        path.join(a3.dir, "token"),
      ),
      "node add (shared CA)",
    );
    const nodes = ok(await mcp("node", "list"), "node list");
    assert.match(nodes.stdout, new RegExp(`^${N2}\\s+\\S+\\s+${VERSION}\\s+ok$`, "m"));
    // Node 1's token is not node 2's: the shared default token is refused there.
    ok(await mcp("node", "remove", N2), "node remove");
    ok(await mcp("node", "add", N2, `${n2.address}:${NODE_AGENT_PORT}`), "node add (shared token)");
    const refused = await mcp("node", "status", N2);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /status\s+unreachable: rejected the token/);
  });
});
