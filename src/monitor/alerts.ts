/**
 * What the monitor concludes from one pass (reference §9), as pure functions:
 * which components are in drift, flapping or unhealthy, which of those
 * conditions are new (→ a `drift` / `flap` event; the health loop records
 * `unhealthy` itself, at the transition), and which alerts go out now given
 * the cooldown. The Monitor (monitor.ts) feeds them registry rows and event
 * counts and carries the returned memory to the next pass.
 *
 * Decisions where the reference leaves a gap:
 * - A condition is an *episode*: it starts when a pass first sees it and ends
 *   at the first pass that does not. Its event is recorded once, when it
 *   starts, never on every pass. A drift is about one container run (its id
 *   and start time): a container started again (`mcp start`, a deploy) that
 *   drifts before any pass saw it running is a new episode, not the old one
 *   going on.
 * - Each episode alerts at most once. If the cooldown suppresses it when it
 *   starts, it stays pending and alerts at the first pass after the cooldown
 *   in which it still holds (a component that went away again within the
 *   cooldown is not left unreported for good); an episode that ended before
 *   then is dropped.
 * - The cooldown is kept per component *and kind* (the reference keys it by
 *   `service/component` only). A crash-looping container enters drift on the
 *   first pass that catches it exited; a per-component key would then swallow
 *   the flap alert, which is the one that says what is really going on.
 * - Components desired `ignore` are never drift and never alerted on (§5.3),
 *   flapping included.
 * - `unhealthy` is the health loop's verdict (src/monitor/health.ts), read
 *   from the registry; it counts only while the container runs (a container
 *   that stopped is drift, whatever its last check said).
 * - Alert state lives in memory: after an agent restart a component still in
 *   drift starts a new episode and alerts once more (the agent cannot know
 *   whether the earlier alert reached anyone).
 */
import { formatDuration } from "../config/duration.js";
import { isDrift } from "../protocol/drift.js";

export type AlertKind = "drift" | "flap" | "unhealthy";

/** One registry component as a pass saw it. */
export interface ComponentObservation {
  service: string;
  component: string;
  desired: string;
  observed: string;
  /** `state` events of this component within the flap window. */
  transitions: number;
  /** The health status the registry holds (src/health/state.ts). */
  health: string;
  /** The last health check's output. */
  healthOutput: string;
  /** Which container run this is (id and start time): a drift of another run is a new episode. */
  run?: string;
}

/** A drift, flap or unhealthy condition of one component. */
export interface Condition {
  kind: AlertKind;
  service: string;
  component: string;
  desired: string;
  observed: string;
  transitions: number;
  /** One line for the event, the alert (MCP_MESSAGE) and the log. */
  message: string;
}

export interface MonitorPolicy {
  /** An alert for a condition key is suppressed while now − lastAlert < cooldownMs. */
  cooldownMs: number;
  flapThreshold: number;
  flapWindowMs: number;
  /** false when no alert command is configured: conditions are still recorded. */
  alerting: boolean;
}

/** What the monitor carries from one pass to the next. */
export interface MonitorMemory {
  /** Conditions that held at the last pass, by conditionKey: whether they alerted, of which run. */
  active: Map<string, { alerted: boolean; run?: string | undefined }>;
  /** When each condition key last alerted (ms since the epoch). */
  lastAlert: Map<string, number>;
}

export interface Evaluation {
  /** Conditions that started this pass: record an event for each. */
  entered: Condition[];
  /** Conditions to alert on now. */
  alerts: Condition[];
  /** The memory for the next pass. */
  memory: MonitorMemory;
}

export function emptyMemory(): MonitorMemory {
  return { active: new Map(), lastAlert: new Map() };
}

export function conditionKey(kind: AlertKind, service: string, component: string): string {
  return `${service}/${component}:${kind}`;
}

