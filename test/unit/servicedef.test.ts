import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse } from "smol-toml";
import { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import {
  formatRouteMapping,
  fromServiceSpec,
  imageName,
  imageVersion,
  loadServiceDefFile,
  parseImageRef,
  parsePortMapping,
  parseServiceDef,
  portEnv,
  routeEnvName,
  setActiveInText,
  toServiceSpec,
  validateServiceDef,
  validateServiceSpec,
  type ServiceDef,
} from "../../src/servicedef/index.js";
import { diffComponentSpec } from "../../src/servicedef/diff.js";
import { renderServiceDef } from "../../src/servicedef/render.js";
import { McpError, ValidationError, type Problem } from "../../src/util/errors.js";

const root = new URL("../../", import.meta.url);
const read = (rel: string) => readFileSync(new URL(rel, root), "utf8");
const example = (name: string) => `examples/${name}.toml`;
const fixture = (name: string) => `test/fixtures/defs/${name}.toml`;

const HEAD = 'name = "svc"\nnode = "local"\n';
/** A service with one component `web` whose body (fields, routes) is `body`. */
const withComponent = (body: string) =>
  `${HEAD}\n[[components]]\nname = "web"\nimage = "localhost/app:v1"\n${body}\n`;

/** The problems of a definition as `path: message` lines (`line:col: message` for syntax). */
function problemsOf(text: string, opts?: { allowLatest?: boolean }): string[] {
  try {
    parseServiceDef(text, "svc.toml", opts);
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    assert.equal(err.code, "invalid_definition");
    assert.equal(err.file, "svc.toml");
    return err.problems.map(show);
  }
  return [];
}

function show(p: Problem): string {
  if (p.line !== undefined) return `${p.line}:${p.column}: ${p.message}`;
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

const NAME_MSG =
  'expected a name of lowercase letters, digits and "-" (1-63 chars, no "-" at either end)';

/** [rule, definition, expected problems]; one test each. */
const RULES: [string, string, string[]][] = [
  // top level
  [
    "name is required",
    `node = "local"\n[[components]]\nname = "web"\nimage = "a/b:v1"`,
    ["name: required"],
  ],
  [
    "name must be a valid name",
    withComponent("").replace('"svc"', '"My_Svc"'),
    [`name: ${NAME_MSG}, got "My_Svc"`],
  ],
  [
    "name is at most 63 chars",
    withComponent("").replace('"svc"', `"${"a".repeat(64)}"`),
    // Long values are echoed cut short, with their size.
    [`name: ${NAME_MSG}, got "${"a".repeat(60)}"… (64 bytes)`],
  ],
  [
    "name may not end with -",
    withComponent("").replace('"svc"', '"svc-"'),
    [`name: ${NAME_MSG}, got "svc-"`],
  ],
  ["node is required", withComponent("").replace('node = "local"\n', ""), ["node: required"]],
  [
    "node must be non-empty",
    withComponent("").replace('"local"', '""'),
    [`node: ${NAME_MSG}, got ""`],
  ],
  ["name must be a string", withComponent("").replace('"svc"', "5"), [`name: ${NAME_MSG}, got 5`]],
  [
    "active must be a boolean",
    `active = "yes"\n${withComponent("")}`,
    ['active: expected a boolean, got "yes"'],
  ],
  [
    "comment must be a string",
    `comment = 1\n${withComponent("")}`,
    ["comment: expected a string, got 1"],
  ],
  [
    "path must be a non-empty string",
    `path = ""\n${withComponent("")}`,
    ['path: expected a non-empty string, got ""'],
  ],
  ["components are required", HEAD, ["components: required"]],
  [
    "components may not be empty",
    `${HEAD}components = []`,
    ["components: expected at least one component"],
  ],
  [
    "components must be tables",
    `${HEAD}components = "web"`,
    ['components: expected an array of tables ([[components]]), got "web"'],
  ],
  [
    "a component must be a table",
    `${HEAD}components = [1]`,
    ["components[0]: expected a table, got 1"],
  ],
  ["unknown top-level field", `imagee = "x"\n${withComponent("")}`, ["imagee: unknown field"]],
  ["build must be a table", `build = 1\n${withComponent("")}`, ["build: expected a table, got 1"]],
  [
    "build.uses_mcdsl must be a boolean",
    `${withComponent("")}[build]\nuses_mcdsl = 1`,
    ["build.uses_mcdsl: expected a boolean, got 1"],
  ],
  [
    "build.images values are paths",
    `${withComponent("")}[build.images]\napp = 1`,
    ["build.images.app: expected a non-empty string, got 1"],
  ],
  [
    "build.images names a component image",
    `${withComponent("")}[build.images]\nap = "Dockerfile"`,
    ['build.images.ap: no component image is named "ap"'],
  ],
  [
    "unknown build field",
    `${withComponent("")}[build]\nimage = "x"`,
    ["build.image: unknown field"],
  ],
  // components
  [
    "component name is required",
    `${HEAD}[[components]]\nimage = "a/b:v1"`,
    ["components[0].name: required"],
  ],
  [
    "component name must be a valid name",
    withComponent("").replace('"web"', '"Web"'),
    [`components[0].name: ${NAME_MSG}, got "Web"`],
  ],
  [
    "component names are unique",
    `${withComponent("")}[[components]]\nname = "web"\nimage = "a/b:v1"`,
    ['components[1].name: duplicate component name "web" (also components[0])'],
  ],
  ["image is required", `${HEAD}[[components]]\nname = "web"`, ["components[0].image: required"]],
  [
    "image needs a tag or digest",
    withComponent("").replace("localhost/app:v1", "localhost/app"),
    [
      'components[0].image: expected a tag or digest (like "localhost/app:v1"), got "localhost/app"',
    ],
  ],
  [
    "registry port is not a tag",
    withComponent("").replace("localhost/app:v1", "reg:5000/app"),
    ['components[0].image: expected a tag or digest (like "localhost/app:v1"), got "reg:5000/app"'],
  ],
  [
    "image must be well-formed",
    withComponent("").replace("localhost/app:v1", "-x/App:v1"),
    ['components[0].image: expected an image reference like "registry/name:tag", got "-x/App:v1"'],
  ],
  [
    "image tag must be well-formed",
    withComponent("").replace("localhost/app:v1", "localhost/app:"),
    [
      'components[0].image: expected an image reference like "registry/name:tag", got "localhost/app:"',
    ],
  ],
  [
    "image :latest is refused",
    withComponent("").replace(":v1", ":latest"),
    ['components[0].image: the "latest" tag is refused; pin a version'],
  ],
  [
    "unknown component field (typo)",
    withComponent('imagee = "localhost/app:v2"'),
    ["components[0].imagee: unknown field"],
  ],
  [
    "network must be a network name",
    withComponent('network = "my net"'),
    [
      'components[0].network: expected a network name of letters, digits, "_", "." and "-" (not starting with "_", "." or "-"), got "my net"',
    ],
  ],
  [
    "user must be user[:group]",
    withComponent('user = "0:0:0"'),
    [
      'components[0].user: expected "user" or "user:group" (letters, digits, "_", "." and "-"; neither starting with "." or "-"), got "0:0:0"',
    ],
  ],
  [
    "restart must be a podman policy",
    withComponent('restart = "sometimes"'),
    [
      'components[0].restart: expected "no", "always", "on-failure[:N]" or "unless-stopped", got "sometimes"',
    ],
  ],
  [
    "ports need a host port",
    withComponent('ports = ["8080", "127.0.0.1::8080"]'),
    [
      'components[0].ports[0]: expected "[ip:]hostPort:containerPort[/tcp|/udp]", got "8080"',
      'components[0].ports[1]: expected "[ip:]hostPort:containerPort[/tcp|/udp]", got "127.0.0.1::8080"',
    ],
  ],
  [
    "ports must be in range",
    withComponent('ports = ["70000:80", "1:0", "localhost:1:2"]'),
    [
      'components[0].ports[0]: expected "[ip:]hostPort:containerPort[/tcp|/udp]", got "70000:80"',
      'components[0].ports[1]: expected "[ip:]hostPort:containerPort[/tcp|/udp]", got "1:0"',
      'components[0].ports[2]: expected "[ip:]hostPort:containerPort[/tcp|/udp]", got "localhost:1:2"',
    ],
  ],
  [
    "ports must be an array",
    withComponent('ports = "1:2"'),
    ['components[0].ports: expected an array, got "1:2"'],
  ],
  [
    "volumes need absolute paths",
    withComponent('volumes = ["data:/data", "/data"]'),
    [
      'components[0].volumes[0]: expected "/host/path:/container/path[:options]", got "data:/data"',
      'components[0].volumes[1]: expected "/host/path:/container/path[:options]", got "/data"',
    ],
  ],
  [
    "volumes may not use ..",
    withComponent('volumes = ["/srv/../etc:/etc"]'),
    ['components[0].volumes[0]: expected paths without ".." segments, got "/srv/../etc:/etc"'],
  ],
  [
    "cmd must be strings",
    withComponent('cmd = ["run", 1]'),
    ["components[0].cmd[1]: expected a string, got 1"],
  ],
  [
    "env must be KEY=VALUE",
    withComponent('env = ["1X=2", "NOVALUE", "A-B=1"]'),
    [
      'components[0].env[0]: expected "KEY=VALUE" with KEY of letters, digits and "_" (not starting with a digit), got "1X=2"',
      'components[0].env[1]: expected "KEY=VALUE" with KEY of letters, digits and "_" (not starting with a digit), got "NOVALUE"',
      'components[0].env[2]: expected "KEY=VALUE" with KEY of letters, digits and "_" (not starting with a digit), got "A-B=1"',
    ],
  ],
  [
    "env keys are unique",
    withComponent('env = ["A=1", "B=2", "A=3"]'),
    ["components[0].env[2]: duplicate variable A (also env[0])"],
  ],
  // routes
  [
    "route port is required",
    withComponent('[[components.routes]]\nmode = "l7"'),
    ["components[0].routes[0].port: required"],
  ],
  [
    "route port may not be 0",
    withComponent("[[components.routes]]\nport = 0"),
    ["components[0].routes[0].port: expected an integer 1-65535, got 0"],
  ],
  [
    "route port is at most 65535",
    withComponent("[[components.routes]]\nport = 65536"),
    ["components[0].routes[0].port: expected an integer 1-65535, got 65536"],
  ],
  [
    "route port is an integer",
    withComponent("[[components.routes]]\nport = 1.5"),
    ["components[0].routes[0].port: expected an integer 1-65535, got 1.5"],
  ],
  [
    "route port is not a string",
    withComponent('[[components.routes]]\nport = "443"'),
    ['components[0].routes[0].port: expected an integer 1-65535, got "443"'],
  ],
  [
    "route mode is l4 or l7",
    withComponent(
      '[[components.routes]]\nport = 1\n[[components.routes]]\nname = "b"\nport = 2\nmode = "l5"',
    ).replace("port = 1", 'name = "a"\nport = 1'),
    ['components[0].routes[1].mode: expected "l4" or "l7", got "l5"'],
  ],
  [
    "route protocol is tcp or udp",
    withComponent('[[components.routes]]\nport = 1\nprotocol = "sctp"'),
    ['components[0].routes[0].protocol: expected "tcp" or "udp", got "sctp"'],
  ],
  [
    "route name must be a route name",
    withComponent('[[components.routes]]\nname = "Rest"\nport = 1'),
    [
      'components[0].routes[0].name: expected a route name of lowercase letters, digits, "_" and "-" (1-63 chars, not starting with "_" or "-"), got "Rest"',
    ],
  ],
  [
    "route name may not be empty",
    withComponent('[[components.routes]]\nname = ""\nport = 1'),
    [
      'components[0].routes[0].name: expected a route name of lowercase letters, digits, "_" and "-" (1-63 chars, not starting with "_" or "-"), got ""',
    ],
  ],
  [
    "route hostname must be a DNS name",
    withComponent('[[components.routes]]\nport = 1\nhostname = "bad_host.example"'),
    ['components[0].routes[0].hostname: expected a DNS name, got "bad_host.example"'],
  ],
  [
    "route proxy_protocol is a boolean",
    withComponent('[[components.routes]]\nport = 1\nproxy_protocol = "yes"'),
    ['components[0].routes[0].proxy_protocol: expected a boolean, got "yes"'],
  ],
  [
    "a udp route cannot send a PROXY header",
    withComponent('[[components.routes]]\nport = 53\nprotocol = "udp"\nproxy_protocol = true'),
    [
      "components[0].routes[0].proxy_protocol: a udp route is not proxied: no PROXY header can be sent",
    ],
  ],
  [
    "unknown route field",
    withComponent("[[components.routes]]\nport = 1\npublic = true"),
    ["components[0].routes[0].public: unknown field"],
  ],
  [
    "routes must be tables",
    withComponent("routes = [1]"),
    ["components[0].routes[0]: expected a table, got 1"],
  ],
  [
    "an unnamed route must be alone",
    withComponent('[[components.routes]]\nport = 1\n[[components.routes]]\nname = "b"\nport = 2'),
    ["components[0].routes[0]: an unnamed route must be the only route of its component"],
  ],
  [
    "two unnamed routes",
    withComponent("[[components.routes]]\nport = 1\n[[components.routes]]\nport = 2"),
    [
      "components[0].routes[0]: an unnamed route must be the only route of its component",
      "components[0].routes[1]: an unnamed route must be the only route of its component",
    ],
  ],
  [
    "route names are unique",
    withComponent(
      '[[components.routes]]\nname = "rest"\nport = 1\n[[components.routes]]\nname = "rest"\nport = 2',
    ),
    ['components[0].routes[1].name: duplicate route name "rest" (also routes[0])'],
  ],
  [
    "route names may not normalise alike",
    withComponent(
      '[[components.routes]]\nname = "a-b"\nport = 1\n[[components.routes]]\nname = "a_b"\nport = 2',
    ),
    ['components[0].routes[1].name: "a_b" and "a-b" (routes[0]) both set PORT_A_B'],
  ],
  [
    "env may not set the unnamed route's PORT",
    withComponent('env = ["PORT=8080"]\n[[components.routes]]\nport = 443'),
    ["components[0].env[0]: PORT is already set by the unnamed route (routes[0])"],
  ],
  [
    "env may not set a named route's variable",
    withComponent(
      'env = ["PORT=1", "PORT_REST=2"]\n[[components.routes]]\nname = "rest"\nport = 443',
    ),
    ['components[0].env[1]: PORT_REST is already set by route "rest" (routes[0])'],
  ],
];

describe("parseServiceDef: one rule at a time", () => {
  for (const [rule, text, expected] of RULES) {
    test(rule, () => assert.deepEqual(problemsOf(text), expected));
  }
});

describe("parseServiceDef: accepted forms", () => {
  test("the three examples parse to the expected shape", () => {
    assert.deepEqual(parseServiceDef(read(example("hello")), "hello.toml"), {
      name: "hello",
      node: "local",
      components: [
        { name: "web", image: "localhost/mcp-httpenv:v1", routes: [{ port: 443, mode: "l7" }] },
      ],
    });
    assert.deepEqual(parseServiceDef(read(example("multi")), "multi.toml"), {
      name: "multi",
      node: "local",
      components: [
        {
          name: "api",
          image: "localhost/mcp-httpenv:v1",
          env: ["GREETING=hi", "LOG_LEVEL=debug"],
          volumes: ["/srv/multi:/srv/multi"],
          routes: [
            { name: "rest", port: 8443, mode: "l4" },
            { name: "grpc", port: 9443, mode: "l4" },
          ],
        },
        {
          name: "web",
          image: "localhost/mcp-httpenv:v1",
          routes: [{ port: 443, mode: "l7", hostname: "multi.example.test" }],
        },
      ],
    });
    // legacy: a user PORT is fine when there are no routes.
    assert.deepEqual(parseServiceDef(read(example("legacy")), "legacy.toml"), {
      name: "legacy",
      node: "local",
      components: [
        {
          name: "legacy",
          image: "localhost/mcp-httpenv:v1",
          network: "podman",
          restart: "unless-stopped",
          ports: ["127.0.0.1:18080:8080"],
          env: ["PORT=8080"],
        },
      ],
    });
  });

  test("every field, as in the full fixture", () => {
    const def = parseServiceDef(read(fixture("full")), "full.toml");
    assert.equal(def.active, false);
    assert.equal(def.path, "../full");
    assert.deepEqual(def.build, { uses_mcdsl: false, images: { "full-api": "Dockerfile.api" } });
    assert.deepEqual(def.components[0]?.routes, [
      { name: "rest", port: 8443, mode: "l7", hostname: "full.example.test", protocol: "tcp" },
      { name: "dns-udp", port: 53, protocol: "udp" },
    ]);
    assert.deepEqual(Object.keys(def.components[1] ?? {}), ["name", "image"]);
  });

  test("optional fields stay absent; empty lists and comment count as omitted", () => {
    const def = parseServiceDef(withComponent("ports = []\nenv = []\ncmd = []"), "x");
    assert.deepEqual(def, {
      name: "svc",
      node: "local",
      components: [{ name: "web", image: "localhost/app:v1" }],
    });
    assert.equal("comment" in parseServiceDef(`comment = ""\n${withComponent("")}`, "x"), false);
  });

  test("ports: the podman forms with explicit numbers", () => {
    const ports = ["80:8080", "127.0.0.1:80:8080/udp", "[::1]:8080:80", "0.0.0.0:1:65535/tcp"];
    const def = parseServiceDef(withComponent(`ports = ${JSON.stringify(ports)}`), "x");
    assert.deepEqual(def.components[0]?.ports, ports);
  });

  test("other accepted values", () => {
    const body = [
      'restart = "on-failure:5"',
      'user = "app:app"',
      'network = "mcp_net.1"',
      'volumes = ["/a:/b", "/srv/x:/data:ro,Z"]',
      'env = ["A=", "B=x=y", "_C=1"]',
      "[[components.routes]]",
      'name = "0-a_b"',
      "port = 65535",
      'hostname = "A.b-c.example"',
    ].join("\n");
    assert.deepEqual(problemsOf(withComponent(body)), []);
  });

  test(":latest is accepted with allowLatest, and always when pinned by a digest", () => {
    assert.deepEqual(
      problemsOf(withComponent("").replace(":v1", ":latest"), { allowLatest: true }),
      [],
    );
    const pinned = `:latest@sha256:${"ab".repeat(32)}`;
    assert.deepEqual(problemsOf(withComponent("").replace(":v1", pinned)), []);
  });

  test("a user PORT_X that matches no route is fine", () => {
    const text = withComponent(
      'env = ["PORT_GRPC=1"]\n[[components.routes]]\nname = "rest"\nport = 1',
    );
    assert.deepEqual(problemsOf(text), []);
  });
});

describe("parseServiceDef: reporting", () => {
  test("a file with several problems reports all of them at once", () => {
    assert.deepEqual(problemsOf(read(fixture("many-problems"))), [
      `name: ${NAME_MSG}, got "Many"`,
      "components[0].image: required",
      'components[0].routes[0].mode: expected "l4" or "l7", got "l5"',
      "components[0].imagee: unknown field",
      "components[0].env[0]: PORT is already set by the unnamed route (routes[0])",
      'components[1].image: the "latest" tag is refused; pin a version',
      "components[1].routes[0].port: required",
      "acitve: unknown field",
      'components[1].name: duplicate component name "api" (also components[0])',
    ]);
  });

  test("the error message is one `file: path: message` line per problem", () => {
    assert.throws(
      () => parseServiceDef(`${HEAD}[[components]]\nname = "web"\nimage = "x"`, "svc.toml"),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.equal(
          err.message,
          'svc.toml: components[0].image: expected a tag or digest (like "localhost/app:v1"), got "x"',
        );
        return true;
      },
    );
  });

  test("a syntax error names file, line and column, without a code frame", () => {
    assert.throws(
      () => parseServiceDef(read(fixture("syntax-error")), "syntax-error.toml"),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.deepEqual(err.problems, [
          {
            path: "",
            message: "invalid TOML: control characters are not allowed in strings",
            line: 6,
            column: 26,
          },
        ]);
        assert.equal(
          err.message,
          "syntax-error.toml:6:26: invalid TOML: control characters are not allowed in strings",
        );
        return true;
      },
    );
  });

  test("a duplicate key is a syntax error too", () => {
    assert.deepEqual(problemsOf('name = "a"\nname = "b"\n'), [
      "2:1: invalid TOML: trying to redefine an already defined table or value",
    ]);
  });

  test("loadServiceDefFile reads a file, and names a missing one", async () => {
    const path = new URL(fixture("full"), root).pathname;
    assert.equal((await loadServiceDefFile(path)).name, "full");
    await assert.rejects(loadServiceDefFile("/nonexistent/x.toml"), (err: unknown) => {
      assert.ok(err instanceof McpError);
      assert.equal(err.code, "not_found");
      assert.equal(err.message, "/nonexistent/x.toml: no such service definition file");
      return true;
    });
  });

  test("validateServiceDef checks plain objects and returns a fresh definition", () => {
    assert.deepEqual(validateServiceDef(5), {
      problems: [{ path: "", message: "expected a table, got 5" }],
    });
    const input = {
      name: "svc",
      node: "local",
      active: undefined, // treated as absent
      components: [{ name: "web", image: "a/b:v1", routes: [{ port: 1, mode: undefined }] }],
    };
    const { def, problems } = validateServiceDef(input);
    assert.deepEqual(problems, []);
    assert.deepEqual(def, {
      name: "svc",
      node: "local",
      components: [{ name: "web", image: "a/b:v1", routes: [{ port: 1 }] }],
    });
    assert.notEqual(def, input);
  });
});

