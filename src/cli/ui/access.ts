/**
 * Who may read `mcp ui`'s page (pure, but for the token's random bytes).
 *
 * - It listens on loopback by default (`127.0.0.1:7700`); a request whose
 *   `Host` is not a loopback name with the listen port is refused (403), so a
 *   web page elsewhere whose name was rebound to 127.0.0.1 cannot read it.
 * - A non-loopback `--listen` gets a random token: the printed URL carries
 *   it (`?token=…`), the first request with it gets it back as a cookie
 *   (HttpOnly, SameSite=Strict) and a redirect to the same path without it,
 *   and every request with neither gets 401.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import {
  formatHostPort,
  isLoopbackHost,
  parseHostPort,
  type HostPort,
} from "../../config/address.js";

export const TOKEN_COOKIE = "mcp_ui_token";

/** 32 random bytes, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The URL `mcp ui` prints: the page, with the token when there is one. */
export function pageUrl(listen: HostPort, token: string | undefined): string {
  const base = `http://${formatHostPort(listen)}/`;
  return token ? `${base}?token=${token}` : base;
}

export interface AccessPolicy {
  /** The port it listens on (after binding: port 0 becomes the real one). */
  port: number;
  loopback: boolean;
  token?: string;
}

export interface RequestFacts {
  method: string;
  /** The `Host` header. */
  host: string | undefined;
  /** The request target: path and query. */
  url: string;
  cookie: string | undefined;
}

export type AccessDecision =
  | {
      allow: true;
      /** The token came in the query: the cookie to set. */
      setCookie?: string;
      /** …and for the page, where to send the browser: the same URL without it. */
      location?: string;
    }
  | { allow: false; status: 401 | 403 | 405; reason: string };

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of cookie `name` in a `Cookie` header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether `host` (a Host header) names this machine's loopback on `port`. */
export function isLoopbackHostHeader(host: string | undefined, port: number): boolean {
  if (!host) return false;
  let parsed: HostPort;
  try {
    parsed = parseHostPort(host);
  } catch {
    return false;
  }
  return parsed.port === port && isLoopbackHost(parsed.host);
}

/** What to do with one request. The page only reads: anything but GET and HEAD is refused. */
export function checkAccess(req: RequestFacts, policy: AccessPolicy): AccessDecision {
  if (policy.loopback && !isLoopbackHostHeader(req.host, policy.port)) {
    return { allow: false, status: 403, reason: "this page answers only to its loopback address" };
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    return { allow: false, status: 405, reason: "the page is read-only" };
  }
  if (policy.token === undefined) return { allow: true };
  const cookie = cookieValue(req.cookie, TOKEN_COOKIE);
  if (cookie !== undefined && sameToken(cookie, policy.token)) return { allow: true };
  const url = new URL(req.url, "http://ui.invalid");
  const given = url.searchParams.get("token");
  if (given !== null && sameToken(given, policy.token)) {
    url.searchParams.delete("token");
    const setCookie = `${TOKEN_COOKIE}=${policy.token}; HttpOnly; SameSite=Strict; Path=/`;
    return url.pathname === "/"
      ? { allow: true, setCookie, location: url.pathname + url.search }
      : { allow: true, setCookie };
  }
  return {
    allow: false,
    status: 401,
    reason: "open the URL mcp ui printed (it carries the token)",
  };
}
