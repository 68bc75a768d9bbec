/**
 * Bearer tokens. The agent only ever stores SHA-256 hashes, with a name and a
 * role per token:
 *
 * ```toml
 * [[tokens]]
 * name = "operator"
 * role = "operator"
 * sha256 = "9f86d0…"
 * ```
 *
 * The check sits behind TokenValidator so an MCIAS-style remote validator can
 * replace the file without touching the gRPC layer.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { stringify } from "smol-toml";
import { parseToml, readTextFile, throwProblems, writeFileAtomic } from "../config/files.js";
import { defined, TableChecker, type Parse } from "../util/checker.js";
import { McpError } from "../util/errors.js";

/** Who made a call. Any role but `guest` may use the agent (reference §1.3). */
export interface Identity {
  name: string;
  role: string;
}

export interface TokenValidator {
  /** The identity for a token, or undefined when the token is unknown. */
  validate(token: string): Promise<Identity | undefined>;
}

/** 32 random bytes, base64url, with a recognisable prefix (for secret scanners and humans). */
export function generateToken(): string {
  return `mcp_${randomBytes(32).toString("base64url")}`;
}

/** Lower-case hex SHA-256 of the token, as stored in the tokens file. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

const ROLE = /^[a-z][a-z0-9_-]*$/;
const SHA256 = /^[0-9a-fA-F]{64}$/;

/** One `[[tokens]]` entry; its keys in this order are how the file is written. */
interface TokenEntry {
  name: string;
  role: string;
  sha256: string;
}

function tokenEntry(c: TableChecker): Parse<TokenEntry> {
  return (v, p) => {
    const t = c.strictTable(["name", "role", "sha256"])(v, p);
    const name = c.field(t, p, "name", c.nonEmpty, true);
    const roleWhat = "a lower-case word such as operator or guest";
    const role = c.field(t, p, "role", c.matching(ROLE, roleWhat), true);
    const hashWhat = "64 hex characters (the SHA-256 of the token)";
    const sha256 = c.field(t, p, "sha256", c.matching(SHA256, hashWhat), true);
    if (name === undefined || role === undefined || sha256 === undefined) return undefined;
    return { name, role, sha256 };
  };
}

interface Loaded {
  mtimeMs: number;
  size: number;
  entries: { identity: Identity; hash: Buffer }[];
}

async function readTokensFile(file: string): Promise<TokenEntry[]> {
  const text = await readTextFile(file, 'create it with "mcp-agent init" or "mcp-agent token add"');
  const c = new TableChecker();
  const root = c.strictTable(["tokens"])(parseToml(file, text), "");
  const entries = c.list(tokenEntry(c), "an array of tables ([[tokens]])");
  const tokens = c.field(root, "", "tokens", entries);
  throwProblems(file, c);
  return defined(tokens ?? []);
}

/**
 * Validates tokens against a TOML file of hashes. The file is re-read when its
 * mtime or size changes, so adding or revoking a token needs no restart. A file
 * that becomes unreadable or invalid fails closed (validate throws) rather than
 * keeping the old set, which could keep a revoked token alive.
 */
export class FileTokenStore implements TokenValidator {
  readonly file: string;
  private loaded: Loaded | undefined;
  private loading: Promise<Loaded> | undefined;

  constructor(file: string) {
    this.file = resolve(file);
  }

  /** Opens and validates the file up front, so a bad file stops the agent at startup. */
  static async open(file: string): Promise<FileTokenStore> {
    const store = new FileTokenStore(file);
    await store.current();
    return store;
  }

  async validate(token: string): Promise<Identity | undefined> {
    const { entries } = await this.current();
    const hash = createHash("sha256").update(token, "utf8").digest();
    let found: Identity | undefined;
    // Compare against every entry in constant time; no early exit.
    for (const entry of entries) {
      if (timingSafeEqual(entry.hash, hash) && !found) found = entry.identity;
    }
    return found;
  }

  private async current(): Promise<Loaded> {
    const st = await stat(this.file).catch((err: unknown) => {
      throw new McpError("invalid_config", `tokens file ${this.file}: ${(err as Error).message}`, {
        cause: err,
      });
    });
    const fresh = this.loaded;
    if (fresh && fresh.mtimeMs === st.mtimeMs && fresh.size === st.size) return fresh;
    // One reload at a time; concurrent calls share it.
    this.loading ??= this.reload(st.mtimeMs, st.size).finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async reload(mtimeMs: number, size: number): Promise<Loaded> {
    this.loaded = undefined; // fail closed while (and if) the new contents are bad
    const entries = (await readTokensFile(this.file)).map((t) => ({
      identity: { name: t.name, role: t.role },
      hash: Buffer.from(t.sha256, "hex"),
    }));
    this.loaded = { mtimeMs, size, entries };
    return this.loaded;
  }
}

/**
 * Appends a token (stored as its hash) to a tokens file, creating the file if
 * needed. Refuses a duplicate name. The file is rewritten atomically, mode 0600.
 */
export async function addTokenToFile(
  file: string,
  entry: { name: string; role: string; token: string },
): Promise<void> {
  const path = resolve(file);
  // A missing file is created; a broken one must not be silently overwritten.
  const exists = await stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );
  const existing = exists ? await readTokensFile(path) : [];
  if (existing.some((t) => t.name === entry.name)) {
    throw new McpError("invalid_argument", `a token named ${entry.name} already exists in ${path}`);
  }
  const c = new TableChecker();
  const added = tokenEntry(c)(
    { name: entry.name, role: entry.role, sha256: hashToken(entry.token) },
    "",
  );
  if (!added || c.problems.length > 0) {
    const problems = c.problems.map((p) => `${p.path}: ${p.message}`);
    throw new McpError("invalid_argument", `bad token entry: ${problems.join("; ")}`);
  }
  const header =
    "# mcp-agent bearer tokens: SHA-256 hashes only, never the tokens themselves.\n" +
    "# Roles: any role may call the agent except guest (PERMISSION_DENIED).\n\n";
  await writeFileAtomic(path, header + stringify({ tokens: [...existing, added] }) + "\n");
}
