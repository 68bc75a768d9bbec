/**
 * A component's `volumes` entry, podman's `-v source:destination[:options]`
 * text, split at its colons: the one reading the validator, the policy, the
 * agent's create body and service export share. Each still says itself what
 * it refuses (`extra`, a relative path, an option it cannot map).
 */
export interface VolumeParts {
  source: string;
  destination: string;
  /** The third field as written (comma-separated options), absent when there is none. */
  options: string | undefined;
  /** Any fields beyond the third: none in a valid entry. */
  extra: string[];
}

export function splitVolume(text: string): VolumeParts {
  const [source = "", destination = "", options, ...extra] = text.split(":");
  return { source, destination, options, extra };
}
