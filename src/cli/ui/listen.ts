/**
 * `mcp ui --listen host:port`. Its own small module: program.ts parses the
 * option before the command's module (HTTP, gRPC) is loaded.
 */
import { isLoopbackHost, parseHostPort, type HostPort } from "../../config/address.js";

export const DEFAULT_LISTEN = "127.0.0.1:7700";

export interface Listen extends HostPort {
  /** Only this machine can reach it: no token needed (access.ts). */
  loopback: boolean;
}

/** `host:port` (port 0: any free one); throws an Error saying what is wrong. */
export function parseListen(text: string): Listen {
  const hp = parseHostPort(text);
  return { ...hp, loopback: isLoopbackHost(hp.host) };
}
