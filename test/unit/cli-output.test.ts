/**
 * The CLI's pure formatting: tables, uptimes, `ps` / `list` / `status` views,
 * deploy results, `service/component` targets and the node list. Exact
 * strings, since operators (and their scripts) read them.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { formatResults, parseTarget } from "../../src/cli/commands/deploy.js";
import { formatNodeList, type NodeRow } from "../../src/cli/commands/node.js";
import { formatList } from "../../src/cli/commands/list.js";
import { formatPs } from "../../src/cli/commands/ps.js";
import { formatStatus } from "../../src/cli/commands/status.js";
import { componentRows, formatRoutes, type NodeServices } from "../../src/cli/service-rows.js";
import { formatJson, formatTable, formatUptime } from "../../src/cli/output.js";
import type {
  ComponentInfo,
  EventInfo,
  NodeStatusResponse,
  RouteStatus,
  ServiceInfo,
} from "../../src/gen/mcp/v1/mcp.js";
import { ComponentResult } from "../../src/gen/mcp/v1/mcp.js";
import { McpError } from "../../src/util/errors.js";

const NOW = new Date("2026-11-27T12:00:00Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms);
const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

function route(name: string, port: number, hostPort: number, mode = "l4"): RouteStatus {
  return { name, port, mode, hostname: "", protocol: "tcp", hostPort };
}

function info(name: string, fields: Partial<ComponentInfo> = {}): ComponentInfo {
  return {
    name,
    image: "localhost/mcp-httpenv:v1",
    version: "v1",
    desiredState: "running",
    observedState: "running",
    startedAt: undefined,
    routes: [],
    container: name,
    ports: [],
    health: "",
    healthOutput: "",
    healthCheckedAt: undefined,
    ...fields,
  };
}

function service(name: string, components: ComponentInfo[]): ServiceInfo {
  return { name, active: true, comment: "", components, spec: undefined, bindAddress: "" };
}

/** Lines of a table, to show a mismatch line by line. */
const lines = (text: string) => text.split("\n");

describe("formatTable", () => {
  test("columns as wide as their widest cell, two spaces apart, last column not padded", () => {
    const text = formatTable(
      ["A", "LONGER", "C"],
      [
        ["xx", "y", "zzz"],
        ["x", "yyyyyyy", ""],
        ["", "", "a-much-longer-last-cell"],
      ],
    );
    assert.deepEqual(lines(text), [
      "A   LONGER   C",
      "xx  y        zzz",
      "x   yyyyyyy",
      "             a-much-longer-last-cell",
      "",
    ]);
    for (const line of lines(text)) assert.equal(line, line.trimEnd(), "no trailing spaces");
  });

  test("headers only, and rows shorter than the headers", () => {
    assert.equal(formatTable(["NAME", "STATE"], []), "NAME  STATE\n");
    assert.equal(formatTable(["NAME", "STATE", "X"], [["a"]]), "NAME  STATE  X\na\n");
  });
});

describe("formatUptime", () => {
  const cases: [number, string][] = [
    [-5 * SEC, "0s"],
    [0, "0s"],
    [999, "0s"],
    [12 * SEC, "12s"],
    [59 * SEC + 999, "59s"],
    [60 * SEC, "1m0s"],
    [2 * MIN + 19 * SEC, "2m19s"],
    [59 * MIN + 59 * SEC, "59m59s"],
    [HOUR, "1h0m"],
    [23 * HOUR + 57 * MIN + 30 * SEC, "23h57m"],
    [DAY, "1d0h"],
    [DAY + 59 * MIN, "1d0h"],
    [2 * DAY + 16 * HOUR + 5 * MIN, "2d16h"],
    [400 * DAY, "400d0h"],
  ];
  for (const [ms, text] of cases) {
    test(`${ms} ms → ${text}`, () => assert.equal(formatUptime(ms), text));
  }
});

