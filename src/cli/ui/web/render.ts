/**
 * The snapshot as DOM: node cards with their charts, the services, routes
 * and events tables, and a component's panel. Every figure and word comes
 * from the snapshot (built by the CLI's row logic, ../snapshot.ts); here only
 * uptimes are counted, from the start times it carries.
 */
import { chartMax, stepArea, stepPath, type Sample } from "../chart.js";
import { formatUptime } from "../../output.js";
import type {
  UiComponent,
  UiComponentDetail,
  UiEvent,
  UiNode,
  UiRoute,
  UiSnapshot,
} from "../view-types.js";
import { h, s, table } from "./dom.js";

/** What the page has seen of a node since it was opened. */
export interface NodeSeries {
  running: Sample[];
  ports: Sample[];
}

/** `12s`, `3m4s` since `iso`, in an element the page's ticker keeps current (`data-since`). */
export function since(iso: string | undefined, now: number): HTMLElement {
  if (!iso) return h("span", {}, "-");
  return h("span", { "data-since": iso, title: iso }, formatUptime(now - Date.parse(iso)));
}

/** Local `HH:MM:SS` with the full time as a tooltip. */
function clock(iso: string): HTMLElement {
  if (!iso) return h("span", {}, "-");
  const d = new Date(iso);
  return h(
    "time",
    { datetime: iso, title: d.toString() },
    d.toLocaleTimeString(undefined, { hour12: false }),
  );
}

function fact(label: string, value: Node | string | undefined, wide = false): HTMLElement | null {
  if (value === undefined) return null;
  return h("div", { class: wide ? "fact wide" : "fact" }, h("dt", {}, label), h("dd", {}, value));
}

const CHART = { width: 240, height: 36 };

function chart(
  title: string,
  series: Sample[],
  value: string,
  t0: number,
  t1: number,
  kind: "running" | "ports",
): HTMLElement {
  const frame = { t0, t1, vmax: chartMax(series), ...CHART };
  return h(
    "figure",
    { class: `chart chart-${kind}` },
    h("figcaption", {}, h("span", {}, title), h("strong", {}, value)),
    s(
      "svg",
      {
        viewBox: `0 0 ${CHART.width} ${CHART.height}`,
        preserveAspectRatio: "none",
        role: "img",
        "aria-label": `${title} since the page was opened, now ${value}`,
        title: "since the page was opened",
      },
      s("path", { class: "area", d: stepArea(series, frame) }),
      s("path", {
        class: "line",
        d: stepPath(series, frame),
        "vector-effect": "non-scaling-stroke",
      }),
    ),
  );
}

function portsText(n: UiNode): string | undefined {
  if (!n.ports) return undefined;
  return n.ports.pool === undefined
    ? `${n.ports.allocated} held (pool ${n.ports.range})`
    : `${n.ports.allocated} of ${n.ports.pool}`;
}

/** One node's card. */
export function nodeCard(
  n: UiNode,
  series: NodeSeries | undefined,
  t0: number,
  now: number,
): HTMLElement {
  const tone = n.reachable ? "running" : "unreachable";
  const ports = portsText(n);
  return h(
    "article",
    { class: `node tone-${tone}`, "data-node": n.name, "data-reachable": String(n.reachable) },
    h(
      "header",
      {},
      h("h3", {}, n.name),
      h("span", { class: `badge tone-${tone}` }, n.reachable ? "reachable" : "unreachable"),
    ),
    h("p", { class: "address" }, n.address),
    n.reachable
      ? null
      : h(
          "p",
          { class: "why" },
          n.error ?? "no answer",
          n.unreachableSince
            ? h("span", { class: "quiet" }, " · for ", since(n.unreachableSince, now))
            : null,
        ),
    ...(n.problems ?? []).map((p) => h("p", { class: "problem" }, p)),
    h(
      "dl",
      {},
      fact("agent", n.agentVersion),
      fact("runtime", n.runtime),
      // An agent that does not answer has no uptime to count.
      fact("up", n.upSince && n.reachable ? since(n.upSince, now) : undefined),
      fact("proxy", n.proxy === "no" ? "none" : n.proxy === "yes" ? "yes" : undefined),
      fact("services", n.services, true),
      n.unmanaged ? fact("unmanaged", `${n.unmanaged} other containers`, true) : null,
      fact("cpu", n.cpu, true),
      fact("memory", n.memory, true),
      fact("disk", n.disk, true),
    ),
    h(
      "div",
      { class: "charts" },
      chart(
        "containers running",
        series?.running ?? [],
        n.running === undefined ? "-" : String(n.running),
        t0,
        now,
        "running",
      ),
      chart("host ports held", series?.ports ?? [], ports ?? "-", t0, now, "ports"),
    ),
  );
}

/** What a component's OBSERVED cell says, with its state's colour. */
function stateCell(c: UiComponent): HTMLElement {
  return h("td", {}, h("span", { class: `pill tone-${c.tone}` }, c.observed));
}

