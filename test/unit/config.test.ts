/** Agent and CLI config files: defaults, durations, every problem reported, round trips. */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseHostPort } from "../../src/config/address.js";
import {
  agentConfigFromObject,
  loadAgentConfig,
  renderAgentConfig,
} from "../../src/config/agent.js";
import {
  addNode,
  cliConfigPath,
  defaultCliConfigPath,
  emptyCliConfig,
  loadCliConfig,
  removeNode,
  resolveNode,
  saveCliConfig,
  type CliConfig,
} from "../../src/config/cli.js";
import { formatDuration, parseDuration } from "../../src/config/duration.js";
import { BUILTIN_LIMITS } from "../../src/servicedef/limits.js";
import { McpError, ValidationError } from "../../src/util/errors.js";
import { tempDir } from "../helpers/agent.js";

let dir: string;
before(async () => {
  dir = await tempDir("mcp-config-");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await mkdir(join(file, ".."), { recursive: true });
  await writeFile(file, text);
  return file;
}

/** The problems of a ValidationError thrown by `p`. */
async function problems(
  p: Promise<unknown>,
): Promise<{ path: string; message: string; line?: number; column?: number }[]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.code, "invalid_config");
    return err.problems;
  }
  assert.fail("expected a ValidationError");
}

const MINIMAL = `
[agent]
node_name = "rift"
[server]
tls_cert = "certs/cert.pem"
tls_key = "/etc/mcp/key.pem"
[database]
path = "mcp.db"
[auth]
tokens_file = "tokens.toml"
`;

describe("durations", () => {
  test("parse units and compounds into milliseconds", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("15m"), 900_000);
    assert.equal(parseDuration("720h"), 2_592_000_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
  });
  test("reject anything else with a clear reason", () => {
    for (const bad of ["", "30", "5d", "-1s", "1 h", "s", "1h-5m"]) {
      assert.throws(() => parseDuration(bad), /invalid duration .*ms, s, m or h/, bad);
    }
  });
  test("format back to the shortest exact form", () => {
    assert.equal(formatDuration(2_592_000_000), "720h");
    assert.equal(formatDuration(5_400_000), "1h30m");
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(0), "0s");
  });
});

