/**
 * `mcp service export --format kube`: one Kubernetes `v1` Pod per service,
 * one container per component, from what MCP runs (source.ts). Pure: the
 * Pod as a plain object, and the notes on what a Pod cannot say, which
 * become the comment at the top of the file (render.ts).
 *
 * - ports: `hostPort` = `containerPort` = the route's host port (as MCP
 *   publishes `-p bind:H:H`), `hostIP` the agent's bind address; explicit
 *   mappings as written (`hostIP` when they name one or get the bind address).
 * - cmd → `args`: it replaces the image's CMD and keeps its ENTRYPOINT, as
 *   podman's command does.
 * - volumes → `hostPath` with the spec's absolute host path and no `type`
 *   (a file or a directory, which must exist: MCP creates those under its
 *   data directory at deploy); `ro` → `readOnly`.
 * - restart → the Pod's `restartPolicy` (one per Pod: the most restarting of
 *   the components', noted when they differ).
 * - health → `readinessProbe`: MCP's check marks a component unhealthy and
 *   alerts, it never restarts it, which is a readiness probe's meaning (a
 *   liveness probe would restart the container).
 * - `imagePullPolicy: IfNotPresent`: the node's image is used, as MCP runs
 *   what it pulled at deploy.
 */
import type { HealthPlan } from "../../health/plan.js";
import { parseSize } from "../../servicedef/limits.js";
import type { Exported } from "./render.js";
import {
  exportedComponent,
  mcpOnlyNotes,
  type ExportSource,
  type ExportedComponent,
} from "./source.js";

export interface KubePort {
  containerPort: number;
  hostPort?: number;
  hostIP?: string;
  protocol?: "UDP";
}

export interface KubeProbe {
  httpGet?: { path: string; port: number };
  tcpSocket?: { port: number };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
}

export interface KubeContainer {
  name: string;
  image: string;
  imagePullPolicy: "IfNotPresent";
  args?: string[];
  env?: { name: string; value: string }[];
  ports?: KubePort[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: true }[];
  resources?: { limits: { memory?: string; cpu?: string } };
  securityContext?: { runAsUser: number; runAsGroup?: number };
  readinessProbe?: KubeProbe;
}

export interface KubePod {
  apiVersion: "v1";
  kind: "Pod";
  metadata: { name: string };
  spec: {
    restartPolicy: KubeRestartPolicy;
    hostNetwork?: true;
    containers: KubeContainer[];
    volumes?: { name: string; hostPath: { path: string } }[];
  };
}

export type KubeRestartPolicy = "Always" | "OnFailure" | "Never";

/** How much each policy restarts, to pick the Pod's. */
const RESTART_RANK: Record<KubeRestartPolicy, number> = { Never: 0, OnFailure: 1, Always: 2 };

/** MCP's (podman's) `restart` as a Kubernetes policy: unset and `no` never restart. */
export function kubeRestartPolicy(restart: string): KubeRestartPolicy {
  const policy = restart.split(":")[0];
  if (policy === "always" || policy === "unless-stopped") return "Always";
  if (policy === "on-failure") return "OnFailure";
  return "Never";
}

/** Whole seconds, rounded up (a probe's fields are seconds), and whether that changed the value. */
function seconds(ms: number): { value: number; rounded: boolean } {
  const value = Math.ceil(ms / 1000);
  return { value, rounded: value * 1000 !== ms };
}

