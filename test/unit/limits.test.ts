/**
 * Limits on every input of a service definition (src/servicedef/limits.ts),
 * values podman could read as options, echoed values cut short, resource
 * fields, and the agent's stricter `[limits]`.
 */
import assert from "node:assert/strict";
import { writeFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { agentConfigFromObject, renderAgentConfig } from "../../src/config/agent.js";
import { ComponentSpec, ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import {
  BUILTIN_LIMITS,
  LIMIT_KEYS,
  fromServiceSpec,
  parseServiceDef,
  parseSize,
  readServiceDefFile,
  toServiceSpec,
  validateServiceDef,
  validateServiceSpec,
  type Limits,
  type ServiceDef,
} from "../../src/servicedef/index.js";
import { renderServiceDef } from "../../src/servicedef/render.js";
import { at, describe as describeValue, quote } from "../../src/util/checker.js";
import { ValidationError, type Problem } from "../../src/util/errors.js";
import { tempDir } from "../helpers/agent.js";

const B = BUILTIN_LIMITS;
const HEAD = 'name = "svc"\nnode = "local"\n';
const withComponent = (body: string) =>
  `${HEAD}\n[[components]]\nname = "web"\nimage = "localhost/app:v1"\n${body}\n`;
const toml = (v: unknown) => JSON.stringify(v);

/** `path: message` (or `line:col: message`) of every problem; [] when the text is valid. */
function problemsOf(text: string, limits?: Limits): string[] {
  try {
    parseServiceDef(text, "svc.toml", limits ? { limits } : {});
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    assert.equal(err.code, "invalid_definition");
    return err.problems.map(show);
  }
  return [];
}

function show(p: Problem): string {
  if (p.line !== undefined) return `${p.line}:${p.column}: ${p.message}`;
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

const named = (n: number) =>
  Array.from({ length: n }, (_, i) => `[[components.routes]]\nname = "r${i}"\nport = ${i + 1}`);
const components = (n: number) =>
  Array.from({ length: n }, (_, i) => `[[components]]\nname = "c${i}"\nimage = "a/b:v1"`);
const envOf = (n: number, size = 3) =>
  Array.from({ length: n }, (_, i) => `V${i}=${"x".repeat(size - 2 - String(i).length)}`);

/**
 * [limit, a definition at the limit, the same one byte/item over, the problem].
 * Each at-limit definition is valid; each over-limit one has exactly that problem.
 */
const CASES: [string, string, string, string][] = [
  [
    "comment (4 KiB)",
    `comment = ${toml("c".repeat(4096))}\n${withComponent("")}`,
    `comment = ${toml("c".repeat(4097))}\n${withComponent("")}`,
    `comment: expected at most 4096 bytes (4 KiB), got "${"c".repeat(60)}"… (4097 bytes)`,
  ],
  [
    "components (16)",
    `${HEAD}${components(16).join("\n")}`,
    `${HEAD}${components(17).join("\n")}`,
    "components: expected at most 16 components, got 17",
  ],
  [
    "routes per component (64)",
    withComponent(named(64).join("\n")),
    withComponent(named(65).join("\n")),
    "components[0].routes: expected at most 64 routes, got 65",
  ],
  [
    "ports per component (64)",
    withComponent(`ports = ${toml(Array.from({ length: 64 }, (_, i) => `${i + 1}:80`))}`),
    withComponent(`ports = ${toml(Array.from({ length: 65 }, (_, i) => `${i + 1}:80`))}`),
    "components[0].ports: expected at most 64 ports, got 65",
  ],
  [
    "volumes per component (64)",
    withComponent(`volumes = ${toml(Array.from({ length: 64 }, (_, i) => `/a${i}:/b${i}`))}`),
    withComponent(`volumes = ${toml(Array.from({ length: 65 }, (_, i) => `/a${i}:/b${i}`))}`),
    "components[0].volumes: expected at most 64 volumes, got 65",
  ],
  [
    "env entries per component (256)",
    withComponent(`env = ${toml(envOf(256, 5))}`),
    withComponent(`env = ${toml(envOf(257, 5))}`),
    "components[0].env: expected at most 256 entries, got 257",
  ],
  [
    "one env entry (32 KiB)",
    withComponent(`env = ${toml([`A=${"v".repeat(32768 - 2)}`])}`),
    withComponent(`env = ${toml([`A=${"v".repeat(32769 - 2)}`])}`),
    `components[0].env[0]: expected at most 32768 bytes (32 KiB), got "A=${"v".repeat(58)}"… (32769 bytes)`,
  ],
  [
    "cmd arguments (256)",
    withComponent(`cmd = ${toml(Array.from({ length: 256 }, () => "-x"))}`),
    withComponent(`cmd = ${toml(Array.from({ length: 257 }, () => "-x"))}`),
    "components[0].cmd: expected at most 256 arguments, got 257",
  ],
  [
    "one cmd argument (32 KiB)",
    withComponent(`cmd = ${toml(["a".repeat(32768)])}`),
    withComponent(`cmd = ${toml(["a".repeat(32769)])}`),
    `components[0].cmd[0]: expected at most 32768 bytes (32 KiB), got "${"a".repeat(60)}"… (32769 bytes)`,
  ],
  [
    "env and cmd together (256 KiB), bytes not characters",
    // 8 entries of 32 KiB fill it; one more 1-byte argument tips it over.
    withComponent(`env = ${toml(envOf(8, 32768))}`),
    withComponent(`env = ${toml(envOf(8, 32768))}\ncmd = ["é"]`),
    "components[0]: expected env and cmd of at most 262144 bytes (256 KiB) together, got 262146 bytes",
  ],
  [
    "other strings: a volume (4 KiB)",
    withComponent(`volumes = ${toml([`/${"v".repeat(4096 - 4)}:/b`])}`),
    withComponent(`volumes = ${toml([`/${"v".repeat(4096 - 3)}:/b`])}`),
    `components[0].volumes[0]: expected at most 4096 bytes (4 KiB), got "/${"v".repeat(59)}"… (4097 bytes)`,
  ],
  [
    "other strings: an image (4 KiB)",
    withComponent("").replace("localhost/app:v1", `localhost/${"i".repeat(4096 - 13)}:v1`),
    withComponent("").replace("localhost/app:v1", `localhost/${"i".repeat(4096 - 12)}:v1`),
    `components[0].image: expected at most 4096 bytes (4 KiB), got "localhost/${"i".repeat(50)}"… (4097 bytes)`,
  ],
  [
    "route names (63 characters)",
    withComponent(`[[components.routes]]\nname = "${"r".repeat(63)}"\nport = 1`),
    withComponent(`[[components.routes]]\nname = "${"r".repeat(64)}"\nport = 1`),
    `components[0].routes[0].name: expected a route name of lowercase letters, digits, "_" and "-" (1-63 chars, not starting with "_" or "-"), got "${"r".repeat(60)}"… (64 bytes)`,
  ],
];

describe("limits: at the limit accepted, one over refused with path and expected value", () => {
  for (const [limit, atLimit, over, problem] of CASES) {
    test(limit, () => {
      assert.deepEqual(problemsOf(atLimit), []);
      assert.deepEqual(problemsOf(over), [problem]);
    });
  }

  test("the definition file (1 MiB) is measured first: an over-size file is not parsed", () => {
    const base = withComponent("");
    const pad = (n: number) => `${base}#${"p".repeat(n - Buffer.byteLength(base) - 2)}\n`;
    assert.equal(Buffer.byteLength(pad(B.maxDefinitionBytes)), 1048576);
    assert.deepEqual(problemsOf(pad(B.maxDefinitionBytes)), []);
    // One byte more, and broken TOML too: only the size is reported.
    assert.deepEqual(problemsOf(`${pad(B.maxDefinitionBytes + 1)}[[[`), [
      "expected a file of at most 1048576 bytes (1 MiB), got 1048580 bytes",
    ]);
  });

  test("readServiceDefFile refuses an over-size file before reading it", async () => {
    const dir = await tempDir("mcp-limits-");
    try {
      const file = join(dir, "big.toml");
      await writeFile(file, Buffer.alloc(B.maxDefinitionBytes + 1, "#"));
      await assert.rejects(readServiceDefFile(file), (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.equal(err.code, "invalid_definition");
        assert.equal(
          err.message,
          `${file}: expected a file of at most 1048576 bytes (1 MiB), got 1048577 bytes`,
        );
        return true;
      });
      await writeFile(file, withComponent(""));
      assert.equal(await readServiceDefFile(file), withComponent(""));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the spec's encoded size, checked by validateServiceSpec", () => {
    const spec = toServiceSpec(parseServiceDef(`comment = "x"\n${withComponent("")}`, "x"));
    const size = ServiceSpec.encode(spec).finish().length;
    const limits = { ...B, maxDefinitionBytes: size };
    assert.deepEqual(validateServiceSpec(spec, { limits }), []);
    assert.deepEqual(
      validateServiceSpec(spec, { limits: { ...limits, maxDefinitionBytes: size - 1 } }),
      [
        {
          path: "",
          message: `expected a spec of at most ${size - 1} bytes encoded, got ${size} bytes`,
        },
      ],
    );
    // With the built-ins: 16 components of 256 KiB of env each are 4 MiB on the wire.
    const env = envOf(8, 32768);
    const big: ServiceSpec = {
      ...spec,
      components: Array.from({ length: 16 }, (_, i) =>
        ComponentSpec.fromPartial({ name: `c${i}`, image: "a/b:v1", env }),
      ),
    };
    assert.deepEqual(validateServiceSpec(big).map(show), [
      `expected a spec of at most 1048576 bytes (1 MiB) encoded, got ${ServiceSpec.encode(big).finish().length} bytes`,
    ]);
  });

  test("a spec holding numbers the wire cannot carry is refused, not thrown on", () => {
    const spec = toServiceSpec(
      parseServiceDef(withComponent("[[components.routes]]\nport = 1"), "x"),
    );
    const c = spec.components[0];
    assert.ok(c?.routes[0]);
    c.pids = 1.5;
    c.routes[0].port = 2 ** 40;
    assert.deepEqual(validateServiceSpec(spec).map(show), [
      "components[0].pids: expected an integer 1-4194304, got 1.5",
      "components[0].routes[0].port: expected an integer 1-65535, got 1099511627776",
    ]);
  });

  test("at most 100 problems are listed, then how many more", () => {
    const bad = Array.from({ length: 150 }, (_, i) => `BAD-${i}`);
    const got = problemsOf(withComponent(`env = ${toml(bad)}`));
    assert.equal(got.length, 101);
    assert.match(got[0] ?? "", /^components\[0\]\.env\[0\]: expected "KEY=VALUE"/);
    assert.equal(got[100], "… and 50 more problems");
  });

  test("the limits passed in options apply (the agent's stricter ones)", () => {
    const limits: Limits = { ...B, maxRoutesPerComponent: 2, maxCommentBytes: 3 };
    const text = `comment = "four"\n${withComponent(named(3).join("\n"))}`;
    assert.deepEqual(problemsOf(text, limits), [
      'comment: expected at most 3 bytes, got "four" (4 bytes)',
      "components[0].routes: expected at most 2 routes, got 3",
    ]);
    assert.deepEqual(problemsOf(text), []);
    const spec = toServiceSpec(parseServiceDef(text, "x"));
    assert.deepEqual(validateServiceSpec(spec, { limits }).map(show), [
      'comment: expected at most 3 bytes, got "four" (4 bytes)',
      "components[0].routes: expected at most 2 routes, got 3",
    ]);
  });
});

describe("values echoed in problems are cut short", () => {
  test("quote and describe: at most 60 characters, then the size", () => {
    assert.equal(quote("short"), '"short"');
    assert.equal(quote("short", true), '"short" (5 bytes)');
    assert.equal(describeValue("x".repeat(1_000_000)), `"${"x".repeat(60)}"… (1000000 bytes)`);
    // Escapes count towards the 60; a surrogate pair is never split.
    assert.equal(quote("\n".repeat(40)), `"${"\\n".repeat(30)}"… (40 bytes)`);
    assert.equal(quote("😀".repeat(40)), `"${"😀".repeat(30)}"… (160 bytes)`);
    assert.equal(describeValue(12), "12");
  });

  test("a refused 1 MB value is not echoed back", () => {
    const text = withComponent(`user = ${toml("u".repeat(1_000_000))}`);
    const got = problemsOf(text);
    assert.equal(got.length, 1);
    assert.ok((got[0] ?? "").length < 200, got[0]);
    assert.match(
      got[0] ?? "",
      /^components\[0\]\.user: expected at most 4096 bytes .*\(1000000 bytes\)$/,
    );
  });

  test("paths of odd or long unknown keys are quoted and cut short", () => {
    assert.equal(at("", "imagee"), "imagee");
    assert.equal(at("a", "b c"), 'a."b c"');
    assert.equal(at("", "k".repeat(100)), `"${"k".repeat(60)}"… (100 bytes)`);
    const text = `${toml("k\n".repeat(50_000))} = 1\n${withComponent("")}`;
    assert.deepEqual(problemsOf(text), [`"${"k\\n".repeat(20)}"… (100000 bytes): unknown field`]);
  });
});

describe("values podman could read as options are refused", () => {
  const cases: [string, string, RegExp][] = [
    ['user = "--privileged"', "components[0].user", /expected "user" or "user:group"/],
    ['user = "-u"', "components[0].user", /expected "user"/],
    ['user = "app:-g"', "components[0].user", /expected "user"/],
    ['user = ".hidden"', "components[0].user", /expected "user"/],
    ['network = "--network=host"', "components[0].network", /expected a network name/],
    ['network = "-n"', "components[0].network", /expected a network name/],
    ['restart = "-always"', "components[0].restart", /expected "no", "always"/],
    ['memory = "-1m"', "components[0].memory", /expected a size like "256m"/],
    ['env = ["-e=1"]', "components[0].env[0]", /expected "KEY=VALUE"/],
    ['volumes = ["-v:/x"]', "components[0].volumes[0]", /expected "\/host\/path/],
    ['ports = ["-p"]', "components[0].ports[0]", /expected "\[ip:\]hostPort/],
  ];
  for (const [field, path, message] of cases) {
    test(field, () => {
      const got = problemsOf(withComponent(field));
      assert.equal(got.length, 1, got.join("\n"));
      assert.ok(got[0]?.startsWith(`${path}: `), got[0]);
      assert.match(got[0] ?? "", message);
    });
  }

  test("names, node and image starting with -", () => {
    assert.deepEqual(
      problemsOf(
        withComponent("")
          .replace('name = "svc"', 'name = "-svc"')
          .replace('node = "local"', 'node = "--node"')
          .replace('name = "web"', 'name = "-web"')
          .replace("localhost/app:v1", "--privileged:v1"),
      ).map((p) => p.slice(0, p.indexOf(":"))),
      ["name", "node", "components[0].name", "components[0].image"],
    );
  });

  test("NUL, which no argv string can carry, is refused in env, cmd and volumes", () => {
    assert.deepEqual(
      problemsOf(
        withComponent('env = ["A=x\\u0000y"]\ncmd = ["a\\u0000"]\nvolumes = ["/a\\u0000:/b"]'),
      ),
      [
        'components[0].volumes[0]: expected a string without NUL characters, got "/a\\u0000:/b"',
        'components[0].cmd[0]: expected a string without NUL characters, got "a\\u0000"',
        'components[0].env[0]: expected a string without NUL characters, got "A=x\\u0000y"',
      ],
    );
  });

  test("ordinary values still pass", () => {
    const body = [
      'user = "_apt:0"',
      'network = "podman"',
      'restart = "on-failure:3"',
      'cmd = ["--config", "-v"]',
      'env = ["OPTS=--verbose"]',
    ].join("\n");
    assert.deepEqual(problemsOf(withComponent(body)), []);
  });
});

describe("resources: memory, cpus, pids", () => {
  const body = 'memory = "256m"\ncpus = 0.5\npids = 128';

  test("parsed, and checked against their bounds", () => {
    const def = parseServiceDef(withComponent(body), "x");
    assert.deepEqual(def.components[0], {
      name: "web",
      image: "localhost/app:v1",
      memory: "256m",
      cpus: 0.5,
      pids: 128,
    });
    const ok = ['memory = "6m"', 'memory = "1024g"', 'memory = "512M"', 'memory = "6291456b"'];
    ok.push("cpus = 0.01", "cpus = 1024", "cpus = 2", "pids = 1", "pids = 4194304");
    for (const line of ok) assert.deepEqual(problemsOf(withComponent(line)), [], line);

    const memory =
      'expected a size like "256m" (a whole number and b, k, m or g) from "6m" to "1024g"';
    const cpus = "expected a number of CPUs from 0.01 to 1024";
    const bad: [string, string][] = [
      ['memory = "5m"', `memory: ${memory}, got "5m"`],
      ['memory = "1025g"', `memory: ${memory}, got "1025g"`],
      ['memory = "256"', `memory: ${memory}, got "256"`],
      ['memory = "1.5g"', `memory: ${memory}, got "1.5g"`],
      ['memory = "256 m"', `memory: ${memory}, got "256 m"`],
      ['memory = "99999999999999999g"', `memory: ${memory}, got "99999999999999999g"`],
      ["memory = 256", `memory: ${memory}, got 256`],
      ["cpus = 0", `cpus: ${cpus}, got 0`],
      ["cpus = 0.001", `cpus: ${cpus}, got 0.001`],
      ["cpus = -1", `cpus: ${cpus}, got -1`],
      ["cpus = 1024.5", `cpus: ${cpus}, got 1024.5`],
      ["cpus = inf", `cpus: ${cpus}, got Infinity`],
      ["cpus = nan", `cpus: ${cpus}, got NaN`],
      ['cpus = "1"', `cpus: ${cpus}, got "1"`],
      ["pids = 0", "pids: expected an integer 1-4194304, got 0"],
      ["pids = -1", "pids: expected an integer 1-4194304, got -1"],
      ["pids = 1.5", "pids: expected an integer 1-4194304, got 1.5"],
      ["pids = 4194305", "pids: expected an integer 1-4194304, got 4194305"],
    ];
    for (const [line, problem] of bad) {
      assert.deepEqual(problemsOf(withComponent(line)), [`components[0].${problem}`], line);
    }
  });

  test("def → spec → def and def → spec → wire → def are exact", () => {
    const def = parseServiceDef(withComponent(body), "x");
    const spec = toServiceSpec(def);
    assert.equal(spec.components[0]?.memory, "256m");
    assert.equal(spec.components[0]?.cpus, 0.5);
    assert.equal(spec.components[0]?.pids, 128);
    assert.deepEqual(fromServiceSpec(spec), def);
    const wire = ServiceSpec.decode(ServiceSpec.encode(spec).finish());
    assert.deepEqual(fromServiceSpec(wire), def);
    assert.deepEqual(validateServiceSpec(wire), []);
    // The proto defaults ("" and 0) read back as absent.
    const none = fromServiceSpec(toServiceSpec(parseServiceDef(withComponent(""), "x")));
    assert.deepEqual(Object.keys(none.components[0] ?? {}), ["name", "image"]);
  });

  test("render → parse is exact, for awkward cpus values too", () => {
    for (const cpus of [0.5, 2, 0.30000000000000004, 1023.9999999999999, 0.01]) {
      const def: ServiceDef = {
        name: "svc",
        node: "local",
        components: [{ name: "web", image: "localhost/app:v1", memory: "1g", cpus, pids: 7 }],
      };
      const text = renderServiceDef(def);
      assert.match(text, /\nmemory = "1g"\ncpus = .*\npids = 7\n/);
      assert.deepEqual(parseServiceDef(text, "x"), def);
    }
  });

  test("a received spec with bad resources is refused with the field path", () => {
    const spec = toServiceSpec(parseServiceDef(withComponent(body), "x"));
    const c = spec.components[0];
    assert.ok(c);
    Object.assign(c, { memory: "lots", cpus: -0.5, pids: -3 });
    assert.deepEqual(
      validateServiceSpec(spec).map((p) => p.path),
      ["components[0].memory", "components[0].cpus", "components[0].pids"],
    );
  });

  test("parseSize", () => {
    assert.equal(parseSize("10m"), 10 * 1024 * 1024);
    assert.equal(parseSize("1G"), 1024 ** 3);
    assert.equal(parseSize("64k"), 65536);
    assert.equal(parseSize("7b"), 7);
    for (const bad of ["", "m", "0m", "01m", "1.5m", "1mb", "1 m", "-1m", "1t", "10"]) {
      assert.equal(parseSize(bad), undefined, bad);
    }
  });
});

describe("agent config: [limits] and [containers]", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir("mcp-limits-config-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const base = {
    agent: { node_name: "rift" },
    server: { tls_cert: "/c.pem", tls_key: "/k.pem" },
    database: { path: "/mcp.db" },
    auth: { tokens_file: "/t.toml" },
  };
  const load = (extra: Record<string, unknown>) =>
    agentConfigFromObject({ ...base, ...extra }, "/", "mcp-agent.toml");
  function configProblems(extra: Record<string, unknown>): Problem[] {
    try {
      load(extra);
    } catch (err) {
      assert.ok(err instanceof ValidationError, String(err));
      assert.equal(err.code, "invalid_config");
      return err.problems;
    }
    assert.fail("expected a ValidationError");
  }

  test("defaults: the built-in limits and a 10m log cap", () => {
    const cfg = load({});
    assert.deepEqual(cfg.limits, BUILTIN_LIMITS);
    assert.deepEqual(cfg.containers, { logMaxSize: "10m" });
  });

  test("stricter limits are accepted, every key named after its limit", () => {
    const table = Object.fromEntries(Object.values(LIMIT_KEYS).map((k) => [k, 2]));
    const cfg = load({ limits: table });
    for (const name of Object.keys(LIMIT_KEYS) as (keyof Limits)[]) {
      assert.equal(cfg.limits[name], 2, name);
    }
    const one = load({ limits: { max_routes_per_component: 8, max_definition_bytes: 65536 } });
    assert.deepEqual(one.limits, {
      ...BUILTIN_LIMITS,
      maxRoutesPerComponent: 8,
      maxDefinitionBytes: 65536,
    });
    assert.deepEqual(load({ limits: { max_components: 16 } }).limits, BUILTIN_LIMITS);
  });

  test("a looser limit is a config error naming the key and the built-in maximum", () => {
    const byPath = (a: Problem, b: Problem) => a.path.localeCompare(b.path);
    assert.deepEqual(
      configProblems({
        limits: {
          max_routes_per_component: 65,
          max_definition_bytes: 2 * 1024 * 1024,
          max_components: 0,
          max_env_entry_bytes: "1k",
          max_cmd_args: 1.5,
          max_everything: 1,
        },
      }).sort(byPath),
      [
        {
          path: "limits.max_definition_bytes",
          message:
            "expected at most 1048576, the built-in limit ([limits] can only lower it), got 2097152",
        },
        { path: "limits.max_components", message: "expected an integer 1-16, got 0" },
        {
          path: "limits.max_routes_per_component",
          message: "expected at most 64, the built-in limit ([limits] can only lower it), got 65",
        },
        { path: "limits.max_env_entry_bytes", message: 'expected an integer 1-32768, got "1k"' },
        { path: "limits.max_cmd_args", message: "expected an integer 1-256, got 1.5" },
        { path: "limits.max_everything", message: "unknown key" },
      ].sort(byPath),
    );
  });

  test("log_max_size: a podman size from 64k", () => {
    assert.equal(load({ containers: { log_max_size: "64k" } }).containers.logMaxSize, "64k");
    assert.equal(load({ containers: { log_max_size: "1G" } }).containers.logMaxSize, "1G");
    for (const bad of ["10", "63k", "-1m", "10 m", 10]) {
      const got = configProblems({ containers: { log_max_size: bad } });
      assert.equal(got.length, 1);
      assert.equal(got[0]?.path, "containers.log_max_size");
      assert.match(
        got[0]?.message ?? "",
        /^expected a size like "10m" .* from "64k" to "1024g", got /,
      );
    }
  });

  test("render → load round-trips; only stricter limits are written", async () => {
    const cfg = load({ limits: { max_components: 4 }, containers: { log_max_size: "2m" } });
    const text = renderAgentConfig(cfg);
    assert.match(text, /\[containers\]\nlog_max_size = "2m"\n/);
    assert.match(text, /\[limits\]\nmax_components = 4\n/);
    assert.doesNotMatch(text, /max_routes_per_component/);
    assert.doesNotMatch(renderAgentConfig(load({})), /\[limits\]/);
    const file = join(dir, "mcp-agent.toml");
    await writeFile(file, text);
    const { loadAgentConfig } = await import("../../src/config/agent.js");
    assert.deepEqual(await loadAgentConfig(file), cfg);
  });
});

test("validateServiceDef on a plain object honours the limits too", () => {
  const value = {
    name: "svc",
    node: "local",
    components: [{ name: "web", image: "a/b:v1", routes: Array.from({ length: 65 }, () => ({})) }],
  };
  assert.deepEqual(validateServiceDef(value).problems, [
    { path: "components[0].routes", message: "expected at most 64 routes, got 65" },
  ]);
});
