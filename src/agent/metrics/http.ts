/**
 * The metrics listener (`[metrics] listen`): plain HTTP on node:http, a
 * separate port from the gRPC server, answering `GET /metrics` with the
 * Prometheus text format and 404 to anything else. Closed when the agent
 * stops (serve.ts).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { formatHostPort, parseHostPort } from "../../config/address.js";
import { McpError, errorMessage } from "../../util/errors.js";
import type { Logger } from "../../util/log.js";

export const METRICS_PATH = "/metrics";

export interface MetricsListener {
  /** `host:port` it listens on (the port it got when the config said 0). */
  address: string;
  close(): Promise<void>;
}

/** Whether a request is a scrape: `GET /metrics`, with or without a query. */
export function isScrape(req: Pick<IncomingMessage, "method" | "url">): boolean {
  const path = (req.url ?? "").split("?", 1)[0];
  return req.method === "GET" && path === METRICS_PATH;
}

export async function startMetricsListener(opts: {
  listen: string;
  scrape: () => Promise<string>;
  contentType: string;
  logger: Logger;
}): Promise<MetricsListener> {
  const { host, port } = parseHostPort(opts.listen);
  const server = createServer((req, res) => {
    if (!isScrape(req)) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`not found: only GET ${METRICS_PATH} is served here\n`);
      return;
    }
    opts.scrape().then(
      (text) => {
        res.writeHead(200, { "content-type": opts.contentType });
        res.end(text);
      },
      (err: unknown) => {
        opts.logger.error({ err: errorMessage(err) }, "metrics scrape failed");
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end(`scrape failed: ${errorMessage(err)}\n`);
      },
    );
  });
  const address = await new Promise<string>((resolve, reject) => {
    const failed = (err: Error) =>
      reject(
        new McpError("unavailable", `cannot listen on ${opts.listen} for metrics: ${err.message}`),
      );
    server.once("error", failed);
    server.listen({ host, port }, () => {
      server.off("error", failed);
      resolve(formatHostPort({ host, port: (server.address() as AddressInfo).port }));
    });
  });
  server.on("error", (err) => opts.logger.error({ err }, "metrics listener failed"));
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would hold close() open.
        server.closeAllConnections();
      }),
  };
}
