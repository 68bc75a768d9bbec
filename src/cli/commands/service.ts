/**
 * `mcp service show|edit|export <service>`.
 *
 * - show: the spec the agent holds (ListServices → ServiceInfo.spec) as a
 *   definition file would say it, with the agent's facts as comments: each
 *   component's desired/observed state and each route's allocated host port.
 *   The text is valid TOML. `--json` prints the node and the ServiceInfo.
 * - export: the agent's spec written as a definition file (the services
 *   dir's `<service>.toml` by default, `-o FILE`, or `-o -` for stdout). It is
 *   checked with parseServiceDef before it is written, refuses to overwrite
 *   an existing file unless --force, and leaves out `active` when it is true
 *   (the default), so a deployed definition exports back to itself.
 * - edit: opens $EDITOR (split on spaces, default `vi`; spawned with an argv
 *   array, no shell) on a temporary copy of the local definition and
 *   replaces the real file only if the result validates. On problems it
 *   prints them and asks to edit again or abort; without a terminal on stdin
 *   it aborts (exit 1) and the file is untouched. Edit changes the local file
 *   only (reference Appendix A 13 leaves this open): run `mcp deploy` or
 *   `mcp sync` to push it, as after editing by hand.
 *
 * show and export find the node from `--node`, else from the local
 * definition, else by asking every node which one holds the service.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import type { ComponentInfo, ServiceInfo } from "../../gen/mcp/v1/mcp.js";
import type { ResolvedNode } from "../../config/cli.js";
import { routeEnvName } from "../../servicedef/env.js";
import { defaultStrategy } from "../../servicedef/health.js";
import { parseServiceDef } from "../../servicedef/parse.js";
import { renderServiceDef } from "../../servicedef/render.js";
import { fromServiceSpec } from "../../servicedef/spec.js";
import type { ServiceDef } from "../../servicedef/types.js";
import { McpError, ValidationError, errorMessage } from "../../util/errors.js";
import type { CliContext } from "../context.js";
import { buildCompose } from "../export/compose.js";
import type { ExportFormat } from "../export/formats.js";
import { buildKubePod } from "../export/kube.js";
import { renderExport } from "../export/render.js";
import { exportSource, heldSpec } from "../export/source.js";
import { formatJson } from "../output.js";

export interface LocatedService {
  node: ResolvedNode;
  info: ServiceInfo;
}

async function fetchService(
  ctx: CliContext,
  node: ResolvedNode,
  service: string,
): Promise<ServiceInfo | undefined> {
  const res = await ctx.withClient(node, (client) =>
    client.call("listServices", { name: service, includeSpec: true }),
  );
  return res.services.find((s) => s.name === service);
}

/** The node holding `service` and what its agent says about it. */
export async function locateService(
  ctx: CliContext,
  service: string,
  nodeOpt: string | undefined,
): Promise<LocatedService> {
  let node: ResolvedNode | undefined;
  if (nodeOpt) node = await ctx.node(nodeOpt);
  else {
    let loaded;
    try {
      loaded = await ctx.loadDefinition(service);
    } catch (err) {
      // No usable local definition (gone, or broken): ask every node below.
      if (!(err instanceof McpError)) throw err;
    }
    if (loaded) node = await ctx.nodeOf(loaded);
  }
  if (node) {
    const info = await fetchService(ctx, node, service);
    if (!info) throw new McpError("not_found", `unknown service "${service}" on node ${node.name}`);
    return { node, info };
  }
  const answers = await ctx.fanOut(await ctx.allNodes(), (client) =>
    client.call("listServices", { name: service, includeSpec: true }),
  );
  const holders = answers.flatMap((a) => {
    const info = a.result?.services.find((s) => s.name === service);
    return info ? [{ node: a.node, info }] : [];
  });
  const [first, ...rest] = holders;
  if (first && rest.length === 0) return first;
  if (first) {
    throw new McpError(
      "failed_precondition",
      `service "${service}" is on nodes ${holders.map((h) => h.node.name).join(", ")}: pass --node`,
    );
  }
  const missing = answers.filter((a) => a.error !== undefined).map((a) => a.node.name);
  throw new McpError(
    "not_found",
    `unknown service "${service}"${missing.length > 0 ? ` (nodes that did not answer: ${missing.join(", ")})` : " on every node"}`,
  );
}