/** The conditions one component is in right now (none, or any of drift, flap, unhealthy). */
export function conditionsOf(o: ComponentObservation, policy: MonitorPolicy): Condition[] {
  if (o.desired === "ignore") return [];
  const base = {
    service: o.service,
    component: o.component,
    desired: o.desired,
    observed: o.observed,
    transitions: o.transitions,
  };
  const found: Condition[] = [];
  if (isDrift(o.desired, o.observed)) {
    found.push({ ...base, kind: "drift", message: `desired ${o.desired}, observed ${o.observed}` });
  }
  if (o.transitions >= policy.flapThreshold) {
    found.push({
      ...base,
      kind: "flap",
      message: `${o.transitions} state changes within ${formatDuration(policy.flapWindowMs)} (threshold ${policy.flapThreshold}), now ${o.observed}`,
    });
  }
  if (o.health === "unhealthy" && o.observed === "running" && o.desired === "running") {
    found.push({ ...base, kind: "unhealthy", message: o.healthOutput || "health check failing" });
  }
  return found;
}

/** Whether an alert for a key that last alerted at `last` may go out at `now`. */
export function cooledDown(last: number | undefined, now: number, cooldownMs: number): boolean {
  return last === undefined || now - last >= cooldownMs;
}

/**
 * One pass's conclusions. `skipped` holds `service/component` keys the pass
 * did not observe (an operation on the service was in progress): their
 * conditions carry over unchanged.
 */
export function evaluate(
  observations: ComponentObservation[],
  skipped: ReadonlySet<string>,
  memory: MonitorMemory,
  now: number,
  policy: MonitorPolicy,
): Evaluation {
  const active: MonitorMemory["active"] = new Map();
  for (const [key, state] of memory.active) {
    const component = key.slice(0, key.lastIndexOf(":"));
    if (skipped.has(component)) active.set(key, state);
  }
  // Entries past their cooldown no longer suppress anything: forget them.
  const lastAlert = new Map(
    [...memory.lastAlert].filter(([, at]) => !cooledDown(at, now, policy.cooldownMs)),
  );
  const entered: Condition[] = [];
  const alerts: Condition[] = [];
  for (const o of observations) {
    for (const condition of conditionsOf(o, policy)) {
      const key = conditionKey(condition.kind, condition.service, condition.component);
      const held = memory.active.get(key);
      const previous =
        held && (condition.kind !== "drift" || held.run === o.run) ? held : undefined;
      if (!previous) entered.push(condition);
      let alerted = previous?.alerted ?? false;
      if (!alerted && policy.alerting && cooledDown(lastAlert.get(key), now, policy.cooldownMs)) {
        alerts.push(condition);
        alerted = true;
        lastAlert.set(key, now);
      }
      active.set(key, { alerted, run: o.run });
    }
  }
  return { entered, alerts, memory: { active, lastAlert } };
}

/** How MCP_MESSAGE names each kind. */
const ALERT_WORDS: Record<AlertKind, string> = {
  drift: "drift",
  flap: "flapping",
  unhealthy: "unhealthy",
};

/** The alert's details, as environment variables for the alert command. */
export function alertEnv(node: string, c: Condition): Record<string, string> {
  const env: Record<string, string> = {
    MCP_ALERT_KIND: c.kind,
    MCP_NODE: node,
    MCP_SERVICE: c.service,
    MCP_COMPONENT: c.component,
    MCP_DESIRED: c.desired,
    MCP_OBSERVED: c.observed,
    MCP_MESSAGE: `${c.service}/${c.component} on ${node}: ${ALERT_WORDS[c.kind]}: ${c.message}`,
  };
  if (c.kind === "flap") env.MCP_TRANSITIONS = String(c.transitions);
  return env;
}

/** Every variable alertEnv may set: removed from the inherited environment first. */
export const ALERT_ENV_KEYS = [
  "MCP_ALERT_KIND",
  "MCP_NODE",
  "MCP_SERVICE",
  "MCP_COMPONENT",
  "MCP_DESIRED",
  "MCP_OBSERVED",
  "MCP_TRANSITIONS",
  "MCP_MESSAGE",
] as const;
