/**
 * The health loop: the monitor's second loop, beside the drift pass. It runs
 * each checked component's health check on the component's own interval and
 * records what src/health/state.ts concludes (README, "Health in steady
 * state"):
 *
 * - Checked: components desired running and observed running (as the last
 *   refresh recorded), with no operation in progress on their service. The
 *   check is the component's plan (src/health/plan.ts) on the host ports its
 *   routes hold in the registry, on the agent's bind address; `none` is never
 *   checked, and the implicit `running` check is the observed state itself.
 * - Each check runs on its own, with the plan's timeout; at most
 *   MAX_CONCURRENT_CHECKS at once. A slow check delays only its own
 *   component's next one, never the drift pass or another component.
 * - After each check the status, output and time go to the registry (only
 *   if the component still runs the container that was checked); a
 *   transition (healthy ↔ unhealthy) also gets an event (`healthy` /
 *   `unhealthy`, message = the check's output), and the monitor is asked for
 *   a pass at once: alerts for `unhealthy` go out through the same episodes
 *   and cooldown as drift and flap (alerts.ts).
 * - Before calling a component unhealthy the loop asks podman whether its
 *   container still runs: a check that failed because the container went
 *   away is drift (the pass it asks for records it), not ill health.
 * - Consecutive failures live in memory; after an agent restart the
 *   recorded status is the starting point.
 * - The whole registry is read once per RESCAN_MS: a check that falls due
 *   in between reads only its own row again (a changed one means a full
 *   read at once), so N components on one interval cost N lookups and a
 *   few full reads, not a full read per check (N² a round). Only
 *   components with a check to run wake the loop: one not checked
 *   (stopped, gone, mid-deploy) has no due time.
 */
import type { AgentContext } from "../agent/context.js";
import { componentKey } from "../agent/observed/refresh.js";
import { healthPlan, type HealthPlan } from "../health/plan.js";
import type { CheckResult } from "../health/probe.js";
import {
  applyCheck,
  notChecked,
  recalled,
  watching,
  type HealthMemo,
  type HealthStatus,
  type HealthTransition,
} from "../health/state.js";
import type { ComponentRow } from "../registry/index.js";
import { containerName } from "../runtime/names.js";
import { errorMessage } from "../util/errors.js";

/**
 * Longest the loop goes between reads of the whole registry: how late a
 * component that starts running (a deploy, `mcp start`) gets its first check
 * in steady state, after the one the deploy's health gate made. A component
 * already checked needs no full read to be seen changing: each check reads
 * its own row first (#startDue).
 */
export const RESCAN_MS = 5000;
/** Most checks in flight at once; due checks beyond it wait for a free slot. */
export const MAX_CONCURRENT_CHECKS = 16;
/** How much longer than its timeout a check may take before it counts as failed. */
const CHECK_GRACE_MS = 5000;

export interface HealthLoopDeps {
  /** The clock (ms since the epoch). */
  now: () => number;
  /** A component turned healthy or unhealthy, or its container seems gone: run a monitor pass. */
  wantPass: () => void;
}

/** What the loop knows about one checked component. */
interface Watched {
  memo: HealthMemo;
  /** The container the memo is about, and when it started. */
  containerId: string;
  startedAt: string | null;
  /** When the next check is due (ms since the epoch). */
  nextAt: number;
  inFlight: boolean;
  /**
   * Bumped whenever the scan changes what the memo is about (another
   * container, not checked any more): a check that began before is stale.
   */
  epoch: number;
  /**
   * What the last scan would check when due: the row and plan it read.
   * Undefined while the component is not checked (no check due then).
   */
  target?: { row: ComponentRow; plan: HealthPlan } | undefined;
}

/** A check to start now. */
interface Due {
  key: string;
  row: ComponentRow;
  plan: HealthPlan;
  w: Watched;
}

/** One transition recorded (returned by tick() for tests and logs). */
export interface RecordedTransition extends HealthTransition {
  service: string;
  component: string;
}

export class HealthLoop {
  readonly #ctx: AgentContext;
  readonly #deps: HealthLoopDeps;
  readonly #watched = new Map<string, Watched>();
  readonly #checks = new Set<Promise<RecordedTransition | undefined>>();
  #started = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  /** When #scan last read the registry (the loop's clock). */
  #scannedAt = -Infinity;

  constructor(ctx: AgentContext, deps: HealthLoopDeps) {
    this.#ctx = ctx;
    this.#deps = deps;
  }

  /** Starts the loop: a first look at once, then as checks fall due. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#timerAt = this.#deps.now();
    this.#timer = setTimeout(() => this.#loop(), 0);
    this.#timer.unref();
  }

  /**
   * Stops the loop. Checks still running are not waited for (a check may
   * take up to its timeout, an hour at most); their results are dropped.
   */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One look at the registry now: records what is no longer checked and
   * starts the checks that are due. Resolves once those checks are recorded,
   * with the transitions they made.
   */
  async tick(): Promise<RecordedTransition[]> {
    const started = this.#scan();
    const results = await Promise.all(started);
    return results.filter((t): t is RecordedTransition => t !== undefined);
  }

