/**
 * Image references: `[registry[:port]/]path[:tag][@digest]`.
 * The tag is the component's "version" in `mcp ps`.
 */
export interface ImageRef {
  /** Everything before the tag/digest, e.g. `localhost/mcp-httpenv`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseImageRef(image: string): ImageRef {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A ':' after the last '/' separates the tag; one before it is a registry port.
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  let tag: string | undefined;
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const ref: ImageRef = { repository: rest };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The version shown for an image: its tag, else a short digest, else "". */
export function imageVersion(image: string): string {
  const ref = parseImageRef(image);
  if (ref.tag) return ref.tag;
  if (ref.digest) return ref.digest.replace(/^sha256:/, "").slice(0, 12);
  return "";
}

/** The repository's last path segment (`mcr.example:8443/team/api:v1` → `api`). */
export function imageName(image: string): string {
  const repo = parseImageRef(image).repository;
  return repo.slice(repo.lastIndexOf("/") + 1);
}
