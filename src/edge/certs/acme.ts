/**
 * `[certs] issuer = "acme"` (issue 8): route certificates from an ACME
 * server (Let's Encrypt; Pebble in tests) through npm `acme-client`
 * (docs/ARCHITECTURE.md "Edge"). HTTP-01 is answered by the
 * agent's Http01Responder behind HAProxy's plain listener (http01.ts,
 * src/edge/haproxy/config.ts). The account key is made once and reused, so
 * every certificate of a node belongs to one ACME account.
 *
 * acme-client is loaded on first use, like selfsigned in src/certs/x509.ts:
 * an agent with the local issuer never carries it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { McpError, errorMessage } from "../../util/errors.js";
import type { CertIssuer, RouteCert } from "../types.js";
import type { Http01Responder } from "./http01.js";

type Acme = typeof import("acme-client");
type AcmeClient = InstanceType<Acme["Client"]>;

/** A hung ACME server fails the deploy step instead of holding it. */
export const ACME_TIMEOUT_MS = 60_000;
/** The directory answers or not: the first request of an issue, on its own short limit. */
const DIRECTORY_TIMEOUT_MS = 10_000;

export interface AcmeIssuerOptions {
  /** `[certs] acme_directory`. */
  directoryUrl: string;
  /** `[certs] acme_ca_file`: PEM trusting the ACME server's own TLS; "" = the system's roots. */
  caFile: string;
  /** `[certs] acme_email`: the account's contact; "" = none. */
  email: string;
  /** The account's key (ECDSA P-256), made on first use with mode 0600. */
  accountKeyFile: string;
  challenges: Http01Responder;
  /** The whole of one issue(): account, order, challenge, certificate. */
  timeoutMs?: number;
}

// ---- pure parts -------------------------------------------------------------

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificates of `text`, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(CERT_BLOCK) ?? [];
}

function withoutBlankLines(pem: string): string {
  return pem
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "")
    .join("\n");
}

/**
 * What HAProxy loads: the chain as the ACME server sent it (leaf first), then
 * the key, with no blank line anywhere, because a blank line ends a payload
 * on HAProxy's runtime API (src/edge/haproxy/runtime-api.ts).
 */
export function acmeRoutePem(chain: string, key: string): string {
  if (pemCertificates(chain).length === 0) {
    throw new McpError("internal", "the ACME server returned no certificate");
  }
  return `${withoutBlankLines(chain.trim())}\n${withoutBlankLines(key.trim())}\n`;
}

/** The failure an unreachable (or unreadable) directory gives, naming the URL and the cause. */
export function unreachableDirectory(directoryUrl: string, cause: unknown): McpError {
  return new McpError(
    "unavailable",
    `cannot reach the ACME directory ${directoryUrl}: ${errorMessage(cause)}`,
    { cause },
  );
}

/**
 * A failure during an issue, carrying the server's own words (acme-client puts
 * the RFC 7807 `detail` into its messages). Network errors are `unavailable`;
 * a refusal is `failed_precondition` (DNS or the challenge must change first).
 */
