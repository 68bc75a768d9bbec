/**
 * Routes on the agent's HAProxy: each change is written to the files under
 * `[proxy] dir` first (the source of truth a restarted HAProxy starts from)
 * and then applied through the runtime API, without a reload. Only a change
 * of the set of listener ports rewrites the config, checks it with
 * `haproxy -c` and reloads (hitless). One change at a time (a mutex): the
 * files and HAProxy never disagree about more than the change in progress.
 */
import path from "node:path";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { McpError, errorMessage } from "../../util/errors.js";
import { runCommand } from "../../util/exec.js";
import { Mutex } from "../../util/mutex.js";
import { certFile, listenerFiles, proxyFiles, renderHaproxyConfig, renderMap } from "./config.js";
import type { LiveRoute, ProxyDriver, ProxyRoute } from "../types.js";
import type { HaproxyProcess } from "./process.js";
import {
  addCertCommands,
  addMapCommand,
  delMapCommand,
  parseShowMap,
  renewCertCommands,
  runtimeCommand,
  setMapCommand,
  showMapCommand,
} from "./runtime-api.js";

/** The map a route goes in, and the one of its mode it must not be in. */
function routeMaps(
  f: ReturnType<typeof listenerFiles>,
  mode: "l4" | "l7",
  proxyProtocol: boolean,
): { map: string; other: string } {
  const [plain, pp] = mode === "l4" ? [f.l4Map, f.l4ppMap] : [f.l7Map, f.l7ppMap];
  return proxyProtocol ? { map: pp, other: plain } : { map: plain, other: pp };
}

/** `host port` lines back into a map (the inverse of renderMap). */
export function parseMapFile(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [host, port] = line.trim().split(/\s+/);
    if (host && port && /^\d+$/.test(port)) map.set(host, Number(port));
  }
  return map;
}

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw err;
  }
}

/** Written beside and renamed over: a reader never sees half a file. */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

export class HaproxyDriver implements ProxyDriver {
  readonly #mutex = new Mutex();
  #listeners: number[] = [];

  constructor(
    private readonly dir: string,
    private readonly bind: string,
    private readonly proxy: HaproxyProcess,
    /** `[proxy] http_port`: the plain listener for ACME HTTP-01 and the https redirect; 0 = none. */
    readonly httpPort = 0,
  ) {}

  /**
   * Writes the config for `listeners` (and empty route files where none
   * exist) and starts HAProxy. `defaultCert` is served to names without a
   * certificate of their own.
   */
  async start(listeners: readonly number[], defaultCert: string): Promise<void> {
    await mkdir(path.join(this.dir, "certs"), { recursive: true, mode: 0o700 });
    await writeAtomic(proxyFiles(this.dir).defaultCert, defaultCert);
    await this.#writeConfig(listeners);
    await this.proxy.start();
  }

