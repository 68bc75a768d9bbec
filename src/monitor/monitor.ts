/**
 * The agent's watch loop (reference §9). Every `interval`, and on demand
 * (GetServiceStatus runs a pass before answering, so `mcp status` shows fresh
 * drift), one pass:
 *
 * 1. refreshes observed state from podman (agent/observed/refresh.ts: a `state` event per
 *    transition, restarts podman did between passes included);
 * 2. counts each component's `state` events within the flap window;
 * 3. evaluates drift, flapping and ill health (alerts.ts) and records a
 *    `drift` / `flap` event for each condition that started this pass (the
 *    health loop records `unhealthy` itself, when the check says so);
 * 4. starts the alert command for the conditions due an alert (in the
 *    background: a slow command never delays a pass or an RPC);
 * 5. behind the proxy, puts back any route the proxy lost (a restarted
 *    HAProxy, a hand edit), with a `proxy` event;
 * 6. prunes events older than the retention.
 *
 * Health checks run in a loop of their own (health.ts), each component on its
 * own interval; a transition there asks for a pass at once, so an
 * `unhealthy` alert goes out without waiting for the next interval.
 *
 * What podman runs comes from the agent's view (agent/observed/view.ts),
 * kept current by podman's events: a container that changes asks for a
 * *light* pass at once (steps 1–4, no podman call unless the view disagrees
 * with the registry), so drift and flapping are seen within a second,
 * whatever the interval; the interval's full pass is the safety net. A change
 * to a service with an operation in progress waits for the operation to end
 * (its lock going idle), then gets its pass. When the event stream comes
 * back after dropping, a full pass reconciles and its state events say they
 * were seen on the re-list, with a `podman` event saying how long the agent
 * was deaf.
 *
 * Passes never overlap: runOnce() while a pass runs waits for it and then runs
 * one more (callers arriving meanwhile share that one), so an on-demand pass
 * always looks at podman after it was asked. A failing pass (podman down) is
 * logged and the loop goes on. There is no remediation: the agent does not
 * restart drifted containers (§9; podman's restart policy provides liveness).
 */
import type { AgentContext } from "../agent/context.js";
import { componentKey, refreshObserved } from "../agent/observed/refresh.js";
import type { ContainerChange } from "../agent/observed/view.js";
import { LABEL_SERVICE, splitContainerName } from "../runtime/names.js";
import type { ObservedSnapshot } from "../agent/observed/snapshot.js";
import { syncProxy } from "../agent/edge/routes.js";
import { errorMessage } from "../util/errors.js";
import { runAlertCommand, type AlertRunner } from "./alerter.js";
import { HealthLoop } from "./health.js";
import type { AgentConfig } from "../config/agent.js";
import {
  alertEnv,
  emptyMemory,
  evaluate,
  type ComponentObservation,
  type Condition,
  type MonitorMemory,
  type MonitorPolicy,
} from "./alerts.js";

/** The `[monitor]` section of the agent config. */
export type MonitorSettings = AgentConfig["monitor"];

export interface PassResult extends ObservedSnapshot {
  /** Conditions that started this pass (each got an event; `unhealthy` from the health loop). */
  entered: Condition[];
  /** Conditions whose alert command was started. */
  alerted: Condition[];
  /** Events pruned. */
  pruned: number;
}

/** What a pass does besides steps 1–4, and how its state events are worded. */
export interface PassOptions {
  /** Skip the proxy repair and the pruning (passes asked for by container events). */
  light?: boolean;
  /** Only these services' components (a light pass about them); absent: all. */
  services?: ReadonlySet<string>;
  /** The message of the state events this pass records. */
  note?: string;
}

export interface MonitorDeps {
  /** The clock (ms since the epoch); tests pass a fake one. */
  now?: () => number;
  /** Runs the alert command; default: runAlertCommand. */
  runAlert?: AlertRunner;
}

export class Monitor {
  readonly #ctx: AgentContext;
  readonly #settings: MonitorSettings;
  readonly #now: () => number;
  readonly #runAlert: AlertRunner;
  #memory: MonitorMemory = emptyMemory();
  #started = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** The pass running now. */
  #current: Promise<PassResult> | undefined;
  /** The pass queued behind it, shared by every runOnce() that arrives meanwhile. */
  #next: Promise<PassResult> | undefined;
  /** The queued pass's options: light only if every caller asked for light. */
  #nextOptions: PassOptions = {};
  /** Services whose containers changed while an operation held them. */
  readonly #waiting = new Set<string>();
  readonly #alerts = new Set<Promise<void>>();
  /** The health checks' loop (health.ts). */
  readonly health: HealthLoop;

