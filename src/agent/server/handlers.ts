/**
 * The agent's RPC handlers: each maps a request to the module that does the
 * work and back to a response. Authentication is applied around all of them
 * by src/auth (see server.ts); errors become gRPC statuses in rpc.ts.
 */
import type { ComponentResult, McpAgentServiceServer } from "../../gen/mcp/v1/mcp.js";
import { McpError } from "../../util/errors.js";
import type { AgentContext } from "../context.js";
import { adoptContainers } from "../operations/adopt.js";
import { purge } from "../operations/purge.js";
import { syncDesiredState } from "../operations/sync.js";
import { deploy } from "../operations/deploy.js";
import { rollback } from "../operations/rollback.js";
import { deployEventsHandler } from "./deploy-stream.js";
import { pullFile, pushFile } from "../operations/files.js";
import { logsHandler } from "../operations/logs.js";
import {
  restartService,
  startService,
  stopService,
  undeployService,
} from "../operations/lifecycle.js";
import { nodeStatus } from "./node-status.js";
import { refreshObserved } from "../observed/refresh.js";
import { unary } from "./rpc.js";
import { containerInfos, driftOf, eventInfos, revisionInfos, serviceInfos } from "../messages.js";
import { addManualRoute, removeManualRoute } from "../edge/manual.js";
import { edgeOf, listCerts, listDnsRecords, listRoutes, routeServing } from "../edge/listing.js";

/** Events returned by GetServiceStatus when the request does not say. */
const DEFAULT_EVENT_LIMIT = 20;

export function createHandlers(ctx: AgentContext): Partial<McpAgentServiceServer> {
  const { registry } = ctx;
  return {
    // Answers once the results are known; the old containers' removal goes on.
    deploy: unary(
      (req) =>
        new Promise((resolve, reject) => {
          const answer = (results: ComponentResult[]) => resolve({ results });
          deploy(ctx, req, { answer }).then(answer, reject);
        }),
    ),
    // Server streaming: step progress, then the result (deploy-stream.ts). A
    // client that goes away does not stop the deploy.
    deployStream: deployEventsHandler(
      ctx,
      (req) => `deploy ${req.service?.name ?? ""}`,
      (req, run) =>
        deploy(ctx, req, {
          progress: run.progress,
          answer: run.answer,
          revision: { taken: run.taken },
        }),
    ),
    rollback: deployEventsHandler(
      ctx,
      (req) => `rollback ${req.service}`,
      (req, run) => rollback(ctx, req, run),
    ),
    stopService: unary(async (req) => ({ results: await stopService(ctx, req.name) })),
    startService: unary(async (req) => ({ results: await startService(ctx, req.name) })),
    restartService: unary(async (req) => ({ results: await restartService(ctx, req.name) })),
    undeployService: unary(async (req) => ({ results: await undeployService(ctx, req.name) })),

    listServices: unary((req) => {
      const services = registry.services.list().filter((s) => !req.name || s.name === req.name);
      const only = req.name ? { service: req.name } : {};
      return Promise.resolve({
        services: serviceInfos(
          services,
          req.name ? registry.components.list(req.name) : registry.components.list(),
          registry.routes.list(only),
          {
            node: ctx.settings.node,
            withSpec: req.includeSpec,
            bindAddress: ctx.settings.bindAddress,
          },
        ),
      });
    }),

    liveCheck: unary(async () => {
      const { components, byKey, unmanaged } = await refreshObserved(ctx);
      return {
        node: ctx.settings.node,
        services: serviceInfos(registry.services.list(), components, registry.routes.list(), {
          live: byKey,
          node: ctx.settings.node,
        }),
        unmanaged: containerInfos(unmanaged),
      };
    }),

    getServiceStatus: unary(async (req) => {
      // A monitor pass (drift/flap events, alerts) when the loop runs; else a plain refresh.
      const { components } = await (ctx.monitor?.runOnce() ?? refreshObserved(ctx));
      const selected = req.name ? components.filter((c) => c.service === req.name) : components;
      const services = registry.services.list().filter((s) => !req.name || s.name === req.name);
      if (req.name && services.length === 0) {
        throw new McpError(
          "not_found",
          `unknown service "${req.name}" on node ${ctx.settings.node}`,
        );
      }
      return {
        services: serviceInfos(
          services,
          selected,
          registry.routes.list(req.name ? { service: req.name } : {}),
          {
            node: ctx.settings.node,
            serving: await routeServing(ctx.edge, registry.proxyRoutes.list(), ctx.logger),
          },
        ),
        drift: driftOf(selected),
        recentEvents: eventInfos(
          registry.events.list({
            ...(req.name ? { service: req.name } : {}),
            limit: req.eventLimit > 0 ? req.eventLimit : DEFAULT_EVENT_LIMIT,
          }),
        ),
      };
    }),

    nodeStatus: unary(() => nodeStatus(ctx)),

    pushFile: unary((req) => pushFile(ctx, req)),
    pullFile: unary((req) => pullFile(ctx, req)),
    // Server streaming: see logs.ts (cancel kills podman; failures end the stream with a status).
    logs: logsHandler(ctx),

    syncDesiredState: unary(async (req) => ({ results: await syncDesiredState(ctx, req) })),
    adoptContainers: unary(async (req) => ({ results: await adoptContainers(ctx, req.service) })),
    purgeComponent: unary(async (req) => ({ results: await purge(ctx, req) })),

    listRevisions: unary((req) => {
      const rows = registry.revisions.list(req.service);
      if (rows.length === 0 && !registry.services.get(req.service)) {
        throw new McpError(
          "not_found",
          `unknown service "${req.service}" on node ${ctx.settings.node}`,
        );
      }
      return Promise.resolve({ revisions: revisionInfos(rows) });
    }),

    // The edge (src/agent/edge/): FAILED_PRECONDITION on a node without [proxy].
    listRoutes: unary(async () => ({
      routes: await listRoutes(edgeOf(ctx), registry.proxyRoutes.list(), ctx.logger),
    })),
    addRoute: unary(async (req) => ({ route: await addManualRoute(ctx, req) })),
    removeRoute: unary(async (req) => ({
      route: await removeManualRoute(ctx, req.listener, req.hostname),
    })),
    listCerts: unary(async () => ({
      certs: await listCerts(edgeOf(ctx), registry.proxyRoutes.list()),
    })),
    // Through then(): a node without [proxy] rejects instead of throwing out of the handler.
    getRouteCa: unary(() => Promise.resolve().then(() => ({ pem: edgeOf(ctx).routeCaPem }))),
    listDnsRecords: unary(() => listDnsRecords(ctx.edge)),
  };
}
