/**
 * The floors of src/, read from the import statements of every module (type-only imports count:
 * they are a dependency too): what each folder may import, and no import cycles.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { REPO_ROOT } from "./support/processes.ts";

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Every module under src/ with the src/ modules it imports (repo-relative paths). */
function importGraph(): Map<string, string[]> {
  const modules = readdirSync(join(REPO_ROOT, "src"), { recursive: true })
    .map(String)
    .filter((file) => file.endsWith(".ts"))
    .map((file) => `src/${file}`);
  const graph = new Map<string, string[]>();
  for (const module of modules) {
    const text = readFileSync(join(REPO_ROOT, module), "utf8");
    const imports = [...text.matchAll(IMPORT)]
      .map((match) => match[1] ?? match[2] ?? "")
      .filter((specifier) => specifier.startsWith("."))
      .map((specifier) => relative(REPO_ROOT, resolve(REPO_ROOT, dirname(module), specifier)))
      .filter((path) => path.startsWith("src/"));
    graph.set(module, imports);
  }
  return graph;
}

const folderOf = (module: string) => module.split("/")[1] ?? "";

/** Strongly connected groups of more than one module (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (module: string) => {
    index.set(module, next);
    low.set(module, next++);
    stack.push(module);
    onStack.add(module);
    for (const target of graph.get(module) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(module, Math.min(low.get(module)!, low.get(target)!));
      } else if (onStack.has(target)) low.set(module, Math.min(low.get(module)!, index.get(target)!));
    }
    if (low.get(module) !== index.get(module)) return;
    const group: string[] = [];
    for (let member = stack.pop(); member !== undefined; member = stack.pop()) {
      onStack.delete(member);
      group.push(member);
      if (member === module) break;
    }
    if (group.length > 1) found.push(group.sort());
  };
  for (const module of graph.keys()) if (!index.has(module)) visit(module);
  return found;
}

/**
 * What a folder may import besides itself. The lower floors know nothing of the upper ones: the
 * process module knows no run and no executor, the doors (exec, mcp) no runner.
 */
const MAY_IMPORT: Record<string, string[]> = {
  shared: [],
  protocol: ["shared"],
  process: ["protocol", "shared"],
  executors: ["config", "process", "protocol", "shared"],
  config: ["executors", "process", "protocol", "shared"],
  coordinator: ["config", "protocol", "shared"],
  mcp: ["coordinator", "protocol", "shared"],
  exec: ["config", "process", "protocol", "shared"],
  runner: ["config", "coordinator", "mcp", "process", "protocol", "shared"],
  cli: ["config", "coordinator", "exec", "executors", "mcp", "process", "protocol", "runner", "shared"],
};

describe("module graph of src/", () => {
  const graph = importGraph();

  test("every folder imports only the floors it may", () => {
    const upward: string[] = [];
    for (const [module, imports] of graph) {
      const from = folderOf(module);
      const allowed = MAY_IMPORT[from];
      expect(allowed, `${from}/ is not a known folder of src/: add it to MAY_IMPORT`).toBeDefined();
      for (const target of imports) {
        const to = folderOf(target);
        if (to !== from && !allowed?.includes(to)) upward.push(`${module} → ${target}`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("exec/, mcp/ and process/ import nothing of runner/; process/ nothing of executors/", () => {
    const crossings = [...graph].flatMap(([module, imports]) =>
      imports
        .filter(
          (target) =>
            (["exec", "mcp", "process"].includes(folderOf(module)) && folderOf(target) === "runner") ||
            (folderOf(module) === "process" && folderOf(target) === "executors"),
        )
        .map((target) => `${module} → ${target}`),
    );
    expect(crossings).toEqual([]);
  });

  test("no import cycles", () => {
    expect(cycles(graph)).toEqual([]);
  });

  test("the reader sees every import (a known edge is found)", () => {
    expect(graph.get("src/runner/gateway.ts")).toContain("src/protocol/run-tokens.ts");
    expect(graph.get("src/cli/main.ts")?.some((target) => target.startsWith("src/cli/"))).toBe(true);
  });
});
