/**
 * `mcp sync`, `mcp adopt`, `mcp purge` and `mcp service show|edit|export`
 * end to end: the real CLI, real agents (LiveAgent), real podman.
 *
 * Two agents: `sy-main` for sync, purge and the service commands (each with
 * its own CLI config and services dir, so one area's definitions do not show
 * up in another's sync or purge), and `ad-node` for adopt, whose port range
 * is three ports wide so that "a deploy never gets the adopted port" is
 * decided, not left to chance. Names: sy*, pu*, sv*, ad* (podman container
 * names are global on the machine).
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "smol-toml";
import { parseServiceDef } from "../../src/servicedef/parse.js";
import { runCommand } from "../../src/util/exec.js";
import { freePort } from "../helpers/agent.js";
import { notAnsweringStderr } from "../helpers/cli-messages.js";
import {
  LiveAgent,
  TEST_IMAGE,
  oneRouteDefinition,
  runMcp,
  type CliRun,
  ok,
  type ComponentJson,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

/** A failure with a one-line `mcp: …` reason on stderr matching `reason`. */
function failsWith(run: CliRun, code: number, reason: RegExp, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}:\n${run.stdout}${run.stderr}`);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${run.stderr}`);
  assert.match(lines[0] ?? "", /^mcp: /);
  assert.match(lines[0] ?? "", reason);
}

/** A CLI config for `agent` with its own services dir (and optionally more nodes). */
class Cli {
  private constructor(
    readonly file: string,
    readonly dir: string,
  ) {}

  static async create(agent: LiveAgent, name: string): Promise<Cli> {
    const data = parse(await readFile(agent.cliConfig, "utf8"));
    const dir = path.join(agent.dir, `services-${name}`);
    await mkdir(dir, { recursive: true });
    data.services = { dir };
    const file = path.join(agent.dir, `mcp-${name}.toml`);
    await writeFile(file, stringify(data));
    return new Cli(file, dir);
  }

  run(args: string[], env?: NodeJS.ProcessEnv): Promise<CliRun> {
    return runMcp(["--config", this.file, ...args], env ? { env } : {});
  }

  async define(name: string, text: string): Promise<string> {
    const file = path.join(this.dir, `${name}.toml`);
    await writeFile(file, text);
    return file;
  }

  async undefine(name: string): Promise<void> {
    await rm(path.join(this.dir, `${name}.toml`));
  }

  /** Adds a node nobody listens on. */
  async addDeadNode(name: string): Promise<void> {
    ok(await this.run(["node", "add", name, `127.0.0.1:${await freePort()}`]), "node add");
  }

  async list(): Promise<Map<string, ComponentJson[]>> {
    const nodes = JSON.parse(
      ok(await this.run(["list", "--json"]), "list").stdout,
    ) as NodeServicesJson[];
    return new Map(nodes.flatMap((n) => n.services).map((s) => [s.name, s.components]));
  }
}

async function podman(args: string[]): Promise<string> {
  return (await runCommand(["podman", ...args])).stdout.trim();
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Three consecutive free ports below 10000: outside every other agent's default range. */
async function threeFreePorts(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 7000 + Math.floor(Math.random() * 2900);
    if ((await portFree(p)) && (await portFree(p + 1)) && (await portFree(p + 2))) return p;
  }
  throw new Error("no three consecutive free ports found");
}

const MAIN = "sy-main";
const ADOPT_NODE = "ad-node";