  #loop(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    try {
      // The checks record their own results; none rejects.
      const rescan = this.#deps.now() - this.#scannedAt >= RESCAN_MS;
      void Promise.all(rescan ? this.#scan() : this.#startDue());
    } catch (err) {
      this.#ctx.logger.warn({ err: errorMessage(err) }, "health loop failed");
    }
    this.#arm(this.#deps.now());
  }

  /** Wakes the loop at the earliest due check, or RESCAN_MS after the last scan. */
  #arm(now: number): void {
    if (!this.#started || this.#stopped) return;
    let at = Math.max(now, this.#scannedAt + RESCAN_MS);
    // With every slot taken, a check that ends re-arms the loop: no due time counts till then.
    if (this.#checks.size < MAX_CONCURRENT_CHECKS) {
      for (const w of this.#watched.values()) {
        if (w.target && !w.inFlight && w.nextAt < at) at = w.nextAt;
      }
    }
    if (this.#timer && this.#timerAt <= at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#loop(), Math.max(0, at - now));
    // The gRPC server keeps the agent alive; this timer alone must not.
    this.#timer.unref();
  }

  /** The synchronous part of a tick; returns the checks it started. */
  #scan(): Promise<RecordedTransition | undefined>[] {
    const { registry, settings, serviceLocks } = this.#ctx;
    const now = this.#deps.now();
    this.#scannedAt = now;
    const rows = registry.components.list();
    const ports = new Map<string, Map<string, number>>();
    for (const r of registry.routes.list()) {
      if (r.hostPort === 0) continue;
      const key = componentKey(r.service, r.component);
      const byName = ports.get(key) ?? new Map<string, number>();
      byName.set(r.name, r.hostPort);
      ports.set(key, byName);
    }
    const seen = new Set<string>();
    const resets: { row: ComponentRow; status: HealthStatus }[] = [];
    const due: Due[] = [];
    for (const row of rows) {
      const key = componentKey(row.service, row.name);
      seen.add(key);
      let w = this.#watched.get(key);
      // Mid-operation the container is being replaced: leave everything as it is.
      if (row.pending !== null || serviceLocks.isLocked(row.service)) {
        if (w) w.target = undefined;
        continue;
      }
      const checked =
        row.desiredState === "running" && row.observedState === "running" && row.containerId !== "";
      if (!checked) {
        if (w) w.target = undefined;
        if (w && w.memo.status !== "") {
          w.memo = notChecked(w.memo, "");
          w.epoch++;
        }
        if (row.health.status !== "") resets.push({ row, status: "" });
        continue;
      }
      const plan = healthPlan(row.spec, ports.get(key) ?? new Map(), settings.bindAddress);
      if (!w) {
        w = this.#first(row, now);
        this.#watched.set(key, w);
      } else if (w.containerId !== row.containerId || w.startedAt !== row.startedAt) {
        Object.assign(w, {
          memo: watching(w.memo),
          containerId: row.containerId,
          startedAt: row.startedAt,
          nextAt: now,
          epoch: w.epoch + 1,
        });
      }
      if (plan.check.type === "none") {
        if (w.memo.status !== "none") {
          w.memo = notChecked(w.memo, "none");
          w.epoch++;
        }
      } else if (w.memo.status === "" || w.memo.status === "none") {
        w.memo = watching(w.memo);
        w.nextAt = now;
        w.epoch++;
      }
      if (w.memo.status !== row.health.status) resets.push({ row, status: w.memo.status });
      w.target = plan.check.type === "none" ? undefined : { row, plan };
      if (w.target && !w.inFlight && w.nextAt <= now) due.push({ key, row, plan, w });
    }
    for (const key of this.#watched.keys()) if (!seen.has(key)) this.#watched.delete(key);
    if (resets.length > 0) {
      registry.transaction(() => {
        for (const { row, status } of resets) {
          registry.components.setHealth(row.service, row.name, row.containerId, {
            status,
            output: "",
            checkedAt: null,
          });
        }
      });
    }
    return this.#startChecks(due);
  }

  /**
   * Between scans: the checks due now, each on its own row read again (one
   * lookup, not the whole table); a row that changed since the scan (a
   * stop, a redeploy, a new observed state) means a full scan now instead.
   */
  #startDue(): Promise<RecordedTransition | undefined>[] {
    const { registry, serviceLocks } = this.#ctx;
    const now = this.#deps.now();
    const due: Due[] = [];
    for (const [key, w] of this.#watched) {
      // Only as many as there are free slots: a backlog is not read again at every check's end.
      if (due.length + this.#checks.size >= MAX_CONCURRENT_CHECKS) break;
      const t = w.target;
      if (!t || w.inFlight || w.nextAt > now) continue;
      if (serviceLocks.isLocked(t.row.service)) continue;
      const row = registry.components.get(t.row.service, t.row.name);
      if (row?.updatedAt !== t.row.updatedAt) return this.#scan();
      due.push({ key, row, plan: t.plan, w });
    }
    return this.#startChecks(due);
  }

  /** Starts `due` checks, at most MAX_CONCURRENT_CHECKS in flight in all. */
  #startChecks(due: Due[]): Promise<RecordedTransition | undefined>[] {
    const started: Promise<RecordedTransition | undefined>[] = [];
    for (const d of due) {
      if (this.#checks.size >= MAX_CONCURRENT_CHECKS) break;
      const check = this.#check(d.key, d.row, d.plan, d.w)
        .catch((err: unknown) => {
          this.#ctx.logger.warn(
            { service: d.row.service, component: d.row.name, err: errorMessage(err) },
            "health check could not be recorded",
          );
          return undefined;
        })
        .finally(() => {
          this.#checks.delete(check);
          this.#arm(this.#deps.now());
        });
      this.#checks.add(check);
      started.push(check);
    }
    return started;
  }

  /** A component seen for the first time (agent start, new component). */
  #first(row: ComponentRow, now: number): Watched {
    let memo = recalled(row.health.status);
    // A container started after its last recorded check is one nobody checked yet.
    const checkedAt = row.health.checkedAt;
    if (checkedAt === null || (row.startedAt !== null && row.startedAt > checkedAt)) {
      memo = watching(memo);
    }
    return {
      memo,
      containerId: row.containerId,
      startedAt: row.startedAt,
      nextAt: now,
      inFlight: false,
      epoch: 0,
    };
  }

  async #check(
    key: string,
    row: ComponentRow,
    plan: HealthPlan,
    w: Watched,
  ): Promise<RecordedTransition | undefined> {
    const ctx = this.#ctx;
    const name = containerName(row.service, row.name);
    const { containerId, startedAt, epoch } = w;
    w.inFlight = true;
    let result: CheckResult;
    try {
      result = await this.#run(plan, name);
    } finally {
      w.inFlight = false;
    }
    if (w.epoch === epoch) w.nextAt = this.#deps.now() + plan.intervalMs;
    const checkedAt = this.#deps.now();
    const current = () =>
      !this.#stopped &&
      this.#watched.get(key) === w &&
      w.epoch === epoch &&
      !ctx.serviceLocks.isLocked(row.service);
    if (!current()) return undefined;
    const step = applyCheck(w.memo, result, {
      nowMs: checkedAt,
      startedAtMs: startedAt === null ? null : Date.parse(startedAt),
      retries: plan.retries,
      startPeriodMs: plan.startPeriodMs,
    });
    if (step.transition?.kind === "unhealthy") {
      const live = await ctx.runtime.inspect(name).catch(() => undefined);
      if (live?.state !== "running") {
        ctx.logger.info(
          { service: row.service, component: row.name, state: live?.state ?? "removed" },
          "health check failed on a container that is not running: left to the drift pass",
        );
        this.#deps.wantPass();
        return undefined;
      }
      if (!current()) return undefined;
    }
    const recorded = ctx.registry.transaction(() => {
      const written = ctx.registry.components.setHealth(row.service, row.name, containerId, {
        status: step.memo.status,
        output: result.output,
        checkedAt: new Date(checkedAt).toISOString(),
      });
      if (written && step.transition) {
        ctx.registry.events.add({
          service: row.service,
          component: row.name,
          kind: step.transition.kind,
          prevState: step.transition.from,
          newState: step.memo.status,
          message: result.output,
        });
      }
      return written;
    });
    if (!recorded) return undefined;
    w.memo = step.memo;
    if (!step.transition) return undefined;
    const fields = { service: row.service, component: row.name, output: result.output };
    if (step.transition.kind === "unhealthy") ctx.logger.warn(fields, "component is unhealthy");
    else ctx.logger.info(fields, "component is healthy again");
    this.#deps.wantPass();
    return { ...step.transition, service: row.service, component: row.name };
  }

  /** The check itself; never rejects, and gives up a while after its timeout. */
  async #run(plan: HealthPlan, container: string): Promise<CheckResult> {
    if (plan.check.type === "running") {
      // The registry says it runs (that is why it is checked): nothing to ask podman.
      return { healthy: true, output: "container running" };
    }
    const ports = plan.check.type === "tcp" ? Math.max(1, plan.check.ports.length) : 1;
    const limitMs = plan.timeoutMs * ports + CHECK_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ healthy: false, output: `no result within ${limitMs} ms` }),
        limitMs,
      );
      timer.unref();
    });
    try {
      return await Promise.race([
        this.#ctx.health
          .check(plan, container)
          .catch((err: unknown): CheckResult => ({ healthy: false, output: errorMessage(err) })),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
