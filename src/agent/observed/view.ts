/**
 * The agent's in-memory view of what podman runs (issue 9, "observed state
 * fed by events"; docs/ARCHITECTURE.md "Observed state"): one list when the
 * event stream opens, then every container event applied as it arrives, so
 * `mcp ps`, `mcp status` and the monitor read memory instead of asking
 * podman. The view holds the containers of the podman it talks to, keyed
 * by id: our own, and those no agent labelled (shown as unmanaged); those
 * another node's agent labelled are left out, their events ignored (the
 * stream is not filtered by podman: it cannot say "this label or none").
 *
 * An event only says that a container changed; the view then inspects it
 * (a few ms on the API) for the whole status: ports, start time, exit code.
 * Inspections of one container run one at a time, and events arriving
 * meanwhile are folded into one more inspection after it.
 *
 * Podman's events arrive some 100–250 ms after the change (its file logger
 * is tailed), so the view may lag a deploy that just committed: whoever
 * reads it must confirm a disagreement with the registry through podman
 * before writing it (refresh.ts), never trust it blindly.
 *
 * When the stream drops (the podman service died or restarted), the view is
 * not ready: readers fall back to listing. It opens the stream again with a
 * backoff, re-lists, and says through `onResync` how long it was deaf, so
 * the caller can reconcile and report what changed meanwhile.
 */
import type { ContainerStatus } from "../../runtime/types.js";
import type { ContainerEvent, EventWatch } from "../../runtime/libpod/events.js";
import type { Logger } from "../../util/log.js";
import { errorMessage } from "../../util/errors.js";
import { isOtherNodes } from "./refresh.js";
import type { ContainerView } from "./snapshot.js";

/** Actions after which a container's status may differ (exec, attach, mount… change nothing). */
const STATUS_ACTIONS = new Set([
  "create",
  "init",
  "start",
  "restart",
  "stop",
  "died",
  "cleanup",
  "pause",
  "unpause",
  "rename",
  "remove",
]);

/** Whether an event can change what the view holds. */
export function changesStatus(action: string): boolean {
  return STATUS_ACTIONS.has(action);
}

/** Delay before the next attempt to open the stream: doubling from 50 ms up to 2 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
}

/** What a change concerned, for the caller to decide whether it matters. */
export interface ContainerChange {
  name: string;
  labels: Record<string, string>;
}

export interface ObservedViewDeps {
  /** This agent's node name (the `mcp.node` label of its containers). */
  node: string;
  list(): Promise<ContainerStatus[]>;
  /** By id; undefined when the container is gone. */
  inspect(id: string): Promise<ContainerStatus | undefined>;
  /** Opens podman's container event stream (libpod/events.ts watchEvents). */
  watch(onEvent: (event: ContainerEvent) => void): EventWatch;
  logger: Logger;
  /** A container was created, changed state, was renamed or removed. */
  onChange?: (change: ContainerChange) => void;
  /** The stream is back after it dropped: re-listed after `deafMs` without events. */
  onResync?: (deafMs: number) => void;
  /** Waits `ms` (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export class ObservedView implements ContainerView {
  readonly #deps: ObservedViewDeps;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;
  readonly #byId = new Map<string, ContainerStatus>();
  /** Ids being inspected now; the value says whether another event came meanwhile. */
  readonly #inFlight = new Map<string, boolean>();
  /** Events that arrived while the first list ran, applied after it. */
  #buffered: ContainerEvent[] | undefined;
  #ready = false;
  #stopped = false;
  #watch: EventWatch | undefined;
  #loop: Promise<void> | undefined;
  #firstReady: Promise<void>;
  #resolveFirstReady!: () => void;

  constructor(deps: ObservedViewDeps) {
    this.#deps = deps;
    this.#sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    this.#now = deps.now ?? Date.now;
    this.#firstReady = new Promise((resolve) => (this.#resolveFirstReady = resolve));
  }

  /** Whether the stream is open and the view current (else readers list themselves). */
  get ready(): boolean {
    return this.#ready;
  }

  /** Every container the view holds, or undefined while it is not ready. */
  containers(): ContainerStatus[] | undefined {
    return this.#ready ? [...this.#byId.values()] : undefined;
  }