describe("ServiceDef ⇄ ServiceSpec", () => {
  const defs = (): [string, ServiceDef][] => [
    ...["hello", "multi", "legacy"].map((n): [string, ServiceDef] => [
      n,
      parseServiceDef(read(example(n)), n),
    ]),
    ["full (without path/build)", stripCliFields(parseServiceDef(read(fixture("full")), "full"))],
    ["active true", { ...parseServiceDef(read(example("hello")), "h"), active: true }],
  ];

  function stripCliFields(def: ServiceDef): ServiceDef {
    const { path: _path, build: _build, ...rest } = def;
    return rest;
  }

  for (const [label, def] of defs()) {
    test(`def → spec → def is exact: ${label}`, () => {
      assert.deepEqual(fromServiceSpec(toServiceSpec(def)), def);
    });
    test(`def → spec → wire → spec → def is exact: ${label}`, () => {
      const wire = ServiceSpec.encode(toServiceSpec(def)).finish();
      assert.deepEqual(fromServiceSpec(ServiceSpec.decode(wire)), def);
    });
    test(`spec → def → spec is exact: ${label}`, () => {
      const spec = toServiceSpec(def);
      assert.deepEqual(toServiceSpec(fromServiceSpec(spec)), spec);
      assert.deepEqual(validateServiceSpec(spec), []);
    });
  }

  test("absent fields map to the proto defaults", () => {
    assert.deepEqual(toServiceSpec(parseServiceDef(read(example("hello")), "h")), {
      name: "hello",
      node: "local",
      active: undefined,
      comment: "",
      components: [
        {
          name: "web",
          image: "localhost/mcp-httpenv:v1",
          network: "",
          user: "",
          restart: "",
          memory: "",
          cpus: 0,
          pids: 0,
          ports: [],
          volumes: [],
          cmd: [],
          env: [],
          routes: [
            { name: "", port: 443, mode: "l7", hostname: "", protocol: "", proxyProtocol: false },
          ],
          health: undefined,
          strategy: "",
        },
      ],
    });
  });

  test("path and build are CLI-side and dropped", () => {
    const def = parseServiceDef(read(fixture("full")), "full");
    const back = fromServiceSpec(toServiceSpec(def));
    assert.equal("path" in back, false);
    assert.equal("build" in back, false);
    assert.deepEqual(back, stripCliFields(def));
  });

  test("validateServiceSpec reports problems with field paths", () => {
    const spec = toServiceSpec(parseServiceDef(read(example("multi")), "m"));
    const api = spec.components[0];
    assert.ok(api?.routes[1]);
    api.image = "";
    api.routes[1].mode = "l5";
    api.routes[1].port = 0;
    assert.deepEqual(validateServiceSpec(spec).map(show), [
      "components[0].image: required",
      "components[0].routes[1].port: expected an integer 1-65535, got 0",
      'components[0].routes[1].mode: expected "l4" or "l7", got "l5"',
    ]);
    spec.components[1]!.image = "localhost/x:latest";
    assert.equal(validateServiceSpec(spec, { allowLatest: true }).length, 3);
  });
});

