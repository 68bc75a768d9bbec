/**
 * The shape the code must keep (docs/ARCHITECTURE.md): no import cycles
 * anywhere in src/ (type-only imports count too), and the CLI reaches
 * nothing in src/agent/, directly or through another module.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SRC = path.join(ROOT, "src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** Every relative import (static, type-only, dynamic, re-export) of every file under src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    const deps = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)]
      .map((m) => path.resolve(path.dirname(file), (m[1] ?? "").replace(/\.js$/, ".ts")))
      .filter((d) => existsSync(d));
    graph.set(file, deps);
  }
  return graph;
}

const rel = (p: string) => path.relative(ROOT, p);

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(rel(w));
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe("architecture", () => {
  const graph = importGraph();

  test("the import graph was read (sanity)", () => {
    assert.ok(graph.size > 50, `${graph.size} files`);
    assert.ok((graph.get(path.join(SRC, "cli/program.ts")) ?? []).length > 3);
  });

  test("no import cycles in src/", () => {
    assert.deepEqual(cycles(graph), []);
  });

  test("the CLI reaches nothing in src/agent/, directly or transitively", () => {
    const roots = [
      path.join(SRC, "bin/mcp.ts"),
      path.join(SRC, "bin/mcp-cli.ts"),
      ...[...graph.keys()].filter((f) => f.startsWith(path.join(SRC, "cli") + path.sep)),
    ];
    const seen = new Map<string, string>(); // file → the file that imported it
    const todo = [...roots];
    for (const r of roots) seen.set(r, "");
    while (todo.length > 0) {
      const f = todo.pop() ?? "";
      for (const d of graph.get(f) ?? []) {
        if (!seen.has(d)) {
          seen.set(d, f);
          todo.push(d);
        }
      }
    }
    const reached = [...seen.keys()].filter((f) =>
      f.startsWith(path.join(SRC, "agent") + path.sep),
    );
    assert.deepEqual(
      reached.map((f) => `${rel(f)} (imported by ${rel(seen.get(f) ?? "")})`),
      [],
    );
  });
});