  constructor(ctx: AgentContext, settings: MonitorSettings, deps: MonitorDeps = {}) {
    this.#ctx = ctx;
    this.#settings = settings;
    this.#now = deps.now ?? Date.now;
    this.#runAlert =
      deps.runAlert ?? ((argv, env) => runAlertCommand(argv, env, { logger: ctx.logger }));
    this.health = new HealthLoop(ctx, {
      now: this.#now,
      wantPass: () => {
        if (this.#stopped) return;
        this.runOnce().catch((err: unknown) =>
          ctx.logger.warn({ err: errorMessage(err) }, "monitor pass failed"),
        );
      },
    });
    ctx.serviceLocks.onIdle((service) => {
      if (this.#waiting.delete(service) && this.#started) {
        this.#background({ light: true, services: new Set([service]) });
      }
    });
  }

  /**
   * The view saw a container change: a light pass now, or once the operation
   * holding its service ends. Containers of no service of ours change nothing.
   */
  containersChanged(change: ContainerChange): void {
    // Before start() (recovery at agent start), the first pass covers it.
    if (!this.#started) return;
    const { registry, serviceLocks } = this.#ctx;
    const service =
      change.labels[LABEL_SERVICE] ??
      splitContainerName(
        change.name,
        registry.services.list().map((s) => s.name),
      )?.service;
    if (service === undefined || !registry.services.get(service)) return;
    if (serviceLocks.isLocked(service)) this.#waiting.add(service);
    else this.#background({ light: true, services: new Set([service]) });
  }

  /** The event stream is back after `deafMs`: a full pass, its findings marked as such. */
  resynced(deafMs: number): void {
    if (!this.#started) return;
    const seconds = (deafMs / 1000).toFixed(1);
    const note = `seen on re-listing after podman's event stream was down ${seconds} s`;
    this.#background({ note }, (result) => {
      const changed = result.changed.length;
      const message =
        `podman's event stream was down ${seconds} s; re-listed: ` +
        (changed === 0
          ? "nothing changed meanwhile"
          : `${changed} component${changed === 1 ? "" : "s"} changed (${result.changed.join(", ")})`);
      this.#ctx.registry.events.add({ service: "", kind: "podman", message });
      this.#ctx.logger.warn({ deafMs, changed: result.changed }, message);
    });
  }

  #background(options: PassOptions, then?: (result: PassResult) => void): void {
    this.runOnce(options)
      .then(then)
      .catch((err: unknown) =>
        this.#ctx.logger.warn({ err: errorMessage(err) }, "monitor pass failed"),
      );
  }

  /**
   * Starts the loop: a first pass now, then one every interval after the
   * previous ends; and the health loop.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#schedule(0);
    this.health.start();
  }

  /** Stops both loops; waits for a running pass and for alert commands still running. */
  async stop(): Promise<void> {
    this.#started = false;
    this.#stopped = true;
    this.health.stop();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const pass = this.#next ?? this.#current;
    if (pass) await pass.catch(() => undefined);
    await this.settled();
  }

