/**
 * RFC 2136 updates through Debian's `nsupdate` and zone listings through
 * `dig` AXFR, both signed with the `[dns] tsig_key_file` (issue 8;
 * shared notes "edge-stack", DNS). Pure: the argv, the script nsupdate
 * reads on stdin, the parsing of dig's answer, and the wording of failures;
 * src/edge/dns/publisher.ts runs them.
 */
import { isIP } from "node:net";
import { McpError } from "../../util/errors.js";
import type { DnsRecord } from "../types.js";

export type RecordType = "A" | "AAAA";

/** One line of an update: delete a name's RRset of a type, or add one record. */
export type DnsChange =
  | { op: "delete"; name: string; type: RecordType }
  | { op: "add"; name: string; type: RecordType; ttl: number; address: string };

export interface UpdateScript {
  host: string;
  port: number;
  zone: string;
  changes: DnsChange[];
}

/**
 * `nsupdate -k <file>`: the key by file, never `-y name:secret`, which any
 * user on the machine would read in `ps`. With a timeout of T whole
 * seconds: `-t` alone does not bound a UDP update (its default 3 s retry
 * interval × 4 tries took 12 s with -t 2), so T tries 1 s apart
 * (`-u 1 -r T-1`), which against a silent server gave up after T s.
 */
export function nsupdateArgv(keyFile: string, timeoutSec?: number): string[] {
  const argv = ["nsupdate", "-k", keyFile];
  if (timeoutSec !== undefined) {
    const t = Math.max(1, Math.ceil(timeoutSec));
    argv.push("-t", String(t), "-u", "1", "-r", String(t - 1));
  }
  return argv;
}

/** A for IPv4, AAAA for IPv6; anything else is not an address. */
export function recordType(address: string): RecordType {
  const v = isIP(address);
  if (v === 4) return "A";
  if (v === 6) return "AAAA";
  throw new McpError("invalid_argument", `${JSON.stringify(address)} is not an IP address`);
}

/** Lower case, without the root's trailing dot: how names are compared and listed. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

/** True when `name` is the zone itself or below it (case-insensitive). */
export function inZone(name: string, zone: string): boolean {
  const n = normalizeName(name);
  const z = normalizeName(zone);
  return n === z || n.endsWith(`.${z}`);
}