describe("route proxy_protocol", () => {
  const body = (value: string) =>
    withComponent(`[[components.routes]]\nport = 443\nmode = "l7"\nproxy_protocol = ${value}`);

  test("true is kept; false is the default and reads as absent", () => {
    const on = parseServiceDef(body("true"), "x");
    assert.deepEqual(on.components[0]?.routes, [{ port: 443, mode: "l7", proxy_protocol: true }]);
    const off = parseServiceDef(body("false"), "x");
    assert.deepEqual(off.components[0]?.routes, [{ port: 443, mode: "l7" }]);
    // An L4 route may have it too; a tcp one said so explicitly as well.
    const l4 = withComponent(
      '[[components.routes]]\nport = 8443\nprotocol = "tcp"\nproxy_protocol = true',
    );
    assert.deepEqual(problemsOf(l4), []);
  });

  test("carried in RouteSpec.proxyProtocol, and back exactly", () => {
    const on = parseServiceDef(body("true"), "x");
    const spec = toServiceSpec(on);
    assert.equal(spec.components[0]?.routes[0]?.proxyProtocol, true);
    const wire = ServiceSpec.decode(ServiceSpec.encode(spec).finish());
    assert.deepEqual(fromServiceSpec(wire), on);
    assert.deepEqual(validateServiceSpec(spec), []);
    const off = toServiceSpec(parseServiceDef(body("false"), "x"));
    assert.equal(off.components[0]?.routes[0]?.proxyProtocol, false);
    assert.equal(
      "proxy_protocol" in (fromServiceSpec(off).components[0]?.routes?.[0] ?? {}),
      false,
    );
  });

  test("a spec asking it for a udp route is refused with its field path", () => {
    const spec = toServiceSpec(parseServiceDef(body("true"), "x"));
    spec.components[0]!.routes[0]!.protocol = "udp";
    assert.deepEqual(validateServiceSpec(spec).map(show), [
      "components[0].routes[0].proxy_protocol: a udp route is not proxied: no PROXY header can be sent",
    ]);
  });

  test("rendered only when true, and parsed back to the same definition", () => {
    const on = parseServiceDef(body("true"), "x");
    const text = renderServiceDef(on);
    assert.match(text, /\nmode = "l7"\nproxy_protocol = true\n/);
    assert.deepEqual(parseServiceDef(text, "x"), on);
    const off = parseServiceDef(body("false"), "x");
    assert.doesNotMatch(renderServiceDef(off), /proxy_protocol/);
  });

  test("a change of it is a change of the route", () => {
    const spec = (value: string) => toServiceSpec(parseServiceDef(body(value), "x")).components[0]!;
    assert.deepEqual(diffComponentSpec(spec("false"), spec("true")), [
      "route (unnamed): proxy_protocol false → true (host port kept)",
    ]);
    assert.deepEqual(diffComponentSpec(spec("true"), spec("false")), [
      "route (unnamed): proxy_protocol true → false (host port kept)",
    ]);
    assert.deepEqual(diffComponentSpec(spec("true"), spec("true")), []);
    const none = { ...spec("true"), routes: [] };
    assert.deepEqual(diffComponentSpec(none, spec("true")), [
      "route (unnamed) added (port 443 l7 proxy_protocol)",
    ]);
  });
});

