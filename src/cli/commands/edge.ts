/**
 * The edge's operator commands (README "Commands"): `mcp route list|add|remove`,
 * `mcp cert list|ca`, `mcp dns list`. `route list` asks every node (like
 * `ps`) unless `--node` names one; the others ask one node: `--node`, else the
 * only configured one. `route add` and `route remove` are state changes with
 * their exit codes (2 bad input, 3 deadline passed; outcome.ts), their
 * arguments checked here before dialling by the rules the agent applies too
 * (src/protocol/route-args.ts).
 */
import type { ResolvedNode } from "../../config/cli.js";
import type { CertInfo, DnsRecordInfo, ProxyRouteInfo } from "../../gen/mcp/v1/mcp.js";
import {
  checkRouteHostname,
  checkRouteMode,
  formatBackend,
  parseBackend,
  parsePort,
} from "../../protocol/route-args.js";
import { McpError } from "../../util/errors.js";
import type { CliContext, NodeAnswer } from "../context.js";
import type { StateChange } from "../outcome.js";
import { formatJson, formatTable, formatUtcTime } from "../output.js";
import { deadlineFor } from "./deploy.js";

/** One route of `mcp route list`, with the node it is on. */
export interface NodeRoute extends ProxyRouteInfo {
  node: string;
}

/** `2026-12-01` (UTC): a certificate's expiry in a table. */
function day(d: Date | undefined): string {
  return d ? d.toISOString().slice(0, 10) : "-";
}

/** `svc/web`, `svc/web/admin`, `-` for a manual route. */
export function routeOwner(r: Pick<ProxyRouteInfo, "service" | "component" | "route">): string {
  if (!r.service) return "-";
  return `${r.service}/${r.component}${r.route ? `/${r.route}` : ""}`;
}

/** A route's MODE column: `l4`, `l7`, `+pp` when it sends a PROXY v2 header. */
export function routeMode(r: Pick<ProxyRouteInfo, "mode" | "proxyProtocol">): string {
  return r.proxyProtocol ? `${r.mode}+pp` : r.mode;
}

/** A route's CERT-EXPIRES column: the day its certificate expires, `-` for L4 (the container's own TLS). */
export function routeCertExpiry(r: Pick<ProxyRouteInfo, "mode" | "certNotAfter">): string {
  return r.mode === "l7" ? day(r.certNotAfter) : "-";
}

/** The `mcp route list` table (pure). */
export function formatRouteList(routes: NodeRoute[]): string {
  if (routes.length === 0) return "no routes\n";
  return formatTable(
    ["NODE", "LISTENER", "HOSTNAME", "MODE", "BACKEND", "SERVICE", "SERVED", "CERT-EXPIRES"],
    routes.map((r) => [
      r.node,
      String(r.listener),
      r.hostname,
      routeMode(r),
      r.backend,
      routeOwner(r),
      r.served ? "yes" : "no",
      routeCertExpiry(r),
    ]),
  );
}

/** The `mcp cert list` table (pure). */
export function formatCertList(certs: CertInfo[]): string {
  if (certs.length === 0) return "no certificates\n";
  return formatTable(
    ["HOSTNAME", "ISSUER", "EXPIRES", "SERIAL"],
    certs.map((c) => [c.hostname, c.issuer, formatUtcTime(c.notAfter), c.serial]),
  );
}

/** The `mcp dns list` table (pure). */
export function formatDnsList(records: DnsRecordInfo[]): string {
  if (records.length === 0) return "no records\n";
  return formatTable(
    ["NAME", "TYPE", "ADDRESS", "TTL"],
    records.map((r) => [r.name, r.type, r.address, String(r.ttl)]),
  );
}

/** What `route add` / `route remove` print on success (pure). */
export function formatRouteChange(
  node: string,
  r: ProxyRouteInfo,
  verb: "added" | "removed",
): string {
  const pp = r.proxyProtocol ? ", PROXY protocol" : "";
  return `route ${r.hostname} on port ${r.listener} → ${r.backend} (${r.mode}${pp}) ${verb} on node ${node}\n`;
}

/** The node a one-node edge command asks: `--node`, else the only configured node. */
export async function edgeNode(ctx: CliContext, name: string | undefined): Promise<ResolvedNode> {
  if (name) return ctx.node(name);
  const nodes = (await ctx.config()).nodes;
  const [only, ...others] = nodes;
  if (!only) {
    throw new McpError(
      "not_found",
      'no nodes are configured; add one with "mcp node add <name> <host:port>"',
    );
  }
  if (others.length > 0) {
    throw new McpError(
      "invalid_argument",
      `${nodes.length} nodes are configured (${nodes.map((n) => n.name).join(", ")}): pass --node <node>`,
    );
  }
  return ctx.node(only.name);
}

