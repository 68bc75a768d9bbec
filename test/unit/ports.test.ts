import assert from "node:assert/strict";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { probePort } from "../../src/agent/ports/probe.js";
import {
  buildCandidatePool,
  describePool,
  PortAllocator,
  poolSize,
  readEphemeralRange,
  type PortBook,
  type PortRange,
  type PortRequest,
} from "../../src/agent/ports/allocator.js";
import { McpError } from "../../src/util/errors.js";
import { Mutex } from "../../src/util/mutex.js";

/** A registry stand-in: commit() records the assigned ports, like the agent does. */
class MemoryBook implements PortBook {
  readonly ports = new Map<number, string>();
  heldPorts(): Map<number, string> {
    return new Map(this.ports);
  }
  commit = (assigned: Map<string, number>): void => {
    for (const [key, port] of assigned) this.ports.set(port, key);
  };
}

const alwaysFree = (): Promise<boolean> => Promise.resolve(true);
const busyOn =
  (...ports: number[]) =>
  (port: number): Promise<boolean> =>
    Promise.resolve(!ports.includes(port));

function allocator(
  pool: PortRange[],
  book: PortBook,
  extra: Partial<ConstructorParameters<typeof PortAllocator>[0]> = {},
): PortAllocator {
  return new PortAllocator({
    pool,
    bindAddresses: ["127.0.0.1"],
    book,
    probe: alwaysFree,
    ...extra,
  });
}

/** Allocates one tcp port for `key` and returns it. */
async function one(
  alloc: PortAllocator,
  book: MemoryBook,
  key: string,
  extra: Partial<PortRequest> = {},
): Promise<number> {
  const assigned = await alloc.allocate([{ key, protocol: "tcp", ...extra }], book.commit);
  const port = assigned.get(key);
  assert.ok(port !== undefined);
  return port;
}

async function rejectsExhausted(p: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof McpError);
    assert.equal(err.code, "ports_exhausted");
    assert.equal(err.message, message);
    return true;
  });
}

/** A port the OS just handed out, so nothing listens on it right now. */
async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function listenTcp(host: string): Promise<{ port: number; close: () => Promise<unknown> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe("Mutex", () => {
  test("runs critical sections one at a time, in call order", async () => {
    const mutex = new Mutex();
    const log: string[] = [];
    let inside = 0;
    await Promise.all(
      [30, 1, 10].map((ms, i) =>
        mutex.runExclusive(async () => {
          inside++;
          assert.equal(inside, 1);
          log.push(`start ${i}`);
          await sleep(ms);
          log.push(`end ${i}`);
          inside--;
        }),
      ),
    );
    assert.deepEqual(log, ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]);
  });

  test("an exception releases the lock and reaches the caller", async () => {
    const mutex = new Mutex();
    await assert.rejects(
      mutex.runExclusive(() => {
        throw new Error("boom");
      }),
      /boom/,
    );
    await assert.rejects(mutex.runExclusive(() => Promise.reject(new Error("async boom"))));
    assert.equal(await mutex.runExclusive(() => 42), 42);
  });
});