/** The definition an agent's spec describes; `active = true` (the default) is left out. */
export function definitionOf(info: ServiceInfo): ServiceDef {
  const def = fromServiceSpec(heldSpec(info));
  if (def.active === true) delete def.active;
  return def;
}

function stateNote(c: ComponentInfo | undefined): string[] {
  if (!c) return [];
  return [`desired ${c.desiredState}, observed ${c.observedState}, container ${c.container}`];
}

/** `mcp service show` text: the definition plus the agent's facts as comments. Pure. */
export function formatServiceShow(node: string, info: ServiceInfo): string {
  const def = definitionOf(info);
  const components = new Map(info.components.map((c) => [c.name, c]));
  const header = `# service ${info.name} as held by the agent on node ${node}\n`;
  return (
    header +
    renderServiceDef(def, {
      component: (c) => [
        ...stateNote(components.get(c.name)),
        c.strategy ? `strategy ${c.strategy}` : `strategy ${defaultStrategy(c)} (the default)`,
      ],
      route: (c, r) => {
        const status = components.get(c.name)?.routes.find((s) => s.name === (r.name ?? ""));
        const env = routeEnvName(r);
        return [
          status && status.hostPort > 0
            ? `host port ${status.hostPort} ($${env})`
            : `no host port allocated ($${env})`,
        ];
      },
    })
  );
}

export async function serviceShowCommand(
  ctx: CliContext,
  service: string,
  opts: { node?: string; json?: boolean },
): Promise<number> {
  const { node, info } = await locateService(ctx, service, opts.node);
  ctx.io.out(
    opts.json ? formatJson({ node: node.name, service: info }) : formatServiceShow(node.name, info),
  );
  return 0;
}

/** `mcp service export --format kube|compose` text: header, notes, YAML. Pure. */
export function formatServiceExport(
  format: "kube" | "compose",
  node: string,
  info: ServiceInfo,
): string {
  const source = exportSource(node, info);
  const name = info.name;
  if (format === "kube") {
    return renderExport(
      [
        `Kubernetes Pod of MCP service ${name} as node ${node} runs it (mcp service export --format kube).`,
        "Run it: podman kube play FILE; remove it: podman kube down FILE.",
      ],
      "Not expressible in a Kubernetes Pod (MCP does it, this file does not):",
      buildKubePod(source),
    );
  }
  return renderExport(
    [
      `Compose file of MCP service ${name} as node ${node} runs it (mcp service export --format compose).`,
      `Run it: podman-compose -p ${name} -f FILE up -d; remove it: podman-compose -p ${name} -f FILE down.`,
    ],
    "Not expressible in Compose (MCP does it, this file does not):",
    buildCompose(source),
  );
}

