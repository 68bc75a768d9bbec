/**
 * What a runtime failure means, for the operations that treat some apart (a
 * taken port is retried on another, a missing container is already
 * stopped…). Matched against the message and cause podman's API answers
 * (LibpodError, src/runtime/libpod/): the words of podman's own Go errors,
 * which its CLI prints too. Tested on captured bodies (test/unit/libpod.test.ts).
 */
import { LibpodError } from "./libpod/errors.js";

function podmanSays(err: unknown, pattern: RegExp): boolean {
  return err instanceof LibpodError && pattern.test(`${err.apiMessage}\n${err.apiCause}`);
}

/** A port mapping asked for a host port something else holds (the start failed). */
export function isAddressInUse(err: unknown): boolean {
  return podmanSays(err, /address already in use/i);
}

/** The image is not in local storage (create never pulls) or the registry lacks it. */
export function isNoSuchImage(err: unknown): boolean {
  return podmanSays(err, /image not known|manifest unknown|name unknown|no such image/i);
}

/** A pull failed: registry unreachable, unknown, refused. */
export function isPullFailure(err: unknown): boolean {
  return podmanSays(
    err,
    /initializing source|pinging container registry|reading manifest|unable to pull|manifest unknown/i,
  );
}

/** stop/start/restart/rename/exec/logs named a container that does not exist. */
export function isNoSuchContainer(err: unknown): boolean {
  return podmanSays(err, /no such container/i);
}

/** Logs were asked `since` a value podman cannot read (`failed to parse query parameter 'since'`). */
export function isInvalidSince(err: unknown): boolean {
  return podmanSays(err, /parse query parameter 'since'/i);
}

/**
 * Runs a container operation whose goal is met when the container does not
 * exist (stop, restart-or-recreate): resolves false instead of failing then.
 */
export async function ifContainerExists(op: Promise<void>): Promise<boolean> {
  try {
    await op;
    return true;
  } catch (err) {
    if (isNoSuchContainer(err)) return false;
    throw err;
  }
}

/**
 * A create whose name an existing container has (which run must leave
 * alone), or a rename to a taken name (`name X already in use, cannot rename`).
 */
export function isNameInUse(err: unknown): boolean {
  return podmanSays(
    err,
    /name "[^"]*" is already in use|that name is already in use|already in use, cannot rename/i,
  );
}