describe("route environment", () => {
  test("routeEnvName", () => {
    assert.equal(routeEnvName({}), "PORT");
    assert.equal(routeEnvName({ name: "rest" }), "PORT_REST");
    assert.equal(routeEnvName({ name: "grpc-web_2" }), "PORT_GRPC_WEB_2");
  });

  test("portEnv keeps route order", () => {
    assert.deepEqual(portEnv([{ hostPort: 12345 }]), ["PORT=12345"]);
    assert.deepEqual(
      portEnv([
        { name: "rest", hostPort: 20001 },
        { name: "grpc", hostPort: 20000 },
      ]),
      ["PORT_REST=20001", "PORT_GRPC=20000"],
    );
    assert.deepEqual(portEnv([]), []);
  });
});

describe("port mappings", () => {
  test("parsePortMapping", () => {
    const cases: [string, ReturnType<typeof parsePortMapping>][] = [
      ["8080", { containerPort: 8080, protocol: "tcp" }],
      ["18080:8080", { hostPort: 18080, containerPort: 8080, protocol: "tcp" }],
      [
        "127.0.0.1:18080:8080",
        { hostIp: "127.0.0.1", hostPort: 18080, containerPort: 8080, protocol: "tcp" },
      ],
      ["127.0.0.1::8080/udp", { hostIp: "127.0.0.1", containerPort: 8080, protocol: "udp" }],
      ["[::1]:8080:80", { hostIp: "::1", hostPort: 8080, containerPort: 80, protocol: "tcp" }],
      ["[::1]::53/udp", { hostIp: "::1", containerPort: 53, protocol: "udp" }],
      ["1:65535/tcp", { hostPort: 1, containerPort: 65535, protocol: "tcp" }],
    ];
    for (const [s, expected] of cases) assert.deepEqual(parsePortMapping(s), expected, s);
    for (const s of [
      "",
      "0",
      "65536",
      "080:80",
      "8080-8090:8080-8090",
      "1:2/sctp",
      "localhost:1:2",
      "::1:80:80",
      "[::1]:80",
      "[nope]:1:2",
      ":80",
      "1.2.3.4:80",
      "a:b",
    ]) {
      assert.equal(parsePortMapping(s), undefined, s);
    }
  });

  test("formatRouteMapping: container port = host port", () => {
    assert.equal(formatRouteMapping("127.0.0.1", 12345, "tcp"), "127.0.0.1:12345:12345");
    assert.equal(formatRouteMapping("127.0.0.1", 12345, "udp"), "127.0.0.1:12345:12345/udp");
    assert.equal(formatRouteMapping("::1", 5, "tcp"), "[::1]:5:5");
    assert.equal(formatRouteMapping("", 5, "tcp"), "5:5");
    assert.deepEqual(parsePortMapping(formatRouteMapping("::1", 5, "udp")), {
      hostIp: "::1",
      hostPort: 5,
      containerPort: 5,
      protocol: "udp",
    });
  });
});

