/**
 * `mcp service export --format kube|compose` against what MCP really runs:
 * a real agent deploys a service whose api has two named routes ($PORT_REST,
 * $PORT_GRPC), user env with a `$` and a volume, and whose web has the
 * unnamed route ($PORT); each container's env page is read over HTTP. The
 * service is exported both ways and undeployed (its host ports and container
 * names free again), then `podman kube play` of the Pod and `podman-compose
 * up -d` of the Compose file must serve the same PORT variables and user env
 * on the same host ports. Both are taken down and checked gone; `after`
 * removes whatever a failure left.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runCommand } from "../../src/util/exec.js";
import {
  LiveAgent,
  httpGet,
  TEST_IMAGE,
  ok,
  parseEnvPage,
  type NodeServicesJson,
} from "../helpers/live-agent.js";

const NODE = "ex-node";
const SERVICE = "ex-svc";
const PORT_RANGE = [23100, 23199];
/** The env the definition gives the api (the `$` must survive Compose's interpolation). */
const API_ENV = { GREETING: "hi $HOME", LOG_LEVEL: "debug" };

function definition(dataDir: string): string {
  const env = Object.entries(API_ENV).map(([k, v]) => JSON.stringify(`${k}=${v}`));
  return [
    `name = "${SERVICE}"`,
    `node = "${NODE}"`,
    "",
    "[[components]]",
    'name = "api"',
    `image = "${TEST_IMAGE}"`,
    `env = [${env.join(", ")}]`,
    `volumes = ["${dataDir}:/data"]`,
    'restart = "always"',
    "",
    "[[components.routes]]",
    'name = "rest"',
    "port = 8443",
    "",
    "[[components.routes]]",
    'name = "grpc"',
    "port = 9443",
    "",
    "[components.health]",
    'type = "exec"',
    'cmd = ["true"]',
    "",
    "[[components]]",
    'name = "web"',
    `image = "${TEST_IMAGE}"`,
    "",
    "[[components.routes]]",
    "port = 443",
    "",
  ].join("\n");
}

/** Names of podman objects of `kind` (`ps -a`, `pod ps`, `network ls`) matching `filter`. */
async function podmanNames(kind: "containers" | "pods", filter: string): Promise<string[]> {
  const argv =
    kind === "containers"
      ? ["podman", "ps", "-a", "--filter", filter, "--format", "{{.Names}}"]
      : ["podman", "pod", "ps", "--filter", filter, "--format", "{{.Name}}"];
  const { stdout } = await runCommand(argv);
  return stdout.split("\n").filter(Boolean).sort();
}

/** What the tests compare: the PORT variables and the user's env of one env page. */
function comparable(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(([k]) => k.startsWith("PORT") || Object.hasOwn(API_ENV, k)),
  );
}

