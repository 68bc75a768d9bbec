/**
 * Certificates from ACME and names in DNS on deploy (issue 8), through a
 * real agent process and the CLI: Pebble validates HTTP-01 through the
 * agent's own HAProxy and resolves the route's name through a real Knot,
 * so a deploy only gets its certificate when its `dns` step published the
 * name first (docs/ARCHITECTURE.md "Edge"). Covered: the issued chain
 * served and verified up to Pebble's root, the name in Knot, 421 for an
 * unknown name; a name outside the zone (never published) gets no
 * certificate, proving Pebble asks Knot; a redeploy keeps the certificate; a wrong TSIG key fails
 * at `dns` and an unreachable ACME directory at `certificates`, each
 * leaving nothing of the new version while the service deployed before
 * keeps answering; undeploy removes the name and the route.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "smol-toml";
import { certFile } from "../../src/edge/haproxy/config.js";
import { runCommand } from "../../src/util/exec.js";
import { freePort, tempDir } from "../helpers/agent.js";
import { curl, digA, servedChain } from "../helpers/edge-client.js";
import { startKnot, type TestKnot } from "../helpers/knot.js";
import { LiveAgent, l7Definition, ok, parseEnvPage, type CliRun } from "../helpers/live-agent.js";
import { startPebble, type Pebble } from "../helpers/pebble.js";

const NODE = "acmedns-node";
const WEB = "acmedns-web";
const BAD_KEY = "acmedns-badkey";
const NO_DIR = "acmedns-nodir";
const OUTSIDE = "acmedns-outside";

/** The service of these tests: env `env`, on `listener`, answering to `hostname` if given. */
function definition(name: string, listener: number, env: string, hostname?: string): string {
  return l7Definition(name, NODE, listener, {
    lines: [`env = ["${env}"]`],
    ...(hostname ? { hostname } : {}),
  });
}

const said = (run: CliRun) => `${run.stdout}${run.stderr}`;

async function containersOf(service: string): Promise<string[]> {
  const { stdout } = await runCommand([
    "podman",
    "ps",
    "-aq",
    "--filter",
    `label=mcp.service=${service}`,
  ]);
  return stdout.split("\n").filter(Boolean);
}

