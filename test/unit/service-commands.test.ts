/**
 * renderServiceDef (TOML rendering that parseServiceDef round-trips) and the
 * pure parts of `mcp sync`, `mcp adopt`, `mcp purge`, `mcp service`.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { formatAdoptResults } from "../../src/cli/commands/adopt.js";
import { definedComponents, formatPurgeResults } from "../../src/cli/commands/purge.js";
import {
  checkEdited,
  definitionOf,
  editorArgv,
  formatServiceShow,
  serviceEditCommand,
} from "../../src/cli/commands/service.js";
import { CliContext } from "../../src/cli/context.js";
import {
  formatSyncResults,
  groupByNode,
  loadAllDefinitions,
  nodeError,
} from "../../src/cli/commands/sync.js";
import { deployCommand, nodeOfService, undeployCommand } from "../../src/cli/commands/deploy.js";
import { lifecycleCommand } from "../../src/cli/commands/lifecycle.js";
import { statusCommand } from "../../src/cli/commands/status.js";
import type { LoadedDefinition } from "../../src/cli/context.js";
import type { ServiceInfo } from "../../src/gen/mcp/v1/mcp.js";
import { parseServiceDef } from "../../src/servicedef/parse.js";
import { renderServiceDef, tomlString } from "../../src/servicedef/render.js";
import { toServiceSpec, fromServiceSpec } from "../../src/servicedef/spec.js";
import type { ServiceDef } from "../../src/servicedef/types.js";

const read = (file: string) => parseServiceDef(readFileSync(file, "utf8"), file);
const FILES = [
  "examples/hello.toml",
  "examples/multi.toml",
  "examples/legacy.toml",
  "test/fixtures/defs/full.toml",
  "test/fixtures/defs/commented.toml",
];

describe("renderServiceDef", () => {
  for (const file of FILES) {
    test(`round-trips ${file}`, () => {
      const def = read(file);
      const text = renderServiceDef(def);
      assert.deepEqual(parseServiceDef(text, "rendered.toml"), def);
      // And through the wire form, as `mcp service export` does.
      assert.deepEqual(
        parseServiceDef(renderServiceDef(fromServiceSpec(toServiceSpec(def))), "x.toml"),
        fromServiceSpec(toServiceSpec(def)),
      );
    });
  }

  test("escapes what TOML needs escaped", () => {
    assert.equal(tomlString('a"b\\c\nd\te\u0001\u007f'), '"a\\"b\\\\c\\nd\\te\\u0001\\u007f"');
    const def: ServiceDef = {
      name: "sv-esc",
      node: "local",
      comment: 'quote " back \\ newline \n del \u007f unicode é ☃',
      build: { images: { "app.v2": "Dockerfile" } },
      components: [
        {
          name: "app",
          image: "localhost/app.v2:v1",
          cmd: ["sh", "-c", "echo \"$HOME\" 'x'"],
          env: ["A=b=c", "EMPTY="],
        },
      ],
    };
    assert.deepEqual(parseServiceDef(renderServiceDef(def), "esc.toml"), def);
  });

  test("layout: top-level keys, then components and their routes", () => {
    const text = renderServiceDef(read("examples/hello.toml"));
    assert.equal(
      text,
      [
        'name = "hello"',
        'node = "local"',
        "",
        "[[components]]",
        'name = "web"',
        'image = "localhost/mcp-httpenv:v1"',
        "",
        "[[components.routes]]",
        "port = 443",
        'mode = "l7"',
        "",
      ].join("\n"),
    );
  });
});

function info(def: ServiceDef, active = true): ServiceInfo {
  const spec = { ...toServiceSpec(def), active };
  return {
    name: def.name,
    active,
    comment: "",
    spec,
    bindAddress: "127.0.0.1",
    components: spec.components.map((c, i) => ({
      name: c.name,
      image: c.image,
      version: "v1",
      desiredState: "running",
      observedState: "running",
      startedAt: undefined,
      routes: c.routes.map((r) => ({ ...r, hostPort: i === 0 ? 12000 + r.port : 0 })),
      container: `${def.name}-${c.name}`,
      ports: c.ports,
      health: "",
      healthOutput: "",
      healthCheckedAt: undefined,
    })),
  };
}

describe("mcp service (pure parts)", () => {
  test("show: the definition with host ports and states as comments, still valid TOML", () => {
    const def = read("examples/multi.toml");
    const text = formatServiceShow("local", info(def));
    assert.match(text, /^# service multi as held by the agent on node local\n/);
    assert.match(text, /# host port 20443 \(\$PORT_REST\)/);
    assert.match(text, /# host port 21443 \(\$PORT_GRPC\)/);
    assert.match(text, /# no host port allocated \(\$PORT\)/);
    assert.match(text, /# desired running, observed running, container multi-api/);
    // multi/api mounts a volume: stop-first unless it says otherwise.
    assert.match(text, /container multi-api\n# strategy stop-first \(the default\)\n/);
    assert.match(text, /container multi-web\n# strategy start-first \(the default\)\n/);
    assert.deepEqual(parseServiceDef(text, "show.toml"), def);
  });

  test("show: an explicit strategy and a health check, still valid TOML", () => {
    const def: ServiceDef = {
      name: "hc",
      node: "local",
      components: [
        {
          name: "web",
          image: "localhost/app:v1",
          strategy: "stop-first",
          health: { type: "http", path: "/up", deadline: "30s" },
          routes: [{ port: 443 }],
        },
      ],
    };
    const text = formatServiceShow("local", info(def));
    assert.match(text, /# strategy stop-first\n/);
    assert.match(
      text,
      /\n\[components\.health\]\ntype = "http"\npath = "\/up"\ndeadline = "30s"\n/,
    );
    assert.deepEqual(parseServiceDef(text, "show.toml"), def);
  });

  test("show: memory, cpus and pids are shown as the definition says them", () => {
    const def: ServiceDef = {
      name: "res",
      node: "local",
      components: [{ name: "web", image: "localhost/app:v1", memory: "256m", cpus: 0.5, pids: 64 }],
    };
    const text = formatServiceShow("local", info(def));
    assert.match(text, /\nmemory = "256m"\ncpus = 0\.5\npids = 64\n/);
    assert.deepEqual(parseServiceDef(text, "show.toml"), def);
  });

  test("export: active = true (the default) is left out, false is kept", () => {
    const def = read("examples/hello.toml");
    assert.deepEqual(definitionOf(info(def, true)), def);
    assert.equal(definitionOf(info(def, false)).active, false);
    assert.throws(() => definitionOf({ ...info(def), spec: undefined }), /no spec/);
  });

  test("edit: $EDITOR split on spaces, vi by default; edited text checked", () => {
    assert.deepEqual(editorArgv(undefined), ["vi"]);
    assert.deepEqual(editorArgv("  "), ["vi"]);
    assert.deepEqual(editorArgv("code --wait"), ["code", "--wait"]);
    const ok = readFileSync("examples/hello.toml", "utf8");
    assert.deepEqual(checkEdited(ok, "hello.toml", "hello"), []);
    assert.deepEqual(checkEdited(ok, "other.toml", "other"), [
      'other.toml: name is "hello", expected "other" (the file name)',
    ]);
    const bad = checkEdited(ok + "bogus = 1\n", "hello.toml", "hello");
    assert.equal(bad.length, 1);
    assert.match(bad[0] ?? "", /^hello\.toml: .*bogus.*unknown field/);
  });
});

describe("mcp sync / adopt / purge output", () => {
  test("sync results per node", () => {
    const results = [
      { name: "a", changed: true, summary: "1 change", changes: ["web: image x:v1 → x:v2"] },
      { name: "b", changed: false, summary: "unchanged", changes: [] },
    ];
    assert.equal(
      formatSyncResults("local", results, true),
      "node local (dry run):\n  a: would be 1 change\n    web: image x:v1 → x:v2\n  b: unchanged\n",
    );
    assert.equal(
      formatSyncResults("local", results, false),
      "node local:\n  a: 1 change\n    web: image x:v1 → x:v2\n  b: unchanged\n",
    );
    assert.equal(
      nodeError("b", ["node b (127.0.0.1:1) unreachable: refused"]),
      "mcp: node b (127.0.0.1:1) unreachable: refused\n",
    );
    assert.equal(nodeError("b", ["boom", "more"]), "mcp: node b: boom\nmcp:   more\n");
  });

  test("adopt results", () => {
    assert.equal(
      formatAdoptResults([
        { container: "x-web", component: "web", success: true, error: "", outcome: "adopted" },
        {
          container: "x-db",
          component: "db",
          success: true,
          error: "x/db is already managed",
          outcome: "skipped",
        },
        { container: "x-Q", component: "Q", success: false, error: "bad", outcome: "error" },
      ]),
      "  x-web → web: adopted\n  x-db → db: skipped: x/db is already managed\n  x-Q → Q: error: bad\n",
    );
  });

  test("purge: defined components per node; results", () => {
    const loaded = (text: string): LoadedDefinition => ({
      def: parseServiceDef(text, "x.toml"),
      file: "x.toml",
      text,
    });
    const defs = [
      loaded(readFileSync("examples/multi.toml", "utf8")),
      loaded(readFileSync("examples/hello.toml", "utf8").replace('node = "local"', 'node = "b"')),
    ];
    assert.deepEqual(definedComponents(defs, "local"), ["multi/api", "multi/web"]);
    assert.deepEqual(definedComponents(defs, "b"), ["hello/web"]);
    assert.equal(
      formatPurgeResults(
        "local",
        [
          { service: "s", component: "web", purged: true, reason: "gone" },
          { service: "s", component: "api", purged: false, reason: "container is running" },
          { service: "s", component: "", purged: true, reason: "its last component goes" },
        ],
        true,
      ),
      "node local (dry run):\n  s/web: would purge: gone\n  s/api: not purged: container is running\n  s (service): would purge: its last component goes\n",
    );
    assert.equal(formatPurgeResults("n", [], false), "node n:\n  nothing registered\n");
  });
});

describe("mcp service edit (interactive path)", () => {
  const dir = mkdtempSync(join(tmpdir(), "mcp-sv-edit-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const services = join(dir, "services");
  mkdirSync(services);
  writeFileSync(join(dir, "mcp.toml"), `[services]\ndir = "${services}"\n`);
  const hello = readFileSync("examples/hello.toml", "utf8");
  // First run appends an invalid line; every later run replaces it with a comment.
  const editor = join(dir, "editor.sh");
  writeFileSync(
    editor,
    [
      "#!/bin/sh",
      `count="${dir}/count"`,
      'n=$(cat "$count" 2>/dev/null || echo 0); echo $((n + 1)) > "$count"',
      'if [ "$n" = 0 ]; then printf \'bogus = 1\\n\' >> "$1"; else sed -i \'s/^bogus = 1$/# fixed/\' "$1"; fi',
      "",
    ].join("\n"),
  );

  function run(answers: string[]) {
    rmSync(join(dir, "count"), { force: true });
    writeFileSync(join(services, "hello.toml"), hello);
    const out: string[] = [];
    const err: string[] = [];
    const asked: string[] = [];
    const ctx = new CliContext(join(dir, "mcp.toml"), {
      out: (t) => void out.push(t),
      err: (t) => void err.push(t),
    });
    const code = serviceEditCommand(ctx, "hello", {
      editor: `sh ${editor}`,
      isTTY: true,
      ask: (q) => {
        asked.push(q);
        return Promise.resolve(answers.shift() ?? "a");
      },
    });
    return { code, out, err, asked };
  }

  test("invalid → asked → edit again → valid → saved", async () => {
    const r = run(["e"]);
    assert.equal(await r.code, 0, r.err.join(""));
    assert.deepEqual(r.asked, ["(e)dit again or (a)bort? [e] "]);
    assert.match(r.err.join(""), /bogus: unknown field/);
    assert.equal(readFileSync(join(services, "hello.toml"), "utf8"), `${hello}# fixed\n`);
  });

  test("invalid → asked → abort → file untouched", async () => {
    const r = run(["a"]);
    assert.equal(await r.code, 1);
    assert.equal(r.asked.length, 1);
    assert.equal(readFileSync(join(services, "hello.toml"), "utf8"), hello);
  });
});

describe("a definition naming an unknown node", () => {
  const dir = mkdtempSync(join(tmpdir(), "mcp-unknown-node-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const services = join(dir, "services");
  mkdirSync(services);
  const config = join(dir, "mcp.toml");
  writeFileSync(
    config,
    [
      `[services]\ndir = "${services}"`,
      `[tls]\nca_cert = "${join(dir, "ca.pem")}"`,
      `[auth]\ntoken_path = "${join(dir, "token")}"`,
      '[[nodes]]\nname = "a"\naddress = "127.0.0.1:1"',
      '[[nodes]]\nname = "b"\naddress = "127.0.0.1:2"',
      "",
    ].join("\n"),
  );
  const web = join(services, "web.toml");
  const text = readFileSync("examples/hello.toml", "utf8")
    .replace('name = "hello"', 'name = "web"')
    .replace('node = "local"', 'node = "x"');
  writeFileSync(web, text);
  const expected = `${web}: node: unknown node "x" (known: a, b)`;
  const ctx = () => new CliContext(config, { out: () => undefined, err: () => undefined });

  test("deploy, status, undeploy, logs name the file and the field", async () => {
    await assert.rejects(deployCommand(ctx(), "web", {}), { code: "not_found", message: expected });
    await assert.rejects(statusCommand(ctx(), "web", {}), { message: expected });
    await assert.rejects(undeployCommand(ctx(), "web", {}), { message: expected });
    // --node is a command-line argument, not the file's problem.
    await assert.rejects(undeployCommand(ctx(), "web", { node: "zz" }), {
      message: 'unknown node "zz" (configured nodes: a, b)',
    });
  });

  test("no definition: --node is needed with several nodes, not with one", async () => {
    await assert.rejects(nodeOfService(ctx(), "nodef", undefined), {
      code: "not_found",
      message: 'no definition for service "nodef": pass --node <node> to say where it runs',
    });
    const single = join(dir, "single.toml");
    writeFileSync(
      single,
      readFileSync(config, "utf8").replace('[[nodes]]\nname = "b"\naddress = "127.0.0.1:2"', ""),
    );
    const one = new CliContext(single, { out: () => undefined, err: () => undefined });
    assert.equal((await nodeOfService(one, "nodef", undefined)).name, "a");
  });

  test("stop does not flip active in a file whose node is unknown", async () => {
    await assert.rejects(lifecycleCommand(ctx(), "stop", "web"), { message: expected });
    assert.equal(readFileSync(web, "utf8"), text);
  });

  test("sync lists it as a problem of that file", async () => {
    const c = ctx();
    const { definitions } = await loadAllDefinitions(c);
    assert.deepEqual((await groupByNode(c, definitions)).problems, [expected]);
  });

  test("an over-size definition is refused before it is read", async () => {
    const big = join(services, "big.toml");
    writeFileSync(big, Buffer.alloc(1024 * 1024 + 1, "#"));
    try {
      await assert.rejects(deployCommand(ctx(), "big", {}), {
        code: "invalid_definition",
        message: `${big}: expected a file of at most 1048576 bytes (1 MiB), got 1048577 bytes`,
      });
    } finally {
      rmSync(big);
    }
  });
});