export function acmeFailure(hostname: string, directoryUrl: string, err: unknown): McpError {
  if (err instanceof McpError) return err;
  const e = err as { isAxiosError?: boolean; response?: unknown; code?: unknown };
  const network = (e.isAxiosError === true && e.response === undefined) || isErrnoCode(e.code);
  return new McpError(
    network ? "unavailable" : "failed_precondition",
    `ACME server ${directoryUrl} gave no certificate for ${hostname}: ${errorMessage(err)}`,
    { cause: err },
  );
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

function isErrnoCode(code: unknown): boolean {
  return typeof code === "string" && NETWORK_CODES.has(code);
}

/** `work`, or a rejection with `onTimeout()` after `ms` (the timer never outlives the race). */
export async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- acme-client, per issue -------------------------------------------------

/**
 * What acme-client's requests need from the issue() they belong to. Its axios
 * instance is one for the whole process, so the agent trusting the ACME
 * server's CA and the abort of a timed-out issue are set per request from
 * here, not on the shared defaults.
 */
interface IssueContext {
  agent: https.Agent | undefined;
  signal: AbortSignal;
  /** acme-client's last log line: what a timed-out issue was doing. */
  lastStep: string;
  /** The request configs sent so far, so an abort can stop their retries. */
  requests: Set<object>;
}

/**
 * acme-client retries a request that got no answer for ~75 s (its axios.js),
 * counting attempts on the request's config: an aborted issue's requests are
 * marked as out of attempts so they end at once.
 */
function noMoreRetries(config: object): void {
  (config as { retryAttempt?: number }).retryAttempt = Number.MAX_SAFE_INTEGER;
}

const issueContext = new AsyncLocalStorage<IssueContext>();
let acmeModule: Promise<Acme> | undefined;

function loadAcme(): Promise<Acme> {
  acmeModule ??= import("acme-client").then(({ default: acme }) => {
    acme.axios.interceptors.request.use((config) => {
      const ctx = issueContext.getStore();
      if (!ctx) return config;
      if (ctx.agent) config.httpsAgent = ctx.agent;
      config.signal = ctx.signal;
      ctx.requests.add(config);
      if (ctx.signal.aborted) noMoreRetries(config);
      return config;
    });
    acme.setLogger((line) => {
      const ctx = issueContext.getStore();
      if (ctx) ctx.lastStep = line;
    });
    return acme;
  });
  return acmeModule;
}

/** The account key at `file`, made (ECDSA, 0600) when there is none; `made` says which. */
async function loadOrCreateAccountKey(
  acme: Acme,
  file: string,
): Promise<{ key: string; made: boolean }> {
  try {
    return { key: await readFile(file, "utf8"), made: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = (await acme.crypto.createPrivateEcdsaKey()).toString();
  try {
    await writeFile(file, key, { mode: 0o600, flag: "wx" });
    return { key, made: true };
  } catch (err) {
    // Another issue() made it first: theirs is the account's.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      return { key: await readFile(file, "utf8"), made: false };
    }
    throw err;
  }
}

/** GET the directory with the issue's trust and limit: an unreachable server fails at once. */
function probeDirectory(url: string, agent: https.Agent | undefined, signal: AbortSignal) {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => reject(unreachableDirectory(url, err));
    let target: URL;
    try {
      target = new URL(url);
    } catch (err) {
      return fail(err);
    }
    const get = target.protocol === "http:" ? http.get : https.get;
    const req = get(
      target,
      { ...(agent ? { agent } : {}), signal, timeout: DIRECTORY_TIMEOUT_MS },
      (res) => {
        res.resume();
        if (res.statusCode === 200) resolve();
        else fail(new Error(`HTTP ${res.statusCode}`));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${DIRECTORY_TIMEOUT_MS} ms`)));
    req.on("error", fail);
  });
}

async function readCaFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new McpError(
      "invalid_config",
      `cannot read [certs] acme_ca_file ${file}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

interface AccountClient {
  client: AcmeClient;
  agent: https.Agent | undefined;
  /** The key was there before: its account most likely exists on the server. */
  keyExisted: boolean;
}

export class AcmeIssuer implements CertIssuer {
  readonly kind = "acme" as const;
  readonly #opts: AcmeIssuerOptions;
  #client: Promise<AccountClient> | undefined;
  #accountUrl: string | undefined;

  constructor(opts: AcmeIssuerOptions) {
    this.#opts = opts;
  }

  /** The ACME account's URL once an issue has registered or found it. */
  get accountUrl(): string | undefined {
    return this.#accountUrl;
  }

  async issue(hostname: string): Promise<RouteCert> {
    const { directoryUrl, challenges } = this.#opts;
    const timeoutMs = this.#opts.timeoutMs ?? ACME_TIMEOUT_MS;
    const abort = new AbortController();
    const ctx: IssueContext = {
      agent: undefined,
      signal: abort.signal,
      lastStep: "",
      requests: new Set(),
    };
    const tokens = new Set<string>();
    const work = issueContext.run(ctx, () => this.#issue(hostname, ctx, tokens));
    try {
      return await withTimeout(work, timeoutMs, () => {
        for (const config of ctx.requests) noMoreRetries(config);
        abort.abort();
        const step = ctx.lastStep ? ` (last step: ${ctx.lastStep})` : "";
        return new McpError(
          "timed_out",
          `ACME server ${directoryUrl} gave no certificate for ${hostname} within ${timeoutMs} ms${step}`,
        );
      });
    } catch (err) {
      throw acmeFailure(hostname, directoryUrl, err);
    } finally {
      // acme-client removes its challenge itself, except when it never gets that far (a timeout).
      for (const token of tokens) challenges.delete(token);
    }
  }

  async #issue(hostname: string, ctx: IssueContext, tokens: Set<string>): Promise<RouteCert> {
    const acme = await loadAcme();
    const account = await this.#getClient(acme);
    const { client, agent } = account;
    ctx.agent = agent;
    await probeDirectory(this.#opts.directoryUrl, agent, ctx.signal);
    await this.#ensureAccount(account);
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: hostname, altNames: [hostname] },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const chain = await client.auto({
      csr,
      ...(this.#opts.email ? { email: this.#opts.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: ["http-01"],
      // Its own check asks the system resolver, which need not know the name yet.
      skipChallengeVerification: true,
      challengeCreateFn: (_authz, challenge, keyAuthorization) => {
        // A timed-out issue has cleaned up already: it must not leave an answer behind.
        if (ctx.signal.aborted) throw new McpError("timed_out", "the issue timed out");
        if (challenge.type !== "http-01") {
          throw new McpError("failed_precondition", `no ${challenge.type} challenge answering`);
        }
        tokens.add(challenge.token);
        this.#opts.challenges.set(challenge.token, keyAuthorization);
        return Promise.resolve();
      },
      challengeRemoveFn: (_authz, challenge) => {
        tokens.delete(challenge.token);
        this.#opts.challenges.delete(challenge.token);
        return Promise.resolve();
      },
    });
    return routeCertFrom(hostname, chain, key.toString());
  }

  /**
   * Registers the account, or finds the existing one of a key made earlier.
   * Not left to auto(): for an existing account it sends `newAccount` and then
   * an update with only termsOfServiceAgreed, which Pebble refuses as an
   * empty update when there is no email (measured in test/integration/acme.test.ts).
   */
  async #ensureAccount(account: AccountClient): Promise<void> {
    const { client } = account;
    try {
      client.getAccountUrl();
      return; // registered by an earlier issue()
    } catch {
      // not yet: below
    }
    const register = {
      termsOfServiceAgreed: true,
      ...(this.#opts.email ? { contact: [`mailto:${this.#opts.email}`] } : {}),
    };
    if (account.keyExisted) {
      try {
        await client.createAccount({ onlyReturnExisting: true });
      } catch {
        // This server has no account for the key (a new directory): register one.
        await client.createAccount(register);
      }
    } else {
      await client.createAccount(register);
    }
    this.#accountUrl = client.getAccountUrl();
  }

  #getClient(acme: Acme) {
    if (this.#client) return this.#client;
    const made = (async () => {
      const { directoryUrl, caFile, accountKeyFile } = this.#opts;
      const ca = caFile ? await readCaFile(caFile) : undefined;
      const { key, made } = await loadOrCreateAccountKey(acme, accountKeyFile);
      const client = new acme.Client({
        directoryUrl,
        accountKey: key,
        // Its defaults poll from 5 s: far too slow for a deploy step (and for Pebble's instant checks).
        backoffAttempts: 12,
        backoffMin: 200,
        backoffMax: 5_000,
      });
      return { client, agent: ca ? new https.Agent({ ca }) : undefined, keyExisted: !made };
    })();
    this.#client = made;
    // A failure (an unreadable CA file) is retried by the next issue, not remembered.
    made.catch(() => {
      if (this.#client === made) this.#client = undefined;
    });
    return made;
  }
}

/** The RouteCert of an issued chain and its key (the leaf must match the key). */
export function routeCertFrom(hostname: string, chain: string, key: string): RouteCert {
  const pem = acmeRoutePem(chain, key);
  const [leafPem] = pemCertificates(chain);
  const leaf = new X509Certificate(leafPem ?? "");
  if (!leaf.checkPrivateKey(createPrivateKey(key))) {
    throw new McpError("internal", "the ACME certificate does not match its key");
  }
  return {
    hostname,
    pem,
    issuer: "acme",
    notAfter: new Date(leaf.validTo),
    serial: leaf.serialNumber.toUpperCase(),
  };
}
