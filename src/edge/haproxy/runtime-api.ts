/**
 * HAProxy's runtime API over its stats socket (`level admin`): one command
 * per connection, the answer read until HAProxy closes it. Routes change
 * through these commands without a reload; the map files are written first
 * (config.ts), since nothing set at runtime survives a restart.
 *
 * The command builders are pure and tested on their output; `runtimeCommand`
 * is the thin shell that sends one.
 */
import net from "node:net";
import { McpError } from "../../util/errors.js";

/** How long one command may take (they take ≈ 5 ms). */
const COMMAND_TIMEOUT_MS = 5000;

/**
 * Characters a map path, key or value may hold: what paths, hostnames and
 * ports are made of; never a space or newline, which would end the command.
 */
const SAFE = /^[A-Za-z0-9._:/-]+$/;

function checked(what: string, value: string): string {
  if (!SAFE.test(value)) {
    throw new McpError("invalid_argument", `${what} ${JSON.stringify(value)} cannot go to HAProxy`);
  }
  return value;
}

/** Adds `key value` to the loaded map `mapPath` (it must not hold `key` yet). */
export function addMapCommand(mapPath: string, key: string, value: string): string {
  return `add map ${checked("map", mapPath)} ${checked("key", key)} ${checked("value", value)}`;
}

/** Changes the value of `key` in `mapPath` (it must hold `key`). */
export function setMapCommand(mapPath: string, key: string, value: string): string {
  return `set map ${checked("map", mapPath)} ${checked("key", key)} ${checked("value", value)}`;
}

export function delMapCommand(mapPath: string, key: string): string {
  return `del map ${checked("map", mapPath)} ${checked("key", key)}`;
}

export function showMapCommand(mapPath: string): string {
  return `show map ${checked("map", mapPath)}`;
}

/**
 * Fills and commits the certificate at `certPath` (full chain, then key):
 * a renewal in place, with no connection dropped. The PEM goes as a payload
 * ended by a blank line, so blank lines inside it are dropped.
 */
export function renewCertCommands(certPath: string, pem: string): string[] {
  const path = checked("certificate path", certPath);
  const payload = pem
    .split("\n")
    .filter((line) => line.trim() !== "")
    .join("\n");
  return [`set ssl cert ${path} <<\n${payload}\n`, `commit ssl cert ${path}`];
}

/**
 * A new certificate pushed to HAProxy at runtime and listed for `sni` in
 * `crtList`, in the order HAProxy wants: create the entry, fill and commit
 * it, then list it.
 */
export function addCertCommands(
  certPath: string,
  pem: string,
  crtList: string,
  sni: string,
): string[] {
  const path = checked("certificate path", certPath);
  return [
    `new ssl cert ${path}`,
    ...renewCertCommands(path, pem),
    `add ssl crt-list ${checked("crt-list", crtList)} <<\n${path} ${checked("name", sni)}\n`,
  ];
}

/** `show map` output (`0x55d… key value` lines) as key → value. */
export function parseShowMap(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [, key, value] = line.trim().split(/\s+/);
    if (key !== undefined && value !== undefined) entries.set(key, value);
  }
  return entries;
}

/**
 * HAProxy answers a failed command with a message instead of an empty
 * line; these are the ones the map commands give.
 */
export function runtimeError(command: string, answer: string): McpError | undefined {
  const text = answer.trim();
  const refused =
    /^(Unknown|Missing|Unable|Failed|Not found|This command|Permission denied|Can't|Cannot|No )/i;
  if (refused.test(text) || /\n(Error|Failed)\b/i.test(text)) {
    return new McpError("internal", `haproxy refused "${command}": ${text}`);
  }
  return undefined;
}

/**
 * Sends one command to an HAProxy socket (the stats socket, or the master
 * socket) and returns the answer as it came, read until HAProxy closes.
 */
export function socketCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let answer = "";
    socket.setEncoding("utf8");
    socket.setTimeout(COMMAND_TIMEOUT_MS, () =>
      socket.destroy(new Error(`no answer from haproxy in ${COMMAND_TIMEOUT_MS} ms`)),
    );
    socket.on("connect", () => socket.end(`${command}\n`));
    socket.on("data", (chunk: string) => (answer += chunk));
    socket.on("close", (hadError) => {
      if (!hadError) resolve(answer);
    });
    socket.on("error", (err) =>
      reject(new McpError("internal", `haproxy socket ${socketPath}: ${err.message}`)),
    );
  });
}

/** Sends one runtime API command to the stats socket; a refusal is an error. */
export async function runtimeCommand(socketPath: string, command: string): Promise<string> {
  const answer = await socketCommand(socketPath, command);
  const err = runtimeError(command, answer);
  if (err) throw err;
  return answer;
}