/** The definition file an agent's spec describes, checked with parseServiceDef. */
function exportedDefinition(node: string, info: ServiceInfo, dest: string): string {
  const text = renderServiceDef(definitionOf(info));
  try {
    parseServiceDef(text, dest);
  } catch (err) {
    if (err instanceof ValidationError) {
      throw new McpError(
        "invalid_definition",
        `the spec node ${node} holds for ${info.name} is not a valid definition: ${err.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
      );
    }
    throw err;
  }
  return text;
}

export async function serviceExportCommand(
  ctx: CliContext,
  service: string,
  opts: { output?: string; force?: boolean; node?: string; format?: ExportFormat },
): Promise<number> {
  const { node, info } = await locateService(ctx, service, opts.node);
  const format = opts.format ?? "toml";
  // A definition goes to the services dir by default; a Pod or Compose file to stdout.
  const dest = opts.output ?? (format === "toml" ? await ctx.definitionPath(service) : "-");
  const text =
    format === "toml"
      ? exportedDefinition(node.name, info, dest)
      : formatServiceExport(format, node.name, info);
  if (dest === "-") {
    ctx.io.out(text);
    return 0;
  }
  if (opts.output === undefined) await mkdir(path.dirname(dest), { recursive: true });
  try {
    await writeFile(dest, text, { flag: opts.force ? "w" : "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new McpError("failed_precondition", `${dest} exists: pass --force to overwrite it`);
    }
    throw new McpError("invalid_argument", `cannot write ${dest}: ${errorMessage(err)}`);
  }
  ctx.io.out(`wrote ${dest} (service ${service} from node ${node.name})\n`);
  return 0;
}

/** `$EDITOR` as argv (split on whitespace), `vi` when unset or blank. Pure. */
export function editorArgv(editor: string | undefined): string[] {
  const parts = (editor ?? "").trim().split(/\s+/).filter(Boolean);
  return parts.length > 0 ? parts : ["vi"];
}

/** Runs the editor on `file` with the terminal attached; resolves to its exit code. */
function runEditor(argv: string[], file: string): Promise<number> {
  const [program = "vi", ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args, file], { stdio: "inherit" });
    child.once("error", (err) =>
      reject(new McpError("invalid_argument", `cannot run editor ${program}: ${err.message}`)),
    );
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Asks on stderr, reads one line from stdin. */
async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await new Promise((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
  }
}

export interface EditDeps {
  editor?: string | undefined;
  isTTY?: boolean;
  ask?: (question: string) => Promise<string>;
}

export async function serviceEditCommand(
  ctx: CliContext,
  service: string,
  deps: EditDeps = {},
): Promise<number> {
  const { file, text: original } = await ctx.readDefinition(service);
  const argv = editorArgv("editor" in deps ? deps.editor : process.env.EDITOR);
  const isTTY = deps.isTTY ?? Boolean(process.stdin.isTTY);
  const prompt = deps.ask ?? ask;
  const dir = await mkdtemp(path.join(tmpdir(), "mcp-edit-"));
  const copy = path.join(dir, `${service}.toml`);
  try {
    await writeFile(copy, original, { mode: 0o600 });
    for (;;) {
      const code = await runEditor(argv, copy);
      if (code !== 0) {
        ctx.io.err(`mcp: editor ${argv[0]} exited ${code}: ${file} not changed\n`);
        return 1;
      }
      const edited = await readFile(copy, "utf8");
      if (edited === original) {
        ctx.io.out(`no changes to ${file}\n`);
        return 0;
      }
      const problems = checkEdited(edited, file, service);
      if (problems.length === 0) {
        await writeFile(file, edited);
        ctx.io.out(`saved ${file} (run "mcp deploy ${service}" or "mcp sync" to apply it)\n`);
        return 0;
      }
      for (const p of problems) ctx.io.err(`mcp: ${p}\n`);
      if (!isTTY) {
        ctx.io.err(`mcp: ${file} not changed (the edit is invalid)\n`);
        return 1;
      }
      const answer = (await prompt("(e)dit again or (a)bort? [e] ")).trim().toLowerCase();
      if (answer.startsWith("a")) {
        ctx.io.err(`mcp: ${file} not changed\n`);
        return 1;
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Problems of an edited definition, one line each (empty when it may be saved). Pure. */
export function checkEdited(text: string, file: string, service: string): string[] {
  try {
    const def = parseServiceDef(text, file);
    return def.name === service
      ? []
      : [`${file}: name is "${def.name}", expected "${service}" (the file name)`];
  } catch (err) {
    if (err instanceof ValidationError) return err.message.split("\n");
    throw err;
  }
}
