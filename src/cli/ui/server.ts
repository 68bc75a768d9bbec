/**
 * `mcp ui`'s HTTP server (node:http, read-only):
 *
 *   /                the page (page.ts), /app.js and /app.css (built by scripts/bundle.mjs)
 *   /api/snapshot    the snapshot as JSON (view-types.ts)
 *   /api/events      server-sent events: `snapshot` now, then each time it changes
 *   /api/component   ?node=&service=&component=: logs and events for the panel
 *
 * Every request passes access.ts first (Host, token). The snapshot is built
 * after every answer the collector gets and sent only when it differs from
 * the last one sent.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { errorMessage } from "../../util/errors.js";
import { checkAccess, type AccessPolicy } from "./access.js";
import type { Listen } from "./listen.js";
import type { ComponentRef } from "./component-detail.js";
import { PAGE_HTML } from "./page.js";
import { buildSnapshot, type NodeObservation } from "./snapshot.js";
import type { UiComponentDetail } from "./view-types.js";

export interface UiAssets {
  js: string;
  css: string;
}

/** What the server reads: the collector's observations and its change signal. */
export interface SnapshotSource {
  observations(): NodeObservation[];
  onChange(listener: () => void): () => void;
}

export interface UiServerOptions {
  listen: Listen;
  token?: string;
  assets: UiAssets;
  source: SnapshotSource;
  /** A component's panel; rejects with a reason for the page (unknown node, node not answering). */
  componentDetail(node: string, ref: ComponentRef): Promise<UiComponentDetail>;
  now?: () => Date;
}

export interface RunningUi {
  /** The bound port (the listen port, or the one picked for port 0). */
  port: number;
  close(): Promise<void>;
}

/** A comment line every so often keeps proxies and idle timers from closing the stream. */
const SSE_HEARTBEAT_MS = 15_000;

/** Same-origin only; no inline script or style; never framed. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

type Headers = Record<string, string>;

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Headers = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    ...extra,
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, extra?: Headers): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value), extra);
}

/** The three query parameters of `/api/component`, or a reason it lacks one. */
export function componentQuery(
  params: URLSearchParams,
): { node: string; ref: ComponentRef } | { error: string } {
  const node = params.get("node");
  const service = params.get("service");
  const component = params.get("component");
  if (!node || !service || !component) return { error: "needs node, service and component" };
  return { node, ref: { service, component } };
}

export async function startUiServer(opts: UiServerOptions): Promise<RunningUi> {
  const now = opts.now ?? (() => new Date());
  const streams = new Set<http.ServerResponse>();
  const snapshotJson = (): string =>
    JSON.stringify(buildSnapshot(opts.source.observations(), now()));
  // The source signals every change as it makes it, so outside a broadcast
  // this is what every open stream last got (or the one it opens with).
  let lastSent = snapshotJson();

  const broadcast = (): void => {
    const json = snapshotJson();
    if (json === lastSent) return;
    lastSent = json;
    for (const res of streams) res.write(`event: snapshot\ndata: ${json}\n\n`);
  };

  const openStream = (res: http.ServerResponse, extra: Headers): void => {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      connection: "keep-alive",
      ...extra,
    });
    // The browser reconnects on its own after a drop; 1 s keeps a restarted `mcp ui` quick to find.
    res.write(`retry: 1000\nevent: snapshot\ndata: ${snapshotJson()}\n\n`);
    streams.add(res);
    res.on("close", () => streams.delete(res));
  };

  const policy: AccessPolicy = {
    port: opts.listen.port,
    loopback: opts.listen.loopback,
    ...(opts.token === undefined ? {} : { token: opts.token }),
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const decision = checkAccess(
      {
        method: req.method ?? "GET",
        host: req.headers.host,
        url: req.url ?? "/",
        cookie: req.headers.cookie,
      },
      policy,
    );
    if (!decision.allow) {
      send(res, decision.status, "text/plain; charset=utf-8", `${decision.reason}\n`);
      return;
    }
    const extra: Headers = decision.setCookie ? { "set-cookie": decision.setCookie } : {};
    if (decision.location !== undefined) {
      send(res, 303, "text/plain; charset=utf-8", "", { ...extra, location: decision.location });
      return;
    }
    const url = new URL(req.url ?? "/", "http://ui.invalid");
    switch (url.pathname) {
      case "/":
        send(res, 200, "text/html; charset=utf-8", PAGE_HTML, extra);
        return;
      case "/app.js":
        send(res, 200, "text/javascript; charset=utf-8", opts.assets.js, extra);
        return;
      case "/app.css":
        send(res, 200, "text/css; charset=utf-8", opts.assets.css, extra);
        return;
      case "/api/snapshot":
        send(res, 200, "application/json; charset=utf-8", snapshotJson(), extra);
        return;
      case "/api/events":
        openStream(res, extra);
        return;
      case "/api/component": {
        const query = componentQuery(url.searchParams);
        if ("error" in query) {
          sendJson(res, 400, { error: query.error }, extra);
          return;
        }
        try {
          sendJson(res, 200, await opts.componentDetail(query.node, query.ref), extra);
        } catch (err) {
          sendJson(res, 502, { error: errorMessage(err) }, extra);
        }
        return;
      }
      default:
        send(res, 404, "text/plain; charset=utf-8", "not found\n", extra);
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", `${errorMessage(err)}\n`);
      else res.destroy();
    });
  });
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(": keep-alive\n\n");
  }, SSE_HEARTBEAT_MS);
  heartbeat.unref();
  const unsubscribe = opts.source.onChange(broadcast);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Port 0 picked one: the Host check must expect it.
  policy.port = port;

  return {
    port,
    close: async () => {
      unsubscribe();
      clearInterval(heartbeat);
      for (const res of streams) res.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