describe(
  "ACME certificates (Pebble) and DNS names (Knot) on deploy, through the agent",
  { concurrency: false },
  () => {
    let knot: TestKnot;
    let pebble: Pebble;
    let agent: LiveAgent;
    let scratch: string;
    let pebbleRoot: string;
    let listener: number;
    let proxyDir: string;
    let edgeConfig: Record<string, Record<string, unknown>>;
    let firstSerial: string;
    const host = `${WEB}.svc.mcp.test`;

    const mapLines = async () => {
      const text = await readFile(path.join(proxyDir, `l7-${listener}.map`), "utf8").catch(
        (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? "" : Promise.reject(err)),
      );
      return text.split("\n").filter(Boolean);
    };

    /** Restarts the agent with `patch` merged into its config (the tables as in mcp-agent.toml). */
    async function restartWith(patch: Record<string, Record<string, unknown>>): Promise<void> {
      await agent.kill("SIGTERM");
      const config = parse(await readFile(agent.agentConfig, "utf8")) as Record<
        string,
        Record<string, unknown>
      >;
      for (const [section, values] of Object.entries(patch)) {
        config[section] = { ...config[section], ...values };
      }
      await writeFile(agent.agentConfig, stringify(config));
      await agent.launch();
    }

    /** Runs `body` on the agent restarted with `patch`, then restarts it with the tables as before. */
    async function withConfig(
      patch: Record<string, Record<string, unknown>>,
      body: () => Promise<void>,
    ): Promise<void> {
      await restartWith(patch);
      try {
        await body();
      } finally {
        await restartWith(
          Object.fromEntries(Object.keys(patch).map((k) => [k, edgeConfig[k] ?? {}])),
        );
      }
    }

    /** Asserts the service `host` still answers from its container, over Pebble's chain. */
    async function webStillAnswers(): Promise<void> {
      const r = await curl(host, listener, { ca: path.join(scratch, "pebble-root.pem") });
      assert.equal(r.status, 200, r.body);
      assert.ok(parseEnvPage(r.body).R, "the container's page");
    }

    before(async () => {
      scratch = await tempDir("mcp-acmedns-");
      knot = await startKnot();
      const httpPort = await freePort();
      // Pebble resolves through Knot: a name the dns step did not publish fails validation.
      pebble = await startPebble({ httpPort, dnsServer: knot.server });
      pebbleRoot = await pebble.rootPem();
      await writeFile(path.join(scratch, "pebble-root.pem"), pebbleRoot);
      listener = await freePort();
      edgeConfig = {
        proxy: { http_port: httpPort },
        certs: {
          issuer: "acme",
          acme_directory: pebble.directoryUrl,
          acme_ca_file: pebble.caFile,
          acme_email: "ops@mcp.test",
        },
        dns: {
          server: knot.server,
          zone: knot.zone,
          tsig_key_file: knot.keyFile,
          address: "127.0.0.1",
        },
      };
      agent = await LiveAgent.start({ node: NODE, init: { proxy: true }, config: edgeConfig });
      proxyDir = path.join(agent.dir, "proxy");
    });

    after(async () => {
      await agent?.cleanup();
      await pebble?.stop();
      await knot?.stop();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    test("deploy: the name is published before the certificate, which comes from Pebble over HTTP-01", async () => {
      await agent.addDefinition(WEB, definition(WEB, listener, "R=1"));
      const run = ok(await agent.cli(["deploy", WEB]), "deploy");
      const out = said(run);
      const dnsAt = out.indexOf("web: dns ✓");
      const certsAt = out.indexOf("web: certificates ✓");
      assert.ok(dnsAt >= 0 && certsAt > dnsAt, `dns, then certificates:\n${out}`);

      assert.deepEqual(await digA(knot.port, host), ["127.0.0.1"]);
      const r = await curl(host, listener, { ca: path.join(scratch, "pebble-root.pem") });
      assert.equal(r.status, 200, r.body);
      assert.equal(parseEnvPage(r.body).R, "1");
    });

    test("the served chain is Pebble's leaf and intermediate; an unknown name gets 421", async () => {
      const { text, chain } = await servedChain(
        listener,
        host,
        path.join(scratch, "pebble-root.pem"),
      );
      assert.equal(chain.length, 2, text);
      const [leaf, intermediate] = chain as [X509Certificate, X509Certificate];
      assert.ok(leaf.checkHost(host), leaf.subjectAltName);
      assert.ok(leaf.checkIssued(intermediate));
      assert.ok(intermediate.checkIssued(new X509Certificate(pebbleRoot)), "up to Pebble's root");
      assert.match(text, /Verify return code: 0 \(ok\)/);
      firstSerial = leaf.serialNumber;
      assert.equal((await curl(`nobody.${knot.zone}`, listener)).status, 421);
    });

    test("mcp dns list and mcp cert list show the name and its ACME certificate", async () => {
      const dns = JSON.parse(ok(await agent.cli(["dns", "list", "--json"]), "dns list").stdout) as {
        zone: string;
        records: { name: string; type: string; address: string }[];
      };
      assert.equal(dns.zone, knot.zone);
      assert.deepEqual(
        dns.records.filter((r) => r.name === host).map((r) => [r.type, r.address]),
        [["A", "127.0.0.1"]],
      );
      const certs = ok(await agent.cli(["cert", "list"]), "cert list").stdout;
      assert.match(certs, new RegExp(`${host.replace(/\./g, "\\.")}\\s+acme\\s`));
    });

    test("a name outside the zone is not published, so Pebble (asking Knot) refuses it", async () => {
      // The control for the test above: without the dns step's record there is no certificate.
      const outside = `${OUTSIDE}.example.test`;
      await agent.addDefinition(OUTSIDE, definition(OUTSIDE, listener, "R=out", outside));
      const run = await agent.cli(["deploy", OUTSIDE]);
      const out = said(run);
      assert.notEqual(run.code, 0, out);
      assert.match(out, /failed step: certificates/);
      assert.match(out, new RegExp(`gave no certificate for ${outside}: .*could not resolve`));
      assert.deepEqual(await containersOf(OUTSIDE), [], "no container");
      assert.deepEqual(
        (await mapLines()).filter((l) => l.startsWith(`${outside} `)),
        [],
        "no map entry",
      );
      await webStillAnswers();
    });

    test("a redeploy keeps the certificate while it has more than renew_before left", async () => {
      await agent.addDefinition(WEB, definition(WEB, listener, "R=2"));
      ok(await agent.cli(["deploy", WEB]), "redeploy");
      const r = await curl(host, listener, { ca: path.join(scratch, "pebble-root.pem") });
      assert.equal(r.status, 200, r.body);
      assert.equal(parseEnvPage(r.body).R, "2", "the new version answers");
      const served = (await servedChain(listener, host, path.join(scratch, "pebble-root.pem")))
        .chain[0];
      assert.equal(served?.serialNumber, firstSerial, "served: the same certificate");
      const onDisk = new X509Certificate(await readFile(certFile(proxyDir, host), "utf8"));
      assert.equal(onDisk.serialNumber, firstSerial, "the proxy's file: the same certificate");
    });

    test("a wrong TSIG key fails the deploy at dns, refused, leaving nothing", async () => {
      await withConfig({ dns: { tsig_key_file: knot.wrongKeyFile } }, async () => {
        const badHost = `${BAD_KEY}.${knot.zone}`;
        await agent.addDefinition(BAD_KEY, definition(BAD_KEY, listener, "R=bad"));
        const run = await agent.cli(["deploy", BAD_KEY]);
        const out = said(run);
        assert.notEqual(run.code, 0, out);
        assert.match(out, /web: dns ✗/);
        assert.match(out, /failed step: dns/);
        assert.match(out, /refused by 127\.0\.0\.1:\d+/);
        assert.match(out, /tsig_key_file/, "points at the key");
        assert.doesNotMatch(out, /web: certificates/, "no certificate asked for");

        assert.deepEqual(await containersOf(BAD_KEY), [], "no container");
        assert.deepEqual(
          (await mapLines()).filter((l) => l.startsWith(`${badHost} `)),
          [],
          "no map entry",
        );
        assert.deepEqual(await digA(knot.port, badHost), [], "no DNS record");
        await webStillAnswers();
      });
    });

    test("an unreachable ACME directory fails the deploy at certificates; its name goes again", async () => {
      const closed = await freePort();
      await withConfig(
        { certs: { acme_directory: `https://127.0.0.1:${closed}/dir` } },
        async () => {
          const noDirHost = `${NO_DIR}.${knot.zone}`;
          await agent.addDefinition(NO_DIR, definition(NO_DIR, listener, "R=nodir"));
          const run = await agent.cli(["deploy", NO_DIR]);
          const out = said(run);
          assert.notEqual(run.code, 0, out);
          assert.match(out, /web: dns ✓/, "the name was published first");
          assert.match(out, /web: certificates ✗/);
          assert.match(out, /failed step: certificates/);
          assert.match(out, /cannot reach the ACME directory https:\/\/127\.0\.0\.1:\d+\/dir/);

          assert.deepEqual(await containersOf(NO_DIR), [], "no container");
          assert.deepEqual(
            (await mapLines()).filter((l) => l.startsWith(`${noDirHost} `)),
            [],
            "no map entry",
          );
          assert.deepEqual(await digA(knot.port, noDirHost), [], "the name it published is gone");
          assert.deepEqual(await digA(knot.port, host), ["127.0.0.1"], "the other name stays");
          await webStillAnswers();
        },
      );
    });

    test("undeploy: the name leaves DNS and the route the proxy", async () => {
      ok(await agent.cli(["undeploy", WEB]), "undeploy");
      assert.deepEqual(await digA(knot.port, host), []);
      assert.deepEqual(await mapLines(), []);
      assert.notEqual((await curl(host, listener)).status, 200);
      assert.deepEqual(await containersOf(WEB), []);
    });
  },
);