  async #writeConfig(listeners: readonly number[]): Promise<void> {
    const sorted = [...new Set(listeners)].sort((a, b) => a - b);
    // HAProxy would bind both silently (SO_REUSEPORT): refuse it here.
    if (this.httpPort > 0 && sorted.includes(this.httpPort)) {
      throw new McpError(
        "failed_precondition",
        `port ${this.httpPort} is the proxy's plain HTTP port, it cannot be a route listener too`,
      );
    }
    for (const listener of sorted) {
      const f = listenerFiles(this.dir, listener);
      // A new listener starts with empty route files; existing ones are kept as they are.
      for (const file of [f.l4Map, f.l7Map, f.l4ppMap, f.l7ppMap, f.crtList]) {
        await writeFile(file, "", { mode: 0o600, flag: "a" });
      }
    }
    const config = proxyFiles(this.dir).config;
    await writeAtomic(
      `${config}.next`,
      renderHaproxyConfig({
        dir: this.dir,
        bind: this.bind,
        listeners: sorted,
        httpPort: this.httpPort,
      }),
    );
    try {
      await runCommand(["haproxy", "-c", "-q", "-f", `${config}.next`]);
    } catch (err) {
      throw new McpError("internal", `haproxy refused the new config: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    await rename(`${config}.next`, config);
    this.#listeners = sorted;
  }

  /** The listener ports now configured. */
  get listeners(): readonly number[] {
    return this.#listeners;
  }

  /** Makes HAProxy listen on exactly `listeners` (a reload only when the set changes). */
  setListeners(listeners: readonly number[]): Promise<void> {
    return this.#mutex.runExclusive(async () => {
      const wanted = [...new Set(listeners)].sort((a, b) => a - b);
      if (wanted.join(",") === this.#listeners.join(",")) return;
      await this.#writeConfig(wanted);
      await this.proxy.reload();
    });
  }

  /**
   * Adds or changes a route: files first, then the runtime API. A route
   * whose `proxyProtocol` changed moves to the other map of its mode: into
   * the new one first, then out of the old one, so that it is always in one
   * of them (both for a moment: the PROXY-protocol map is looked up first,
   * config.ts).
   */
  setRoute(route: ProxyRoute): Promise<void> {
    return this.#mutex.runExclusive(async () => {
      if (!this.#listeners.includes(route.listener)) {
        throw new McpError("failed_precondition", `the proxy does not listen on ${route.listener}`);
      }
      const f = listenerFiles(this.dir, route.listener);
      const host = route.hostname.toLowerCase();
      if (route.mode === "l7" && route.certPem) await this.#setCert(f.crtList, host, route.certPem);
      const { map, other } = routeMaps(f, route.mode, route.proxyProtocol === true);
      const entries = parseMapFile(await readOr(map, ""));
      entries.set(host, route.hostPort);
      await writeAtomic(map, renderMap(entries));
      const otherEntries = parseMapFile(await readOr(other, ""));
      if (otherEntries.delete(host)) await writeAtomic(other, renderMap(otherEntries));
      const socket = proxyFiles(this.dir).adminSocket;
      const live = parseShowMap(await runtimeCommand(socket, showMapCommand(map)));
      const port = String(route.hostPort);
      if (!live.has(host)) await runtimeCommand(socket, addMapCommand(map, host, port));
      else if (live.get(host) !== port)
        await runtimeCommand(socket, setMapCommand(map, host, port));
      await this.#delLive(other, host);
    });
  }

  /** Removes `host` from the loaded map `mapFile` if HAProxy has it there. */
  async #delLive(mapFile: string, host: string): Promise<void> {
    const socket = proxyFiles(this.dir).adminSocket;
    const live = parseShowMap(await runtimeCommand(socket, showMapCommand(mapFile)));
    if (live.has(host)) await runtimeCommand(socket, delMapCommand(mapFile, host));
  }

  async #setCert(crtList: string, host: string, pem: string): Promise<void> {
    const certPath = certFile(this.dir, host);
    const listed = (await readOr(crtList, ""))
      .split("\n")
      .some((l) => l.startsWith(`${certPath} `));
    await writeAtomic(certPath, pem);
    const socket = proxyFiles(this.dir).adminSocket;
    if (listed) {
      for (const command of renewCertCommands(certPath, pem)) await runtimeCommand(socket, command);
      return;
    }
    await writeAtomic(crtList, `${await readOr(crtList, "")}${certPath} ${host}\n`);
    for (const command of addCertCommands(certPath, pem, crtList, host)) {
      await runtimeCommand(socket, command);
    }
  }

  /**
   * Makes the map files of every configured listener hold exactly `routes`
   * (an agent start: the registry's rows) and brings the running HAProxy's
   * maps in line through the runtime API: what a restarted or adopted
   * HAProxy lost comes back, what it has extra goes, nothing is added twice.
   * Returns how many runtime entries it had to change.
   */
  sync(routes: readonly ProxyRoute[]): Promise<number> {
    return this.#mutex.runExclusive(async () => {
      const socket = proxyFiles(this.dir).adminSocket;
      let changed = 0;
      for (const listener of this.#listeners) {
        const f = listenerFiles(this.dir, listener);
        for (const [mode, pp] of [
          ["l4", false],
          ["l4", true],
          ["l7", false],
          ["l7", true],
        ] as const) {
          const mapFile = routeMaps(f, mode, pp).map;
          const wanted = new Map(
            routes
              .filter(
                (r) =>
                  r.listener === listener && r.mode === mode && (r.proxyProtocol ?? false) === pp,
              )
              .map((r) => [r.hostname.toLowerCase(), r.hostPort]),
          );
          const text = renderMap(wanted);
          if ((await readOr(mapFile, "")) !== text) await writeAtomic(mapFile, text);
          const live = parseShowMap(await runtimeCommand(socket, showMapCommand(mapFile)));
          for (const [host, port] of wanted) {
            const value = String(port);
            if (live.get(host) === value) continue;
            const command = live.has(host) ? setMapCommand : addMapCommand;
            await runtimeCommand(socket, command(mapFile, host, value));
            changed++;
          }
          for (const host of live.keys()) {
            if (wanted.has(host)) continue;
            await runtimeCommand(socket, delMapCommand(mapFile, host));
            changed++;
          }
        }
      }
      return changed;
    });
  }

  /**
   * What the running HAProxy has in the maps of every configured listener
   * (`show map` through the runtime API, not the files): the routes it
   * serves now, for `mcp route list` and `mcp status`.
   */
  liveRoutes(): Promise<LiveRoute[]> {
    return this.#mutex.runExclusive(async () => {
      const socket = proxyFiles(this.dir).adminSocket;
      const live: LiveRoute[] = [];
      for (const listener of this.#listeners) {
        const f = listenerFiles(this.dir, listener);
        for (const [mode, proxyProtocol] of [
          ["l4", false],
          ["l4", true],
          ["l7", false],
          ["l7", true],
        ] as const) {
          const map = routeMaps(f, mode, proxyProtocol).map;
          const shown = parseShowMap(await runtimeCommand(socket, showMapCommand(map)));
          for (const [hostname, port] of shown) {
            if (/^\d+$/.test(port)) {
              live.push({ listener, hostname, mode, proxyProtocol, hostPort: Number(port) });
            }
          }
        }
      }
      return live;
    });
  }

  /** The certificate file HAProxy serves for `hostname`, if one was set. */
  async certificate(hostname: string): Promise<string | undefined> {
    const pem = await readOr(certFile(this.dir, hostname), "");
    return pem || undefined;
  }

  /**
   * Removes a route from whichever map of its mode holds it (with or
   * without PROXY protocol); its certificate stays listed for a later
   * deploy of the same name.
   */
  removeRoute(listener: number, hostname: string, mode: "l4" | "l7"): Promise<void> {
    return this.#mutex.runExclusive(async () => {
      const { map, other } = routeMaps(listenerFiles(this.dir, listener), mode, false);
      const host = hostname.toLowerCase();
      const held: string[] = [];
      for (const mapFile of [map, other]) {
        const entries = parseMapFile(await readOr(mapFile, ""));
        if (!entries.delete(host)) continue;
        await writeAtomic(mapFile, renderMap(entries));
        held.push(mapFile);
      }
      for (const mapFile of held) await this.#delLive(mapFile, host);
    });
  }
}