describe("formatJson", () => {
  test("two-space indent, Dates as ISO strings, trailing newline", () => {
    assert.equal(
      formatJson({ at: new Date("2026-11-27T12:00:00Z"), n: [1] }),
      '{\n  "at": "2026-11-27T12:00:00.000Z",\n  "n": [\n    1\n  ]\n}\n',
    );
  });
});

// Two nodes, answers deliberately out of order.
const answers: NodeServices[] = [
  {
    node: "rift",
    services: [
      service("multi", [
        info("web", {
          startedAt: ago(2 * MIN + 19 * SEC),
          routes: [route("", 443, 20003, "l7")],
          health: "unhealthy",
          healthOutput: "HTTP 503: down\nfor maintenance",
          healthCheckedAt: new Date("2026-11-27T11:59:55Z"),
        }),
        info("api", {
          startedAt: ago(12 * SEC),
          routes: [route("rest", 8443, 20001), route("grpc", 9443, 20002)],
          health: "healthy",
          healthOutput: "connected to 20001, 20002",
        }),
      ]),
      service("hello", [
        info("web", {
          observedState: "exited",
          startedAt: ago(HOUR),
          routes: [route("", 443, 0, "l7")],
        }),
      ]),
    ],
  },
  {
    node: "svc",
    services: [
      service("mc-proxy", [
        info("mc-proxy", {
          version: "v1.2.0",
          startedAt: ago(2 * DAY + 16 * HOUR),
          ports: ["127.0.0.1:18443:8443"],
          health: "none",
        }),
      ]),
      service("legacy", [
        info("legacy", {
          desiredState: "stopped",
          observedState: "removed",
          ports: ["127.0.0.1:18080:8080"],
        }),
      ]),
    ],
  },
];