const LABEL = /^(?:\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;

/**
 * Checks a name before it goes into nsupdate's script, where a space or a
 * newline would start another command.
 */
export function checkName(name: string): string {
  const n = normalizeName(name);
  if (n.length === 0 || n.length > 253 || !n.split(".").every((l) => LABEL.test(l))) {
    throw new McpError("invalid_argument", `${JSON.stringify(name)} is not a DNS name`);
  }
  return n;
}

/** Deletes then adds: an upsert in one update message, which the server applies atomically. */
export function upsertChanges(name: string, address: string, ttl: number): DnsChange[] {
  return [...removeChanges(name), { op: "add", name, type: recordType(address), ttl, address }];
}

/**
 * Both address types: the interface's upsert replaces what the name had
 * (src/edge/types.ts), so a node whose `[dns] address` changed family
 * leaves no record of the old one behind.
 */
export function removeChanges(name: string): DnsChange[] {
  return [
    { op: "delete", name, type: "A" },
    { op: "delete", name, type: "AAAA" },
  ];
}

/** The text nsupdate reads on stdin: one update message, sent at the end. */
export function updateScript(s: UpdateScript): string {
  const lines = [`server ${s.host} ${s.port}`, `zone ${checkName(s.zone)}`];
  for (const c of s.changes) {
    const name = checkName(c.name);
    if (c.op === "delete") {
      lines.push(`update delete ${name} ${c.type}`);
    } else {
      if (recordType(c.address) !== c.type) {
        throw new McpError("invalid_argument", `${c.address} is not an ${c.type} address`);
      }
      if (!Number.isInteger(c.ttl) || c.ttl < 0) {
        throw new McpError("invalid_argument", `TTL ${c.ttl} is not a whole number of seconds`);
      }
      lines.push(`update add ${name} ${c.ttl} ${c.type} ${c.address}`);
    }
  }
  lines.push("send", "");
  return lines.join("\n");
}

/** `dig` AXFR of the zone, signed with the key file (Knot and BIND refuse an unsigned transfer). */
export function digAxfrArgv(
  keyFile: string,
  host: string,
  port: number,
  zone: string,
  timeoutSec: number,
): string[] {
  return [
    "dig",
    "-k",
    keyFile,
    `@${host}`,
    "-p",
    String(port),
    zone,
    "AXFR",
    "+noall",
    "+answer",
    `+time=${timeoutSec}`,
    "+tries=1",
  ];
}

/**
 * The zone's A and AAAA records from dig's AXFR answer. dig exits 0 even
 * when the transfer fails (a TSIG error prints `; Transfer failed.`), so a
 * comment line, or no SOA (every AXFR starts with one), is a failure: the
 * error carries dig's words.
 */
export function parseAxfr(output: string, zone: string, server: string): DnsRecord[] {
  const records: DnsRecord[] = [];
  let soa = false;
  const comments: string[] = [];
  for (const raw of output.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    if (line.startsWith(";")) {
      comments.push(line.replace(/^;+\s*/, ""));
      continue;
    }
    const f = line.split(/\s+/);
    // name ttl [class] type rdata…
    const hasClass = f[2] === "IN";
    const type = f[hasClass ? 3 : 2];
    const rdata = f[hasClass ? 4 : 3];
    const ttl = Number(f[1]);
    if (f[0] === undefined || type === undefined || !Number.isInteger(ttl)) {
      comments.push(`unexpected line: ${line}`);
      continue;
    }
    if (type === "SOA") soa = true;
    if ((type === "A" || type === "AAAA") && rdata !== undefined) {
      records.push({ name: normalizeName(f[0]), type, address: rdata, ttl });
    }
  }
  if (comments.length > 0 || !soa) {
    throw transferFailure(zone, server, comments.join("; ") || "no SOA record in the answer");
  }
  return records;
}

const KEY_HINT = "check that [dns] tsig_key_file holds the key the server has for this zone";

/** A refused or failed AXFR, with the key-file hint when TSIG is the reason. */
export function transferFailure(zone: string, server: string, reason: string): McpError {
  // Before the rcodes: "connection refused" is not the server's REFUSED.
  if (/timed out|connection refused|no servers could be reached|unreachable/i.test(reason)) {
    return new McpError("unavailable", `DNS server ${server} did not answer (${reason})`);
  }
  if (/tsig|signature/i.test(reason) || /BADSIG|BADKEY|BADTIME|NOTAUTH|REFUSED/.test(reason)) {
    return new McpError(
      "failed_precondition",
      `DNS transfer of zone ${zone} refused by ${server}: ${reason}; ${KEY_HINT}`,
    );
  }
  return new McpError("runtime", `DNS transfer of zone ${zone} from ${server} failed: ${reason}`);
}

export interface FailedRun {
  stderr: string;
  stdout?: string;
  /** Killed by our own timeout (nsupdate's -t did not end it). */
  timedOut: boolean;
}

/**
 * nsupdate's failure in words an operator can act on. Measured on Knot:
 * a wrong secret gives `update failed: NOTAUTH(BADSIG)`, an unknown key
 * name or algorithm `NOTAUTH(BADKEY)`, no key `NOTAUTH`, a name outside
 * the served zone `NOTZONE`; a silent server `failed: timed out`, a closed
 * port `failed: connection refused`.
 */
export function updateFailure(
  run: FailedRun,
  ctx: { name: string; server: string; zone: string; keyFile: string; timeoutSec: number },
): McpError {
  const text = `${run.stderr}\n${run.stdout ?? ""}`;
  const lines = text
    .split("\n")
    .map((l) => l.replace(/^;+\s*/, "").trim())
    .filter(Boolean);
  const refused = /update failed:\s*(\S+)/.exec(text)?.[1];
  const tsigDetail = lines.find((l) => /^TSIG error/i.test(l));
  if (refused) {
    const reason = tsigDetail ? `${refused} (${tsigDetail})` : refused;
    const hint = /NOTZONE/.test(refused)
      ? `check [dns] zone (${ctx.zone}): the server does not take updates of that name there`
      : KEY_HINT;
    return new McpError(
      "failed_precondition",
      `DNS update of ${ctx.name} refused by ${ctx.server}: ${reason}; ${hint}`,
    );
  }
  const commFailure = /Communication with \S+ failed: (.+)/.exec(text)?.[1]?.trim();
  if (run.timedOut || commFailure !== undefined) {
    const why =
      run.timedOut || commFailure === "timed out"
        ? `within ${ctx.timeoutSec} s`
        : `(${commFailure})`;
    return new McpError("unavailable", `DNS server ${ctx.server} did not answer ${why}`);
  }
  if (/could not read key/.test(text)) {
    return new McpError(
      "invalid_config",
      `${ctx.keyFile}: nsupdate cannot use the TSIG key file ([dns] tsig_key_file): ${lines.at(-1)}`,
    );
  }
  return new McpError(
    "runtime",
    `DNS update of ${ctx.name} at ${ctx.server} failed: ${lines.at(-1) ?? "nsupdate gave no reason"}`,
  );
}
