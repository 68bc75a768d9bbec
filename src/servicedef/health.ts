/**
 * `[components.health]` and `strategy` of a component: how a deploy proves a
 * new version and in which order it replaces the old one (README, "Health
 * checks"). Checked here like every other rule of a definition: field path,
 * expected value, every problem at once. Durations stay as written, so a
 * definition round-trips through ServiceSpec exactly; HEALTH_DEFAULTS say
 * what an absent field means.
 */
import { parseDuration } from "../config/duration.js";
import { at, defined, type Parse, type TableChecker } from "../util/checker.js";
import type { HealthDef, HealthType, RouteDef, Strategy } from "./types.js";

export const HEALTH_TYPES: readonly HealthType[] = ["http", "tcp", "exec", "none"];
export const STRATEGIES: readonly Strategy[] = ["start-first", "stop-first"];

const HEALTH_KEYS = [
  ...["type", "route", "path", "cmd"],
  ...["interval", "timeout", "retries", "start_period", "deadline"],
];

/** What an absent field of `[components.health]` means. */
export const HEALTH_DEFAULTS = {
  interval: "10s",
  timeout: "2s",
  retries: 3,
  start_period: "0s",
  deadline: "60s",
} as const;

/** Most consecutive failures a check may allow before a component is unhealthy. */
export const MAX_RETRIES = 100;
/** Longest a deploy may wait for a first passing check. */
const MAX_DEADLINE_MS = 3_600_000;

/** An HTTP path: starts with "/", printable ASCII without spaces. */
const HTTP_PATH_RE = /^\/[\x21-\x7e]*$/;

/**
 * Reads `[components.health]` at `p`. `routes` are the component's routes
 * (undefined entries failed their own checks) and decide which checks can
 * run: http and tcp need a tcp route, `route` must name one.
 */
export function parseHealth(
  c: TableChecker,
  v: unknown,
  p: string,
  routes: readonly (RouteDef | undefined)[],
  string: Parse<string>,
): HealthDef | undefined {
  const t = c.table(v, p, "a table ([components.health])");
  if (!t) return undefined;
  const type = c.field(t, p, "type", c.oneOf(HEALTH_TYPES), true);
  const route = c.field(t, p, "route", string);
  const path = c.field(t, p, "path", (x, q) => {
    const s = string(x, q);
    if (s === undefined) return undefined;
    return HTTP_PATH_RE.test(s)
      ? s
      : c.expected(q, 'a path starting with "/" (printable, no spaces)', x);
  });
  const cmd = c.field(t, p, "cmd", (x, q) => {
    const list = c.list(string)(x, q);
    if (list?.length === 0) return c.fail(q, "expected at least one argument");
    return list && list.length === defined(list).length ? defined(list) : undefined;
  });
  const duration = (min: number) =>
    c.parsing((s) => {
      const ms = parseDuration(s);
      if (ms < min) throw new Error(`expected a duration above zero, got ${JSON.stringify(s)}`);
      if (ms > MAX_DEADLINE_MS) throw new Error(`expected at most 1h, got ${JSON.stringify(s)}`);
      return s;
    }, 'a duration such as "10s"');
  const interval = c.field(t, p, "interval", duration(1));
  const timeout = c.field(t, p, "timeout", duration(1));
  const retries = c.field(t, p, "retries", c.integer(1, MAX_RETRIES));
  const startPeriod = c.field(t, p, "start_period", duration(0));
  const deadline = c.field(t, p, "deadline", duration(1));
  c.unknownKeys(t, p, HEALTH_KEYS);

  if (type !== undefined) {
    const onlyFor = (key: string, value: unknown, types: HealthType[], what: string) => {
      if (value !== undefined && !types.includes(type)) {
        c.fail(at(p, key), `only ${what} checks have a ${key} (this one is "${type}")`);
      }
    };
    onlyFor("route", route, ["http", "tcp"], "http and tcp");
    onlyFor("path", path, ["http"], "http");
    onlyFor("cmd", cmd, ["exec"], "exec");
    if (type === "exec" && !Object.hasOwn(t, "cmd"))
      c.fail(at(p, "cmd"), "required for an exec check");
    if (type === "http" || type === "tcp") checkedRoute(c, p, type, route, routes);
  }

  const h: HealthDef = { type: type ?? "none" };
  if (route !== undefined) h.route = route;
  if (path !== undefined) h.path = path;
  if (cmd !== undefined) h.cmd = cmd;
  if (interval !== undefined) h.interval = interval;
  if (timeout !== undefined) h.timeout = timeout;
  if (retries !== undefined) h.retries = retries;
  if (startPeriod !== undefined) h.start_period = startPeriod;
  if (deadline !== undefined) h.deadline = deadline;
  return h;
}

/** The route an http/tcp check uses must exist and be tcp; some tcp route must. */
function checkedRoute(
  c: TableChecker,
  p: string,
  type: "http" | "tcp",
  route: string | undefined,
  routes: readonly (RouteDef | undefined)[],
): void {
  const known = routes.filter((r): r is RouteDef => r !== undefined);
  if (route === undefined) {
    if (!known.some((r) => r.protocol !== "udp")) {
      const article = type === "http" ? "an" : "a";
      c.fail(p, `${article} ${type} check needs a tcp route to check, and this component has none`);
    }
    return;
  }
  const named = known.find((r) => r.name === route);
  if (!named) {
    const names = known.flatMap((r) => (r.name === undefined ? [] : [`"${r.name}"`]));
    c.fail(
      at(p, "route"),
      `no route named "${route}" in this component (${names.length > 0 ? `it has ${names.join(", ")}` : "it has no named routes"})`,
    );
  } else if (named.protocol === "udp") {
    c.fail(at(p, "route"), `route "${route}" is udp: only tcp routes can be checked`);
  }
}

/** The strategy a component gets when it names none (README, "Health checks"). */
export function defaultStrategy(c: {
  volumes?: readonly string[];
  ports?: readonly string[];
}): Strategy {
  return (c.volumes?.length ?? 0) > 0 || (c.ports?.length ?? 0) > 0 ? "stop-first" : "start-first";
}