/** A node without [proxy] (or [dns]) answers FAILED_PRECONDITION to the edge calls. */
export function isNoEdge(err: unknown): boolean {
  return err instanceof McpError && err.code === "failed_precondition";
}

function lacksEdge(a: NodeAnswer<unknown>): boolean {
  return isNoEdge(a.failure);
}

export async function routeListCommand(
  ctx: CliContext,
  opts: { node?: string; json?: boolean },
): Promise<number> {
  const nodes = opts.node ? [await ctx.node(opts.node)] : await ctx.allNodes();
  const answers = await ctx.fanOut(nodes, (client) => client.call("listRoutes", {}));
  const routes: NodeRoute[] = answers.flatMap((a) =>
    (a.result?.routes ?? []).map((r) => ({ node: a.node.name, ...r })),
  );
  ctx.io.out(opts.json ? formatJson(routes) : formatRouteList(routes));
  // Asking every node, one without a proxy simply has no routes; asked by name, it is the answer.
  const failed = opts.node ? answers : answers.filter((a) => !lacksEdge(a));
  if (!opts.node) {
    for (const a of answers.filter(lacksEdge)) ctx.io.err(`mcp: node ${a.node.name}: no [proxy]\n`);
  }
  return ctx.reportMissing(failed) > 0 ? 1 : 0;
}

export interface RouteAddOptions {
  mode: string;
  proxyProtocol?: boolean;
  node?: string;
  deadline?: number;
}

/** `route add`'s request from the command line (checked before dialling). */
export function routeAddRequest(
  listener: string,
  hostname: string,
  backend: string,
  opts: Pick<RouteAddOptions, "mode" | "proxyProtocol">,
) {
  const { host, port } = parseBackend(backend);
  return {
    listener: parsePort(listener, "listener"),
    hostname: checkRouteHostname(hostname),
    backend: formatBackend(host, port),
    mode: checkRouteMode(opts.mode),
    proxyProtocol: opts.proxyProtocol ?? false,
  };
}

export async function routeAddCommand(
  ctx: CliContext,
  listener: string,
  hostname: string,
  backend: string,
  opts: RouteAddOptions,
): Promise<number> {
  const req = routeAddRequest(listener, hostname, backend, opts);
  const node = await edgeNode(ctx, opts.node);
  const change: StateChange = {
    verb: "route add",
    target: `${req.listener} ${req.hostname}`,
    deadlineMs: deadlineFor("route add", opts),
  };
  const { route } = await ctx.changeState(node, change, (client, call) =>
    client.call("addRoute", req, call),
  );
  if (route) ctx.io.out(formatRouteChange(node.name, route, "added"));
  return 0;
}

export async function routeRemoveCommand(
  ctx: CliContext,
  listener: string,
  hostname: string,
  opts: { node?: string; deadline?: number },
): Promise<number> {
  const req = { listener: parsePort(listener, "listener"), hostname: checkRouteHostname(hostname) };
  const node = await edgeNode(ctx, opts.node);
  const change: StateChange = {
    verb: "route remove",
    target: `${req.listener} ${req.hostname}`,
    deadlineMs: deadlineFor("route remove", opts),
  };
  const { route } = await ctx.changeState(node, change, (client, call) =>
    client.call("removeRoute", req, call),
  );
  if (route) ctx.io.out(formatRouteChange(node.name, route, "removed"));
  return 0;
}

export async function certListCommand(
  ctx: CliContext,
  opts: { node?: string; json?: boolean },
): Promise<number> {
  const node = await edgeNode(ctx, opts.node);
  const { certs } = await ctx.withClient(node, (client) => client.call("listCerts", {}));
  ctx.io.out(opts.json ? formatJson({ node: node.name, certs }) : formatCertList(certs));
  return 0;
}

/** Only the PEM on stdout, so `mcp cert ca > ca.pem` is the file. */
export async function certCaCommand(ctx: CliContext, opts: { node?: string }): Promise<number> {
  const node = await edgeNode(ctx, opts.node);
  const { pem } = await ctx.withClient(node, (client) => client.call("getRouteCa", {}));
  ctx.io.out(pem.endsWith("\n") ? pem : `${pem}\n`);
  return 0;
}

export async function dnsListCommand(
  ctx: CliContext,
  opts: { node?: string; json?: boolean },
): Promise<number> {
  const node = await edgeNode(ctx, opts.node);
  const { zone, records } = await ctx.withClient(node, (client) =>
    client.call("listDnsRecords", {}),
  );
  ctx.io.out(opts.json ? formatJson({ node: node.name, zone, records }) : formatDnsList(records));
  return 0;
}
