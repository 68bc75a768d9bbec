/**
 * The agent context of the fake-runtime agent (fake-agent.ts), on its own so
 * that a benchmark can build one too: importing fake-agent.ts registers a
 * node:test hook.
 */
import {
  createAgentContext,
  type AgentContext,
  type AgentSettings,
} from "../../src/agent/context.js";
import type { CrashPoint } from "../../src/agent/operations/crash-points.js";
import { defaultPolicy } from "../../src/agent/policy/rules.js";
import { RegistryPortBook } from "../../src/agent/ports/book.js";
import { PortAllocator, type PortRange } from "../../src/agent/ports/allocator.js";
import type { probePort } from "../../src/agent/ports/probe.js";
import type { Edge } from "../../src/edge/edge.js";
import type { Registry } from "../../src/registry/index.js";
import { silentLogger } from "../../src/util/log.js";
import type { ScriptedProber } from "./fake-health.js";
import type { FakeRuntime } from "./fake-runtime.js";

export const FAKE_NODE = "local";

/**
 * A context over `registry` and `runtime`: a real allocator on `pool`
 * (default 20000–20099) whose OS probe is the runtime's unless `probe` is
 * given, silent logs, the default policy (plus /srv/multi, which the multi
 * example mounts), `settings` on top.
 */
export function fakeAgentContext(opts: {
  registry: Registry;
  runtime: FakeRuntime;
  dataRoot: string;
  health: ScriptedProber;
  pool?: PortRange[];
  probe?: typeof probePort;
  settings?: Partial<AgentSettings>;
  crashPoint?: CrashPoint;
  edge?: Edge;
}): AgentContext {
  return createAgentContext({
    settings: {
      node: FAKE_NODE,
      bindAddress: "127.0.0.1",
      allowLatest: false,
      dataRoot: opts.dataRoot,
      agentVersion: "0.0.0-test",
      stopTimeoutSeconds: 0,
      policy: { ...defaultPolicy(["127.0.0.1"]), volumeRoots: ["/srv/multi"] },
      ...opts.settings,
    },
    registry: opts.registry,
    runtime: opts.runtime,
    allocator: new PortAllocator({
      pool: opts.pool ?? [{ from: 20000, to: 20099 }],
      bindAddresses: ["127.0.0.1"],
      book: new RegistryPortBook(opts.registry),
      probe: opts.probe ?? opts.runtime.probe,
    }),
    logger: silentLogger(),
    crashPoint: opts.crashPoint,
    health: opts.health,
    edge: opts.edge,
  });
}
