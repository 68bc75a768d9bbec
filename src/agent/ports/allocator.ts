import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";

import { McpError } from "../../util/errors.js";
import { Mutex } from "../../util/mutex.js";
import { probePort, type PortProtocol } from "./probe.js";

/**
 * Host port allocation for routes. The pool is the configured range minus the
 * kernel's ephemeral range, reserved ports and the agent's own listen port. A
 * port is handed out only if no registry row holds it, no earlier request of
 * the same allocation took it, and the OS lets us bind it. Allocation and the
 * caller's registry write happen in one critical section, so two deploys can
 * never get the same port and nothing lives only in memory.
 */

/** An inclusive port range, `from <= to`. */
export interface PortRange {
  from: number;
  to: number;
}

/**
 * Reads the kernel's ephemeral (outgoing connection) port range. Ports in it
 * are excluded from the pool: a client socket can grab one at any moment, and
 * a container published there fails later with "address already in use".
 */
export function readEphemeralRange(
  file = "/proc/sys/net/ipv4/ip_local_port_range",
): PortRange | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined; // not Linux, or /proc not mounted: nothing to exclude
  }
  const match = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!match) return undefined;
  const from = Number(match[1]);
  const to = Number(match[2]);
  if (from < 1 || to > 65535 || from > to) return undefined;
  return { from, to };
}

/**
 * The ports of `[min, max)` (upper bound exclusive, as in the agent config)
 * that are not in any of `excluded`, as sorted, disjoint, non-adjacent
 * inclusive ranges. Pure.
 */
export function buildCandidatePool(
  range: readonly [min: number, max: number],
  excluded: readonly PortRange[],
): PortRange[] {
  const from = Math.max(1, range[0]);
  const to = Math.min(65535, range[1] - 1);
  if (from > to) return [];
  const pool: PortRange[] = [];
  let next = from; // lowest port not yet placed in the pool or excluded
  for (const ex of [...excluded].sort((a, b) => a.from - b.from)) {
    if (ex.to < next || ex.from > ex.to) continue;
    if (ex.from > to) break;
    if (ex.from > next) pool.push({ from: next, to: ex.from - 1 });
    next = Math.max(next, ex.to + 1);
    if (next > to) return pool;
  }
  pool.push({ from: next, to });
  return pool;
}

/** Number of ports in a pool. */
export function poolSize(pool: readonly PortRange[]): number {
  return pool.reduce((n, r) => n + (r.to - r.from + 1), 0);
}

/** `10000-32767,61000-61999` (a single port as just `N`), or `none`. */
export function describePool(pool: readonly PortRange[]): string {
  if (pool.length === 0) return "none";
  return pool.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(",");
}

function poolContains(pool: readonly PortRange[], port: number): boolean {
  return pool.some((r) => port >= r.from && port <= r.to);
}

/** The `index`-th port of the pool in ascending order, `0 <= index < poolSize(pool)`. */
function portAt(pool: readonly PortRange[], index: number): number {
  let rest = index;
  for (const r of pool) {
    const size = r.to - r.from + 1;
    if (rest < size) return r.from + rest;
    rest -= size;
  }
  throw new RangeError(`port index ${index} outside the pool`);
}

/**
 * The ports MCP has recorded as in use, with their owner key (e.g.
 * `svc/comp/route`). Implemented over the registry: route host ports plus the
 * host ports of explicit `ports = [...]` mappings.
 */
export interface PortBook {
  heldPorts(): Map<number, string>;
}

export interface PortRequest {
  /** Owner key, e.g. `svc/comp/route`; unique within one allocate call. */
  key: string;
  protocol: PortProtocol;
  /** The port this owner had before; kept if still free (stable ports). */
  preferred?: number;
  /**
   * `preferred` is held by the owner's own old container, which is being
   * stopped (a redeploy creates the new container meanwhile): kept without
   * asking the probe, which would say busy. If something takes it between
   * that stop and the new container's start, the start fails and the caller
   * asks again without it.
   */
  preferredReleasing?: boolean;
  /** Ports never to return, e.g. one podman just failed to bind. */
  avoid?: number[];
}

export interface PortAllocatorOptions {
  pool: PortRange[];
  bindAddresses: string[];
  book: PortBook;
  probe?: typeof probePort;
  /** Uniform integer in `[0, maxExclusive)`; crypto.randomInt by default. */
  random?: (maxExclusive: number) => number;
  /** Random picks per request before falling back to a linear scan. */
  maxAttempts?: number;
}

export class PortAllocator {
  private readonly pool: PortRange[];
  private readonly size: number;
  private readonly bindAddresses: string[];
  private readonly book: PortBook;
  private readonly probe: typeof probePort;
  private readonly random: (maxExclusive: number) => number;
  private readonly maxAttempts: number;
  private readonly mutex = new Mutex();