describe("readEphemeralRange", () => {
  test("parses the /proc format and rejects junk", () => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-ports-"));
    try {
      const file = join(dir, "range");
      writeFileSync(file, "32768\t60999\n");
      assert.deepEqual(readEphemeralRange(file), { from: 32768, to: 60999 });
      writeFileSync(file, "nonsense\n");
      assert.equal(readEphemeralRange(file), undefined);
      writeFileSync(file, "60999 32768\n");
      assert.equal(readEphemeralRange(file), undefined);
      assert.equal(readEphemeralRange(join(dir, "missing")), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(
    "reads this host's range",
    { skip: !existsSync("/proc/sys/net/ipv4/ip_local_port_range") },
    () => {
      const range = readEphemeralRange();
      assert.ok(range);
      assert.ok(range.from >= 1 && range.from <= range.to && range.to <= 65535);
    },
  );
});

describe("buildCandidatePool", () => {
  test("no exclusions: the range with the upper bound exclusive", () => {
    const pool = buildCandidatePool([10000, 60000], []);
    assert.deepEqual(pool, [{ from: 10000, to: 59999 }]);
    assert.equal(poolSize(pool), 50000);
    assert.equal(describePool(pool), "10000-59999");
  });

  test("the default ephemeral range trims the top", () => {
    const pool = buildCandidatePool([10000, 60000], [{ from: 32768, to: 60999 }]);
    assert.equal(describePool(pool), "10000-32767");
    assert.equal(poolSize(pool), 22768);
  });

  test("an exclusion covering everything leaves an empty pool", () => {
    const pool = buildCandidatePool([10000, 10100], [{ from: 9000, to: 20000 }]);
    assert.deepEqual(pool, []);
    assert.equal(poolSize(pool), 0);
    assert.equal(describePool(pool), "none");
  });

  test("empty or inverted ranges give an empty pool", () => {
    assert.deepEqual(buildCandidatePool([5000, 5000], []), []);
    assert.deepEqual(buildCandidatePool([6000, 5000], []), []);
  });

  test("adjacent, overlapping, unsorted and out-of-range exclusions", () => {
    const pool = buildCandidatePool(
      [100, 200],
      [
        { from: 150, to: 160 },
        { from: 120, to: 129 },
        { from: 130, to: 139 }, // adjacent to the previous one
        { from: 125, to: 135 }, // overlaps both
        { from: 155, to: 170 }, // overlaps 150-160
        { from: 1, to: 50 }, // below the range
        { from: 300, to: 400 }, // above the range
      ],
    );
    assert.equal(describePool(pool), "100-119,140-149,171-199");
  });

  test("exclusions at both edges and a single listen port in the middle", () => {
    const pool = buildCandidatePool(
      [10000, 10010],
      [
        { from: 10000, to: 10000 },
        { from: 10009, to: 10009 },
        { from: 10005, to: 10005 }, // the agent's listen port
      ],
    );
    assert.equal(describePool(pool), "10001-10004,10006-10008");
    assert.equal(poolSize(pool), 7);
  });

  test("a single remaining port is described without a dash", () => {
    assert.equal(describePool(buildCandidatePool([10, 12], [{ from: 11, to: 11 }])), "10");
  });
});

describe("PortAllocator", () => {
  test("stays inside [min, max) over many allocations", async () => {
    const pool = buildCandidatePool([10000, 10050], []);
    const book = new MemoryBook();
    const alloc = allocator(pool, book);
    for (let i = 0; i < 50; i++) {
      const port = await one(alloc, book, `svc/c/r${i}`);
      assert.ok(port >= 10000 && port < 10050, `port ${port} out of range`);
    }
    assert.equal(book.ports.size, 50);
    // And without a book entry, many independent picks, default random source.
    const loose = allocator(pool, new MemoryBook());
    for (let i = 0; i < 2000; i++) {
      const port = (await loose.allocate([{ key: "k", protocol: "tcp" }], () => {})).get("k");
      assert.ok(port !== undefined && port >= 10000 && port < 10050);
    }
  });

  test("never hands out excluded (ephemeral, reserved) ports", async () => {
    const pool = buildCandidatePool(
      [10000, 10050],
      [
        { from: 10010, to: 10039 }, // "ephemeral"
        { from: 10045, to: 10045 }, // reserved
        { from: 10001, to: 10001 }, // listen port
      ],
    );
    const book = new MemoryBook();
    const alloc = allocator(pool, book);
    const got = new Set<number>();
    for (let i = 0; i < 18; i++) got.add(await one(alloc, book, `s/c/${i}`));
    assert.deepEqual(
      [...got].sort((a, b) => a - b),
      [10000, ...range(10002, 10009), ...range(10040, 10044), ...range(10046, 10049)],
    );
    await assert.rejects(one(alloc, book, "s/c/last"), { code: "ports_exhausted" });
  });

  test("with the real /proc range, nothing lands in the ephemeral range", async (t) => {
    const ephemeral = readEphemeralRange();
    if (!ephemeral) return t.skip("no /proc/sys/net/ipv4/ip_local_port_range");
    const pool = buildCandidatePool([10000, 60000], [ephemeral]);
    const book = new MemoryBook();
    const alloc = allocator(pool, book);
    for (let i = 0; i < 500; i++) {
      const port = await one(alloc, book, `s/c/${i}`);
      assert.ok(port >= 10000 && port < 60000);
      assert.ok(port < ephemeral.from || port > ephemeral.to, `${port} is ephemeral`);
    }
  });

  test("preferred port is kept when free", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 20000], []), book);
    assert.equal(await one(alloc, book, "s/c/r", { preferred: 12345 }), 12345);
  });

  test("preferred port held by another owner is replaced", async () => {
    const book = new MemoryBook();
    book.ports.set(12345, "other/c/r");
    const alloc = allocator(buildCandidatePool([10000, 20000], []), book);
    const port = await one(alloc, book, "s/c/r", { preferred: 12345 });
    assert.notEqual(port, 12345);
    assert.equal(book.ports.get(12345), "other/c/r");
  });

  test("preferred port recorded for the same owner is replaced when the OS says another process took it", async () => {
    const book = new MemoryBook();
    book.ports.set(12345, "s/c/r");
    // Deploy removes the old container first, so a busy port is someone else's.
    const alloc = allocator(buildCandidatePool([10000, 20000], []), book, { probe: busyOn(12345) });
    assert.notEqual(await one(alloc, book, "s/c/r", { preferred: 12345 }), 12345);
  });

  test("preferred port that the OS reports busy is replaced", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 20000], []), book, { probe: busyOn(12345) });
    assert.notEqual(await one(alloc, book, "s/c/r", { preferred: 12345 }), 12345);
  });

  test("preferred port outside the pool is replaced", async () => {
    const book = new MemoryBook();
    const pool = buildCandidatePool([10000, 20000], [{ from: 15000, to: 15999 }]);
    const alloc = allocator(pool, book);
    for (const preferred of [9999, 15500, 20000]) {
      const port = await one(alloc, book, `s/c/${preferred}`, { preferred });
      assert.notEqual(port, preferred);
    }
  });

  test("two requests of one call preferring the same port get distinct ports", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 20000], []), book);
    const assigned = await alloc.allocate(
      [
        { key: "s/c/a", protocol: "tcp", preferred: 12345 },
        { key: "s/c/b", protocol: "udp", preferred: 12345 },
      ],
      book.commit,
    );
    assert.equal(assigned.get("s/c/a"), 12345);
    assert.notEqual(assigned.get("s/c/b"), 12345);
  });

  test("avoid wins over preferred and over random picks", async () => {
    const book = new MemoryBook();
    book.ports.set(10001, "s/c/r");
    const alloc = allocator(buildCandidatePool([10000, 10003], []), book);
    // 10001 is ours but podman just failed on it; 10000 is avoided too.
    for (let i = 0; i < 20; i++) {
      const assigned = await alloc.allocate(
        [{ key: "s/c/r", protocol: "tcp", preferred: 10001, avoid: [10000, 10001] }],
        () => {},
      );
      assert.equal(assigned.get("s/c/r"), 10002);
    }
  });

  test("duplicate keys in one call are refused", async () => {
    const alloc = allocator(buildCandidatePool([10000, 20000], []), new MemoryBook());
    await assert.rejects(
      alloc.allocate(
        [
          { key: "s/c/r", protocol: "tcp" },
          { key: "s/c/r", protocol: "tcp" },
        ],
        () => {},
      ),
      { code: "invalid_argument" },
    );
  });

  for (const n of [20, 200]) {
    test(`${n} concurrent allocate calls get distinct ports`, async () => {
      const book = new MemoryBook();
      // A pool barely larger than the demand makes random collisions certain.
      const alloc = allocator(buildCandidatePool([10000, 10000 + n + 5], []), book);
      const ports = await Promise.all(range(1, n).map((i) => one(alloc, book, `s/c/${i}`)));
      assert.equal(new Set(ports).size, n);
      assert.equal(book.ports.size, n);
    });
  }

  test("commit runs inside the lock: a slow async commit still yields distinct ports", async () => {
    const book = new MemoryBook();
    let committing = 0;
    const slowCommit = async (assigned: Map<string, number>): Promise<void> => {
      committing++;
      assert.equal(committing, 1, "two commits overlapped");
      await sleep(2);
      book.commit(assigned);
      committing--;
    };
    // Always random index 0: every call would pick 10000 without the book.
    const alloc = allocator(buildCandidatePool([10000, 10020], []), book, { random: () => 0 });
    const results = await Promise.all(
      range(1, 20).map((i) => alloc.allocate([{ key: `s/c/${i}`, protocol: "tcp" }], slowCommit)),
    );
    const ports = results.map((m) => [...m.values()][0]);
    assert.equal(new Set(ports).size, 20);
  });

  test("exhaustion names the pool and how many ports are taken", async () => {
    const book = new MemoryBook();
    book.ports.set(10000, "other/c/r");
    book.ports.set(20000, "outside/the/pool");
    const alloc = allocator(buildCandidatePool([10000, 10003], []), book, {
      probe: busyOn(10001),
    });
    let committed = false;
    await rejectsExhausted(
      alloc.allocate([{ key: "svc/web/http", protocol: "tcp", avoid: [10002] }], () => {
        committed = true;
      }),
      "no free tcp port for svc/web/http in 10000-10002 (1 of 3 ports taken by MCP, 2 in use by other processes)",
    );
    assert.equal(committed, false);

    book.ports.set(10001, "a/b/c");
    book.ports.set(10002, "a/b/d");
    await rejectsExhausted(
      one(alloc, book, "svc/web/http", { protocol: "udp" }),
      "no free udp port for svc/web/http in 10000-10002 (3 of 3 ports taken by MCP)",
    );

    await rejectsExhausted(
      one(allocator([], book), book, "svc/web/http"),
      "no free tcp port for svc/web/http: the port pool is empty",
    );
  });

  test("an exhausting request fails the whole call, earlier requests are not committed", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 10001], []), book);
    await assert.rejects(
      alloc.allocate(
        [
          { key: "s/c/a", protocol: "tcp" },
          { key: "s/c/b", protocol: "tcp" },
        ],
        book.commit,
      ),
      { code: "ports_exhausted" },
    );
    assert.equal(book.ports.size, 0);
  });

  test("linear-scan fallback finds the last free port after random picks run out", async () => {
    const book = new MemoryBook();
    for (let p = 10000; p < 10999; p++) book.ports.set(p, `s/c/${p}`);
    let probes = 0;
    const alloc = allocator(buildCandidatePool([10000, 11000], []), book, {
      random: () => 0, // every random pick hits the held 10000
      maxAttempts: 10,
      probe: () => {
        probes++;
        return Promise.resolve(true);
      },
    });
    assert.equal(await one(alloc, book, "s/c/new"), 10999);
    assert.equal(probes, 1, "held ports must be rejected without probing");
  });

  test("linear scan also skips ports the OS holds", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 10100], []), book, {
      random: () => 0,
      maxAttempts: 5,
      probe: (port) => Promise.resolve(port === 10077),
    });
    assert.equal(await one(alloc, book, "s/c/r"), 10077);
  });

  test("a throwing commit propagates, keeps nothing and releases the lock", async () => {
    const book = new MemoryBook();
    const alloc = allocator(buildCandidatePool([10000, 10001], []), book);
    await assert.rejects(
      alloc.allocate([{ key: "s/c/r", protocol: "tcp" }], () => {
        throw new Error("registry is read-only");
      }),
      /registry is read-only/,
    );
    await assert.rejects(
      alloc.allocate([{ key: "s/c/r", protocol: "tcp" }], () =>
        Promise.reject(new Error("async failure")),
      ),
      /async failure/,
    );
    assert.equal(book.ports.size, 0);
    // The single port is still available to the next caller.
    assert.equal(await one(alloc, book, "s/c/other"), 10000);
  });

  test("stats counts held ports inside the pool only", async () => {
    const book = new MemoryBook();
    book.ports.set(80, "explicit/mapping/outside");
    const alloc = allocator(buildCandidatePool([10000, 60000], [{ from: 32768, to: 60999 }]), book);
    await one(alloc, book, "s/c/a");
    await one(alloc, book, "s/c/b");
    assert.deepEqual(alloc.stats(), { poolSize: 22768, held: 2, pool: "10000-32767" });
  });
});