describe("views", () => {
  test("componentRows: one per component, sorted by service then component", () => {
    assert.deepEqual(
      componentRows(answers).map((r) => `${r.service}/${r.component}@${r.node}`),
      [
        "hello/web@rift",
        "legacy/legacy@svc",
        "mc-proxy/mc-proxy@svc",
        "multi/api@rift",
        "multi/web@rift",
      ],
    );
  });

  test("formatPs: exact table; health after the state (- when not checked); uptime only for running components", () => {
    assert.deepEqual(lines(formatPs(answers, NOW)), [
      "SERVICE   COMPONENT  NODE  STATE    HEALTH     VERSION  UPTIME",
      "hello     web        rift  exited   -          v1       -",
      "legacy    legacy     svc   removed  -          v1       -",
      "mc-proxy  mc-proxy   svc   running  none       v1.2.0   2d16h",
      "multi     api        rift  running  healthy    v1       12s",
      "multi     web        rift  running  unhealthy  v1       2m19s",
      "",
    ]);
  });

  test("formatPs with nothing deployed: just the header", () => {
    assert.equal(formatPs([], NOW), "SERVICE  COMPONENT  NODE  STATE  HEALTH  VERSION  UPTIME\n");
    assert.equal(
      formatPs([{ node: "rift", services: [service("empty", [])] }], NOW),
      "SERVICE  COMPONENT  NODE  STATE  HEALTH  VERSION  UPTIME\n",
    );
  });

  test("formatPs: running without a start time shows -", () => {
    const text = formatPs([{ node: "n", services: [service("s", [info("c")])] }], NOW);
    assert.equal(lines(text)[1], "s        c          n     running  -       v1       -");
  });

  test("formatRoutes: name (PORT when unnamed), proxy port, mode, host port; explicit mappings after", () => {
    assert.equal(
      formatRoutes(
        [route("rest", 8443, 20001), { ...route("", 443, 0), mode: "" }],
        ["127.0.0.1:18080:8080"],
      ),
      "rest:8443/l4→20001,PORT:443/l4→-,127.0.0.1:18080:8080",
    );
    assert.equal(formatRoutes([route("", 443, 20003, "l7")], []), "PORT:443/l7→20003");
    assert.equal(formatRoutes([], ["127.0.0.1:18080:8080"]), "127.0.0.1:18080:8080");
    assert.equal(formatRoutes([], []), "-");
  });

  test("formatList: desired and observed state, version and ports", () => {
    assert.deepEqual(lines(formatList(answers)), [
      "SERVICE   COMPONENT  NODE  DESIRED  OBSERVED  VERSION  PORTS",
      "hello     web        rift  running  exited    v1       PORT:443/l7→-",
      "legacy    legacy     svc   stopped  removed   v1       127.0.0.1:18080:8080",
      "mc-proxy  mc-proxy   svc   running  running   v1.2.0   127.0.0.1:18443:8443",
      "multi     api        rift  running  running   v1       rest:8443/l4→20001,grpc:9443/l4→20002",
      "multi     web        rift  running  running   v1       PORT:443/l7→20003",
      "",
    ]);
  });

  test("formatStatus: DRIFT per node/service/component, then recent events newest first", () => {
    const event = (fields: Partial<EventInfo> & Pick<EventInfo, "kind">): EventInfo => ({
      id: 0,
      service: "hello",
      component: "web",
      prevState: "",
      newState: "",
      timestamp: undefined,
      message: "",
      ...fields,
    });
    const text = formatStatus([
      {
        node: "rift",
        status: {
          services: answers[0]?.services.filter((s) => s.name === "hello") ?? [],
          drift: [{ service: "hello", component: "web", desired: "running", observed: "exited" }],
          recentEvents: [
            event({
              kind: "deploy",
              newState: "running",
              message: "deployed localhost/mcp-httpenv:v1 (PORT=20004)",
              timestamp: new Date("2026-11-27T11:00:00Z"),
            }),
            event({
              kind: "state",
              prevState: "running",
              newState: "exited",
              timestamp: new Date("2026-11-27T11:30:00Z"),
            }),
          ],
        },
      },
      {
        node: "svc",
        status: {
          // Same service and component names on another node: no drift there.
          services: [
            service("hello", [
              info("web", { routes: [{ ...route("", 443, 20009, "l7"), served: true }] }),
            ]),
          ],
          drift: [],
          recentEvents: [
            event({
              kind: "deploy_failed",
              message: "pull: podman pull exited 125",
              timestamp: new Date("2026-11-27T11:45:00Z"),
            }),
          ],
        },
      },
    ]);
    assert.deepEqual(lines(text), [
      "SERVICE  COMPONENT  NODE  DESIRED  OBSERVED  DRIFT  SERVED  PORTS",
      "hello    web        rift  running  exited    DRIFT  -       PORT:443/l7→-",
      "hello    web        svc   running  running   ok     yes     PORT:443/l7→20009",
      "",
      "RECENT EVENTS",
      "TIME                      NODE  SERVICE  COMPONENT  EVENT          DETAIL",
      "2026-11-27T11:45:00.000Z  svc   hello    web        deploy_failed  pull: podman pull exited 125",
      "2026-11-27T11:30:00.000Z  rift  hello    web        state          running → exited",
      "2026-11-27T11:00:00.000Z  rift  hello    web        deploy         - → running  deployed localhost/mcp-httpenv:v1 (PORT=20004)",
      "",
    ]);
  });

  test("formatStatus: the last check's output of each unhealthy component, on one line", () => {
    const text = formatStatus([
      {
        node: "rift",
        status: {
          services: answers[0]?.services.filter((s) => s.name === "multi") ?? [],
          drift: [],
          recentEvents: [
            {
              id: 7,
              service: "multi",
              component: "web",
              prevState: "healthy",
              newState: "unhealthy",
              timestamp: new Date("2026-11-27T11:59:55Z"),
              kind: "unhealthy",
              message: "HTTP 503: down\nfor maintenance",
            },
          ],
        },
      },
    ]);
    assert.deepEqual(lines(text), [
      "SERVICE  COMPONENT  NODE  DESIRED  OBSERVED  DRIFT  SERVED  PORTS",
      "multi    api        rift  running  running   ok     -,-     rest:8443/l4→20001,grpc:9443/l4→20002",
      "multi    web        rift  running  running   ok     -       PORT:443/l7→20003",
      "",
      "UNHEALTHY",
      "SERVICE  COMPONENT  NODE  CHECKED                   LAST CHECK",
      "multi    web        rift  2026-11-27T11:59:55.000Z  HTTP 503: down ⏎ for maintenance",
      "",
      "RECENT EVENTS",
      "TIME                      NODE  SERVICE  COMPONENT  EVENT      DETAIL",
      "2026-11-27T11:59:55.000Z  rift  multi    web        unhealthy  healthy → unhealthy  HTTP 503: down ⏎ for maintenance",
      "",
    ]);
  });

  test("formatStatus without events has no events section", () => {
    const text = formatStatus([
      { node: "rift", status: { services: [], drift: [], recentEvents: [] } },
    ]);
    assert.equal(text, "SERVICE  COMPONENT  NODE  DESIRED  OBSERVED  DRIFT  SERVED  PORTS\n");
  });
});

