/**
 * `mcp-agent init`: everything a node needs to serve, in one directory.
 *
 *   ca.pem, ca-key.pem (0600)   the CA (only ca.pem when signing with --ca-dir)
 *   cert.pem, key.pem (0600)    the agent's server certificate
 *   tokens.toml                 token hashes (one operator token)
 *   token (0600)                the operator token in plain text, for the CLI
 *   mcp-agent.toml              the agent config, every key explicit
 *   mcp.toml                    a ready CLI config: `mcp --config DIR/mcp.toml`
 *   services/                   where that CLI config looks for definitions
 */
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { addTokenToFile, generateToken } from "../../auth/tokens.js";
import { formatHostPort, isUnspecifiedHost, parseHostPort } from "../../config/address.js";
import { agentConfigFromObject, renderAgentConfig } from "../../config/agent.js";
import { saveCliConfig } from "../../config/cli.js";
import { writeFileAtomic } from "../../config/files.js";
import { McpError } from "../../util/errors.js";
import { createCa, issueServerCert, type CertPair } from "../../certs/x509.js";
import { serverSans } from "./tls.js";
import { loadOrCreateRouteCa, routeCaFiles } from "../../edge/certs/local-ca.js";

export interface InitOptions {
  dir: string;
  node: string;
  /** `host:port` the agent will listen on; default 127.0.0.1:9444. */
  listen?: string;
  /** Extra DNS names / IPs for the server certificate (e.g. the overlay IP). */
  sans?: string[];
  /**
   * Sign with an existing CA (`ca.pem` + `ca-key.pem` in this directory)
   * instead of creating one, so several nodes share one CA and one
   * `[tls] ca_cert` in the CLI. The CA key is not copied into `dir`.
   */
  caDir?: string;
  /** Service data root written to the agent config; default /srv. */
  dataRoot?: string;
  /** Overwrite an initialised directory (new CA/cert/token: old tokens stop working). */
  force?: boolean;
  /**
   * Write a `[proxy]` table (HAProxy in front of the routes, listeners on
   * 127.0.0.1, local route CA) and make the route CA; default true.
   * `--no-proxy`: none (tests that are not about the edge, so they do not
   * bind the same listener ports).
   */
  proxy?: boolean;
}

export interface InitResult {
  dir: string;
  caCert: string;
  /** undefined when an existing CA (caDir) signed the certificate. */
  caKey: string | undefined;
  cert: string;
  key: string;
  tokensFile: string;
  tokenFile: string;
  agentConfig: string;
  cliConfig: string;
  servicesDir: string;
  /** The SANs put in the server certificate. */
  sans: string[];
  /** The route CA's certificate (clients trust it for L7 routes); undefined with no proxy. */
  routeCaCert: string | undefined;
}

/**
 * The edge an initialised node gets (README "The agent"): HAProxy on
 * loopback, default names under svc.mcp.test, certificates from the local
 * route CA, no DNS.
 */
const EMBEDDED_EDGE = (proxyDir: string) => ({
  proxy: {
    driver: "haproxy",
    dir: proxyDir,
    bind: "127.0.0.1",
    http_port: 80,
    domain: "svc.mcp.test",
    drain: "2s",
  },
  certs: { issuer: "local", renew_before: "720h" },
});

const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );
}

