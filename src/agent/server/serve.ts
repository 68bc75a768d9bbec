/**
 * `mcp-agent serve`: load the config, open the registry, reconcile it with
 * what podman runs, then serve McpAgentService over TLS 1.3.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { FileTokenStore } from "../../auth/tokens.js";
import { parseHostPort } from "../../config/address.js";
import { loadAgentConfig, type AgentConfig } from "../../config/agent.js";
import { openRegistry } from "../../registry/index.js";
import { PodmanApiRuntime } from "../../runtime/libpod/runtime.js";
import { PodmanService, checkStorage } from "../../runtime/libpod/service.js";
import { watchEvents } from "../../runtime/libpod/events.js";
import { ObservedView } from "../observed/view.js";
import type { Runtime } from "../../runtime/types.js";
import { ValidationError, errorMessage } from "../../util/errors.js";
import { createLogger, type Logger } from "../../util/log.js";
import { createAgentContext, type AgentContext } from "../context.js";
import { crashPointFromEnv } from "../operations/crash-points.js";
import { createHandlers } from "./handlers.js";
import { Monitor } from "../../monitor/monitor.js";
import { recoverAtStart } from "../operations/recover.js";
import { policyFromConfig, volumeRootProblems } from "../policy/rules.js";
import { RegistryPortBook } from "../ports/book.js";
import {
  buildCandidatePool,
  PortAllocator,
  readEphemeralRange,
  type PortRange,
} from "../ports/allocator.js";
import { startAgentServer } from "./server.js";
import { startEdge, type StartedEdge } from "../edge/start.js";
import { syncProxy } from "../edge/routes.js";
import { renewDueCertificates, startRenewalLoop } from "../edge/renew.js";
import { VERSION } from "../../version.js";
import { AgentMetrics } from "../metrics/metrics.js";
import { startMetricsListener, type MetricsListener } from "../metrics/http.js";
import { readAgentState } from "../metrics/state.js";

/** Seconds podman waits after SIGTERM before it kills a container. */
const STOP_TIMEOUT_SECONDS = 10;

export interface RunningAgent {
  ctx: AgentContext;
  port: number;
  /**
   * Stops serving. The proxy, like the containers, keeps serving (the next
   * start adopts it) unless `stopProxy` (tests, `mcp-agent serve` never).
   */
  close(opts?: { stopProxy?: boolean }): Promise<void>;
}

/**
 * Ports the allocator never hands out: ephemeral range, reserved ports, our
 * own listen ports (gRPC, metrics).
 */
export function excludedPorts(config: AgentConfig, ephemeral: PortRange | undefined): PortRange[] {
  const listenPorts = [config.server.listen, ...(config.metrics ? [config.metrics.listen] : [])]
    .map((listen) => parseHostPort(listen).port)
    .filter((port) => port > 0);
  return [
    ...(config.ports.excludeEphemeral && ephemeral ? [ephemeral] : []),
    ...config.ports.reserved,
    ...listenPorts.map((port) => ({ from: port, to: port })),
  ];
}

/**
 * Podman's graphRoot and runRoot as its API's info reports them (one quick
 * call at start), so the volume policy protects a relocated storage too;
 * the defaults are protected anyway. Another runtime (tests) has none.
 */
async function podmanStorage(runtime: Runtime, logger: Logger): Promise<string[]> {
  if (!(runtime instanceof PodmanApiRuntime)) return [];
  try {
    return await runtime.storagePaths();
  } catch (err) {
    logger.warn(
      { err: errorMessage(err) },
      "podman info failed: the volume policy protects Podman's default storage only",
    );
    return [];
  }
}

/**
 * The runtime on Podman's libpod API (src/runtime/libpod/): the socket
 * `[podman] socket` names, else a `podman system service` of the agent's
 * own on `podman.sock` next to its config (the network-namespace test nodes
 * share /run, so a fixed system path could reach another node's podman).
 * The log says which socket and which storage it serves.
 */
async function podmanApi(
  config: AgentConfig,
  configPath: string,
  logger: Logger,
): Promise<{ runtime: PodmanApiRuntime; close(): Promise<void> }> {
  const own = config.podman.socket === "";
  const socketPath = own ? join(dirname(resolve(configPath)), "podman.sock") : config.podman.socket;
  const service = own ? new PodmanService({ socketPath, logger }) : undefined;
  const runtime = new PodmanApiRuntime({ socketPath, stopTimeoutSeconds: STOP_TIMEOUT_SECONDS });
  const storage = service ? await service.start() : await checkStorage(runtime.client);
  logger.info(
    { socket: socketPath, started: own, graphRoot: storage.graphRoot, runRoot: storage.runRoot },
    own ? "podman API: the agent's own service" : "podman API: the configured socket",
  );
  return {
    runtime,
    close: async () => {
      runtime.close();
      await service?.stop();
    },
  };
}

