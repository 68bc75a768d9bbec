/**
 * Generated service definitions for test/unit/servicedef-fuzz.test.ts, and
 * the checks every one of them must pass. Case `i` of seed `s` is a pure
 * function of (s, i), so one failing case reproduces on its own:
 * `FUZZ_SEED=s FUZZ_ONLY=i node --import tsx --test test/unit/servicedef-fuzz.test.ts`.
 *
 * Imported by the test (to run a single case in-process) and loaded as a
 * worker thread (to run them all): a case that never returns blocks only the
 * worker, and the test names it from the shared progress counter.
 */
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { isDeepStrictEqual } from "node:util";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { stringify } from "smol-toml";
import { containerSpecFor } from "../../src/agent/operations/container-spec.js";
import { ComponentSpec, ServiceSpec, type RouteSpec } from "../../src/gen/mcp/v1/mcp.js";
import { buildCreateBody } from "../../src/runtime/libpod/requests.js";
import { parseServiceDef } from "../../src/servicedef/parse.js";
import { renderServiceDef } from "../../src/servicedef/render.js";
import { fromServiceSpec, toServiceSpec, validateServiceSpec } from "../../src/servicedef/spec.js";
import type { ServiceDef } from "../../src/servicedef/types.js";
import { validateServiceDef } from "../../src/servicedef/validate.js";
import {
  McpError,
  ValidationError,
  errorMessage,
  formatProblem,
  type Problem,
} from "../../src/util/errors.js";

// ------------------------------------------------------------------ PRNG

/** mulberry32: small, fast, good enough to pick test inputs. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)] as T;
  }
}

/** The PRNG of case `index` of `seed`, independent of every other case. */
function caseRng(seed: number, index: number): Rng {
  return new Rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
}

// ------------------------------------------------------------------ values

const ROOT = new URL("../../", import.meta.url);
const SEEDS_DIRS = ["examples/", "test/fixtures/defs/"];
const SEED_FILES: string[] = SEEDS_DIRS.flatMap((dir) =>
  readdirSync(new URL(dir, ROOT))
    .filter((f) => f.endsWith(".toml"))
    .sort()
    .map((f) => readFileSync(new URL(dir + f, ROOT), "utf8")),
);

const LENGTHS = [63, 64, 4096, 4097, 32768, 32769, 70_000, 262_145, 1_100_000];

const HOSTILE_STRINGS = [
  ...["", "-", "--privileged", "-x", "--network=host", ".", "..", "/", "//", "/../etc"],
  ...["\u0000", "a\u0000b", "😀", "\ud800", "é", "\n", "\r\n", "\t", "\u202e", "\u007f"],
  ...["${PORT}", "$(rm -rf /)", "\\", '"', "'", "latest", "localhost/a:latest", "a:b:c"],
  ...["0:0", "root", "127.0.0.1:1:2", "[::1]:1:2/udp", "/a:/b:ro", "/a:/b:--privileged"],
  ...["KEY=VALUE", "PORT=1", "PORT_REST=2", "256m", "6m", "5m", "1g", "1025g", "0.5"],
  ...["web", "api", "local", "rest", "a-b", "a_b", "l4", "l7", "udp", "tcp", "no", "always"],
  ...["on-failure:3", "on-failure:9999999", "unless-stopped", "podman", "host", "none"],
  ...["localhost/mcp-httpenv:v1", "a/b:v1", `a@sha256:${"ab".repeat(32)}`, "Web", "web-"],
];

const HOSTILE_NUMBERS = [
  ...[0, -0, 1, -1, 0.5, 1.5, 2, 53, 443, 65535, 65536, 2 ** 31, 2 ** 31 - 1, 2 ** 32],
  ...[2 ** 53, -(2 ** 53), 1e308, -1e308, 5e-324, Infinity, -Infinity, NaN],
  ...[0.01, 0.001, 1024, 1025, 4194304, 4194305, 64, 65, 16, 17, 256, 257],
];