export function componentRow(c: UiComponent, selected: boolean, now: number): HTMLTableRowElement {
  return h(
    "tr",
    {
      class: `row tone-${c.tone}${selected ? " selected" : ""}`,
      "data-key": c.key,
      "data-tone": c.tone,
      "data-drift": String(c.drift),
      tabindex: 0,
      title: "show logs and events",
    },
    h("td", { class: "strong" }, c.service),
    h("td", {}, c.component),
    h("td", {}, c.node),
    h("td", {}, c.desired),
    stateCell(c),
    h("td", { class: c.health === "unhealthy" ? "bad" : "", title: c.healthOutput }, c.health),
    h("td", {}, c.drift ? h("span", { class: "pill tone-drift" }, "DRIFT") : "ok"),
    h("td", { class: "image", title: c.image }, c.image),
    h("td", { class: "num" }, c.startedAt ? since(c.startedAt, now) : "-"),
    h("td", { class: "mono" }, c.ports),
    h("td", {}, c.served),
  );
}

export function servicesTable(
  components: UiComponent[],
  selected: string | undefined,
  now: number,
): HTMLElement {
  return table(
    [
      "Service",
      "Component",
      "Node",
      "Desired",
      "Observed",
      "Health",
      "Drift",
      "Image",
      "Uptime",
      "Ports",
      "Served",
    ],
    components.map((c) => componentRow(c, c.key === selected, now)),
    "No services on the nodes that answer.",
  );
}

export function routesTable(routes: UiRoute[], nodes: UiNode[]): HTMLElement {
  const withoutProxy = nodes.filter((n) => n.proxy === "no").map((n) => n.name);
  const rows = routes.map((r) =>
    h(
      "tr",
      { class: `row tone-${r.served ? "running" : "exited"}` },
      h("td", {}, r.node),
      h("td", { class: "num" }, r.listener),
      h("td", { class: "strong" }, r.hostname),
      h("td", {}, r.mode),
      h("td", { class: "mono" }, r.backend),
      h("td", {}, r.owner),
      h("td", {}, r.served ? "yes" : h("span", { class: "pill tone-exited" }, "no")),
      h("td", {}, r.certExpires),
    ),
  );
  return h(
    "div",
    {},
    table(
      ["Node", "Listener", "Hostname", "Mode", "Backend", "Service", "Served", "Cert expires"],
      rows,
      "No routes.",
    ),
    withoutProxy.length > 0
      ? h("p", { class: "quiet" }, `No proxy on ${withoutProxy.join(", ")}.`)
      : null,
  );
}

const ALARMING = new Set(["drift", "flap", "unhealthy"]);

/** The events table: every node's (the page's list), or one component's (its panel: time, kind, detail). */
export function eventsTable(events: UiEvent[], scope: "all" | "component" = "all"): HTMLElement {
  const all = scope === "all";
  const rows = events.map((e) =>
    h(
      "tr",
      { class: ALARMING.has(e.kind) ? "row tone-drift" : "row", "data-kind": e.kind },
      h("td", { class: "num" }, clock(e.time)),
      all ? h("td", {}, e.node) : null,
      all ? h("td", {}, e.service || "-") : null,
      all ? h("td", {}, e.component || "-") : null,
      h("td", { class: "strong kind" }, e.kind),
      h("td", { class: "detail" }, e.detail),
    ),
  );
  const headers = all
    ? ["Time", "Node", "Service", "Component", "Event", "Detail"]
    : ["Time", "Event", "Detail"];
  return table(headers, rows, "No events.");
}

/** The header line: how many nodes answer, services, and what needs a look. */
export function summary(snapshot: UiSnapshot): string {
  const up = snapshot.nodes.filter((n) => n.reachable).length;
  const services = new Set(snapshot.components.map((c) => `${c.node}/${c.service}`)).size;
  const drift = snapshot.components.filter((c) => c.drift).length;
  const parts = [
    `${up} of ${snapshot.nodes.length} node${snapshot.nodes.length === 1 ? "" : "s"} answering`,
    `${services} service${services === 1 ? "" : "s"}`,
    `${snapshot.components.length} component${snapshot.components.length === 1 ? "" : "s"}`,
  ];
  if (drift > 0) parts.push(`${drift} drifting`);
  return parts.join(" · ");
}

/** A component's panel: its state, its events, its logs. */
export function detailBody(
  c: UiComponent | undefined,
  detail: UiComponentDetail | undefined,
  error: string | undefined,
  now: number,
): HTMLElement {
  const state = c
    ? h(
        "dl",
        { class: "facts" },
        fact("desired", c.desired),
        fact("observed", h("span", { class: `pill tone-${c.tone}` }, c.observed)),
        fact("health", c.health),
        fact("image", c.image),
        fact("uptime", c.startedAt ? since(c.startedAt, now) : "-"),
        fact("ports", c.ports),
        c.healthOutput ? fact("last check", c.healthOutput) : null,
      )
    : h(
        "p",
        { class: "quiet" },
        "Not on the page any more (its node does not answer, or it is gone).",
      );
  let body: Node;
  if (error) body = h("p", { class: "problem" }, error);
  else if (!detail) body = h("p", { class: "quiet" }, "Loading…");
  else {
    body = h(
      "div",
      {},
      h("h3", {}, "Events"),
      eventsTable(detail.events, "component"),
      h(
        "h3",
        {},
        "Logs",
        h(
          "span",
          { class: "quiet" },
          detail.truncated ? " (cut at the size limit)" : " (last lines)",
        ),
      ),
      detail.logsError
        ? h("p", { class: "problem" }, detail.logsError)
        : h("pre", { class: "logs" }, detail.logs || "(no output)"),
    );
  }
  return h("div", {}, state, body);
}