export async function serveAgent(
  configPath: string,
  deps: { runtime?: Runtime; logger?: Logger } = {},
): Promise<RunningAgent> {
  const config = await loadAgentConfig(configPath);
  const logger = deps.logger ?? createLogger(config.log.level, "mcp-agent");
  const api = deps.runtime ? undefined : await podmanApi(config, configPath, logger);
  const runtime = deps.runtime ?? api?.runtime;
  if (!runtime) throw new Error("serveAgent: no runtime");
  const policy = policyFromConfig(
    config,
    dirname(resolve(configPath)),
    await podmanStorage(runtime, logger),
  );
  const rootProblems = volumeRootProblems(policy);
  if (rootProblems.length > 0) {
    await api?.close();
    throw new ValidationError("invalid_config", resolve(configPath), rootProblems);
  }
  const registry = openRegistry(config.database.path);
  let edge: StartedEdge | undefined;
  let view: ObservedView | undefined;
  let metricsListener: MetricsListener | undefined;
  let server: Awaited<ReturnType<typeof startAgentServer>> | undefined;
  try {
    const pool = buildCandidatePool(
      [config.ports.range.min, config.ports.range.max],
      excludedPorts(config, readEphemeralRange()),
    );
    const ctx = createAgentContext({
      settings: {
        node: config.agent.nodeName,
        bindAddress: config.ports.bindAddresses[0] ?? "127.0.0.1",
        allowLatest: config.agent.allowLatest,
        dataRoot: config.agent.dataRoot,
        agentVersion: VERSION,
        stopTimeoutSeconds: STOP_TIMEOUT_SECONDS,
        policy,
        limits: config.limits,
        logMaxSize: config.containers.logMaxSize,
        historyKeep: config.history.keep,
      },
      registry,
      runtime,
      allocator: new PortAllocator({
        pool,
        bindAddresses: config.ports.bindAddresses,
        book: new RegistryPortBook(registry),
      }),
      logger,
      crashPoint: crashPointFromEnv(),
    });
    // [metrics]: the recorder on the context before anything counts.
    const metrics = config.metrics
      ? new AgentMetrics({
          node: ctx.settings.node,
          version: VERSION,
          readState: () => readAgentState(ctx),
        })
      : undefined;
    ctx.metrics = metrics;
    // What podman runs, from its events (observed/view.ts): opened before
    // recovery, so nothing recovery starts goes unseen; the monitor hears of
    // each change once it is started below.
    const monitor = new Monitor(ctx, config.monitor);
    view = api
      ? new ObservedView({
          node: ctx.settings.node,
          list: () => runtime.list(),
          inspect: (id) => runtime.inspect(id),
          watch: (onEvent) => watchEvents(api.runtime.client, [], onEvent),
          logger,
          onChange: (change) => monitor.containersChanged(change),
          onResync: (deafMs) => monitor.resynced(deafMs),
        })
      : undefined;
    await view?.start();
    ctx.observed = view;
    // The proxy first, so recovery can put routes back on it.
    edge = await startEdge(config, registry, logger);
    ctx.edge = edge?.edge;
    // The registry survives restarts; podman may have moved on meanwhile:
    // recreate what should run, report what we do not manage (recover.ts).
    await recoverAtStart(ctx);
    // Whatever recovery settled, the proxy serves what the rows now say.
    await syncProxy(ctx);
    // Before the gRPC server: a taken metrics port fails the start while
    // nothing else listens yet (the catch below closes what was opened).
    if (config.metrics && metrics) {
      metricsListener = await startMetricsListener({
        listen: config.metrics.listen,
        scrape: () => metrics.scrape(),
        contentType: metrics.contentType,
        logger,
      });
      logger.info(
        { listen: metricsListener.address, path: "/metrics" },
        "metrics listening (Prometheus)",
      );
    }
    const [cert, key] = await Promise.all([
      readFile(config.server.tlsCert, "utf8"),
      readFile(config.server.tlsKey, "utf8"),
    ]);
    server = await startAgentServer({
      listen: config.server.listen,
      tls: { cert, key },
      impl: createHandlers(ctx),
      validator: await FileTokenStore.open(config.auth.tokensFile),
      logger,
      limits: { firstRequestTimeoutMs: config.server.firstRequestTimeoutMs },
      rpcMetrics: metrics,
    });
    // Due renewals now (an agent that was down for weeks), then every hour.
    await renewDueCertificates(ctx);
    const stopRenewals = startRenewalLoop(ctx);
    ctx.monitor = monitor;
    monitor.start();
    logger.info(
      {
        node: ctx.settings.node,
        version: VERSION,
        ports: ctx.allocator.stats().pool,
        ...(metricsListener ? { metrics: metricsListener.address } : {}),
      },
      "agent ready",
    );
    const listening = server;
    return {
      ctx,
      port: listening.port,
      close: async (opts = {}) => {
        await metricsListener?.close();
        await listening.close();
        await monitor.stop();
        await view?.stop();
        stopRenewals();
        if (opts.stopProxy) await edge?.stop();
        else await edge?.release();
        registry.close();
        await api?.close();
      },
    };
  } catch (err) {
    // A step after the gRPC server started (the due renewals) failed: its
    // open socket would otherwise keep the failed agent from exiting.
    await server?.close();
    await metricsListener?.close();
    await view?.stop();
    await edge?.stop();
    registry.close();
    await api?.close();
    throw err;
  }
}