  /** What a reader learnt from podman directly (refresh.ts's confirmation): kept until the next event. */
  learn(name: string, status: ContainerStatus | undefined): void {
    for (const [id, held] of this.#byId) {
      if (held.name === name && id !== status?.id) this.#byId.delete(id);
    }
    if (status) this.#byId.set(status.id, status);
  }

  /**
   * Opens the stream and keeps it open until stop(). Resolves once the view
   * is first ready, or after `waitMs` whatever happened (podman may be down:
   * the loop goes on trying, readers list meanwhile).
   */
  async start(waitMs = 5000): Promise<void> {
    if (this.#loop) return;
    this.#loop = this.#run();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#firstReady,
      new Promise<void>((r) => (timer = setTimeout(r, waitMs))),
    ]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready = false;
    this.#watch?.stop();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let attempt = 0;
    let deafSince: number | undefined;
    while (!this.#stopped) {
      const watch = this.#deps.watch((event) => this.#onEvent(event));
      this.#watch = watch;
      // Both are observed here, so neither rejection goes unhandled.
      const ended = watch.ended.then(
        () => undefined,
        (err: unknown) => err,
      );
      try {
        await watch.opened;
        this.#buffered = [];
        const listed = await this.#deps.list();
        this.#byId.clear();
        for (const c of listed) {
          if (!isOtherNodes(c.labels, this.#deps.node)) this.#byId.set(c.id, c);
        }
        const buffered = this.#buffered;
        this.#buffered = undefined;
        for (const event of buffered) this.#onEvent(event);
        this.#ready = true;
        attempt = 0;
        this.#resolveFirstReady();
        if (deafSince !== undefined) {
          const deafMs = this.#now() - deafSince;
          this.#deps.logger.info({ deafMs }, "podman event stream open again; re-listed");
          this.#deps.onResync?.(deafMs);
        }
        deafSince = undefined;
        const err = await ended;
        if (this.#stopped) break;
        this.#deps.logger.warn(
          err === undefined ? {} : { err: errorMessage(err) },
          "podman event stream dropped: listing until it is back",
        );
      } catch (err) {
        this.#buffered = undefined;
        watch.stop();
        await ended;
        if (this.#stopped) break;
        if (attempt === 0) {
          this.#deps.logger.warn(
            { err: errorMessage(err) },
            "cannot follow podman's events: listing until it works",
          );
        }
      }
      this.#ready = false;
      deafSince ??= this.#now();
      await this.#sleep(reconnectDelayMs(attempt++));
    }
    this.#ready = false;
  }

  #onEvent(event: ContainerEvent): void {
    if (!changesStatus(event.action) || event.id === "") return;
    if (isOtherNodes(event.labels, this.#deps.node)) return;
    if (this.#buffered) {
      this.#buffered.push(event);
      return;
    }
    if (event.action === "remove") {
      const held = this.#byId.get(event.id);
      this.#byId.delete(event.id);
      this.#changed({ name: held?.name ?? event.name, labels: held?.labels ?? event.labels });
      return;
    }
    if (this.#inFlight.has(event.id)) {
      this.#inFlight.set(event.id, true);
      return;
    }
    void this.#refresh(event);
  }

  /** Inspects one container until no event came during the last inspection. */
  async #refresh(event: ContainerEvent): Promise<void> {
    const before = this.#byId.get(event.id);
    do {
      this.#inFlight.set(event.id, false);
      try {
        const status = await this.#deps.inspect(event.id);
        if (status) this.#byId.set(event.id, status);
        else this.#byId.delete(event.id);
      } catch (err) {
        // The stream will drop too if podman went away; a re-list then repairs this.
        this.#deps.logger.warn(
          { err: errorMessage(err), container: event.name },
          "inspect after a podman event failed",
        );
      }
    } while (this.#inFlight.get(event.id) === true && !this.#stopped);
    this.#inFlight.delete(event.id);
    const after = this.#byId.get(event.id);
    if (before && after && before.name !== after.name) {
      this.#changed({ name: before.name, labels: before.labels });
    }
    this.#changed(after ?? { name: event.name, labels: event.labels });
  }

  #changed(change: ContainerChange): void {
    if (this.#stopped || !this.#ready) return;
    try {
      this.#deps.onChange?.(change);
    } catch (err) {
      this.#deps.logger.warn({ err: errorMessage(err) }, "observed view: change handler failed");
    }
  }
}
