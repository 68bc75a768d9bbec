/**
 * Observed state: what podman says, matched to registry components, and
 * written back to the registry with an event for every transition. Used by
 * LiveCheck, GetServiceStatus, the monitor and the agent's start-up
 * reconciliation. What podman says comes from the agent's in-memory view
 * (view.ts, fed by podman's events) when it is current, else from a list.
 */
import type { ComponentRow } from "../../registry/index.js";
import {
  LABEL_NODE,
  containerName,
  isSideContainer,
  splitContainerName,
} from "../../runtime/names.js";
import type { ContainerStatus } from "../../runtime/types.js";
import type { AgentContext } from "../context.js";
import type { ContainerView, ObservedSnapshot } from "./snapshot.js";

/** Observed state of a component whose container is gone. */
export const REMOVED = "removed";

/**
 * A component's observed state from its container: podman's state, except
 * that its brief `stopped` (exited, not cleaned up yet: between the `died`
 * and `cleanup` events) is `exited`, as `mcp stop` records it: one death is
 * one transition, whenever it is looked at.
 */
export function observedStateOf(container: ContainerStatus | undefined): string {
  if (!container) return REMOVED;
  return container.state === "stopped" ? "exited" : container.state;
}

/**
 * A container another node's agent labelled (agents sharing one podman: the
 * test suite, a misconfiguration): neither ours nor unmanaged, never shown.
 */
export function isOtherNodes(labels: Record<string, string>, node: string): boolean {
  const of = labels[LABEL_NODE];
  return of !== undefined && of !== node;
}

export function componentKey(service: string, component: string): string {
  return `${service}/${component}`;
}

/**
 * Maps containers to `service/component` keys: by our labels first, then by
 * name against the known services (so `mc-proxy` is not read as `mc`).
 * Containers that match no registry component are returned as unmanaged.
 */
export function matchContainers(
  containers: ContainerStatus[],
  components: Pick<ComponentRow, "service" | "name">[],
): { byKey: Map<string, ContainerStatus>; unmanaged: ContainerStatus[] } {
  const known = new Set(components.map((c) => componentKey(c.service, c.name)));
  // A Set: unlabelled containers (anyone's on the host) are looked up, never scanned against every service.
  const services = new Set(components.map((c) => c.service));
  const byKey = new Map<string, ContainerStatus>();
  const unmanaged: ContainerStatus[] = [];
  for (const container of containers) {
    // An old container kept while its replacement starts, or a new version's
    // trial (operations/steps), carries the component's labels too; it is
    // neither the component nor unmanaged.
    if (isSideContainer(container.name)) continue;
    const service = container.labels["mcp.service"];
    const component = container.labels["mcp.component"];
    let key: string | undefined;
    if (service && component) {
      key = componentKey(service, component);
    } else {
      const split = splitContainerName(container.name, services);
      if (split) key = componentKey(split.service, split.component);
    }
    if (key !== undefined && known.has(key)) byKey.set(key, container);
    else unmanaged.push(container);
  }
  return { byKey, unmanaged };
}

/** Whether what podman shows for a component differs from what its row records. */
function disagrees(row: ComponentRow, container: ContainerStatus | undefined): boolean {
  const startedAt = container?.startedAt ? container.startedAt.toISOString() : null;
  return (
    observedStateOf(container) !== row.observedState ||
    (container?.id ?? "") !== row.containerId ||
    isUnseenRestart(row, container, startedAt)
  );
}

/**
 * The view lags podman by its events' delay, so a component it shows
 * otherwise than the registry is asked about directly before anything is
 * written (a deploy that committed a moment ago is not drift): one inspect
 * per disagreeing component, none when all agree.
 */
async function confirmWithPodman(
  ctx: AgentContext,
  rows: ComponentRow[],
  byKey: Map<string, ContainerStatus>,
  view: ContainerView,
): Promise<void> {
  const doubtful = rows.filter((row) =>
    disagrees(row, byKey.get(componentKey(row.service, row.name))),
  );
  await Promise.all(
    doubtful.map(async (row) => {
      const name = containerName(row.service, row.name);
      const status = await ctx.runtime.inspect(name);
      view.learn(name, status);
      const key = componentKey(row.service, row.name);
      if (status) byKey.set(key, status);
      else byKey.delete(key);
    }),
  );
}