  constructor(options: PortAllocatorOptions) {
    this.pool = options.pool;
    this.size = poolSize(options.pool);
    this.bindAddresses = options.bindAddresses;
    this.book = options.book;
    this.probe = options.probe ?? probePort;
    this.random = options.random ?? ((max) => randomInt(max));
    this.maxAttempts = options.maxAttempts ?? 200;
  }

  /**
   * Picks one host port per request and calls `commit` with them before
   * releasing the lock; `commit` must record them in the book (registry), so
   * the next allocation sees them. If `commit` throws, the error propagates
   * and nothing is kept (the allocator holds no state of its own).
   * Throws McpError("ports_exhausted") when a request finds no free port.
   *
   * `verify` runs first, inside the same critical section: a check of ports
   * the caller claims outright (explicit mappings) against what the book
   * holds, race-free against every other allocation. If it throws, nothing
   * is picked or committed.
   */
  allocate(
    requests: PortRequest[],
    commit: (assigned: Map<string, number>) => void | Promise<void>,
    verify?: () => void | Promise<void>,
  ): Promise<Map<string, number>> {
    return this.mutex.runExclusive(async () => {
      if (verify) await verify();
      const held = this.book.heldPorts();
      const assigned = new Map<string, number>();
      const taken = new Set<number>(); // by earlier requests of this call
      for (const request of requests) {
        if (assigned.has(request.key)) {
          throw new McpError("invalid_argument", `duplicate port request for ${request.key}`);
        }
        const port = await this.pick(request, held, taken);
        assigned.set(request.key, port);
        taken.add(port);
      }
      await commit(assigned);
      return assigned;
    });
  }

  /** Pool description and how many of its ports the book holds, for NodeStatus. */
  stats(): { poolSize: number; held: number; pool: string } {
    let held = 0;
    for (const port of this.book.heldPorts().keys()) {
      if (poolContains(this.pool, port)) held++;
    }
    return { poolSize: this.size, held, pool: describePool(this.pool) };
  }

  private async pick(
    request: PortRequest,
    held: Map<number, string>,
    taken: Set<number>,
  ): Promise<number> {
    const avoid = new Set(request.avoid);
    const busy = new Set<number>(); // the probe said no; not asked twice
    const usable = (port: number): boolean =>
      !held.has(port) && !taken.has(port) && !avoid.has(port) && !busy.has(port);
    const free = async (port: number): Promise<boolean> => {
      if (await this.probe(port, request.protocol, this.bindAddresses)) return true;
      busy.add(port);
      return false;
    };

    const preferred = request.preferred;
    if (
      preferred !== undefined &&
      poolContains(this.pool, preferred) &&
      !taken.has(preferred) &&
      !avoid.has(preferred)
    ) {
      const owner = held.get(preferred);
      // Our own recorded port is still probed (the kernel is the judge of
      // whether something else took it while it was not ours), unless our
      // own old container holds it now and is stopping.
      if (
        (owner === undefined || owner === request.key) &&
        (request.preferredReleasing === true || (await free(preferred)))
      ) {
        return preferred;
      }
    }

    if (this.size > 0) {
      // Random picks spread routes over the pool and rarely collide...
      for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
        const port = portAt(this.pool, this.random(this.size));
        if (usable(port) && (await free(port))) return port;
      }
      // ...but a nearly full pool can defeat them, so visit every port once
      // before giving up. The random start avoids always piling up at the bottom.
      const start = this.random(this.size);
      for (let i = 0; i < this.size; i++) {
        const port = portAt(this.pool, (start + i) % this.size);
        if (usable(port) && (await free(port))) return port;
      }
    }
    throw this.exhausted(request, held, taken);
  }

  private exhausted(request: PortRequest, held: Map<number, string>, taken: Set<number>): McpError {
    const what = `no free ${request.protocol} port for ${request.key}`;
    if (this.size === 0) {
      return new McpError("ports_exhausted", `${what}: the port pool is empty`);
    }
    let byMcp = 0;
    for (const port of new Set([...held.keys(), ...taken])) {
      if (poolContains(this.pool, port)) byMcp++;
    }
    // Every pool port was rejected; what MCP does not hold is busy on the host
    // (or in `avoid`, i.e. podman just failed to bind it).
    const others = this.size - byMcp;
    return new McpError(
      "ports_exhausted",
      `${what} in ${describePool(this.pool)} (${byMcp} of ${this.size} ports taken by MCP` +
        (others > 0 ? `, ${others} in use by other processes)` : ")"),
    );
  }
}
