/**
 * The step units that put a component's routes on the node's proxy
 * (docs/ARCHITECTURE.md "Edge"): `dns` publishes the route hostnames in
 * the `[dns]` zone (before the certificate: an ACME server resolves them),
 * `certificates` gets a certificate for each
 * L7 name that has none worth keeping, `routes` points the proxy's entries
 * at the new version's host ports. Both run after the health check, so only
 * a version that proved itself gets traffic; a failure of either fails the
 * operation at its step and the old version keeps serving.
 */
import { McpError, errorMessage } from "../../../util/errors.js";
import {
  componentEntries,
  neededCerts,
  publishComponentRoutes,
  restoreComponentRoutes,
} from "../../edge/routes.js";
import { namesInZone, publishNames, retireNames, unusedNames } from "../../edge/dns.js";
import type { ComponentOp } from "./component.js";
import type { EdgeStepName } from "./plan.js";
import type { Step } from "./runner.js";
import type { ProxyRouteRow } from "../../../registry/index.js";

function edgeOf(op: ComponentOp) {
  const edge = op.ctx.edge;
  if (!edge) throw new McpError("internal", "the proxy is not configured on this node");
  return edge;
}

function rowsFor(op: ComponentOp): ProxyRouteRow[] {
  return componentEntries(edgeOf(op).domain, op.service, op.component, op.hostPorts ?? new Map());
}

/** Only names this operation created go in its undo; names other rows use stay. */
const dns: Step<ComponentOp> = {
  name: "dns",
  run: async (op) => {
    const publisher = edgeOf(op).dns;
    if (!publisher) return;
    const names = namesInZone(rowsFor(op), publisher.zone);
    const before = new Set(namesInZone(op.ctx.registry.proxyRoutes.list(), publisher.zone));
    op.edge.dnsAdded = names.filter((n) => !before.has(n));
    try {
      await publishNames(publisher, names);
    } catch (err) {
      await retireNames(publisher, op.edge.dnsAdded).catch((undoErr: unknown) =>
        op.ctx.logger.error({ err: errorMessage(undoErr) }, "could not remove the new DNS names"),
      );
      throw err;
    }
  },
  undo: async (op) => {
    const publisher = edgeOf(op).dns;
    if (publisher)
      await retireNames(publisher, unusedNames(op.ctx.registry, op.edge.dnsAdded ?? []));
  },
};

/** After the commit: names the component's old routes had and nothing uses now. */
const retireOldNames: Step<ComponentOp> = {
  name: "retire old names",
  afterCommit: true,
  run: async (op) => {
    const publisher = edgeOf(op).dns;
    if (!publisher) return;
    const old = namesInZone(op.edge.routesBefore ?? [], publisher.zone);
    await retireNames(publisher, unusedNames(op.ctx.registry, old));
  },
};

const certificates: Step<ComponentOp> = {
  name: "certificates",
  run: async (op) => {
    op.edge.certs = await neededCerts(edgeOf(op), rowsFor(op));
  },
};

const routes: Step<ComponentOp> = {
  name: "routes",
  run: async (op) => {
    const edge = edgeOf(op);
    const name = op.component.name;
    const before = op.ctx.registry.proxyRoutes.owned(op.service, name);
    try {
      op.edge.routesBefore = await publishComponentRoutes(
        op.ctx,
        edge,
        op.service,
        name,
        rowsFor(op),
        op.edge.certs,
      );
    } catch (err) {
      // Half applied: the runner undoes only completed steps, so put it back here.
      await restoreComponentRoutes(op.ctx, edge, op.service, name, before).catch(
        (undoErr: unknown) =>
          op.ctx.logger.error(
            { err: errorMessage(undoErr) },
            "could not put the proxy's routes back",
          ),
      );
      throw err;
    }
  },
  undo: (op) =>
    restoreComponentRoutes(
      op.ctx,
      edgeOf(op),
      op.service,
      op.component.name,
      op.edge.routesBefore ?? [],
    ),
};

export const EDGE_STEPS: Record<EdgeStepName, Step<ComponentOp>> = {
  dns,
  certificates,
  routes,
  "retire old names": retireOldNames,
};