/**
 * How long a generated string may be: 0 tiny (inside long arrays), 1 up to
 * 4 KiB, 2 up to 1.1 MB (a single value only), so no case is gigabytes.
 */
type Size = 0 | 1 | 2;

function hostileString(r: Rng, size: Size = 1): string {
  switch (r.int(0, 5)) {
    case 0: {
      const base = r.pick(["a", "x=", "-", "é", "😀", "A=", "/a"]);
      const length = r.pick(LENGTHS.slice(0, [2, 4, LENGTHS.length][size]));
      return base + r.pick(["a", "é", "\u0000", "-"]).repeat(length);
    }
    case 1:
      return r.pick(HOSTILE_STRINGS) + r.pick(HOSTILE_STRINGS);
    case 2: {
      let s = "";
      for (let i = r.int(0, 40); i > 0; i--) s += String.fromCharCode(r.int(0, 0xffff));
      return s;
    }
    default:
      return r.pick(HOSTILE_STRINGS);
  }
}

function hostileNumber(r: Rng): number {
  return r.chance(0.7) ? r.pick(HOSTILE_NUMBERS) : (r.next() - 0.5) * 10 ** r.int(0, 20);
}

function deepArray(r: Rng, depth: number): unknown {
  let v: unknown = r.chance(0.5) ? [] : [hostileValue(r, 3, 0)];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function deepTable(r: Rng, depth: number): unknown {
  let v: unknown = { x: hostileValue(r, 3, 0) };
  for (let i = 0; i < depth; i++) v = { [r.pick(["a", "components", "routes", "name"])]: v };
  return v;
}

/** Any TOML value, hostile more often than not. `budget` bounds the nesting. */
function hostileValue(r: Rng, budget = 2, size: Size = 1): unknown {
  const inner: Size = size === 0 ? 0 : 1;
  switch (r.int(0, budget > 0 ? 11 : 6)) {
    case 0:
    case 1:
    case 2:
      return hostileString(r, size);
    case 3:
    case 4:
      return hostileNumber(r);
    case 5:
      return r.chance(0.5);
    case 6:
      return new Date(r.int(-1e12, 1e13));
    case 7:
      return Array.from({ length: r.int(0, 5) }, () => hostileValue(r, budget - 1, inner));
    case 8:
      return Object.fromEntries(
        Array.from({ length: r.int(0, 4) }, () => [
          hostileKey(r),
          hostileValue(r, budget - 1, inner),
        ]),
      );
    case 9:
      return deepArray(r, r.int(1, 60));
    case 10:
      return deepTable(r, r.int(1, 60));
    default:
      return Array.from({ length: r.pick([65, 257, 3000]) }, () => hostileString(r, 0));
  }
}

function hostileKey(r: Rng): string {
  return r.chance(0.7)
    ? r.pick(["name", "image", "x", "imagee", "routes", "port", "env", "cmd", "memory"])
    : hostileString(r, 2).slice(0, r.pick([10, 100, 70_000]));
}

/** A value for `key`: plausible (often valid) or hostile. */
function fieldValue(r: Rng, key: string): unknown {
  if (r.chance(0.35)) return hostileValue(r, 2, r.chance(0.1) ? 2 : 1);
  /** `item(long)`: a list of more than two gets short items only. */
  const list = (item: (long: boolean) => unknown, counts = [0, 1, 2, 3, 8, 16, 64, 65, 257]) => {
    const n = r.pick(counts);
    return Array.from({ length: n }, () => item(n > 2));
  };
  switch (key) {
    case "name":
    case "node":
      return r.pick(["svc", "web", "api", "local", "a", "x".repeat(63), "-x", "Web"]);
    case "active":
    case "proxy_protocol":
      return r.chance(0.8) ? r.chance(0.5) : hostileValue(r);
    case "comment":
      return r.pick(["", "hello", "c".repeat(4096), "c".repeat(4097), hostileString(r, 2)]);
    case "image":
      return r.pick(["localhost/mcp-httpenv:v1", "a/b:v1", "a/b", "a/b:latest", hostileString(r)]);
    case "network":
      return r.pick(["podman", "host", "none", "-n", "mcp_net.1"]);
    case "user":
      return r.pick(["0:0", "app", "--privileged", "_apt", "a:-b"]);
    case "restart":
      return r.pick(["no", "always", "on-failure:3", "unless-stopped", "-always"]);
    case "memory":
      return r.pick(["256m", "6m", "5m", "1024g", "1025g", "1.5g", "-1m", 256]);
    case "cpus":
      return r.pick([0.5, 2, 0.01, 0.001, 0, -1, 1024, 1025, NaN, Infinity, "1"]);
    case "pids":
      return r.pick([1, 64, 0, -1, 1.5, 4194304, 4194305, 2 ** 53]);
    case "ports":
      return list(() => r.pick(["127.0.0.1:18080:8080", "8080", "1:2", "-p"]));
    case "volumes":
      return list(() => r.pick(["/srv/x:/x", "/a:/b:ro", "rel:/x", "/a\u0000:/b"]));
    case "cmd":
      return list((long) =>
        r.pick(["serve", "--config", "-v", 1, long ? "a" : "a".repeat(r.pick([32768, 32769]))]),
      );
    case "env":
      return list((long) => {
        const value = "x".repeat(long ? 1 : r.pick([1, 32766, 40_000]));
        return r.pick(["A=1", "PORT=1", "1X=2", `B${r.int(0, 9)}=${value}`]);
      });
    case "routes":
      return list((long) => route(r, long), [0, 1, 2, 3, 64, 65]);
    case "components":
      return list((long) => component(r, long), [0, 1, 2, 3, 16, 17]);
    case "path":
      return r.pick(["../x", "", hostileString(r)]);
    case "build":
      return {
        images: { [r.pick(["mcp-httpenv", "b", hostileKey(r)])]: r.pick(["Dockerfile", ""]) },
      };
    default:
      return hostileValue(r);
  }
}

function tableOf(r: Rng, keys: readonly string[]): Record<string, unknown> {
  const t: Record<string, unknown> = {};
  for (const k of keys) if (r.chance(0.7)) t[k] = fieldValue(r, k);
  if (r.chance(0.1)) t[hostileKey(r)] = hostileValue(r);
  return t;
}

const SERVICE_KEYS = ["name", "node", "active", "comment", "path", "build", "components"];
const COMPONENT_KEYS = [
  ...["name", "image", "network", "user", "restart", "memory", "cpus", "pids"],
  ...["ports", "volumes", "cmd", "env", "routes"],
];
const ROUTE_KEYS = ["name", "port", "mode", "hostname", "protocol", "proxy_protocol"];

/** `plain`: one of many, so cheap and mostly valid. */
function route(r: Rng, plain = false): unknown {
  if (plain) return { name: `r${r.int(0, 99)}`, port: r.int(0, 65536) };
  if (r.chance(0.05)) return hostileValue(r);
  const t = tableOf(r, ROUTE_KEYS);
  t.port = r.chance(0.8) ? r.int(1, 65535) : hostileValue(r);
  if (r.chance(0.5)) t.name = `r${r.int(0, 99)}`;
  return t;
}

function component(r: Rng, plain = false): unknown {
  if (plain) return { name: `c${r.int(0, 20)}`, image: r.pick(["a/b:v1", "a/b"]) };
  if (r.chance(0.05)) return hostileValue(r);
  const t = tableOf(r, COMPONENT_KEYS);
  if (r.chance(0.7)) t.name = `c${r.int(0, 20)}`;
  if (r.chance(0.7)) t.image = "localhost/mcp-httpenv:v1";
  return t;
}

function definition(r: Rng): Record<string, unknown> {
  const t = tableOf(r, SERVICE_KEYS);
  if (r.chance(0.8)) Object.assign(t, { name: "svc", node: "local" });
  if (r.chance(0.8)) t.components = Array.from({ length: r.int(1, 3) }, () => component(r));
  return t;
}

/** A free-form string that validation accepts wherever any string goes (env values, cmd). */
function anyText(r: Rng, max: number): string {
  let s = "";
  for (let i = r.int(0, max); i > 0; i--) {
    s += r.chance(0.8)
      ? String.fromCharCode(r.int(0x20, 0x7e))
      : r.pick(["é", "😀", "\n", "\t", '"', "\\", "\u202e", "-", "--", "'''", "#"]);
  }
  return s;
}

/**
 * A definition validation should accept (edge values included: resources
 * at their bounds, values starting with "-" where they are allowed,
 * unicode and escapes), so the checks on accepted definitions run often.
 */
function validDefinition(r: Rng): Record<string, unknown> {
  const components = Array.from({ length: r.int(1, 4) }, (_, i) => {
    const c: Record<string, unknown> = {
      name: `c${i}`,
      image: r.pick([
        "localhost/mcp-httpenv:v1",
        "reg.example:5000/a/b:v1.2",
        `a@sha256:${"0".repeat(64)}`,
      ]),
    };
    const add = (key: string, value: () => unknown) => {
      if (r.chance(0.4)) c[key] = value();
    };
    add("network", () => r.pick(["podman", "mcp_net.1", "n-1"]));
    add("user", () => r.pick(["0:0", "app", "_apt", "1000:1000"]));
    add("restart", () => r.pick(["no", "always", "on-failure:5", "unless-stopped"]));
    add("memory", () => r.pick(["6m", "256m", "1g", "1024g", "6291456b", "512M"]));
    add("cpus", () => r.pick([0.01, 0.5, 1, 2.25, 1024, r.int(1, 102400) / 100]));
    add("pids", () => r.pick([1, 64, 4194304, r.int(1, 4194304)]));
    add("ports", () => Array.from({ length: r.int(0, 4) }, (_, j) => `127.0.0.1:${18000 + j}:80`));
    add("volumes", () => Array.from({ length: r.int(0, 3) }, (_, j) => `/srv/x${j}:/data${j}:ro`));
    add("cmd", () => Array.from({ length: r.int(0, 5) }, () => anyText(r, 30)));
    add("env", () => Array.from({ length: r.int(0, 5) }, (_, j) => `K_${j}=${anyText(r, 40)}`));
    if (r.chance(0.6)) {
      c.routes = r.chance(0.3)
        ? [{ port: r.int(1, 65535), mode: r.pick(["l4", "l7"]) }]
        : Array.from({ length: r.int(1, 4) }, (_, j) => ({
            name: `r${j}`,
            port: r.int(1, 65535),
            ...(r.chance(0.3) ? { protocol: r.pick(["tcp", "udp"]) } : {}),
            ...(r.chance(0.3) ? { hostname: "a.example.test" } : {}),
          }));
      // proxy_protocol on tcp routes only (a udp route is never proxied), either value.
      for (const route of c.routes as Record<string, unknown>[]) {
        if (route.protocol !== "udp" && r.chance(0.3)) route.proxy_protocol = r.chance(0.5);
      }
    }
    return c;
  });
  const def: Record<string, unknown> = { name: "svc", node: "local", components };
  if (r.chance(0.3)) def.active = r.chance(0.5);
  if (r.chance(0.3)) def.comment = anyText(r, 200);
  if (r.chance(0.1)) def.path = "../svc";
  return def;
}

// ------------------------------------------------------------------ text mutations

function lines(text: string): string[] {
  return text.split("\n");
}

function mutate(r: Rng, text: string): string {
  let t = text;
  for (let n = r.int(1, 8); n > 0; n--) {
    const ls = lines(t);
    const at = r.int(0, Math.max(0, ls.length - 1));
    switch (r.int(0, 7)) {
      case 0: {
        // Flip one bit of one byte (as UTF-16 code unit: the text may stop being UTF-8).
        if (t.length === 0) break;
        const i = r.int(0, t.length - 1);
        t =
          t.slice(0, i) +
          String.fromCharCode(t.charCodeAt(i) ^ (1 << r.int(0, 7))) +
          t.slice(i + 1);
        break;
      }
      case 1:
        t = t.slice(0, r.int(0, t.length));
        break;
      case 2:
        ls.splice(at, 0, ls[at] ?? "");
        t = ls.join("\n");
        break;
      case 3:
        ls.splice(at, 1);
        t = ls.join("\n");
        break;
      case 4: {
        const other = r.int(0, Math.max(0, ls.length - 1));
        [ls[at], ls[other]] = [ls[other] ?? "", ls[at] ?? ""];
        t = ls.join("\n");
        break;
      }
      case 5: {
        // Replace the value of a `key = value` line with a hostile one.
        const line = ls[at] ?? "";
        const eq = line.indexOf("=");
        if (eq > 0) ls[at] = `${line.slice(0, eq)}= ${tomlValue(hostileValue(r))}`;
        t = ls.join("\n");
        break;
      }
      case 6:
        ls.splice(at, 0, `${r.pick(COMPONENT_KEYS)} = ${tomlValue(hostileValue(r))}`);
        t = ls.join("\n");
        break;
      default: {
        // Duplicate the file, or put it into its first [[components]] (not past 1.1 MB).
        if (t.length > 550_000) break;
        t = r.chance(0.5) ? t + "\n" + t : t.replace("[[components]]", "[[components]]\n" + t);
      }
    }
  }
  return t;
}

/** A value as TOML text (smol-toml's own rendering; junk when it cannot). */
function tomlValue(v: unknown): string {
  try {
    return stringify({ v }).replace(/^v = /, "").trimEnd();
  } catch {
    return JSON.stringify(String(v));
  }
}

function tomlText(v: Record<string, unknown>): string {
  try {
    return stringify(v);
  } catch {
    return JSON.stringify(v) ?? "";
  }
}

const TOKENS = [
  ...["[", "]", "[[", "]]", "{", "}", "=", ",", ".", '"', "'", '"""', "'''", "#", "\n", " "],
  ...["name", "components", "routes", "image", "env", "port", "true", "1", "-1", "1.5", "nan"],
  ...["inf", "1979-05-27", "0x10", "1e400", "\\u0000", "\\", "é", "😀", '"a"', "[[components]]"],
  ...["[[components.routes]]", "[components]", "a.b.c", "\r", "\t", "\u0000"],
];

function tokenSoup(r: Rng): string {
  let s = "";
  for (let n = r.int(0, 300); n > 0; n--) s += r.pick(TOKENS);
  return s;
}

function randomBytes(r: Rng): string {
  const bytes = Buffer.alloc(r.pick([0, 1, 16, 256, 4096]));
  for (let i = 0; i < bytes.length; i++) bytes[i] = r.int(0, 255);
  return bytes.toString(r.chance(0.5) ? "utf8" : "latin1");
}

function deepNesting(r: Rng): string {
  const d = r.pick([10, 100, 999, 1000, 1001, 5000, 100_000]);
  switch (r.int(0, 3)) {
    case 0:
      return `name = "svc"\nx = ${"[".repeat(d)}${"]".repeat(d)}\n`;
    case 1:
      return `x = ${"{a=".repeat(d)}1${"}".repeat(d)}\n`;
    case 2:
      return `[${Array.from({ length: d }, () => "a").join(".")}]\n`;
    default:
      return `${"[[components]]\n".repeat(d)}`;
  }
}

// ------------------------------------------------------------------ random specs

function specString(r: Rng, plausible: readonly string[]): string {
  return r.chance(0.6) ? r.pick(plausible) : hostileString(r);
}

function strings(r: Rng, plausible: readonly string[]): string[] {
  return Array.from({ length: r.pick([0, 1, 2, 64, 65, 257]) }, () => specString(r, plausible));
}

function randomSpec(r: Rng): ServiceSpec {
  const routes = (): RouteSpec[] =>
    Array.from({ length: r.pick([0, 1, 2, 65]) }, () => ({
      name: specString(r, ["", "rest", "grpc", "a-b", "a_b"]),
      // Within int32, as anything decoded from the wire is.
      port: r.chance(0.8) ? r.int(0, 70000) : r.int(-(2 ** 31), 2 ** 31 - 1),
      mode: specString(r, ["", "l4", "l7"]),
      hostname: specString(r, ["", "a.example"]),
      protocol: specString(r, ["", "tcp", "udp"]),
      proxyProtocol: r.chance(0.3),
    }));
  const components = Array.from({ length: r.pick([0, 1, 2, 17]) }, () =>
    ComponentSpec.fromPartial({
      name: specString(r, ["web", "api", "c1"]),
      image: specString(r, ["localhost/mcp-httpenv:v1", "a/b:latest"]),
      network: specString(r, ["", "podman"]),
      user: specString(r, ["", "0:0"]),
      restart: specString(r, ["", "always"]),
      memory: specString(r, ["", "256m", "5m"]),
      cpus: r.chance(0.5) ? r.pick([0, 0.5, 2]) : hostileNumber(r),
      pids: r.chance(0.5) ? r.pick([0, 1, 64]) : r.int(-(2 ** 31), 2 ** 31 - 1),
      ports: strings(r, ["127.0.0.1:18080:8080", "8080"]),
      volumes: strings(r, ["/srv/x:/x", "x"]),
      cmd: strings(r, ["serve", "-v"]),
      env: strings(r, ["A=1", "PORT=2", "X"]),
      routes: routes(),
    }),
  );
  const spec: ServiceSpec = {
    name: specString(r, ["svc", "hello"]),
    node: specString(r, ["local", ""]),
    active: r.pick([undefined, true, false]),
    comment: specString(r, ["", "c".repeat(5000)]),
    components,
  };
  // Mostly as the agent sees it: decoded from the wire. Otherwise as a caller
  // in-process might build it, with numbers the wire cannot carry.
  if (r.chance(0.5)) return ServiceSpec.decode(ServiceSpec.encode(spec).finish());
  for (const c of spec.components) {
    if (r.chance(0.2)) c.pids = hostileNumber(r);
    for (const route of c.routes) if (r.chance(0.2)) route.port = hostileNumber(r);
  }
  return spec;
}

// ------------------------------------------------------------------ cases

export type FuzzInput =
  | { kind: "text"; generator: string; text: string }
  | { kind: "spec"; generator: string; spec: ServiceSpec }
  | { kind: "object"; generator: string; value: unknown };

export function makeCase(seed: number, index: number): FuzzInput {
  const r = caseRng(seed, index);
  const g = r.int(0, 99);
  if (g < 10) return { kind: "text", generator: "random bytes", text: randomBytes(r) };
  if (g < 20) return { kind: "text", generator: "token soup", text: tokenSoup(r) };
  if (g < 45)
    return { kind: "text", generator: "mutated file", text: mutate(r, r.pick(SEED_FILES)) };
  if (g < 70) {
    let text = tomlText(definition(r));
    if (r.chance(0.3)) text = mutate(r, text);
    return { kind: "text", generator: "hostile definition", text };
  }
  if (g < 75) return { kind: "text", generator: "deep nesting", text: deepNesting(r) };
  if (g < 83) {
    // Mostly accepted; sometimes one line duplicated (a duplicate key) or one value spoilt.
    let text = tomlText(validDefinition(r));
    if (r.chance(0.2)) text = mutate(r, text);
    return { kind: "text", generator: "valid definition", text };
  }
  if (g < 93) return { kind: "spec", generator: "random spec", spec: randomSpec(r) };
  const value = r.chance(0.5) ? definition(r) : hostileValue(r, 3);
  return { kind: "object", generator: "plain object", value };
}

/**
 * Problems that concern a whole file or spec (its size, the count of the
 * rest), or a whole value that is not a table at all: neither a position nor a path.
 */
const WHOLE_FILE =
  /^(expected a (file|spec) of at most \d+ bytes.*, got \d+ bytes|… and \d+ more problems?|expected a table, got .*)$/;

/** A short, printable view of an input, for the failure report. */
export function preview(input: FuzzInput): string {
  const raw =
    input.kind === "text"
      ? input.text
      : (JSON.stringify(input.kind === "spec" ? input.spec : input.value, (_k, v: unknown) =>
          typeof v === "number" && !Number.isFinite(v) ? String(v) : v,
        ) ?? "undefined");
  const s = JSON.stringify(raw.length > 400 ? `${raw.slice(0, 400)}…` : raw);
  return `${s} (${raw.length} chars)`;
}

function checkProblems(problems: Problem[], what: string): void {
  if (problems.length === 0) throw new Error(`${what}: refused without any problem`);
  for (const p of problems) {
    const positioned =
      (p.line !== undefined && Number.isInteger(p.line) && p.line > 0) ||
      (typeof p.path === "string" && p.path !== "") ||
      WHOLE_FILE.test(p.message);
    if (!positioned)
      throw new Error(`${what}: a problem without position or path: ${JSON.stringify(p)}`);
    if (typeof p.message !== "string" || p.message === "") {
      throw new Error(`${what}: a problem without a message: ${JSON.stringify(p)}`);
    }
    // Echoed values are cut short, so no problem line is long.
    const line = formatProblem("fuzz.toml", p);
    if (line.length > 1000)
      throw new Error(`${what}: a ${line.length}-char problem: ${line.slice(0, 300)}…`);
  }
}

const MAX_ARG_STRLEN = 128 * 1024;
const ARG_MAX = 2 * 1024 * 1024;

/** What an accepted definition must do: round-trip, and give containers podman can create. */
function checkAccepted(def: ServiceDef, what: string): void {
  const spec = toServiceSpec(def);
  const problems = validateServiceSpec(spec);
  if (problems.length > 0) {
    throw new Error(`${what}: accepted, but its spec is refused: ${JSON.stringify(problems)}`);
  }
  const { path: _path, build: _build, ...agentSide } = def;
  const wire = ServiceSpec.decode(ServiceSpec.encode(spec).finish());
  if (!isDeepStrictEqual(fromServiceSpec(wire), agentSide)) {
    throw new Error(`${what}: def → spec → wire → def is not exact`);
  }
  if (!isDeepStrictEqual(parseServiceDef(renderServiceDef(def), "rendered.toml"), def)) {
    throw new Error(`${what}: render → parse is not exact`);
  }
  checkContainers(spec, what);
}

/** Every string in a JSON value, keys included. */
function stringsOf(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.flatMap(stringsOf);
  if (typeof v === "object" && v !== null)
    return Object.entries(v).flatMap(([k, x]) => [k, ...stringsOf(x)]);
  return [];
}

/**
 * Each component's create body, as the runtime would send it: it can be
 * built (buildCreateBody refuses what the API cannot express), no string in
 * it holds NUL, and its environment and command fit the execve that starts
 * the container's process.
 */
function checkContainers(spec: ServiceSpec, what: string): void {
  for (const c of spec.components) {
    const ports = new Map(c.routes.map((r, i) => [r.name, 10000 + i]));
    const target = { node: "n", service: spec.name, bindAddress: "127.0.0.1", logMaxSize: "10m" };
    let body: ReturnType<typeof buildCreateBody>;
    try {
      body = buildCreateBody(containerSpecFor(target, c, ports));
    } catch (err) {
      throw new Error(`${what}: accepted, but no create body: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (stringsOf(body).some((x) => x.includes("\u0000")))
      throw new Error(`${what}: a create body string with NUL`);
    const exec = [
      ...Object.entries(body.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...(body.command ?? []),
    ];
    let total = 0;
    for (const a of exec) {
      const n = Buffer.byteLength(a);
      total += n + 1;
      if (n > MAX_ARG_STRLEN) throw new Error(`${what}: an env or command string of ${n} bytes`);
    }
    if (total > ARG_MAX / 2) throw new Error(`${what}: ${total} bytes of env and command`);
  }
}

/** Runs one case; throws (with a reason) when an invariant breaks. */
export function runCase(input: FuzzInput): "accepted" | "refused" {
  const what = input.generator;
  if (input.kind === "spec") {
    const problems = validateServiceSpec(input.spec);
    if (problems.length > 0) {
      checkProblems(problems, what);
      return "refused";
    }
    checkContainers(input.spec, what);
    return "accepted";
  }
  if (input.kind === "object") {
    const { def, problems } = validateServiceDef(input.value);
    if (!def) {
      checkProblems(problems, what);
      return "refused";
    }
    checkAccepted(def, what);
    return "accepted";
  }
  let def: ServiceDef;
  try {
    def = parseServiceDef(input.text, "fuzz.toml");
  } catch (err) {
    if (!(err instanceof ValidationError) || err.code !== "invalid_definition") {
      const name = err instanceof Error ? err.constructor.name : typeof err;
      const code = err instanceof McpError ? ` (${err.code})` : "";
      throw new Error(`${what}: crashed with ${name}${code}: ${String(err).slice(0, 300)}`, {
        cause: err,
      });
    }
    if (err.file !== "fuzz.toml") {
      throw new Error(`${what}: the error names ${err.file}`, { cause: err });
    }
    checkProblems(err.problems, what);
    return "refused";
  }
  checkAccepted(def, what);
  return "accepted";
}

// ------------------------------------------------------------------ worker

export interface FuzzFailure {
  index: number;
  generator: string;
  error: string;
  input: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  accepted: number;
  byGenerator: Record<string, number>;
  slowestMs: number;
  slowestCase: number;
  totalMs: number;
  failures: FuzzFailure[];
}

export interface FuzzJob {
  fuzz: true;
  seed: number;
  cases: number;
  /** Int32Array over it: [0] = index of the case running now. */
  progress: SharedArrayBuffer;
}

export function runAll(job: FuzzJob): FuzzReport {
  const progress = new Int32Array(job.progress);
  const report: FuzzReport = {
    seed: job.seed,
    cases: job.cases,
    accepted: 0,
    byGenerator: {},
    slowestMs: 0,
    slowestCase: -1,
    totalMs: 0,
    failures: [],
  };
  const start = performance.now();
  for (let i = 0; i < job.cases; i++) {
    Atomics.store(progress, 0, i);
    const input = makeCase(job.seed, i);
    report.byGenerator[input.generator] = (report.byGenerator[input.generator] ?? 0) + 1;
    const t0 = performance.now();
    try {
      if (runCase(input) === "accepted") report.accepted++;
    } catch (err) {
      if (report.failures.length < 10) {
        report.failures.push({
          index: i,
          generator: input.generator,
          error: err instanceof Error ? err.message : String(err),
          input: preview(input),
        });
      }
    }
    const ms = performance.now() - t0;
    if (ms > report.slowestMs) {
      report.slowestMs = ms;
      report.slowestCase = i;
    }
  }
  report.totalMs = performance.now() - start;
  Atomics.store(progress, 0, job.cases);
  return report;
}

if (!isMainThread && (workerData as Partial<FuzzJob> | undefined)?.fuzz) {
  parentPort?.postMessage(runAll(workerData as FuzzJob));
}
