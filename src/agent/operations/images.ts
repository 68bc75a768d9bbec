/**
 * Remembers which images are present locally so that a redeploy of a present,
 * immutably tagged image spawns no `podman image exists` or `pull`: the hot
 * path is then the same `rm -f` + `run` an operator would type. The agent is
 * the only caller of podman on its node; if an image is removed behind its
 * back, `forget()` (called when `run` reports it missing) resets the entry.
 */
import type { Runtime } from "../../runtime/types.js";
import { parseImageRef } from "../../servicedef/image.js";

/** Tags that may point at different content tomorrow: always pulled. */
export function isMutableReference(image: string): boolean {
  const ref = parseImageRef(image);
  if (ref.digest) return false;
  return ref.tag === undefined || ref.tag === "latest";
}

export class ImageCache {
  private readonly present = new Set<string>();

  constructor(private readonly runtime: Runtime) {}

  /** Makes sure `image` is available locally; returns whether it pulled. */
  async ensure(image: string): Promise<boolean> {
    const mutable = isMutableReference(image);
    if (!mutable && this.present.has(image)) return false;
    if (!mutable && (await this.runtime.imageExists(image))) {
      this.present.add(image);
      return false;
    }
    await this.runtime.pull(image);
    this.present.add(image);
    return true;
  }

  forget(image: string): void {
    this.present.delete(image);
  }
}