/** The readiness probe for MCP's check, with notes on what it leaves out. */
export function kubeProbe(
  component: string,
  plan: HealthPlan,
): { probe?: KubeProbe; notes: string[] } {
  const notes: string[] = [];
  let action: Pick<KubeProbe, "httpGet" | "tcpSocket" | "exec">;
  const check = plan.check;
  switch (check.type) {
    case "http":
      action = { httpGet: { path: check.path, port: check.port } };
      break;
    case "tcp": {
      const [first = 0, ...rest] = check.ports;
      action = { tcpSocket: { port: first } };
      if (rest.length > 0) {
        notes.push(
          `${component}: MCP checks a TCP connect on ports ${check.ports.join(", ")}; a container has one readiness probe, on ${first}.`,
        );
      }
      break;
    }
    case "exec":
      action = { exec: { command: [...check.cmd] } };
      break;
    default:
      // "running" (no check, no tcp route) is the Pod's own container state; "none" checks nothing.
      return { notes };
  }
  const period = seconds(plan.intervalMs);
  const timeout = seconds(plan.timeoutMs);
  const delay = seconds(plan.startPeriodMs);
  if (period.rounded || timeout.rounded || delay.rounded) {
    notes.push(`${component}: health durations are rounded up to whole seconds.`);
  }
  const probe: KubeProbe = {
    ...action,
    periodSeconds: Math.max(1, period.value),
    timeoutSeconds: Math.max(1, timeout.value),
    failureThreshold: plan.retries,
  };
  if (delay.value > 0) {
    probe.initialDelaySeconds = delay.value;
    notes.push(
      `${component}: MCP checks during start_period and ignores the failures; Kubernetes starts probing after initialDelaySeconds.`,
    );
  }
  return { probe, notes };
}

/** `$(VAR)` is expanded by Kubernetes in env values and args; `$$(` keeps it literal. */
function escapeKubeRefs(s: string): string {
  return s.replaceAll("$(", () => "$$(");
}

