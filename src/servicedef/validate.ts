/**
 * Validation of a service definition (DESIGN.md "Service definitions").
 *
 * Every rule reports a Problem with the field path and what was expected,
 * and checking goes on, so one run lists every problem in the file. The
 * strings checked here end up in container names, in what podman is asked
 * to run and in the podman commands an operator types from them, so the
 * rules are allow-lists, not deny-lists: none lets through a value a podman
 * command line could read as an option (one starting with "-"), a NUL, or
 * anything larger than the limits in limits.ts.
 */
import { at, defined, quote, ECHO_MAX, TableChecker, type Parse } from "../util/checker.js";
import type { Problem } from "../util/errors.js";
import { routeEnvName } from "./env.js";
import { STRATEGIES, parseHealth } from "./health.js";
import { imageName, parseImageRef } from "./image.js";
import {
  BUILTIN_LIMITS,
  formatBytes,
  MAX_CPUS,
  MAX_MEMORY_BYTES,
  MAX_PIDS,
  MAX_PROBLEMS,
  MIN_CPUS,
  MIN_MEMORY_BYTES,
  parseSize,
  type Limits,
} from "./limits.js";
import { parsePortMapping } from "./ports.js";
import { splitVolume } from "./volumes.js";
import type {
  BuildDef,
  ComponentDef,
  RouteDef,
  RouteMode,
  RouteProtocol,
  ServiceDef,
  ServiceDefOptions,
} from "./types.js";