/**
 * Reads every container (from the view, or a podman list), updates each component's observed state
 * in the registry and records a `state` event for every change.
 *
 * A restart podman did between two refreshes (a restart policy at work: same
 * container, same state, a later start time) is a `state` event too, with
 * prev = new state and the message "restarted": flap detection counts state
 * events, and a container that crash-loops faster than the refresh interval
 * would otherwise look steady.
 *
 * A row that changed while podman was listing (a deploy finished meanwhile)
 * is newer than the snapshot and is left alone. With `skipBusy` (the
 * monitor), components of a service that has an operation in progress are
 * left alone too: mid-deploy, "no container" is a step, not a fact. A
 * `note` is the message of the state events this refresh records (the
 * monitor says so after the event stream was down). With `services`, only
 * those services' components are read and returned.
 */
export async function refreshObserved(
  ctx: AgentContext,
  opts: { skipBusy?: boolean; note?: string; services?: ReadonlySet<string> } = {},
): Promise<ObservedSnapshot> {
  const listedAt = new Date().toISOString();
  const viewed = ctx.observed?.containers();
  const containers =
    viewed ?? (await ctx.runtime.list()).filter((c) => !isOtherNodes(c.labels, ctx.settings.node));
  // Only the services a change concerned (the monitor's light passes): one
  // container event costs that service's rows, not every row on the node.
  const readRows = () =>
    opts.services
      ? [...opts.services].flatMap((s) => ctx.registry.components.list(s))
      : ctx.registry.components.list();
  const rows = readRows();
  const { byKey, unmanaged } = matchContainers(containers, rows);
  const busy = (row: ComponentRow) =>
    (opts.skipBusy ?? false) && ctx.serviceLocks.isLocked(row.service);
  if (viewed && ctx.observed) {
    await confirmWithPodman(
      ctx,
      rows.filter((row) => !busy(row)),
      byKey,
      ctx.observed,
    );
  }
  const changed: ComponentRow[] = [];
  const skipped = new Set<string>();
  ctx.registry.transaction(() => {
    for (const row of rows) {
      const key = componentKey(row.service, row.name);
      if (row.updatedAt > listedAt || busy(row)) {
        skipped.add(key);
        continue;
      }
      const container = byKey.get(key);
      if (!disagrees(row, container)) continue;
      const observed = observedStateOf(container);
      const startedAt = container?.startedAt ? container.startedAt.toISOString() : null;
      const restarted = isUnseenRestart(row, container, startedAt);
      ctx.registry.components.setObserved(row.service, row.name, {
        state: observed,
        containerId: container?.id ?? "",
        startedAt,
      });
      if (observed !== row.observedState || restarted) {
        ctx.registry.events.add({
          service: row.service,
          component: row.name,
          kind: "state",
          prevState: row.observedState,
          newState: observed,
          message: restarted
            ? `restarted (started ${startedAt})`
            : transitionMessage(observed, container, opts.note),
        });
      }
      changed.push(row);
    }
  });
  const components = changed.length > 0 ? readRows() : rows;
  return {
    components,
    byKey,
    unmanaged,
    skipped,
    changed: changed.map((row) => componentKey(row.service, row.name)),
  };
}

/** A transition's message: how the container ended, and the caller's note. */
function transitionMessage(
  observed: string,
  container: ContainerStatus | undefined,
  note: string | undefined,
): string {
  const ended =
    observed === "exited" && container?.exitCode !== undefined
      ? `exit code ${container.exitCode}`
      : "";
  return [ended, note ?? ""].filter(Boolean).join("; ");
}

/**
 * The same container, in the same state, started later than the registry
 * recorded: podman restarted it in between. The recorded time is the agent's
 * clock just after `run`/`start` returned or podman's own start time, both at
 * or after podman's start time of that same start, so only a later start
 * is strictly greater.
 */
function isUnseenRestart(
  row: ComponentRow,
  container: ContainerStatus | undefined,
  startedAt: string | null,
): boolean {
  return (
    container !== undefined &&
    container.id === row.containerId &&
    observedStateOf(container) === row.observedState &&
    startedAt !== null &&
    row.startedAt !== null &&
    wholeSeconds(startedAt) > wholeSeconds(row.startedAt)
  );
}

/**
 * Podman's list says start times in whole seconds, its inspect (the view's
 * source after an event) to the nanosecond: compared in whole seconds, the
 * same start read both ways is never a restart.
 */
function wholeSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}
