/**
 * An exported document as the file's text: a header saying what it is and
 * how to run it, the notes on what the format cannot express as comments,
 * then the YAML. Rendered as YAML 1.1 so strings that PyYAML
 * (podman-compose) or Go's YAML (podman kube play) would read as booleans
 * or numbers (`no`, `on`, `0755`) are quoted.
 */
import { stringify } from "yaml";

export interface Exported<T> {
  document: T;
  /** What the format cannot express, one sentence each: the comment at the top of the file. */
  notes: string[];
}

/** Width the comment lines are wrapped to. */
const WIDTH = 100;

/** `text` as `# ` comment lines of at most WIDTH, continuation lines indented by `indent`. */
function commentLines(text: string, first: string, indent: string): string[] {
  const lines: string[] = [];
  let line = first;
  for (const word of text.split(" ")) {
    if (line.trim() !== "#" && line.trim() !== "# -" && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = `${indent}${word}`;
    } else {
      line = line.endsWith(" ") ? `${line}${word}` : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

/** The file: `header` lines, the notes under `notesTitle`, then the document. Pure. */
export function renderExport(
  header: readonly string[],
  notesTitle: string,
  exported: Exported<unknown>,
): string {
  const comment = header.flatMap((h) => commentLines(h, "#", "# "));
  if (exported.notes.length > 0) {
    comment.push("#", ...commentLines(notesTitle, "#", "# "));
    for (const note of exported.notes) comment.push(...commentLines(note, "# -", "#   "));
  }
  const yaml = stringify(exported.document, { version: "1.1", lineWidth: 0 });
  return `${comment.join("\n")}\n${yaml}`;
}
