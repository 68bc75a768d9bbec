/**
 * `mcp ui`'s collector: one poller per node, each on its own loop, so a
 * node that hangs (every call has a deadline) or is gone never delays what
 * the page shows of the others.
 *
 * Every second a poller asks LiveCheck (the agent answers from memory:
 * docs/ARCHITECTURE.md "Observed state"); when that answer changed, and
 * every few seconds anyway, it also asks NodeStatus, GetServiceStatus (the
 * events, SERVED) and ListRoutes. GetServiceStatus runs a monitor pass on
 * the agent, as `mcp status` does, which is why it is not asked every
 * second. Each answer calls `onChange`; the server sends the page a new
 * snapshot only when the snapshot differs (server.ts).
 *
 * A poller keeps its connection between polls and drops it after a failed
 * LiveCheck: the next poll dials again, so an agent that comes back is seen
 * at the next second instead of after grpc's reconnect backoff.
 */
import type { ResolvedNode } from "../../config/cli.js";
import type { AgentClient } from "../client.js";
import { isNoEdge } from "../commands/edge.js";
import { failureReason } from "../deadline.js";
import type { NodeObservation, RoutesAnswer } from "./snapshot.js";

export interface PollerSettings {
  /** Between the starts of two LiveChecks. */
  intervalMs: number;
  /** The other calls at least this often. */
  slowEveryMs: number;
  /** Each call's deadline (a hung node is unreachable after it). */
  callTimeoutMs: number;
  /** Events asked of GetServiceStatus per node. */
  eventLimit: number;
}

export const DEFAULT_POLLER_SETTINGS: PollerSettings = {
  intervalMs: 1000,
  slowEveryMs: 5000,
  callTimeoutMs: 5000,
  eventLimit: 50,
};

export interface PollerDeps {
  connect(node: ResolvedNode): Promise<AgentClient>;
  now?: () => number;
}

/** Polls one node until stopped; `observation` is what it last heard. */
export class NodePoller {
  readonly observation: NodeObservation;
  #client: AgentClient | undefined;
  #slowAt = -Infinity;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  readonly #now: () => number;

  constructor(
    readonly node: ResolvedNode,
    private readonly settings: PollerSettings,
    private readonly deps: PollerDeps,
    private readonly onChange: () => void,
  ) {
    this.observation = { name: node.name, address: node.address };
    this.#now = deps.now ?? Date.now;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Ends the loop after the poll under way (its calls keep their deadlines) and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#client?.close();
    this.#client = undefined;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const started = this.#now();
      await this.pollOnce();
      const wait = Math.max(0, this.settings.intervalMs - (this.#now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One poll (the loop's step; tests call it directly). Never rejects. */
  async pollOnce(): Promise<void> {
    const obs = this.observation;
    const call = { timeoutMs: this.settings.callTimeoutMs };
    let client: AgentClient;
    try {
      client = this.#client ??= await this.deps.connect(this.node);
      const live = await client.call("liveCheck", {}, call);
      const changed =
        obs.failure !== undefined ||
        JSON.stringify(live) !== JSON.stringify(obs.live) ||
        this.#now() - this.#slowAt >= this.settings.slowEveryMs;
      obs.live = live;
      delete obs.failure;
      this.onChange();
      if (!changed) return;
    } catch (err) {
      obs.failure = {
        reason: failureReason(err, this.node.name),
        since: obs.failure?.since ?? new Date(this.#now()),
      };
      this.#client?.close();
      this.#client = undefined;
      this.onChange();
      return;
    }
    this.#slowAt = this.#now();
    await this.#pollDetails(client, call);
    this.onChange();
  }

  /** NodeStatus, GetServiceStatus and ListRoutes; a failure of one keeps its last answer and is said. */
  async #pollDetails(client: AgentClient, call: { timeoutMs: number }): Promise<void> {
    const obs = this.observation;
    const listRoutes = client.call("listRoutes", {}, call).then(
      (r): RoutesAnswer => ({ routes: r.routes }),
      (err: unknown): RoutesAnswer =>
        isNoEdge(err) ? { noProxy: true } : { error: failureReason(err, this.node.name) },
    );
    const [[status, serviceStatus], routes] = await Promise.all([
      Promise.allSettled([
        client.call("nodeStatus", {}, call),
        client.call("getServiceStatus", { name: "", eventLimit: this.settings.eventLimit }, call),
      ]),
      listRoutes,
    ]);
    const problems: string[] = [];
    if (status.status === "fulfilled") obs.status = status.value;
    else problems.push(`NodeStatus: ${failureReason(status.reason, this.node.name)}`);
    if (serviceStatus.status === "fulfilled") obs.serviceStatus = serviceStatus.value;
    else problems.push(`GetServiceStatus: ${failureReason(serviceStatus.reason, this.node.name)}`);
    obs.routes = routes;
    if ("error" in routes) problems.push(`ListRoutes: ${routes.error}`);
    if (problems.length > 0) obs.problems = problems;
    else delete obs.problems;
  }
}

/** Every configured node's poller, and one change signal for them all. */
export class Collector {
  readonly pollers: NodePoller[];
  readonly #listeners = new Set<() => void>();

  constructor(nodes: ResolvedNode[], settings: PollerSettings, deps: PollerDeps) {
    this.pollers = nodes.map((node) => new NodePoller(node, settings, deps, () => this.#changed()));
  }

  observations(): NodeObservation[] {
    return this.pollers.map((p) => p.observation);
  }

  /** Calls `listener` after every answer (or failure) of any node; returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    for (const p of this.pollers) p.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.pollers.map((p) => p.stop()));
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
