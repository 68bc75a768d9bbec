/**
 * `mcp ui`'s page: follows `/api/events` (server-sent snapshots), renders
 * each one (render.ts), counts uptimes every second, and keeps each node's
 * chart series for as long as the page is open. Clicking a component opens
 * its panel (`/api/component`).
 */
import { withSample } from "../chart.js";
import { formatUptime } from "../../output.js";
import type { UiComponent, UiComponentDetail, UiSnapshot } from "../view-types.js";
import { byId } from "./dom.js";
import {
  detailBody,
  eventsTable,
  nodeCard,
  routesTable,
  servicesTable,
  summary,
  type NodeSeries,
} from "./render.js";

const pageStart = Date.now();
let snapshot: UiSnapshot | undefined;
const series = new Map<string, NodeSeries>();

/** The open panel: which component, and what was fetched for it. */
let selected: { key: string; detail?: UiComponentDetail; error?: string; row?: string } | undefined;
let detailRequest = 0;

function record(snap: UiSnapshot, t: number): void {
  for (const n of snap.nodes) {
    if (!n.reachable) continue;
    const current = series.get(n.name) ?? { running: [], ports: [] };
    series.set(n.name, {
      running:
        n.running === undefined
          ? current.running
          : withSample(current.running, { t, v: n.running }),
      ports: n.ports ? withSample(current.ports, { t, v: n.ports.allocated }) : current.ports,
    });
  }
}

function componentOf(key: string): UiComponent | undefined {
  return snapshot?.components.find((c) => c.key === key);
}

function renderNodes(now: number): void {
  if (!snapshot) return;
  byId("nodes").replaceChildren(
    ...snapshot.nodes.map((n) => nodeCard(n, series.get(n.name), pageStart, now)),
  );
}

function render(): void {
  if (!snapshot) return;
  const now = Date.now();
  byId("summary").textContent = summary(snapshot);
  renderNodes(now);
  byId("services").replaceChildren(servicesTable(snapshot.components, selected?.key, now));
  byId("routes").replaceChildren(routesTable(snapshot.routes, snapshot.nodes));
  byId("events").replaceChildren(eventsTable(snapshot.events));
  renderDetail();
}

function renderDetail(): void {
  const panel = byId("detail");
  if (!selected) {
    panel.hidden = true;
    return;
  }
  const c = componentOf(selected.key);
  panel.hidden = false;
  panel.dataset.key = selected.key;
  byId("detail-title").textContent = c ? `${c.service}/${c.component} on ${c.node}` : selected.key;
  byId("detail-body").replaceChildren(detailBody(c, selected.detail, selected.error, Date.now()));
}

async function loadDetail(): Promise<void> {
  if (!selected) return;
  const c = componentOf(selected.key);
  if (!c) return;
  const request = ++detailRequest;
  const query = new URLSearchParams({ node: c.node, service: c.service, component: c.component });
  let detail: UiComponentDetail | undefined;
  let error: string | undefined;
  try {
    const res = await fetch(`/api/component?${query.toString()}`);
    const body = (await res.json()) as UiComponentDetail | { error: string };
    if ("error" in body) error = body.error;
    else detail = body;
  } catch (err) {
    error = `could not ask mcp ui: ${String(err)}`;
  }
  // A newer request (another click, a change) wins.
  if (request !== detailRequest || !selected) return;
  selected = { ...selected, ...(detail ? { detail } : {}), ...(error ? { error } : {}) };
  if (detail) delete selected.error;
  renderDetail();
}

function open(key: string): void {
  selected = { key, row: JSON.stringify(componentOf(key)) };
  render();
  void loadDetail();
}

function close(): void {
  selected = undefined;
  detailRequest++;
  render();
}

function onSnapshot(next: UiSnapshot): void {
  snapshot = next;
  record(next, Date.now());
  render();
  // The open component changed (stopped, drifted, restarted): its logs and events did too.
  if (selected) {
    const row = JSON.stringify(componentOf(selected.key));
    if (row !== selected.row) {
      selected.row = row;
      void loadDetail();
    }
  }
}

function setConnection(state: "live" | "reconnecting"): void {
  const el = byId("connection");
  el.dataset.state = state;
  el.textContent = state === "live" ? "live" : "reconnecting to mcp ui…";
}

/** Every second: the uptimes; every 5 s: the charts' time axis. */
function tick(count: number): void {
  const now = Date.now();
  for (const el of document.querySelectorAll<HTMLElement>("[data-since]")) {
    const iso = el.dataset.since;
    if (iso) el.textContent = formatUptime(now - Date.parse(iso));
  }
  if (count % 5 === 0) renderNodes(now);
}

function start(): void {
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (ev) => {
    onSnapshot(JSON.parse((ev as MessageEvent<string>).data) as UiSnapshot);
  });
  events.addEventListener("open", () => setConnection("live"));
  events.addEventListener("error", () => setConnection("reconnecting"));

  byId("services").addEventListener("click", (ev) => {
    const row = (ev.target as Element).closest<HTMLElement>("tr[data-key]");
    if (row?.dataset.key) open(row.dataset.key);
  });
  byId("services").addEventListener("keydown", (ev) => {
    const row = (ev.target as Element).closest<HTMLElement>("tr[data-key]");
    if (ev.key === "Enter" && row?.dataset.key) open(row.dataset.key);
  });
  byId("detail-close").addEventListener("click", close);
  byId("detail-refresh").addEventListener("click", () => void loadDetail());
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && selected) close();
  });
  let count = 0;
  setInterval(() => tick(++count), 1000);
}

start();