describe("sync, adopt, purge, service commands on real podman", { timeout: 180_000 }, () => {
  let main: LiveAgent;
  let adoptAgent: LiveAgent;
  let adoptPort = 0;
  const handMade = ["ad1-web", "ad-px", "ad-web"];

  before(async () => {
    adoptPort = await threeFreePorts();
    await podman(["rm", "-f", "-t", "0", "--ignore", ...handMade]);
    [main, adoptAgent] = await Promise.all([
      LiveAgent.start({ node: MAIN }),
      LiveAgent.start({
        node: ADOPT_NODE,
        config: { ports: { range: [adoptPort, adoptPort + 3], exclude_ephemeral: false } },
      }),
    ]);
  });

  after(async () => {
    await podman(["rm", "-f", "-t", "0", "--ignore", ...handMade]);
    await Promise.all([main?.cleanup(), adoptAgent?.cleanup()]);
  });

  // ---------------------------------------------------------------- sync

  test("sync: dry-run exit codes, additive intent, no containers started", async () => {
    const cli = await Cli.create(main, "sync");
    await cli.define("sy1", oneRouteDefinition("sy1", MAIN));

    const dry = await cli.run(["sync", "--dry-run"]);
    assert.equal(dry.code, 1, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /node sy-main \(dry run\):\n {2}sy1: would be added \(1 component\)/);
    assert.match(dry.stdout, /\+ web: added \(localhost\/mcp-httpenv:v1, desired running\)/);
    assert.equal((await cli.list()).get("sy1"), undefined, "the dry run wrote");

    const real = ok(await cli.run(["sync"]), "sync");
    assert.match(real.stdout, /1 service changed/);
    const again = await cli.run(["sync", "--dry-run"]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /sy1: unchanged\nnothing would change/);

    const [sy1web] = (await cli.list()).get("sy1") ?? [];
    assert.equal(sy1web?.desiredState, "running");
    assert.notEqual(sy1web?.observedState, "running");
    assert.equal(
      await podman(["ps", "-aq", "--filter", "name=^sy1-web$"]),
      "",
      "sync started a container",
    );

    // A changed field is named; a bad file stops the whole push.
    await cli.define("sy1", oneRouteDefinition("sy1", MAIN, "localhost/mcp-httpenv:v2"));
    await cli.define("sy-bad", 'name = "sy-bad"\nnode = 3\n[[components]]\nname = "x"\n');
    const bad = await cli.run(["sync"]);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /sy-bad\.toml: node: /);
    assert.match(bad.stderr, /sy-bad\.toml: components\[0\]\.image: /);
    assert.match(bad.stderr, /nothing pushed/);
    await cli.undefine("sy-bad");
    const pending = await cli.run(["sync", "--dry-run"]);
    assert.equal(pending.code, 1, "the bad run must not have pushed sy1");
    assert.match(
      pending.stdout,
      /sy1: would be 1 change\n {4}web: image localhost\/mcp-httpenv:v1 → localhost\/mcp-httpenv:v2\n/,
    );
    ok(await cli.run(["sync"]), "sync");
    assert.equal((await cli.run(["sync", "--dry-run"])).code, 0);

    // Unknown node in a definition, unknown option: errors (2).
    await cli.define("sy3", oneRouteDefinition("sy3", "nowhere"));
    const unknownNode = await cli.run(["sync", "--dry-run"]);
    assert.equal(unknownNode.code, 2);
    assert.match(unknownNode.stderr, /sy3\.toml: node: unknown node "nowhere"/);
    await cli.undefine("sy3");
    assert.equal((await cli.run(["sync", "--bogus"])).code, 2);
  });

  test("sync: a route change keeps the host port and leaves the container alone", async () => {
    const cli = await Cli.create(main, "sync2");
    await cli.define("sy2", oneRouteDefinition("sy2", MAIN));
    ok(await cli.run(["deploy", "sy2"]), "deploy");
    const before = (await cli.list()).get("sy2")?.[0]?.routes[0]?.hostPort ?? 0;
    assert.ok(before > 0);
    const startedBefore = await podman(["inspect", "--format", "{{.State.StartedAt}}", "sy2-web"]);

    await cli.define(
      "sy2",
      oneRouteDefinition("sy2", MAIN)
        .replace("port = 443", "port = 8443")
        .replace('mode = "l7"', ""),
    );
    const dry = await cli.run(["sync", "--dry-run"]);
    assert.equal(dry.code, 1);
    assert.match(
      dry.stdout,
      /web: route \(unnamed\): port 443 → 8443, mode l7 → l4 \(host port kept\)/,
    );
    ok(await cli.run(["sync"]), "sync");
    const route = (await cli.list()).get("sy2")?.[0]?.routes[0];
    assert.deepEqual([route?.port, route?.hostPort], [8443, before]);
    assert.equal(
      await podman(["inspect", "--format", "{{.State.StartedAt}}", "sy2-web"]),
      startedBefore,
      "sync restarted the container",
    );
    assert.equal((await cli.run(["sync", "--dry-run"])).code, 0);
  });

  test("sync: an unreachable node is an error (2), the other node still answers", async () => {
    const cli = await Cli.create(main, "sync-gone");
    await cli.addDeadNode("sy-gone");
    await cli.define("sy4", oneRouteDefinition("sy4", "sy-gone"));
    await cli.define("sy5", oneRouteDefinition("sy5", MAIN));
    const run = await cli.run(["sync", "--dry-run"]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stdout, /node sy-main \(dry run\):\n {2}sy5: would be added/);
    assert.match(run.stderr, notAnsweringStderr("sy-gone"));
  });

  // ---------------------------------------------------------------- adopt

  test("adopt: a container started with plain podman run is taken over", async () => {
    const cli = await Cli.create(adoptAgent, "adopt");
    const p = adoptPort;
    await podman([
      "run",
      "-d",
      "--name",
      "ad1-web",
      "-p",
      `127.0.0.1:${p}:8080`,
      "-e",
      "PORT=8080",
      TEST_IMAGE,
    ]);

    // One node configured: no --node needed.
    const adopted = ok(await cli.run(["adopt", "ad1"]), "adopt");
    assert.match(adopted.stdout, /ad1-web → web: adopted/);
    const again = ok(await cli.run(["adopt", "ad1", "--node", ADOPT_NODE]), "adopt again");
    assert.match(again.stdout, /ad1-web → web: skipped: ad1\/web is already managed/);

    const ps = ok(await cli.run(["ps"]), "ps").stdout;
    assert.match(ps, /^ad1 +web +ad-node +running +\S+ +v1 /m);
    const [web] = (await cli.list()).get("ad1") ?? [];
    assert.deepEqual(
      [web?.desiredState, web?.observedState, web?.ports],
      ["running", "running", [`127.0.0.1:${p}:8080`]],
    );

    // Stopped, the port is free for the OS but still held in the registry:
    // the 3-port range leaves exactly p+1 and p+2 for everything else.
    await podman(["stop", "-t", "0", "ad1-web"]);
    await cli.define(
      "ad2",
      `name = "ad2"\nnode = "${ADOPT_NODE}"\n[[components]]\nname = "web"\nimage = "${TEST_IMAGE}"\n` +
        `[[components.routes]]\nname = "a"\nport = 1\n[[components.routes]]\nname = "b"\nport = 2\n`,
    );
    ok(await cli.run(["deploy", "ad2"]), "deploy ad2");
    const ports = ((await cli.list()).get("ad2")?.[0]?.routes ?? []).map((r) => r.hostPort).sort();
    assert.deepEqual(ports, [p + 1, p + 2]);
    await cli.define("ad3", oneRouteDefinition("ad3", ADOPT_NODE));
    const third = await cli.run(["deploy", "ad3"]);
    assert.equal(third.code, 1, "ad3 must not get the adopted port");
    assert.match(third.stdout + third.stderr, /allocate ports/);
  });

  test("adopt: names resolve against known services (mc-proxy is not service mc)", async () => {
    const cli = await Cli.create(adoptAgent, "adopt2");
    for (const name of ["ad-px", "ad-web"]) {
      await podman(["run", "-d", "--name", name, "-e", "PORT=8080", TEST_IMAGE]);
    }
    const px = ok(await cli.run(["adopt", "ad-px", "--node", ADOPT_NODE]), "adopt ad-px");
    assert.equal(px.stdout, "node ad-node:\n  ad-px → ad-px: adopted\n");
    const ad = ok(await cli.run(["adopt", "ad", "--node", ADOPT_NODE]), "adopt ad");
    assert.equal(ad.stdout, "node ad-node:\n  ad-web → web: adopted\n");
    const list = await cli.list();
    assert.deepEqual(
      list.get("ad-px")?.map((c) => c.name),
      ["ad-px"],
    );
    assert.deepEqual(
      list.get("ad")?.map((c) => c.name),
      ["web"],
    );
  });

  test("adopt: error cases", async () => {
    const cli = await Cli.create(adoptAgent, "adopt3");
    await cli.addDeadNode("ad-gone");
    failsWith(
      await cli.run(["adopt", "ad-nothing", "--node", ADOPT_NODE]),
      1,
      /no containers of service "ad-nothing"/,
      "unknown service",
    );
    failsWith(
      await cli.run(["adopt", "Bad!", "--node", ADOPT_NODE]),
      1,
      /not a service name/,
      "bad name",
    );
    failsWith(
      await cli.run(["adopt", "ad1", "--node", "ad-nope"]),
      1,
      /unknown node "ad-nope"/,
      "bad node",
    );
    const gone = await cli.run(["adopt", "ad1", "--node", "ad-gone"]);
    assert.equal(gone.code, 1, gone.stderr);
    assert.match(gone.stderr, notAnsweringStderr("ad-gone"));
    assert.equal((await cli.run(["adopt"])).code, 1, "missing argument");
  });

  // ---------------------------------------------------------------- purge

  test("purge: refuses running and defined, purges removed & undefined, dry run writes nothing", async () => {
    const cli = await Cli.create(main, "purge");
    const def = oneRouteDefinition("pu1", MAIN).replace(
      /$/,
      `\n[[components]]\nname = "api"\nimage = "${TEST_IMAGE}"\n`,
    );
    await cli.define("pu1", def);
    ok(await cli.run(["deploy", "pu1"]), "deploy");

    const defined = await cli.run(["purge", "pu1"]);
    assert.equal(defined.code, 1);
    assert.match(defined.stdout, /pu1\/api: not purged: still defined locally/);

    await cli.undefine("pu1");
    const running = await cli.run(["purge", "pu1"]);
    assert.equal(running.code, 1);
    assert.match(
      running.stdout,
      /pu1\/web: not purged: container is running\n {2}pu1\/api: not purged: container is running/,
    );
    assert.equal((await cli.list()).get("pu1")?.length, 2);

    ok(await cli.run(["undeploy", "pu1", "--node", MAIN]), "undeploy");
    const dry = ok(await cli.run(["purge", "pu1/web", "--dry-run"]), "dry run");
    assert.match(dry.stdout, /node sy-main \(dry run\):\n {2}pu1\/web: would purge: gone/);
    assert.equal((await cli.list()).get("pu1")?.length, 2, "the dry run purged");

    ok(await cli.run(["purge", "pu1/web"]), "purge one");
    assert.deepEqual(
      (await cli.list()).get("pu1")?.map((c) => c.name),
      ["api"],
    );
    const last = ok(await cli.run(["purge", "pu1"]), "purge service").stdout;
    assert.match(
      last,
      /pu1\/api: purged: .*\n {2}pu1 \(service\): purged: its last component goes/,
    );
    assert.equal((await cli.list()).get("pu1"), undefined, "the emptied service row must go");
  });

  test("purge: error cases and the all-nodes sweep", async () => {
    const cli = await Cli.create(main, "purge2");
    const plain = await Cli.create(main, "purge2-plain");
    failsWith(await cli.run(["purge", "pu-nope"]), 1, /unknown service "pu-nope"/, "unknown");
    failsWith(
      await cli.run(["purge", "pu1/web/x"]),
      1,
      /expected <service> or <service>\/<component>/,
      "bad target",
    );
    failsWith(
      await cli.run(["purge", "sy1/nope"]),
      1,
      /unknown component "sy1\/nope"/,
      "unknown component",
    );

    await cli.define("pu-bad", 'name = "pu-bad"\n');
    const bad = await cli.run(["purge", "--dry-run"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /refusing to run while a definition is invalid/);
    await cli.undefine("pu-bad");

    await cli.addDeadNode("pu-gone");
    const sweep = await cli.run(["purge", "--dry-run"]);
    assert.equal(sweep.code, 1, sweep.stdout + sweep.stderr);
    assert.match(sweep.stdout, /node sy-main \(dry run\):\n/);
    // sy1 was synced, never deployed, and is not defined in this services dir.
    assert.match(sweep.stdout, /sy1\/web: would purge: gone/);
    assert.match(sweep.stderr, notAnsweringStderr("pu-gone"));
    assert.ok((await plain.list()).has("sy1"), "the dry-run sweep purged sy1");
  });

  // ---------------------------------------------------------------- service

  test("service show and export round-trip what was deployed", async () => {
    const cli = await Cli.create(main, "service");
    const text = [
      'name = "sv1"',
      `node = "${MAIN}"`,
      'comment = "service commands"',
      "",
      "[[components]]",
      'name = "web"',
      `image = "${TEST_IMAGE}"`,
      'restart = "no"',
      'env = ["GREETING=hi there", "QUOTE=a\\"b"]',
      "",
      "[[components.routes]]",
      "port = 443",
      'mode = "l7"',
      "",
      "[[components]]",
      'name = "api"',
      `image = "${TEST_IMAGE}"`,
      "",
      "[[components.routes]]",
      'name = "rest"',
      "port = 8443",
      "",
      "[[components.routes]]",
      'name = "grpc"',
      "port = 9443",
      'protocol = "tcp"',
      "",
    ].join("\n");
    const file = await cli.define("sv1", text);
    // The registry keeps definition order, so the round trip is exact.
    const original = parseServiceDef(text, file);
    ok(await cli.run(["deploy", "sv1"]), "deploy");
    const components = (await cli.list()).get("sv1") ?? [];
    const hostPort = (c: string, r: string) =>
      components.find((x) => x.name === c)?.routes.find((x) => x.name === r)?.hostPort ?? 0;

    const show = ok(await cli.run(["service", "show", "sv1"]), "show").stdout;
    assert.match(show, new RegExp(`# host port ${hostPort("web", "")} \\(\\$PORT\\)`));
    assert.match(show, new RegExp(`# host port ${hostPort("api", "rest")} \\(\\$PORT_REST\\)`));
    assert.match(show, new RegExp(`# host port ${hostPort("api", "grpc")} \\(\\$PORT_GRPC\\)`));
    assert.match(show, /# desired running, observed running, container sv1-web/);
    assert.deepEqual(parseServiceDef(show, "show.toml"), original);
    assert.deepEqual(
      original.components.map((c) => c.name),
      ["web", "api"],
    );
    const json = JSON.parse(
      ok(await cli.run(["service", "show", "sv1", "--json"]), "show --json").stdout,
    ) as {
      node: string;
      service: { spec: { components: unknown[] }; components: ComponentJson[] };
    };
    assert.equal(json.node, MAIN);
    assert.equal(json.service.spec.components.length, 2);

    const out = path.join(main.dir, "sv1-export.toml");
    ok(await cli.run(["service", "export", "sv1", "-o", out]), "export");
    assert.deepEqual(parseServiceDef(await readFile(out, "utf8"), out), original);
    failsWith(
      await cli.run(["service", "export", "sv1", "-o", out]),
      1,
      /exists: pass --force/,
      "overwrite",
    );
    ok(await cli.run(["service", "export", "sv1", "-o", out, "--force"]), "export --force");
    failsWith(
      await cli.run(["service", "export", "sv1"]),
      1,
      /sv1\.toml exists: pass --force/,
      "default path",
    );

    // Without the local file, the node is found by asking every node.
    await cli.undefine("sv1");
    const wrote = ok(await cli.run(["service", "export", "sv1"]), "export to services dir");
    assert.match(wrote.stdout, /wrote .*sv1\.toml \(service sv1 from node sy-main\)/);
    assert.deepEqual(parseServiceDef(await readFile(file, "utf8"), file), original);
  });

  test("service edit saves only a valid result", async () => {
    const cli = await Cli.create(main, "edit");
    const file = await cli.define("sv2", oneRouteDefinition("sv2", MAIN));
    const script = async (name: string, body: string) => {
      const p = path.join(main.dir, `${name}.sh`);
      await writeFile(p, `#!/bin/sh\n${body}\n`);
      return `sh ${p}`; // $EDITOR with an argument: split on spaces, no shell
    };
    const valid = await script("valid", `printf '# edited by test\\n' >> "$1"`);
    const invalid = await script("invalid", `printf 'bogus = 1\\n' >> "$1"`);
    const failing = await script("failing", "exit 3");

    const before = await readFile(file, "utf8");
    const bad = await cli.run(["service", "edit", "sv2"], { EDITOR: invalid });
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /components\[0\]\.routes\[0\]\.bogus: unknown field/);
    assert.match(bad.stderr, /not changed \(the edit is invalid\)/);
    assert.equal(await readFile(file, "utf8"), before);

    const crashed = await cli.run(["service", "edit", "sv2"], { EDITOR: failing });
    failsWith(crashed, 1, /editor sh exited 3/, "failing editor");
    assert.equal(await readFile(file, "utf8"), before);

    const good = ok(await cli.run(["service", "edit", "sv2"], { EDITOR: valid }), "edit");
    assert.match(good.stdout, /saved .*sv2\.toml/);
    assert.equal(await readFile(file, "utf8"), `${before}# edited by test\n`);
    // The top-level shortcut does the same.
    ok(await cli.run(["edit", "sv2"], { EDITOR: valid }), "mcp edit");
    assert.equal(await readFile(file, "utf8"), `${before}# edited by test\n# edited by test\n`);

    failsWith(
      await cli.run(["service", "edit", "sv-nope"], { EDITOR: valid }),
      1,
      /no definition for service "sv-nope"/,
      "unknown service",
    );
  });

  test("service commands: error cases", async () => {
    const cli = await Cli.create(main, "service2");
    await cli.addDeadNode("sv-gone");
    failsWith(
      await cli.run(["service", "show", "sv-nope", "--node", MAIN]),
      1,
      /unknown service "sv-nope" on node sy-main/,
      "unknown",
    );
    failsWith(
      await cli.run(["service", "show", "sv-nope"]),
      1,
      /unknown service "sv-nope" \(nodes that did not answer: sv-gone\)/,
      "unknown anywhere",
    );
    const gone = await cli.run(["service", "show", "sv1", "--node", "sv-gone"]);
    assert.equal(gone.code, 1, gone.stderr);
    assert.match(gone.stderr, notAnsweringStderr("sv-gone"));
    failsWith(
      await cli.run(["service", "export", "sv-nope", "--node", MAIN, "-o", "-"]),
      1,
      /unknown service/,
      "export unknown",
    );
    assert.equal((await cli.run(["service", "export"])).code, 1, "missing argument");
    assert.equal((await cli.run(["service", "frobnicate"])).code, 1, "unknown subcommand");
  });
});