async function readCa(caDir: string): Promise<CertPair> {
  const dir = resolve(caDir);
  try {
    return {
      cert: await readFile(join(dir, "ca.pem"), "utf8"),
      key: await readFile(join(dir, "ca-key.pem"), "utf8"),
    };
  } catch (err) {
    throw new McpError(
      "invalid_argument",
      `cannot read the CA in ${dir} (expected ca.pem and ca-key.pem): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** The address a local CLI dials for a listen address: wildcards become loopback. */
function dialAddress(listen: string): string {
  const hp = parseHostPort(listen);
  if (!isUnspecifiedHost(hp.host)) return listen;
  return formatHostPort({ host: hp.host === "::" ? "::1" : "127.0.0.1", port: hp.port });
}

export async function initAgentDir(opts: InitOptions): Promise<InitResult> {
  const dir = resolve(opts.dir);
  const listen = opts.listen ?? "127.0.0.1:9444";
  if (!NODE_NAME.test(opts.node)) {
    throw new McpError(
      "invalid_argument",
      `bad node name ${JSON.stringify(opts.node)}: use a lower-case DNS label (a-z, 0-9, '-', '.')`,
    );
  }
  try {
    parseHostPort(listen);
  } catch (err) {
    throw new McpError("invalid_argument", (err as Error).message);
  }
  const p: InitResult = {
    dir,
    caCert: join(dir, "ca.pem"),
    caKey: opts.caDir ? undefined : join(dir, "ca-key.pem"),
    cert: join(dir, "cert.pem"),
    key: join(dir, "key.pem"),
    tokensFile: join(dir, "tokens.toml"),
    tokenFile: join(dir, "token"),
    agentConfig: join(dir, "mcp-agent.toml"),
    cliConfig: join(dir, "mcp.toml"),
    servicesDir: join(dir, "services"),
    sans: serverSans(listen, opts.node, opts.sans ?? []),
    routeCaCert: undefined,
  };
  const proxyDir = join(dir, "proxy");

  const outputs = [p.agentConfig, p.tokensFile, p.tokenFile, p.cert, p.key, p.caCert];
  if (!opts.force) {
    for (const f of outputs) {
      if (await exists(f)) {
        throw new McpError(
          "failed_precondition",
          `${dir} is already initialised (${f} exists); pass --force to start over ` +
            "(new certificate and token: the old token stops working)",
        );
      }
    }
  }

  // Make every secret in memory first, so a failure leaves no half-written dir.
  const ca = opts.caDir ? await readCa(opts.caDir) : await createCa(`mcp CA (${opts.node})`);
  const server = await issueServerCert(ca, { commonName: opts.node, sans: p.sans });
  const token = generateToken();
  const agentCfg = agentConfigFromObject(
    {
      agent: { node_name: opts.node, data_root: opts.dataRoot ?? "/srv" },
      server: { listen, tls_cert: p.cert, tls_key: p.key, ca_cert: p.caCert },
      database: { path: join(dir, "mcp.db") },
      auth: { tokens_file: p.tokensFile },
      ...(opts.proxy === false ? {} : EMBEDDED_EDGE(proxyDir)),
    },
    dir,
    "mcp-agent init",
  );

  await mkdir(p.servicesDir, { recursive: true, mode: 0o700 });
  if (opts.proxy !== false) {
    // Made now, so the operator can hand its certificate to clients before the first deploy.
    await loadOrCreateRouteCa(proxyDir, opts.node);
    p.routeCaCert = routeCaFiles(proxyDir).cert;
  }
  await writeFileAtomic(p.caCert, ca.cert, 0o644);
  if (p.caKey) await writeFileAtomic(p.caKey, ca.key, 0o600);
  await writeFileAtomic(p.cert, server.cert, 0o644);
  await writeFileAtomic(p.key, server.key, 0o600);
  if (opts.force) await rm(p.tokensFile, { force: true });
  await addTokenToFile(p.tokensFile, { name: "operator", role: "operator", token });
  await writeFileAtomic(p.tokenFile, `${token}\n`, 0o600);
  await saveCliConfig(p.cliConfig, {
    services: { dir: p.servicesDir },
    tls: { caCert: p.caCert },
    auth: { tokenPath: p.tokenFile },
    client: {},
    nodes: [{ name: opts.node, address: dialAddress(listen) }],
  });
  // Last: its presence is what marks the directory as initialised.
  await writeFileAtomic(p.agentConfig, renderAgentConfig(agentCfg), 0o600);
  return p;
}
