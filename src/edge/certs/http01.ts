/**
 * The HTTP-01 answers of the ACME issuer (issue 8): HAProxy's plain-HTTP
 * listener sends `/.well-known/acme-challenge/` to this server over a unix
 * socket under `[proxy] dir` (src/edge/haproxy/config.ts), so no TCP port of
 * the agent's own is ever exposed. Answers live in memory only: a challenge
 * lasts as long as one issue() call.
 */
import { chmod, rm } from "node:fs/promises";
import http from "node:http";
import { McpError, errorMessage } from "../../util/errors.js";

/** RFC 8555 8.3: where an ACME server fetches an HTTP-01 answer. */
export const CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

/** The token a request path asks for, or undefined when it asks for something else (pure). */
export function challengeToken(url: string | undefined): string | undefined {
  if (!url?.startsWith(CHALLENGE_PREFIX)) return undefined;
  const token = url.slice(CHALLENGE_PREFIX.length).split("?")[0] ?? "";
  // RFC 8555 8.3: a token is base64url, nothing else.
  return /^[A-Za-z0-9_-]+$/.test(token) ? token : undefined;
}

export class Http01Responder {
  readonly #answers = new Map<string, string>();
  #server: http.Server | undefined;

  constructor(readonly socketPath: string) {}

  /** Answer GET `/.well-known/acme-challenge/<token>` with `keyAuthorization`. */
  set(token: string, keyAuthorization: string): void {
    this.#answers.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.#answers.delete(token);
  }

  /** Tokens now answered (tests check nothing is left behind). */
  get tokens(): string[] {
    return [...this.#answers.keys()];
  }

  /** Listens on the socket (0600), replacing a stale socket file a previous agent left. */
  async start(): Promise<void> {
    if (this.#server) return;
    await rm(this.socketPath, { force: true });
    const server = http.createServer((req, res) => {
      const token = challengeToken(req.url);
      const answer = token === undefined ? undefined : this.#answers.get(token);
      if ((req.method !== "GET" && req.method !== "HEAD") || answer === undefined) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(answer);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new McpError(
            "internal",
            `cannot listen on ${this.socketPath} for ACME challenges: ${errorMessage(err)}`,
            { cause: err },
          ),
        ),
      );
      server.listen(this.socketPath, () => resolve());
    });
    // Right after listen: the proxy dir is 0700 already (driver.ts), so the moment before is not open.
    await chmod(this.socketPath, 0o600);
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }
}