describe("deploy output", () => {
  test("formatResults: ok with the port variables that have a host port, failed with the reason", () => {
    const text = formatResults(
      [
        {
          name: "api",
          success: true,
          error: "",
          container: "multi-api",
          routes: [
            route("rest", 8443, 20001),
            route("admin-ui", 9000, 20002),
            route("grpc", 9443, 0),
          ],
        },
        {
          name: "web",
          success: true,
          error: "",
          container: "multi-web",
          routes: [route("", 443, 20003)],
        },
        { name: "worker", success: true, error: "", container: "multi-worker", routes: [] },
        {
          name: "db",
          success: false,
          error: "run: podman run exited 126: Error: address already in use",
          container: "multi-db",
          routes: [route("", 5432, 20004)],
        },
      ].map((r) => ComponentResult.fromPartial(r)),
    );
    assert.deepEqual(lines(text), [
      "  api: ok  PORT_REST=20001 PORT_ADMIN_UI=20002",
      "  web: ok  PORT=20003",
      "  worker: ok",
      "  db: failed: run: podman run exited 126: Error: address already in use",
      "",
    ]);
    assert.equal(formatResults([]), "");
  });

  test("parseTarget: service, or service/component", () => {
    assert.deepEqual(parseTarget("hello"), { service: "hello", component: "" });
    assert.deepEqual(parseTarget("multi/web"), { service: "multi", component: "web" });
  });

  for (const bad of ["", "/", "/web", "multi/", "a/b/c", "multi//", "//web"]) {
    test(`parseTarget refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => parseTarget(bad),
        (err: unknown) =>
          err instanceof McpError &&
          err.code === "invalid_argument" &&
          err.message === `expected <service> or <service>/<component>, got "${bad}"`,
      );
    });
  }
});

describe("node list", () => {
  test("formatNodeList: version or -, ok or unreachable with the reason", () => {
    const status = { nodeName: "rift", agentVersion: "0.1.0" } as NodeStatusResponse;
    const rows: NodeRow[] = [
      { name: "rift", address: "10.0.0.5:9444", version: "0.1.0", status, error: undefined },
      {
        name: "svc",
        address: "svc.example.test:9444",
        version: "",
        status: undefined,
        error: "14 UNAVAILABLE: No connection established",
      },
    ];
    assert.deepEqual(lines(formatNodeList(rows)), [
      "NAME  ADDRESS                VERSION  STATUS",
      "rift  10.0.0.5:9444          0.1.0    ok",
      "svc   svc.example.test:9444  -        unreachable: 14 UNAVAILABLE: No connection established",
      "",
    ]);
  });
});