export const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const ROUTE_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
// Neither may start with "-" or "." (`--privileged` is not a user).
const NETWORK_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Neither user nor group may start with "-" or ".": on a command line the value follows `--user`.
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
const RESTART_RE = /^(no|always|on-failure(:[0-9]{1,6})?|unless-stopped)$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DNS_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOSTNAME_RE = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`);
// Image grammar, a little looser than the distribution spec's: an optional
// registry host[:port] then lowercase path segments; tag; algorithm:hex digest.
const IMAGE_REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]+)?(\/[a-z0-9][a-z0-9._-]*)*$/;
const IMAGE_TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_DIGEST_RE = /^[a-z0-9]+([+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

const SERVICE_KEYS = ["name", "node", "active", "comment", "path", "build", "components"];
const BUILD_KEYS = ["images", "uses_mcdsl"];
const COMPONENT_KEYS = [
  ...["name", "image", "network", "user", "restart", "memory", "cpus", "pids", "strategy"],
  ...["ports", "volumes", "cmd", "env", "routes"],
];
const ROUTE_KEYS = ["name", "port", "mode", "hostname", "protocol", "proxy_protocol"];

const EXPECT = {
  name: 'a name of lowercase letters, digits and "-" (1-63 chars, no "-" at either end)',
  routeName:
    'a route name of lowercase letters, digits, "_" and "-" (1-63 chars, not starting with "_" or "-")',
  network:
    'a network name of letters, digits, "_", "." and "-" (not starting with "_", "." or "-")',
  user: '"user" or "user:group" (letters, digits, "_", "." and "-"; neither starting with "." or "-")',
  restart: '"no", "always", "on-failure[:N]" or "unless-stopped"',
  memory: 'a size like "256m" (a whole number and b, k, m or g) from "6m" to "1024g"',
  cpus: `a number of CPUs from ${MIN_CPUS} to ${MAX_CPUS}`,
  port: '"[ip:]hostPort:containerPort[/tcp|/udp]"',
  volume: '"/host/path:/container/path[:options]"',
  env: '"KEY=VALUE" with KEY of letters, digits and "_" (not starting with a digit)',
};

/**
 * Drops absent values, "" and [] so that "omitted" has exactly one
 * representation (absent), which makes ServiceDef ⇄ ServiceSpec exact.
 */
export function compact<T extends object>(o: T): T {
  const entries = Object.entries(o).filter(
    ([, v]) => v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0),
  );
  return Object.fromEntries(entries) as T;
}

/**
 * Each parse function reports its problems and returns the value, or a
 * best-effort placeholder after a problem so that cross-field rules (unique
 * names, route variables) still run; validateServiceDef discards the result
 * whenever there is a problem. Only a value of the wrong shape gives undefined.
 */
class Checker extends TableChecker {
  private readonly limits: Limits;

  constructor(private readonly opts: ServiceDefOptions) {
    super("unknown field");
    this.limits = opts.limits ?? BUILTIN_LIMITS;
  }

  /** A string field other than a name or comment: at most maxFieldBytes, then `parse`. */
  short<T>(parse: Parse<T>): Parse<T> {
    const max = this.limits.maxFieldBytes;
    return this.bounded(max, formatBytes(max), parse);
  }

  service(v: unknown): ServiceDef | undefined {
    const t = this.table(v, "");
    if (!t) return undefined;
    const L = this.limits;
    const name = this.field(t, "", "name", this.matching(NAME_RE, EXPECT.name), true);
    const node = this.field(t, "", "node", this.matching(NAME_RE, EXPECT.name), true);
    const active = this.field(t, "", "active", this.boolean);
    const commentMax = formatBytes(L.maxCommentBytes);
    const comment = this.field(
      t,
      "",
      "comment",
      this.bounded(L.maxCommentBytes, commentMax, this.string),
    );
    const path = this.field(t, "", "path", this.short(this.nonEmpty));
    const build = this.field(t, "", "build", this.build);
    const what = "an array of tables ([[components]])";
    const components = this.field(
      t,
      "",
      "components",
      this.list(this.component, what, { count: L.maxComponents, noun: "components" }),
      true,
    );
    if (components?.length === 0) this.fail("components", "expected at least one component");
    this.unknownKeys(t, "", SERVICE_KEYS);
    if (components) this.uniqueComponents(components);
    if (build?.images && components) this.buildImages(build.images, components);

    return compact({
      ...{ name: name ?? "", node: node ?? "", active, comment, path, build },
      components: defined(components ?? []),
    });
  }

  build: Parse<BuildDef> = (v, p) => {
    const t = this.table(v, p);
    if (!t) return undefined;
    const images = this.field(t, p, "images", (iv, ip) => {
      const it = this.table(iv, ip);
      if (!it) return undefined;
      for (const [k, file] of Object.entries(it)) this.short(this.nonEmpty)(file, at(ip, k));
      // A plain copy: smol-toml's tables have a null prototype.
      return { ...it } as Record<string, string>;
    });
    const usesMcdsl = this.field(t, p, "uses_mcdsl", this.boolean);
    this.unknownKeys(t, p, BUILD_KEYS);
    const b: BuildDef = {};
    if (images !== undefined) b.images = images;
    if (usesMcdsl !== undefined) b.uses_mcdsl = usesMcdsl;
    return b;
  };

  /** Reference §4.1.2: each build image names the image of some component. */
  buildImages(images: Record<string, string>, components: (ComponentDef | undefined)[]): void {
    // A placeholder component (after a problem) may lack its image.
    const names = new Set(components.map((c) => (c?.image ? imageName(c.image) : "")));
    for (const k of Object.keys(images)) {
      if (!names.has(k))
        this.fail(at("build.images", k), `no component image is named ${quote(k)}`);
    }
  }

  uniqueComponents(components: (ComponentDef | undefined)[]): void {
    const seen = new Map<string, number>();
    components.forEach((c, i) => {
      if (!c?.name) return;
      const first = seen.get(c.name);
      if (first === undefined) seen.set(c.name, i);
      else
        this.fail(
          at(at("components", i), "name"),
          `duplicate component name "${c.name}" (also components[${first}])`,
        );
    });
  }

  component: Parse<ComponentDef> = (v, p) => {
    const t = this.table(v, p);
    if (!t) return undefined;
    const L = this.limits;
    const max = (count: number, noun: string) => ({ count, noun });
    const name = this.field(t, p, "name", this.matching(NAME_RE, EXPECT.name), true);
    const image = this.field(t, p, "image", this.short(this.image), true);
    const network = this.field(
      t,
      p,
      "network",
      this.short(this.matching(NETWORK_RE, EXPECT.network)),
    );
    const user = this.field(t, p, "user", this.short(this.matching(USER_RE, EXPECT.user)));
    const restart = this.field(t, p, "restart", this.matching(RESTART_RE, EXPECT.restart));
    const memory = this.field(t, p, "memory", this.memory);
    const cpus = this.field(t, p, "cpus", this.cpus);
    const pids = this.field(t, p, "pids", this.integer(1, MAX_PIDS));
    const ports = this.field(
      t,
      p,
      "ports",
      this.list(this.short(this.portMapping), "an array", max(L.maxPortsPerComponent, "ports")),
    );
    const volumes = this.field(
      t,
      p,
      "volumes",
      this.list(this.short(this.volume), "an array", max(L.maxVolumesPerComponent, "volumes")),
    );
    const arg = this.bounded(L.maxCmdArgBytes, formatBytes(L.maxCmdArgBytes), this.string);
    const cmd = this.field(t, p, "cmd", this.list(arg, "an array", max(L.maxCmdArgs, "arguments")));
    const entry = this.bounded(L.maxEnvEntryBytes, formatBytes(L.maxEnvEntryBytes), this.envEntry);
    const env = this.field(
      t,
      p,
      "env",
      this.list(entry, "an array", max(L.maxEnvPerComponent, "entries")),
    );
    const what = "an array of tables ([[components.routes]])";
    const routes = this.field(
      t,
      p,
      "routes",
      this.list(this.route, what, max(L.maxRoutesPerComponent, "routes")),
    );
    const strategy = this.field(t, p, "strategy", this.oneOf(STRATEGIES));
    const health = this.field(t, p, "health", (hv, hp) =>
      parseHealth(this, hv, hp, routes ?? [], this.short(this.string)),
    );
    this.unknownKeys(t, p, [...COMPONENT_KEYS, "health"]);
    if (strategy === "start-first" && (ports?.length ?? 0) > 0) {
      // The trial beside the old container would bind them a second time.
      this.fail(
        at(p, "strategy"),
        '"start-first" runs two containers at once, which explicit ports cannot: use "stop-first" or routes',
      );
    }
    if (routes) this.routeNames(routes, at(p, "routes"));
    if (env) this.envVars(env, routes ?? [], at(p, "env"));
    this.argvSize([...(env ?? []), ...(cmd ?? [])], p);

    return compact({
      name: name ?? "",
      image: image ?? "",
      network,
      user,
      restart,
      memory,
      cpus,
      pids,
      ports: ports && defined(ports),
      volumes: volumes && defined(volumes),
      cmd: cmd && defined(cmd),
      env: env && defined(env),
      routes: routes && defined(routes),
      health,
      strategy,
    });
  };

  /** Env and cmd start the container's process; the kernel caps their total. */
  argvSize(strings: (string | undefined)[], path: string): void {
    let total = 0;
    for (const s of strings) if (s !== undefined) total += Buffer.byteLength(s);
    const max = this.limits.maxEnvCmdBytes;
    if (total > max) {
      this.fail(
        path,
        `expected env and cmd of at most ${formatBytes(max)} together, got ${total} bytes`,
      );
    }
  }

  /** Podman's `--memory` syntax, narrowed (limits.ts parseSize). */
  memory: Parse<string> = (v, p) => {
    const bytes = typeof v === "string" ? parseSize(v) : undefined;
    return bytes !== undefined && bytes >= MIN_MEMORY_BYTES && bytes <= MAX_MEMORY_BYTES
      ? (v as string)
      : this.expected(p, EXPECT.memory, v);
  };

  /** Podman's `--cpus`: an integer or a float. */
  cpus: Parse<number> = (v, p) =>
    typeof v === "number" && Number.isFinite(v) && v >= MIN_CPUS && v <= MAX_CPUS
      ? v
      : this.expected(p, EXPECT.cpus, v);

  image: Parse<string> = (v, p) => {
    const s = this.string(v, p);
    if (s === undefined) return undefined;
    const { repository, tag, digest } = parseImageRef(s);
    if (
      !IMAGE_REPO_RE.test(repository) ||
      (tag !== undefined && !IMAGE_TAG_RE.test(tag)) ||
      (digest !== undefined && !IMAGE_DIGEST_RE.test(digest))
    ) {
      return this.expected(p, 'an image reference like "registry/name:tag"', s);
    }
    if (tag === undefined && digest === undefined) {
      return this.expected(p, 'a tag or digest (like "localhost/app:v1")', s);
    }
    // `:latest` is refused because it moves; a digest pins it, so that is fine.
    if (tag === "latest" && digest === undefined && !this.opts.allowLatest) {
      return this.fail(p, 'the "latest" tag is refused; pin a version');
    }
    return s;
  };

  /** Podman must never pick a host port, so the host port is required. */
  portMapping: Parse<string> = (v, p) =>
    typeof v === "string" && parsePortMapping(v)?.hostPort !== undefined
      ? v
      : this.expected(p, EXPECT.port, v);

  volume: Parse<string> = (v, p) => {
    const s = this.string(v, p);
    if (s === undefined) return undefined;
    const { source: host, destination: container, options, extra } = splitVolume(s);
    const abs = (x: string) => x.startsWith("/");
    if (
      !abs(host) ||
      !abs(container) ||
      extra.length > 0 ||
      (options !== undefined && !/^\S+$/.test(options))
    ) {
      return this.expected(p, EXPECT.volume, s);
    }
    if ([host, container].some((x) => x.split("/").includes(".."))) {
      return this.expected(p, 'paths without ".." segments', s);
    }
    return s;
  };

  envEntry: Parse<string> = (v, p) => {
    const eq = typeof v === "string" ? v.indexOf("=") : -1;
    return typeof v === "string" && eq > 0 && ENV_KEY_RE.test(v.slice(0, eq))
      ? v
      : this.expected(p, EXPECT.env, v);
  };

  route: Parse<RouteDef> = (v, p) => {
    const t = this.table(v, p);
    if (!t) return undefined;
    const name = this.field(t, p, "name", this.matching(ROUTE_NAME_RE, EXPECT.routeName));
    const port = this.field(t, p, "port", this.portNumber, true);
    const mode = this.field(t, p, "mode", this.oneOf<RouteMode>(["l4", "l7"]));
    const hostname = this.field(t, p, "hostname", this.matching(HOSTNAME_RE, "a DNS name"));
    const protocol = this.field(t, p, "protocol", this.oneOf<RouteProtocol>(["tcp", "udp"]));
    const proxyProtocol = this.field(t, p, "proxy_protocol", this.boolean);
    this.unknownKeys(t, p, ROUTE_KEYS);
    if (proxyProtocol && protocol === "udp") {
      // UDP routes never go through the proxy (src/edge/hostnames.ts): nothing would send it.
      this.fail(at(p, "proxy_protocol"), "a udp route is not proxied: no PROXY header can be sent");
    }
    // `false` is the default: absent, so the definition has one form and round-trips exactly.
    return compact({
      ...{ name, port: port ?? 0, mode, hostname, protocol },
      proxy_protocol: proxyProtocol === true ? (true as const) : undefined,
    });
  };

  portNumber = this.integer(1, 65535);

  /**
   * One unnamed route ($PORT) alone, or named routes whose variables
   * ($PORT_<NAME>) are all distinct.
   */
  routeNames(routes: (RouteDef | undefined)[], path: string): void {
    const byVar = new Map<string, number>();
    routes.forEach((r, i) => {
      if (!r) return;
      if (r.name === undefined) {
        if (routes.length > 1)
          this.fail(at(path, i), "an unnamed route must be the only route of its component");
        return;
      }
      const envName = routeEnvName(r);
      const first = byVar.get(envName);
      if (first === undefined) {
        byVar.set(envName, i);
        return;
      }
      const other = routes[first]?.name ?? "";
      this.fail(
        at(at(path, i), "name"),
        other === r.name
          ? `duplicate route name "${r.name}" (also routes[${first}])`
          : `"${r.name}" and "${other}" (routes[${first}]) both set ${envName}`,
      );
    });
  }

  /** Unique keys, none of them a variable the routes set. */
  envVars(env: (string | undefined)[], routes: (RouteDef | undefined)[], path: string): void {
    const routeVars = new Map<string, number>();
    routes.forEach((r, i) => {
      if (r && !routeVars.has(routeEnvName(r))) routeVars.set(routeEnvName(r), i);
    });
    const seen = new Map<string, number>();
    env.forEach((entry, i) => {
      if (entry === undefined) return;
      const key = entry.slice(0, entry.indexOf("="));
      const first = seen.get(key);
      const ri = routeVars.get(key);
      const route = ri === undefined ? undefined : routes[ri];
      if (first !== undefined) {
        const shown = key.length > ECHO_MAX ? quote(key) : key;
        this.fail(at(path, i), `duplicate variable ${shown} (also env[${first}])`);
      } else if (route) {
        const by = route.name === undefined ? "the unnamed route" : `route "${route.name}"`;
        this.fail(at(path, i), `${key} is already set by ${by} (routes[${ri}])`);
      }
      if (first === undefined) seen.set(key, i);
    });
  }
}

/**
 * Validates an already-parsed definition (a TOML table, or what the agent
 * received). The definition is returned only when there are no problems; it
 * is a fresh object holding known fields only, with omitted ones absent.
 */
export function validateServiceDef(
  value: unknown,
  opts: ServiceDefOptions = {},
  /** Problems found before (the spec's size), listed first. */
  earlier: Problem[] = [],
): { def?: ServiceDef; problems: Problem[] } {
  const checker = new Checker(opts);
  const def = checker.service(value);
  const problems = capped([...earlier, ...checker.problems]);
  return problems.length === 0 && def ? { def, problems } : { problems };
}

/** The first MAX_PROBLEMS problems, then one saying how many more there are. */
function capped(problems: Problem[]): Problem[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  const more = problems.length - MAX_PROBLEMS;
  return [
    ...problems.slice(0, MAX_PROBLEMS),
    { path: "", message: `… and ${more} more problem${more === 1 ? "" : "s"}` },
  ];
}