describe("setActiveInText", () => {
  const commented = read(fixture("commented"));

  test("inserts after the name/node line, keeping every other byte", () => {
    const out = setActiveInText(commented, false);
    assert.equal(
      out,
      commented.replace('node   = "local"\n', 'node   = "local"\nactive = false\n'),
    );
    const def = parseServiceDef(out, "commented.toml");
    assert.equal(def.active, false);
    assert.equal(def.comment, "active = true\n[not-a-table]\n");
  });

  test("flips an existing value in place, comments and alignment kept", () => {
    const text = 'name = "a"\nactive   =   true   # stopped by hand\nnode = "n"\n';
    const off = setActiveInText(text, false);
    assert.equal(off, 'name = "a"\nactive   =   false   # stopped by hand\nnode = "n"\n');
    assert.equal(setActiveInText(off, true), text);
    assert.equal(setActiveInText(text, true), text);
    for (const ex of ["hello", "multi", "legacy"]) {
      const src = read(example(ex));
      assert.equal(
        setActiveInText(setActiveInText(src, false), false),
        setActiveInText(src, false),
      );
      assert.equal(parseServiceDef(setActiveInText(src, false), ex).active, false);
      assert.equal(parseServiceDef(setActiveInText(src, true), ex).active, true);
    }
  });

  test("never touches an active key inside a table or a multi-line value", () => {
    const text = [
      'name = "a" # name',
      "list = [",
      '  "x", # ]',
      "  [1, 2],",
      "]",
      "s = '''",
      "active = true",
      "[fake]'''",
      "",
      "[section]",
      "active = true",
      "",
      "[[more]]",
      "active = false",
      "",
    ].join("\n");
    const out = setActiveInText(text, false);
    assert.equal(out, text.replace('name = "a" # name\n', 'name = "a" # name\nactive = false\n'));
    const parsed = parse(out);
    assert.equal(parsed.active, false);
    assert.deepEqual({ ...(parsed.section as object) }, { active: true });
    assert.deepEqual(JSON.parse(JSON.stringify(parsed.more)), [{ active: false }]);
  });

  test("keeps CRLF line endings and handles a missing final newline", () => {
    const crlf = 'name = "a"\r\nnode = "n"\r\n\r\n[[components]]\r\n';
    assert.equal(
      setActiveInText(crlf, false),
      'name = "a"\r\nnode = "n"\r\nactive = false\r\n\r\n[[components]]\r\n',
    );
    assert.equal(
      setActiveInText('name = "a"\nnode = "n"', true),
      'name = "a"\nnode = "n"\nactive = true\n',
    );
    assert.equal(setActiveInText("[[components]]\n", true), "active = true\n[[components]]\n");
  });

  test("refuses a top-level active that is not a boolean", () => {
    assert.throws(() => setActiveInText('active = "yes"\n', true), McpError);
  });
});

describe("image references", () => {
  test("parseImageRef", () => {
    assert.deepEqual(parseImageRef("mcr.example:8443/team/api:v1.2"), {
      repository: "mcr.example:8443/team/api",
      tag: "v1.2",
    });
    assert.deepEqual(parseImageRef("localhost:5000/api"), { repository: "localhost:5000/api" });
    assert.deepEqual(parseImageRef("localhost/api"), { repository: "localhost/api" });
    assert.deepEqual(parseImageRef("api:v1@sha256:abc"), {
      repository: "api",
      tag: "v1",
      digest: "sha256:abc",
    });
    assert.deepEqual(parseImageRef("reg:1/api@sha256:abc"), {
      repository: "reg:1/api",
      digest: "sha256:abc",
    });
  });

  test("imageVersion and imageName", () => {
    assert.equal(imageVersion("mcr.example:8443/api:v1.3.1"), "v1.3.1");
    assert.equal(imageVersion(`api@sha256:${"0123456789ab".repeat(5)}abcd`), "0123456789ab");
    assert.equal(imageVersion("mcr.example:8443/api"), "");
    assert.equal(imageName("mcr.example:8443/team/api:v1"), "api");
    assert.equal(imageName("api"), "api");
  });
});
