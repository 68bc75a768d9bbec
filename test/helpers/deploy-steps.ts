/** What the deploy progress tests (unit and integration) expect of the steps a deploy reports. */

/**
 * The steps every deploy of a fresh component passes, in this order (the
 * step runner may put others between them, e.g. health).
 */
export const FRESH_DEPLOY_STEPS: readonly string[] = [
  "policy",
  "record",
  "pull",
  "allocate ports",
  "create container",
  "start container",
  "commit",
];

/** `wanted` appears in `list` in this order (not necessarily adjacent). */
export function inOrder(list: readonly string[], wanted: readonly string[]): boolean {
  let i = 0;
  for (const item of list) if (item === wanted[i]) i++;
  return i === wanted.length;
}
