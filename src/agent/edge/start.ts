/**
 * The node's edge at agent start (docs/ARCHITECTURE.md "Edge"): with a
 * `[proxy]` table, the route CA, the certificate issuer `[certs]` names, the
 * DNS publisher `[dns]` configures, and the agent's own HAProxy, started
 * (or adopted from an earlier agent) with the listeners and map files the
 * registry's proxy rows say.
 */
import type { AgentConfig } from "../../config/agent.js";
import { parseDuration } from "../../config/duration.js";
import { Edge } from "../../edge/edge.js";
import { issueRouteCert, loadOrCreateRouteCa, LocalIssuer } from "../../edge/certs/local-ca.js";
import path from "node:path";
import { AcmeIssuer } from "../../edge/certs/acme.js";
import { Http01Responder } from "../../edge/certs/http01.js";
import { NsupdatePublisher } from "../../edge/dns/publisher.js";
import { proxyFiles } from "../../edge/haproxy/config.js";
import { HaproxyDriver } from "../../edge/haproxy/driver.js";
import { HaproxyProcess } from "../../edge/haproxy/process.js";
import type { CertIssuer } from "../../edge/types.js";
import type { Registry } from "../../registry/index.js";
import type { CertPair } from "../../certs/x509.js";
import type { Logger } from "../../util/log.js";

/** The name the default certificate carries: served only to names without one of their own. */
const DEFAULT_CERT_NAME = "default.invalid";

function issuerFor(
  config: AgentConfig,
  ca: CertPair,
  dir: string,
  challenges: Http01Responder,
): CertIssuer {
  const certs = config.certs;
  if (!certs || certs.issuer === "local") return new LocalIssuer(ca);
  return new AcmeIssuer({
    directoryUrl: certs.acmeDirectory,
    caFile: certs.acmeCaFile,
    email: certs.acmeEmail,
    accountKeyFile: path.join(dir, "acme-account.key"),
    challenges,
  });
}

export interface StartedEdge {
  edge: Edge;
  proxy: HaproxyProcess;
  /** Stops HAProxy too (tests). */
  stop(): Promise<void>;
  /** Leaves HAProxy serving for the next agent to adopt. */
  release(): Promise<void>;
}

export async function startEdge(
  config: AgentConfig,
  registry: Registry,
  logger: Logger,
): Promise<StartedEdge | undefined> {
  const proxyConfig = config.proxy;
  if (!proxyConfig) return undefined;
  const ca = await loadOrCreateRouteCa(proxyConfig.dir, config.agent.nodeName);
  const proxy = new HaproxyProcess(proxyConfig.dir, {
    died: (reason) => {
      logger.warn({ reason }, "haproxy died; starting it again");
      registry.events.add({ service: "", kind: "proxy", message: `${reason}; started again` });
    },
  });
  const driver = new HaproxyDriver(proxyConfig.dir, proxyConfig.bind, proxy, proxyConfig.httpPort);
  // HTTP-01 answers come through HAProxy's plain listener to this socket (no port of our own).
  const challenges = new Http01Responder(proxyFiles(proxyConfig.dir).acmeSocket);
  // Checked before HAProxy starts: a bad [dns] key file stops the agent with its line:column.
  const dns = config.dns ? new NsupdatePublisher(config.dns) : undefined;
  const fallback = await issueRouteCert(ca, DEFAULT_CERT_NAME);
  const rows = registry.proxyRoutes.list();
  await challenges.start();
  await driver.start(
    rows.map((r) => r.listener),
    `${fallback.cert.trim()}\n${fallback.key.trim()}\n`,
  );
  const edge = new Edge({
    driver,
    issuer: issuerFor(config, ca, proxyConfig.dir, challenges),
    dns,
    domain: proxyConfig.domain,
    drainMs: proxyConfig.drainMs,
    renewBeforeMs: config.certs?.renewBeforeMs ?? parseDuration("720h"),
    routeCaPem: ca.cert,
  });
  logger.info(
    {
      dir: proxyConfig.dir,
      bind: proxyConfig.bind,
      listeners: driver.listeners,
      routes: rows.length,
      adopted: proxy.adopted,
      issuer: edge.issuer.kind,
      dns: dns ? `${config.dns?.server} zone ${dns.zone}` : "off",
    },
    proxy.adopted ? "proxy adopted from an earlier agent" : "proxy started",
  );
  return {
    edge,
    proxy,
    stop: async () => {
      await proxy.stop();
      await challenges.close();
    },
    release: async () => {
      proxy.release();
      await challenges.close();
    },
  };
}