describe(
  "service export: the Pod and the Compose file run what MCP ran",
  { timeout: 300_000 },
  () => {
    let agent: LiveAgent;
    let dir: string;
    let podFile: string;
    let composeFile: string;
    /** `component/route` → host port, and each host port's env page as MCP's container served it. */
    const ports = new Map<string, number>();
    const served = new Map<number, Record<string, string>>();

    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "ex-export-"));
      podFile = path.join(dir, "pod.yaml");
      composeFile = path.join(dir, "compose.yaml");
      agent = await LiveAgent.start({ node: NODE, config: { ports: { range: PORT_RANGE } } });
    });

    after(async () => {
      // Whatever a failure left: the Pod, the Compose containers, the agent's containers.
      for (const argv of [
        ["podman", "pod", "rm", "-f", "-t", "0", SERVICE],
        ["podman", "rm", "-f", "-t", "0", `${SERVICE}_api_1`, `${SERVICE}_web_1`],
      ]) {
        await runCommand(argv).catch(() => undefined);
      }
      await agent.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    async function expectServed(what: string): Promise<void> {
      for (const [key, port] of ports) {
        const env = parseEnvPage(await httpGet(port));
        assert.deepEqual(
          comparable(env),
          comparable(served.get(port) ?? {}),
          `${what}: ${key} on host port ${port} serves other variables than MCP's container`,
        );
      }
    }

    test("deploy through MCP, read its pages, export both formats, undeploy", async () => {
      const dataDir = path.join(agent.dir, "data", SERVICE);
      await agent.addDefinition(SERVICE, definition(dataDir));
      ok(await agent.cli(["deploy", SERVICE]), "deploy");
      const nodes = JSON.parse(
        ok(await agent.cli(["list", "--json"]), "list").stdout,
      ) as NodeServicesJson[];
      for (const c of nodes.flatMap((n) => n.services).flatMap((s) => s.components)) {
        for (const r of c.routes) ports.set(`${c.name}/${r.name || "PORT"}`, r.hostPort);
      }
      assert.deepEqual([...ports.keys()].sort(), ["api/grpc", "api/rest", "web/PORT"]);
      for (const port of ports.values()) served.set(port, parseEnvPage(await httpGet(port)));
      const api = served.get(ports.get("api/rest") ?? 0) ?? {};
      assert.equal(api.PORT_REST, String(ports.get("api/rest")));
      assert.equal(api.PORT_GRPC, String(ports.get("api/grpc")));
      assert.equal(api.GREETING, API_ENV.GREETING);
      assert.equal(served.get(ports.get("web/PORT") ?? 0)?.PORT, String(ports.get("web/PORT")));

      // The shortcut and the full command; kube goes to stdout by default.
      const kube = ok(await agent.cli(["export", SERVICE, "--format", "kube"]), "export kube");
      assert.match(kube.stdout, /^# Kubernetes Pod of MCP service ex-svc/);
      await writeFile(podFile, kube.stdout);
      ok(
        await agent.cli(["service", "export", SERVICE, "--format", "compose", "-o", composeFile]),
        "export compose",
      );
      assert.match(await readFile(composeFile, "utf8"), /^# Compose file of MCP service ex-svc/);
      const again = await agent.cli(["export", SERVICE, "--format", "compose", "-o", composeFile]);
      assert.equal(again.code, 1, "an existing file is not overwritten without --force");
      assert.match(again.stderr, /exists: pass --force/);
      const bad = await agent.cli(["export", SERVICE, "--format", "helm"]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /toml, kube, compose/);

      ok(await agent.cli(["undeploy", SERVICE]), "undeploy");
    });

    test("podman kube play serves the same variables on the same ports; kube down leaves nothing", async () => {
      const play = await runCommand(["podman", "kube", "play", podFile]);
      assert.match(play.stdout, /Pod:/);
      await expectServed("podman kube play");
      await runCommand(["podman", "kube", "down", podFile]);
      assert.deepEqual(await podmanNames("pods", `name=^${SERVICE}$`), []);
      assert.deepEqual(await podmanNames("containers", `pod=${SERVICE}`), []);
      assert.deepEqual(await podmanNames("containers", `name=^${SERVICE}-`), []);
    });

    test("podman-compose up -d serves the same variables on the same ports; down leaves nothing", async () => {
      const project = ["podman-compose", "-p", SERVICE, "-f", composeFile];
      await runCommand([...project, "up", "-d"], { timeoutMs: 120_000 });
      assert.deepEqual(
        await podmanNames("containers", `label=io.podman.compose.project=${SERVICE}`),
        [`${SERVICE}_api_1`, `${SERVICE}_web_1`],
      );
      await expectServed("podman-compose up");
      await runCommand([...project, "down"], { timeoutMs: 120_000 });
      assert.deepEqual(
        await podmanNames("containers", `label=io.podman.compose.project=${SERVICE}`),
        [],
      );
      // The file takes podman's default network: podman-compose made none to leave behind.
      const { stdout } = await runCommand(["podman", "network", "ls", "--format", "{{.Name}}"]);
      assert.ok(!stdout.split("\n").includes(`${SERVICE}_default`), stdout);
    });
  },
);
