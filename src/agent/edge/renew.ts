/**
 * The renewal loop for route certificates (docs/ARCHITECTURE.md "Edge"):
 * every L7 name on the proxy whose certificate has `renew_before` or less
 * left gets a new one from the configured issuer, swapped in place through
 * HAProxy's runtime API (no reload, no connection dropped). A failure is
 * logged and recorded as an event; the old certificate keeps serving and
 * the next check tries again.
 */
import { errorMessage } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { entryOf } from "./routes.js";

/** How often the loop looks (certificates last 90 days; renew_before is weeks). */
export const RENEW_CHECK_MS = 3_600_000;

/** Renews what is due at `now`; returns the hostnames renewed. */
export async function renewDueCertificates(ctx: AgentContext, now = new Date()): Promise<string[]> {
  const edge = ctx.edge;
  if (!edge) return [];
  const renewed: string[] = [];
  const seen = new Set<string>();
  for (const row of ctx.registry.proxyRoutes.list()) {
    if (row.mode !== "l7" || seen.has(row.hostname)) continue;
    seen.add(row.hostname);
    try {
      const { cert, fresh } = await edge.certFor(row.hostname, now);
      if (!fresh) continue;
      await edge.apply(entryOf(row), cert.pem);
      renewed.push(row.hostname);
      ctx.registry.events.add({
        service: row.service,
        component: row.component,
        kind: "certificate",
        message: `renewed the certificate of ${row.hostname} (${cert.issuer}, until ${cert.notAfter.toISOString()})`,
      });
    } catch (err) {
      const message = `could not renew the certificate of ${row.hostname}: ${errorMessage(err)}`;
      ctx.logger.warn({ hostname: row.hostname }, message);
      ctx.registry.events.add({
        service: row.service,
        component: row.component,
        kind: "certificate_failed",
        message,
      });
    }
  }
  return renewed;
}

/** Starts the loop; the returned function stops it. */
export function startRenewalLoop(ctx: AgentContext, everyMs = RENEW_CHECK_MS): () => void {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() => renewDueCertificates(ctx));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
