/**
 * `mcp service export --format compose`: a Compose file with one service per
 * component, from what MCP runs (source.ts). Pure: the file as a plain
 * object and the notes on what Compose cannot say (render.ts puts them on
 * top).
 *
 * - `name:` is the MCP service (podman-compose 1.0.3 ignores it: pass `-p`).
 * - ports, volumes and restart are podman's own syntax, which Compose's
 *   short forms share: the `-p` texts the agent builds, the spec's `-v` and
 *   `--restart` values.
 * - `command` is the spec's cmd (it replaces the image's CMD).
 * - network: none set is podman's default network, named `podman`, taken as
 *   an external `default` network (so no project network is made); a named
 *   one is external too; modes (`host`, `none`, …) are `network_mode`.
 * - health: a Compose `healthcheck` runs inside the container, so only exec
 *   checks map (`CMD` + the argv); http and tcp checks are noted.
 * - `$` is written `$$`: Compose would interpolate `$VAR` from the shell.
 */
import { formatDuration } from "../../config/duration.js";
import type { HealthPlan } from "../../health/plan.js";
import { NETWORK_MODES } from "../../servicedef/publish.js";
import type { Exported } from "./render.js";
import {
  exportedComponent,
  mcpOnlyNotes,
  type ExportSource,
  type ExportedComponent,
} from "./source.js";

export interface ComposeHealthcheck {
  test: string[];
  interval: string;
  timeout: string;
  retries: number;
  start_period?: string;
}

export interface ComposeService {
  image: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  restart?: string;
  user?: string;
  network_mode?: string;
  networks?: string[];
  mem_limit?: string;
  cpus?: number;
  pids_limit?: number;
  healthcheck?: ComposeHealthcheck;
}

export interface ComposeFile {
  name: string;
  services: Record<string, ComposeService>;
  networks?: Record<string, { name?: string; external: true }>;
}

/** The network podman puts a container on when none is named (containers.conf's default). */
export const PODMAN_DEFAULT_NETWORK = "podman";

/** Compose's `$$` for a literal `$`. */
function escapeDollars(s: string): string {
  // A function: in a replacement string "$$" itself means one "$".
  return s.replaceAll("$", () => "$$");
}

/** MCP's check as a Compose healthcheck: exec only (it runs in the container). */
export function composeHealthcheck(
  component: string,
  plan: HealthPlan,
): { healthcheck?: ComposeHealthcheck; notes: string[] } {
  const check = plan.check;
  if (check.type === "http" || check.type === "tcp") {
    const what =
      check.type === "http"
        ? `an HTTP GET of ${check.path} on port ${check.port}`
        : `a TCP connect on port${check.ports.length > 1 ? "s" : ""} ${check.ports.join(", ")}`;
    return {
      notes: [
        `${component}: MCP's health check is ${what} from the host; a Compose healthcheck runs inside the container, so it is left out.`,
      ],
    };
  }
  if (check.type !== "exec") return { notes: [] };
  const healthcheck: ComposeHealthcheck = {
    test: ["CMD", ...check.cmd.map(escapeDollars)],
    interval: formatDuration(plan.intervalMs),
    timeout: formatDuration(plan.timeoutMs),
    retries: plan.retries,
  };
  if (plan.startPeriodMs > 0) healthcheck.start_period = formatDuration(plan.startPeriodMs);
  return { healthcheck, notes: [] };
}

function composeService(c: ExportedComponent, notes: string[]): ComposeService {
  const s = c.spec;
  const out: ComposeService = { image: escapeDollars(s.image) };
  if (s.cmd.length > 0) out.command = s.cmd.map(escapeDollars);
  if (c.env.length > 0) {
    out.environment = Object.fromEntries(c.env.map(([k, v]) => [k, escapeDollars(v)]));
  }
  if (c.ports.length > 0) out.ports = c.ports.map((p) => p.text);
  if (c.volumes.length > 0) out.volumes = c.volumes.map((v) => escapeDollars(v.text));
  if (s.restart) out.restart = s.restart;
  if (s.user) out.user = escapeDollars(s.user);
  // bridge is the default network's mode: Compose's default network (below).
  if (s.network && s.network !== "bridge") {
    if (NETWORK_MODES.has(s.network)) out.network_mode = s.network;
    else out.networks = [s.network];
  }
  if (s.memory) out.mem_limit = s.memory;
  if (s.cpus) out.cpus = s.cpus;
  if (s.pids) out.pids_limit = s.pids;
  const { healthcheck, notes: healthNotes } = composeHealthcheck(s.name, c.health);
  if (healthcheck) out.healthcheck = healthcheck;
  notes.push(...healthNotes);
  return out;
}

/** The Compose file for `source` and what it cannot express. */
export function buildCompose(source: ExportSource): Exported<ComposeFile> {
  const notes = mcpOnlyNotes(source);
  const components = source.spec.components.map((c) => exportedComponent(source, c));
  const services: Record<string, ComposeService> = {};
  for (const c of components) services[c.spec.name] = composeService(c, notes);

  const networks: NonNullable<ComposeFile["networks"]> = {};
  for (const s of Object.values(services)) {
    if (s.network_mode) continue;
    if (!s.networks) networks.default = { name: PODMAN_DEFAULT_NETWORK, external: true };
    for (const n of s.networks ?? []) networks[n] = { external: true };
  }
  const file: ComposeFile = { name: source.spec.name, services };
  if (Object.keys(networks).length > 0) file.networks = networks;
  return { document: file, notes };
}