/** podman's `--memory` (binary units) as a Kubernetes quantity. */
export function kubeMemory(memory: string): string {
  const bytes = parseSize(memory) ?? 0;
  for (const [unit, size] of [
    ["Gi", 1024 ** 3],
    ["Mi", 1024 ** 2],
    ["Ki", 1024],
  ] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

const NUMERIC_USER_RE = /^([0-9]+)(?::([0-9]+))?$/;

function kubeContainer(
  c: ExportedComponent,
  volumeName: (i: number) => string,
  notes: string[],
): KubeContainer {
  const name = c.spec.name;
  const out: KubeContainer = { name, image: c.spec.image, imagePullPolicy: "IfNotPresent" };
  let escaped = false;
  const escape = (s: string) => {
    const e = escapeKubeRefs(s);
    if (e !== s) escaped = true;
    return e;
  };
  if (c.spec.cmd.length > 0) out.args = c.spec.cmd.map(escape);
  if (c.env.length > 0)
    out.env = c.env.map(([key, value]) => ({ name: key, value: escape(value) }));
  if (escaped) {
    notes.push(
      `${name}: "$(" in env values and args is written "$$(" so Kubernetes keeps it literal (podman kube play 4.3 does not expand $(VAR), nor undo the escape).`,
    );
  }
  if (c.ports.length > 0) {
    out.ports = c.ports.map(({ text, mapping }) => {
      const port: KubePort = { containerPort: mapping.containerPort };
      if (mapping.hostPort !== undefined) port.hostPort = mapping.hostPort;
      else {
        notes.push(
          `${name}: port mapping "${text}" lets podman pick the host port; a Pod publishes a port only with a hostPort, so this one is not published.`,
        );
      }
      if (mapping.hostIp !== undefined) port.hostIP = mapping.hostIp;
      if (mapping.protocol === "udp") port.protocol = "UDP";
      return port;
    });
  }
  if (c.volumes.length > 0) {
    out.volumeMounts = c.volumes.map((v, i) => {
      const mount: NonNullable<KubeContainer["volumeMounts"]>[number] = {
        name: volumeName(i),
        mountPath: v.destination,
      };
      if (v.options.includes("ro")) mount.readOnly = true;
      // rw, rbind and rprivate are what a hostPath mount is anyway.
      const lost = v.options.filter((o) => !["ro", "rw", "rbind", "rprivate"].includes(o));
      if (lost.length > 0) {
        notes.push(
          `${name}: volume "${v.text}": options ${lost.join(", ")} have no hostPath equivalent.`,
        );
      }
      return mount;
    });
  }
  const limits: NonNullable<KubeContainer["resources"]>["limits"] = {};
  if (c.spec.memory) limits.memory = kubeMemory(c.spec.memory);
  if (c.spec.cpus) limits.cpu = `${Math.round(c.spec.cpus * 1000)}m`;
  if (Object.keys(limits).length > 0) out.resources = { limits };
  if (c.spec.pids)
    notes.push(`${name}: pids = ${c.spec.pids} (podman --pids-limit) has no Pod field.`);
  if (c.spec.user) {
    const m = NUMERIC_USER_RE.exec(c.spec.user);
    if (m?.[1]) {
      out.securityContext = { runAsUser: Number(m[1]) };
      if (m[2] !== undefined) out.securityContext.runAsGroup = Number(m[2]);
    } else {
      notes.push(
        `${name}: user "${c.spec.user}" is a name; a Pod's runAsUser/runAsGroup take numbers only, so the image's user runs.`,
      );
    }
  }
  const { probe, notes: probeNotes } = kubeProbe(name, c.health);
  if (probe) out.readinessProbe = probe;
  notes.push(...probeNotes);
  return out;
}

/** Ports two containers of the Pod would both listen on: one network namespace for all. */
function sharedPortNotes(components: ExportedComponent[]): string[] {
  const users = new Map<string, string[]>();
  for (const c of components) {
    for (const { mapping } of c.ports) {
      const key = `${mapping.containerPort}/${mapping.protocol}`;
      users.set(key, [...(users.get(key) ?? []), c.spec.name]);
    }
  }
  return [...users]
    .filter(([, names]) => new Set(names).size > 1)
    .map(
      ([port, names]) =>
        `container port ${port} is used by ${[...new Set(names)].join(" and ")}: in one Pod they share a network namespace, so only one can listen on it.`,
    );
}

function networkNotes(components: ExportedComponent[], hostNetwork: boolean): string[] {
  const notes: string[] = [];
  for (const c of components) {
    const network = c.spec.network;
    if (!network || network === "bridge") {
      if (hostNetwork)
        notes.push(
          `${c.spec.name}: on the host network like the rest of the Pod (MCP: podman's default network).`,
        );
    } else if (network !== "host") {
      notes.push(
        `${c.spec.name}: network "${network}" has no Pod field (podman kube play --network ${network} sets it for the whole Pod).`,
      );
    }
  }
  return notes;
}

/** The Pod for `source` and what it cannot express. */
export function buildKubePod(source: ExportSource): Exported<KubePod> {
  const notes = mcpOnlyNotes(source);
  const components = source.spec.components.map((c) => exportedComponent(source, c));
  const volumes: { name: string; hostPath: { path: string } }[] = [];
  const containers = components.map((c) => {
    const volumeName = (i: number) => `${c.spec.name}-${i}`;
    c.volumes.forEach((v, i) =>
      volumes.push({ name: volumeName(i), hostPath: { path: v.source } }),
    );
    return kubeContainer(c, volumeName, notes);
  });

  const policies = components.map((c) => kubeRestartPolicy(c.spec.restart));
  const restartPolicy = policies.reduce<KubeRestartPolicy>(
    (a, b) => (RESTART_RANK[b] > RESTART_RANK[a] ? b : a),
    "Never",
  );
  components.forEach((c, i) => {
    const restart = c.spec.restart || "no";
    if (policies[i] !== restartPolicy) {
      notes.push(
        `${c.spec.name}: restart "${restart}" in MCP; a Pod has one restartPolicy for all its containers, ${restartPolicy} here.`,
      );
    } else if (restart.startsWith("on-failure:")) {
      notes.push(
        `${c.spec.name}: restart "${restart}": Kubernetes has no retry limit (OnFailure).`,
      );
    } else if (restart === "unless-stopped") {
      notes.push(
        `${c.spec.name}: restart "unless-stopped" is Always here (a Pod has no "unless stopped").`,
      );
    }
  });

  const hostNetwork = components.some((c) => c.spec.network === "host");
  if (components.length > 1) {
    notes.push(
      "the components share the Pod's network namespace (MCP gives each container its own): they reach each other on localhost.",
    );
  }
  notes.push(...sharedPortNotes(components), ...networkNotes(components, hostNetwork));

  const pod: KubePod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: source.spec.name },
    spec: { restartPolicy, containers },
  };
  if (hostNetwork) pod.spec.hostNetwork = true;
  if (volumes.length > 0) pod.spec.volumes = volumes;
  return { document: pod, notes };
}
