/**
 * A fake-runtime agent for unit tests of operations: a real registry file, a
 * real allocator, a FakeRuntime, silent logs; several agents may share one
 * registry file and runtime (an agent restarted after a crash). Files and
 * registries are removed after the test file.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after } from "node:test";
import type { AgentContext, AgentSettings } from "../../src/agent/context.js";
import type { CrashPoint } from "../../src/agent/operations/crash-points.js";
import type { PortRange } from "../../src/agent/ports/allocator.js";
import type { ServiceSpec } from "../../src/gen/mcp/v1/mcp.js";
import type { Edge } from "../../src/edge/edge.js";
import { openRegistry, type Registry } from "../../src/registry/index.js";
import { parseServiceDef, toServiceSpec } from "../../src/servicedef/index.js";
import { FAKE_NODE, fakeAgentContext } from "./fake-context.js";
import { ScriptedProber } from "./fake-health.js";
import { FakeRuntime } from "./fake-runtime.js";

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "../../examples");
export const IMAGE = "localhost/mcp-httpenv:v1";
export const IMAGE_V2 = "localhost/mcp-httpenv:v2";
export const NODE = FAKE_NODE;

const dir = mkdtempSync(join(tmpdir(), "mcp-fake-agent-"));
const registries: Registry[] = [];
after(() => {
  for (const r of registries) r.close();
  rmSync(dir, { recursive: true, force: true });
});

let count = 0;

/** An agent on `dbPath` (a new registry file unless given) over `runtime`. */
export function agent(
  opts: {
    runtime?: FakeRuntime;
    dbPath?: string;
    crashPoint?: CrashPoint;
    pool?: PortRange[];
    settings?: Partial<AgentSettings>;
    health?: ScriptedProber;
    /** The node's proxy (test/helpers/fake-edge.ts); absent: no [proxy]. */
    edge?: Edge;
  } = {},
): {
  ctx: AgentContext;
  runtime: FakeRuntime;
  registry: Registry;
  dbPath: string;
  health: ScriptedProber;
} {
  const dbPath = opts.dbPath ?? join(dir, `registry-${++count}.db`);
  const registry = openRegistry(dbPath);
  registries.push(registry);
  const runtime = opts.runtime ?? new FakeRuntime({ images: [IMAGE, IMAGE_V2] });
  const health = opts.health ?? new ScriptedProber();
  const ctx = fakeAgentContext({
    registry,
    runtime,
    dataRoot: join(dir, "data"),
    health,
    pool: opts.pool,
    settings: opts.settings,
    crashPoint: opts.crashPoint,
    edge: opts.edge,
  });
  return { ctx, runtime, registry, dbPath, health };
}

export function example(name: "hello" | "multi"): ServiceSpec {
  const file = join(EXAMPLES, `${name}.toml`);
  return toServiceSpec(parseServiceDef(readFileSync(file, "utf8"), file));
}

export function withImage(spec: ServiceSpec, image: string): ServiceSpec {
  return { ...spec, components: spec.components.map((c) => ({ ...c, image })) };
}