describe("addresses", () => {
  test("host:port and [v6]:port", () => {
    assert.deepEqual(parseHostPort("127.0.0.1:9444"), { host: "127.0.0.1", port: 9444 });
    assert.deepEqual(parseHostPort("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseHostPort("rift.lan:9444"), { host: "rift.lan", port: 9444 });
    for (const bad of ["9444", "::1:9444", "host:70000", "a b:1", "[rift]:1", "host:"]) {
      assert.throws(() => parseHostPort(bad), /invalid address/, bad);
    }
  });
});

describe("agent config", () => {
  test("fills every default and resolves relative paths against the file", async () => {
    const file = await write("a/mcp-agent.toml", MINIMAL);
    const cfg = await loadAgentConfig(file);
    const base = join(dir, "a");
    assert.deepEqual(cfg, {
      agent: { nodeName: "rift", dataRoot: "/srv", allowLatest: false },
      server: {
        listen: "127.0.0.1:9444",
        tlsCert: join(base, "certs/cert.pem"),
        tlsKey: "/etc/mcp/key.pem",
        caCert: undefined,
        firstRequestTimeoutMs: 20_000,
      },
      database: { path: join(base, "mcp.db") },
      auth: { tokensFile: join(base, "tokens.toml") },
      ports: {
        range: { min: 10000, max: 60000 },
        reserved: [],
        excludeEphemeral: true,
        bindAddresses: ["127.0.0.1"],
      },
      monitor: {
        intervalMs: 30_000,
        alertCommand: [],
        cooldownMs: 900_000,
        flapThreshold: 3,
        flapWindowMs: 600_000,
        retentionMs: 2_592_000_000,
      },
      history: { keep: 20 },
      log: { level: "info" },
      policy: { allowHostNetwork: false, allowLowPorts: false, volumeRoots: [] },
      containers: { logMaxSize: "10m" },
      podman: { socket: "" },
      limits: BUILTIN_LIMITS,
    });
  });

  test("reads every key, ranges and durations included", async () => {
    const file = await write(
      "full.toml",
      `${MINIMAL}
[ports]
range = [20000, 30000]
reserved = [22000, "25000-25010"]
exclude_ephemeral = false
bind_addresses = ["127.0.0.1", "::1"]
[monitor]
interval = "1m"
alert_command = ["/usr/local/bin/notify", "--channel", "ops"]
cooldown = "0s"
flap_threshold = 5
flap_window = "1h30m"
retention = "48h"
[log]
level = "debug"
`,
    );
    const cfg = await loadAgentConfig(file);
    assert.deepEqual(cfg.ports, {
      range: { min: 20000, max: 30000 },
      reserved: [
        { from: 22000, to: 22000 },
        { from: 25000, to: 25010 },
      ],
      excludeEphemeral: false,
      bindAddresses: ["127.0.0.1", "::1"],
    });
    assert.deepEqual(cfg.monitor, {
      intervalMs: 60_000,
      alertCommand: ["/usr/local/bin/notify", "--channel", "ops"],
      cooldownMs: 0,
      flapThreshold: 5,
      flapWindowMs: 5_400_000,
      retentionMs: 172_800_000,
    });
    assert.equal(cfg.log.level, "debug");
  });

  test("reports every bad key at once, each with its path", async () => {
    const file = await write(
      "bad.toml",
      `
[agent]
node_name = "Not A Label"
allow_latest = "yes"
colour = "blue"
[server]
listen = "localhost"
tls_cert = "c.pem"
first_request_timeout = "0s"
[database]
path = "x.db"
[auth]
tokens_file = "t.toml"
[ports]
range = [30000, 20000]
reserved = [0, "9-3", "x"]
bind_addresses = ["not-an-ip"]
[monitor]
interval = "30"
cooldown = "5 minutes"
flap_threshold = 0
[log]
level = "loud"
[extra]
`,
    );
    const got = await problems(loadAgentConfig(file));
    const paths = got.map((p) => p.path).sort();
    assert.deepEqual(paths, [
      "agent.allow_latest",
      "agent.colour",
      "agent.node_name",
      "extra",
      "log.level",
      "monitor.cooldown",
      "monitor.flap_threshold",
      "monitor.interval",
      "ports.bind_addresses[0]",
      "ports.range",
      "ports.reserved[0]",
      "ports.reserved[1]",
      "ports.reserved[2]",
      "server.first_request_timeout",
      "server.listen",
      "server.tls_key",
    ]);
    const byPath = new Map(got.map((p) => [p.path, p.message]));
    assert.equal(byPath.get("server.tls_key"), "required");
    assert.equal(byPath.get("agent.colour"), "unknown key");
    assert.equal(byPath.get("agent.allow_latest"), 'expected a boolean, got "yes"');
    assert.match(byPath.get("monitor.interval") ?? "", /invalid duration "30"/);
    assert.match(byPath.get("ports.range") ?? "", /min must be below max/);
    assert.match(byPath.get("server.listen") ?? "", /expected host:port/);
    assert.equal(
      byPath.get("server.first_request_timeout"),
      'expected a duration above zero, got "0s"',
    );
  });

  test("[server] first_request_timeout: a duration, 20s by default, rendered explicitly", async () => {
    const file = await write(
      "frt.toml",
      MINIMAL.replace("[server]\n", '[server]\nfirst_request_timeout = "1.5s"\n'),
    );
    const cfg = await loadAgentConfig(file);
    assert.equal(cfg.server.firstRequestTimeoutMs, 1500);
    assert.match(renderAgentConfig(cfg), /^first_request_timeout = "1s500ms"$/m);
    const bad = await write(
      "frt-bad.toml",
      MINIMAL.replace("[server]\n", "[server]\nfirst_request_timeout = 20\n"),
    );
    const got = await problems(loadAgentConfig(bad));
    assert.deepEqual(
      got.map((p) => p.path),
      ["server.first_request_timeout"],
    );
  });

  test("the error message lists file: path: message lines", async () => {
    const file = await write("bad2.toml", `${MINIMAL}\n[monitor]\nretention = "forever"\n`);
    await assert.rejects(loadAgentConfig(file), (err: unknown) => {
      assert.ok(err instanceof ValidationError);
      assert.match(
        err.message,
        new RegExp(`^${file}: monitor\\.retention: invalid duration "forever"`),
      );
      return true;
    });
  });

  test("missing sections are reported as required", async () => {
    const file = await write("empty.toml", "");
    const got = await problems(loadAgentConfig(file));
    assert.deepEqual(
      got.map((p) => p.path),
      ["agent", "server", "database", "auth"],
    );
  });

  test("a TOML syntax error names line and column", async () => {
    const file = await write("syntax.toml", '[agent]\nnode_name = "rift"\ndata_root = \n');
    const got = await problems(loadAgentConfig(file));
    assert.equal(got.length, 1);
    assert.equal(got[0]?.line, 3);
    assert.equal(got[0]?.column, 13);
    assert.match(got[0]?.message ?? "", /^TOML syntax error: /);
  });

  test("a missing file says how to create one", async () => {
    await assert.rejects(
      loadAgentConfig(join(dir, "nope.toml")),
      /does not exist: create it with "mcp-agent init"/,
    );
  });

  test("[podman] socket: a path (unix:// allowed, relative to the file), written back; absent: the agent's own", async () => {
    const base = {
      agent: { node_name: "rift" },
      server: { tls_cert: "/c.pem", tls_key: "/k.pem", ca_cert: "/ca.pem" },
      database: { path: "/mcp.db" },
      auth: { tokens_file: "/t.toml" },
    };
    const own = agentConfigFromObject(base, "/etc/mcp", "test");
    assert.equal(own.podman.socket, "");
    assert.ok(!renderAgentConfig(own).includes("[podman]"));
    const named = agentConfigFromObject(
      { ...base, podman: { socket: "unix://run/podman.sock" } },
      "/etc/mcp",
      "test",
    );
    assert.equal(named.podman.socket, "/etc/mcp/run/podman.sock");
    const file = await write("podman.toml", renderAgentConfig(named));
    assert.equal((await loadAgentConfig(file)).podman.socket, "/etc/mcp/run/podman.sock");
    assert.throws(
      () => agentConfigFromObject({ ...base, podman: { socket: "" } }, "/", "test"),
      /podman\.socket/,
    );
  });

  test("render → load round-trips, every key explicit", async () => {
    const cfg = agentConfigFromObject(
      {
        agent: { node_name: "rift" },
        server: { tls_cert: "/c.pem", tls_key: "/k.pem", ca_cert: "/ca.pem" },
        database: { path: "/mcp.db" },
        auth: { tokens_file: "/t.toml" },
        ports: { reserved: [22, "9000-9100"] },
        monitor: { flap_window: "1h30m", alert_command: ["notify"] },
      },
      "/",
      "test",
    );
    const text = renderAgentConfig(cfg);
    for (const key of [
      "first_request_timeout",
      "allow_latest",
      "exclude_ephemeral",
      "bind_addresses",
      "retention",
      "level",
    ]) {
      assert.ok(text.includes(key), key);
    }
    const file = await write("rendered.toml", text);
    assert.deepEqual(await loadAgentConfig(file), cfg);
  });
});

describe("CLI config", () => {
  test("default path honours XDG_CONFIG_HOME, then HOME; MCP_CONFIG and --config override", () => {
    assert.equal(defaultCliConfigPath({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/x/mcp/mcp.toml");
    assert.equal(defaultCliConfigPath({ HOME: "/h" }), "/h/.config/mcp/mcp.toml");
    assert.equal(
      defaultCliConfigPath({ XDG_CONFIG_HOME: "relative", HOME: "/h" }),
      "/h/.config/mcp/mcp.toml",
    );
    assert.equal(
      cliConfigPath(undefined, { MCP_CONFIG: "/e/mcp.toml", HOME: "/h" }),
      "/e/mcp.toml",
    );
    assert.equal(cliConfigPath("/f/mcp.toml", { MCP_CONFIG: "/e/mcp.toml" }), "/f/mcp.toml");
  });

  test("loads with defaults, relative paths resolved; per-node overrides win over shared defaults", async () => {
    const file = await write(
      "cli/mcp.toml",
      `
[tls]
ca_cert = "ca.pem"
[auth]
token_path = "token"
[[nodes]]
name = "rift"
address = "100.95.252.120:9444"
[[nodes]]
name = "svc"
address = "[fd00::1]:9555"
ca_cert = "/etc/svc-ca.pem"
token_path = "svc-token"
`,
    );
    const base = join(dir, "cli");
    const cfg = await loadCliConfig(file);
    assert.equal(cfg.services.dir, join(base, "services"));
    assert.deepEqual(resolveNode(cfg, "rift"), {
      name: "rift",
      address: "100.95.252.120:9444",
      caCert: join(base, "ca.pem"),
      tokenPath: join(base, "token"),
    });
    assert.deepEqual(resolveNode(cfg, "svc"), {
      name: "svc",
      address: "[fd00::1]:9555",
      caCert: "/etc/svc-ca.pem",
      tokenPath: join(base, "svc-token"),
    });
  });

  test("resolveNode: unknown node names the configured ones; missing CA/token is explained", () => {
    const cfg: CliConfig = {
      services: { dir: "/s" },
      tls: {},
      auth: { tokenPath: "/t" },
      client: {},
      nodes: [
        { name: "a", address: "a:1" },
        { name: "b", address: "b:1", caCert: "/ca" },
      ],
    };
    assert.throws(
      () => resolveNode(cfg, "zz"),
      (err: unknown) =>
        err instanceof McpError &&
        err.code === "not_found" &&
        /configured nodes: a, b/.test(err.message),
    );
    assert.throws(() => resolveNode(cfg, "a"), /node a has no CA certificate: set \[tls\] ca_cert/);
    assert.equal(resolveNode(cfg, "b").caCert, "/ca");
    assert.throws(
      () => resolveNode({ ...cfg, nodes: [] }, "a"),
      /no nodes are configured; add one with "mcp node add/,
    );
  });

  test("bad keys, bad nodes and duplicates are all reported with paths", async () => {
    const file = await write(
      "cli-bad.toml",
      `
colour = 1
[tls]
cert = "x"
[[nodes]]
name = "a"
address = "nope"
[[nodes]]
name = "a"
address = "a:1"
[[nodes]]
address = "c:1"
`,
    );
    const got = await problems(loadCliConfig(file));
    assert.deepEqual(got.map((p) => p.path).sort(), [
      "colour",
      "nodes[0].address",
      "nodes[1].name",
      "nodes[2].name",
      "tls.cert",
    ]);
  });

  test("a missing file tells the operator to run mcp-agent init or mcp node add", async () => {
    await assert.rejects(loadCliConfig(join(dir, "none/mcp.toml")), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.match(err.message, /does not exist: run "mcp-agent init".*"mcp node add/);
      return true;
    });
    const empty = await loadCliConfig(join(dir, "none/mcp.toml"), { allowMissing: true });
    assert.deepEqual(empty, emptyCliConfig(join(dir, "none/mcp.toml")));
  });

  test("addNode/removeNode are pure and validate; save → load round-trips with mode 0600", async () => {
    const file = join(dir, "saved/mcp.toml");
    const start = emptyCliConfig(file);
    const one = addNode(start, { name: "rift", address: "127.0.0.1:9444" });
    assert.equal(start.nodes.length, 0, "input untouched");
    const two = addNode(
      {
        ...one,
        tls: { caCert: "/ca.pem" },
        auth: { tokenPath: "/token" },
        client: { connectTimeoutMs: 7500 },
      },
      {
        name: "svc",
        address: "svc.lan:9555",
        tokenPath: "/svc-token",
      },
    );
    assert.throws(() => addNode(two, { name: "rift", address: "x:1" }), /already exists/);
    assert.throws(
      () => addNode(two, { name: "Bad Name", address: "x" }),
      /cannot add node: name: .*address: /,
    );
    assert.throws(() => removeNode(two, "zz"), /unknown node "zz" \(configured nodes: rift, svc\)/);
    assert.deepEqual(
      removeNode(two, "rift").nodes.map((n) => n.name),
      ["svc"],
    );

    await saveCliConfig(file, two);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const loaded = await loadCliConfig(file);
    assert.deepEqual(loaded, {
      ...two,
      nodes: [
        { name: "rift", address: "127.0.0.1:9444", caCert: undefined, tokenPath: undefined },
        { name: "svc", address: "svc.lan:9555", caCert: undefined, tokenPath: "/svc-token" },
      ],
    });
    const text = await readFile(file, "utf8");
    assert.match(text, /\[\[nodes\]\]\nname = "svc"/);
    assert.match(text, /^\[client\]\nconnect_timeout = "7s500ms"$/m);
    // Unset, it is not written at all (the built-in default applies).
    await saveCliConfig(file, one);
    assert.doesNotMatch(await readFile(file, "utf8"), /client|connect_timeout/);
  });

  test("[client] connect_timeout: a duration above zero; unset when absent", async () => {
    const good = await write(
      "cli-client.toml",
      '[client]\nconnect_timeout = "30s"\n[[nodes]]\nname = "a"\naddress = "a:1"\n',
    );
    assert.deepEqual((await loadCliConfig(good)).client, { connectTimeoutMs: 30_000 });
    const none = await write("cli-noclient.toml", '[[nodes]]\nname = "a"\naddress = "a:1"\n');
    assert.equal((await loadCliConfig(none)).client.connectTimeoutMs, undefined);
    for (const [value, message] of [
      ['"0s"', 'expected a duration above zero, got "0s"'],
      ['"soon"', 'invalid duration "soon"'],
      ["15", "expected a duration"],
    ] as const) {
      const bad = await write("cli-client-bad.toml", `[client]\nconnect_timeout = ${value}\n`);
      const got = await problems(loadCliConfig(bad));
      assert.equal(got.length, 1, value);
      assert.equal(got[0]?.path, "client.connect_timeout");
      assert.ok(got[0]?.message.includes(message), `${value}: ${got[0]?.message}`);
    }
    const unknown = await write("cli-client-key.toml", "[client]\nretries = 3\n");
    assert.deepEqual(
      (await problems(loadCliConfig(unknown))).map((p) => `${p.path}: ${p.message}`),
      ["client.retries: unknown key"],
    );
  });
});

describe("agent config: [proxy], [certs], [dns]", () => {
  test("absent: the edge is off and the config has no such keys", async () => {
    const cfg = await loadAgentConfig(await write("edge/none.toml", MINIMAL));
    assert.equal("proxy" in cfg || "certs" in cfg || "dns" in cfg, false);
  });

  test("an empty [proxy] gets the defaults; every key read; written back the same", async () => {
    const defaults = await loadAgentConfig(
      await write("edge/defaults.toml", `${MINIMAL}\n[proxy]\n[certs]\n`),
    );
    assert.deepEqual(defaults.proxy, {
      driver: "haproxy",
      dir: join(dir, "edge", "proxy"),
      bind: "127.0.0.1",
      httpPort: 80,
      domain: "svc.mcp.test",
      drainMs: 2000,
    });
    assert.deepEqual(defaults.certs, {
      issuer: "local",
      acmeDirectory: "",
      acmeCaFile: "",
      acmeEmail: "",
      renewBeforeMs: 2_592_000_000,
    });
    const full = await write(
      "edge/full.toml",
      `${MINIMAL}
[proxy]
driver = "haproxy"
dir = "/srv/mcp/proxy"
bind = "0.0.0.0"
http_port = 0
domain = "apps.example.test"
drain = "5s"
[certs]
issuer = "acme"
acme_directory = "https://127.0.0.1:14000/dir"
acme_ca_file = "pebble.pem"
acme_email = "ops@example.test"
renew_before = "240h"
[dns]
server = "127.0.0.1:5353"
zone = "apps.example.test"
tsig_key_file = "dns.key"
address = "192.0.2.10"
ttl = 30
`,
    );
    const cfg = await loadAgentConfig(full);
    assert.equal(cfg.proxy?.bind, "0.0.0.0");
    assert.equal(cfg.proxy?.httpPort, 0);
    assert.equal(cfg.certs?.acmeCaFile, join(dir, "edge", "pebble.pem"));
    assert.deepEqual(cfg.dns, {
      server: "127.0.0.1:5353",
      zone: "apps.example.test",
      tsigKeyFile: join(dir, "edge", "dns.key"),
      address: "192.0.2.10",
      ttl: 30,
    });
    const again = await loadAgentConfig(await write("edge/again.toml", renderAgentConfig(cfg)));
    assert.deepEqual(again, cfg);
  });

  test("every problem with its field path; acme needs its directory; [dns] needs all four", async () => {
    const file = await write(
      "edge/bad.toml",
      `${MINIMAL}
[proxy]
driver = "caddy"
bind = "localhost"
http_port = 70000
domain = "Local"
drain = "soon"
colour = "red"
[certs]
issuer = "acme"
acme_directory = "http://insecure.example/dir"
[dns]
ttl = 0
`,
    );
    const got = (await problems(loadAgentConfig(file))).map((p) => p.path).sort();
    assert.deepEqual(got, [
      "certs.acme_directory",
      "dns.address",
      "dns.server",
      "dns.tsig_key_file",
      "dns.ttl",
      "dns.zone",
      "proxy.bind",
      "proxy.colour",
      "proxy.domain",
      "proxy.drain",
      "proxy.driver",
      "proxy.http_port",
    ]);
  });
});