describe("probePort (real sockets)", () => {
  test("a TCP listener on 127.0.0.1 or 0.0.0.0 makes the port taken", async () => {
    for (const host of ["127.0.0.1", "0.0.0.0"]) {
      const server = await listenTcp(host);
      try {
        assert.equal(await probePort(server.port, "tcp", ["127.0.0.1"]), false, host);
        // The wildcard bind catches it even if 127.0.0.1 is not configured.
        assert.equal(await probePort(server.port, "tcp", []), false, host);
      } finally {
        await server.close();
      }
      assert.equal(await probePort(server.port, "tcp", ["127.0.0.1"]), true, `${host} closed`);
    }
  });

  test("a UDP socket makes the port taken for UDP", async () => {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const { port } = socket.address();
    try {
      assert.equal(await probePort(port, "udp", ["127.0.0.1"]), false);
      assert.equal(await probePort(port, "udp", []), false);
    } finally {
      await new Promise<void>((resolve) => socket.close(resolve));
    }
    assert.equal(await probePort(port, "udp", ["127.0.0.1"]), true);
  });

  test("an address this host does not have fails the probe", async () => {
    assert.equal(await probePort(await unusedPort(), "tcp", ["192.0.2.1"]), false);
  });

  test("the allocator never returns a TCP port another process listens on", async () => {
    const server = await listenTcp("127.0.0.1");
    try {
      const free = await unusedPort();
      const pool = [
        { from: server.port, to: server.port },
        { from: free, to: free },
      ].sort((a, b) => a.from - b.from);
      const alloc = new PortAllocator({
        pool,
        bindAddresses: ["127.0.0.1"],
        book: new MemoryBook(),
      });
      for (let i = 0; i < 20; i++) {
        const got = await alloc.allocate(
          [{ key: "s/c/r", protocol: "tcp", preferred: server.port }],
          () => {},
        );
        assert.equal(got.get("s/c/r"), free);
      }
    } finally {
      await server.close();
    }
  });

  test("the allocator never returns a UDP port another process holds", async () => {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const held = socket.address().port;
    try {
      let free = await unusedPort();
      // TCP and UDP port numbers are separate namespaces: skip a coincidence.
      while (free === held) free = await unusedPort();
      const pool = [
        { from: held, to: held },
        { from: free, to: free },
      ].sort((a, b) => a.from - b.from);
      const alloc = new PortAllocator({
        pool,
        bindAddresses: ["127.0.0.1"],
        book: new MemoryBook(),
      });
      for (let i = 0; i < 20; i++) {
        const got = await alloc.allocate([{ key: "s/c/dns", protocol: "udp" }], () => {});
        assert.equal(got.get("s/c/dns"), free);
      }
    } finally {
      await new Promise<void>((resolve) => socket.close(resolve));
    }
  });
});

/** Inclusive integer range. */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