  /** Waits for the alert commands started so far. */
  async settled(): Promise<void> {
    while (this.#alerts.size > 0) await Promise.allSettled([...this.#alerts]);
  }

  /** One pass, never overlapping another (see the file comment). Rejects if podman fails. */
  runOnce(options: PassOptions = {}): Promise<PassResult> {
    if (this.#next) {
      this.#nextOptions = mergeOptions(this.#nextOptions, options);
      return this.#next;
    }
    if (this.#current) {
      this.#nextOptions = options;
      this.#next = this.#current
        .catch(() => undefined)
        .then(() => this.#startPass(this.#nextOptions));
      return this.#next;
    }
    return this.#startPass(options);
  }

  #startPass(options: PassOptions): Promise<PassResult> {
    this.#next = undefined;
    this.#nextOptions = {};
    const pass: Promise<PassResult> = this.#pass(options).finally(() => {
      if (this.#current === pass) this.#current = undefined;
    });
    this.#current = pass;
    return pass;
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
    // The gRPC server keeps the agent alive; the timer alone must not.
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    try {
      await this.runOnce();
    } catch (err) {
      this.#ctx.logger.warn(
        { err: errorMessage(err), nextInMs: this.#settings.intervalMs },
        "monitor pass failed",
      );
    } finally {
      if (this.#started) this.#schedule(this.#settings.intervalMs);
    }
  }

  async #pass(options: PassOptions): Promise<PassResult> {
    const { registry, logger, settings } = this.#ctx;
    const snapshot = await refreshObserved(this.#ctx, {
      skipBusy: true,
      ...(options.note === undefined ? {} : { note: options.note }),
      ...(options.services === undefined ? {} : { services: options.services }),
    });
    // A pass about some services leaves the others' conditions as they were.
    const skipped = new Set(snapshot.skipped);
    if (options.services) {
      for (const key of this.#memory.active.keys()) {
        const component = key.slice(0, key.lastIndexOf(":"));
        if (!options.services.has(component.slice(0, component.indexOf("/")))) {
          skipped.add(component);
        }
      }
    }
    const now = this.#now();
    const since = new Date(now - this.#settings.flapWindowMs).toISOString();
    const observations: ComponentObservation[] = snapshot.components
      .filter((c) => !skipped.has(componentKey(c.service, c.name)))
      .map((c) => ({
        service: c.service,
        component: c.name,
        desired: c.desiredState,
        observed: c.observedState,
        transitions: registry.events.countTransitions(c.service, c.name, since),
        health: c.health.status,
        healthOutput: c.health.output,
        run: `${c.containerId}@${c.startedAt ?? ""}`,
      }));
    const { entered, alerts, memory } = evaluate(
      observations,
      skipped,
      this.#memory,
      now,
      this.#policy(),
    );
    this.#memory = memory;
    // The health loop recorded `unhealthy` at the transition, with the check's output.
    const unrecorded = entered.filter((c) => c.kind !== "unhealthy");
    if (unrecorded.length > 0) {
      registry.transaction(() => {
        for (const c of unrecorded) {
          registry.events.add({
            service: c.service,
            component: c.component,
            kind: c.kind,
            message: c.message,
          });
        }
      });
    }
    for (const c of unrecorded) {
      if (c.kind === "drift" || c.kind === "flap")
        this.#ctx.metrics?.conditionEntered(c.kind, c.service);
      logger.warn(
        { service: c.service, component: c.component, kind: c.kind, detail: c.message },
        c.kind === "drift" ? "component drifted" : "component is flapping",
      );
    }
    for (const c of alerts) this.#dispatch(alertEnv(settings.node, c));
    if (options.light) return { ...snapshot, entered, alerted: alerts, pruned: 0 };
    await this.#repairProxy();
    const pruned = registry.events.prune(new Date(now - this.#settings.retentionMs).toISOString());
    if (pruned > 0) logger.info({ pruned }, "pruned old events");
    return { ...snapshot, entered, alerted: alerts, pruned };
  }

  /** Puts back what the proxy lost (a restarted HAProxy, a hand edit): step 5 of a pass. */
  async #repairProxy(): Promise<void> {
    const { registry, logger } = this.#ctx;
    try {
      const changed = await syncProxy(this.#ctx);
      if (changed === 0) return;
      const message = `re-applied ${changed} proxy entr${changed === 1 ? "y" : "ies"} the proxy had lost or changed`;
      registry.events.add({ service: "", kind: "proxy", message });
      logger.warn({ changed }, message);
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, "could not check the proxy's routes");
    }
  }

  #policy(): MonitorPolicy {
    return {
      cooldownMs: this.#settings.cooldownMs,
      flapThreshold: this.#settings.flapThreshold,
      flapWindowMs: this.#settings.flapWindowMs,
      alerting: this.#settings.alertCommand.length > 0,
    };
  }

  #dispatch(env: Record<string, string>): void {
    const run: Promise<void> = this.#runAlert(this.#settings.alertCommand, env)
      .catch((err: unknown) =>
        this.#ctx.logger.warn({ err: errorMessage(err) }, "alert command failed"),
      )
      .finally(() => this.#alerts.delete(run));
    this.#alerts.add(run);
  }
}

/** Two callers' options for one shared pass: it does all either asked for. */
function mergeOptions(a: PassOptions, b: PassOptions): PassOptions {
  const note = a.note ?? b.note;
  const services = a.services && b.services ? new Set([...a.services, ...b.services]) : undefined;
  return {
    light: (a.light ?? false) && (b.light ?? false),
    ...(note === undefined ? {} : { note }),
    ...(services === undefined ? {} : { services }),
  };
}
