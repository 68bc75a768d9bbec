/**
 * The `[dns]` backend (issue 8): route hostnames published in one zone by
 * RFC 2136 dynamic updates, signed with TSIG, through `nsupdate` (argv plus
 * a script on stdin, src/edge/dns/nsupdate.ts); the zone listed by a signed
 * AXFR through `dig`. One update at a time (a mutex), so two routes changing
 * together never race on the same name.
 */
import type { DnsConfig } from "../../config/edge.js";
import { parseHostPort } from "../../config/address.js";
import { CommandError, runCommand } from "../../util/exec.js";
import { McpError } from "../../util/errors.js";
import { Mutex } from "../../util/mutex.js";
import type { DnsPublisher, DnsRecord } from "../types.js";
import {
  type DnsChange,
  checkName,
  digAxfrArgv,
  inZone,
  normalizeName,
  nsupdateArgv,
  parseAxfr,
  recordType,
  removeChanges,
  transferFailure,
  updateFailure,
  updateScript,
  upsertChanges,
} from "./nsupdate.js";
import { loadTsigKey, type TsigKey } from "./tsig-key.js";

export interface NsupdatePublisherOptions {
  /** How long one update or listing may take, in whole seconds (default 5). */
  timeoutSec?: number;
}

/** Past nsupdate's and dig's own timeouts: the kill that bounds a tool that hangs anyway. */
const KILL_GRACE_MS = 2000;

export class NsupdatePublisher implements DnsPublisher {
  readonly zone: string;
  /** The key file as parsed at construction (nsupdate and dig read the file themselves). */
  readonly key: TsigKey;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutSec: number;
  private readonly lock = new Mutex();

  /**
   * Reads and checks `cfg.tsigKeyFile` now: a missing or malformed key file
   * throws here (an McpError naming the file and line:column), not at the
   * first deploy.
   */
  constructor(
    private readonly cfg: DnsConfig,
    opts: NsupdatePublisherOptions = {},
  ) {
    this.zone = normalizeName(cfg.zone);
    checkName(this.zone);
    recordType(cfg.address);
    ({ host: this.host, port: this.port } = parseHostPort(cfg.server));
    this.timeoutSec = opts.timeoutSec ?? 5;
    this.key = loadTsigKey(cfg.tsigKeyFile);
  }

  /**
   * Points `name` at `[dns] address` (A or AAAA), replacing any A and AAAA
   * it had, in one update message. `name` must be in the zone: the caller
   * filters route hostnames with inZone first (a route may well have a name
   * this server does not serve); one outside throws.
   */
  async upsert(name: string): Promise<void> {
    const n = this.ownName(name);
    await this.update(n, upsertChanges(n, this.cfg.address, this.cfg.ttl));
  }

  /** Deletes `name`'s A and AAAA records; a name without any is not an error (RFC 2136 delete). */
  async remove(name: string): Promise<void> {
    const n = this.ownName(name);
    await this.update(n, removeChanges(n));
  }

  /** The zone's A and AAAA records, by AXFR (names lower-case, without the trailing dot). */
  async list(): Promise<DnsRecord[]> {
    const argv = digAxfrArgv(
      this.cfg.tsigKeyFile,
      this.host,
      this.port,
      this.zone,
      this.timeoutSec,
    );
    let out: string;
    try {
      const r = await runCommand(argv, { timeoutMs: this.timeoutSec * 1000 + KILL_GRACE_MS });
      // dig writes records and its own failures (`; Transfer failed.`) to stdout.
      out = r.stdout;
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      // dig says why on stdout (`;; … failed: connection refused.`), not only on stderr.
      const said = `${err.stdout}\n${err.stderr}`
        .split("\n")
        .map((l) => l.replace(/^;+\s*/, "").trim())
        .filter(Boolean);
      const reason = err.timedOut ? "timed out" : said.join("; ") || err.message;
      throw this.toolMissing(err) ?? transferFailure(this.zone, this.cfg.server, reason);
    }
    return parseAxfr(out, this.zone, this.cfg.server);
  }

  private ownName(name: string): string {
    const n = checkName(name);
    if (!inZone(n, this.zone)) {
      throw new McpError(
        "invalid_argument",
        `${name} is outside zone ${this.zone} ([dns] zone): no DNS record is published for it`,
      );
    }
    return n;
  }

  private update(name: string, changes: DnsChange[]): Promise<void> {
    const input = updateScript({ host: this.host, port: this.port, zone: this.zone, changes });
    return this.lock.runExclusive(async () => {
      try {
        await runCommand(nsupdateArgv(this.cfg.tsigKeyFile, this.timeoutSec), {
          input,
          timeoutMs: this.timeoutSec * 1000 + KILL_GRACE_MS,
        });
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        throw (
          this.toolMissing(err) ??
          updateFailure(err, {
            name,
            server: this.cfg.server,
            zone: this.zone,
            keyFile: this.cfg.tsigKeyFile,
            timeoutSec: this.timeoutSec,
          })
        );
      }
    });
  }

  /** nsupdate or dig not installed: say which package has it (scripts/setup.sh installs it). */
  private toolMissing(err: CommandError): McpError | undefined {
    if (err.exitCode !== null || err.timedOut || !/ENOENT/.test(err.message)) return undefined;
    return new McpError(
      "failed_precondition",
      `${err.argv[0]} is not installed (Debian package bind9-dnsutils): ${err.message}`,
      { cause: err },
    );
  }
}
