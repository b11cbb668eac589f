/**
 * What the executors load, read from the bundler's module graph: the validator's schema layer
 * (@ark/schema) but not arktype's parser and keyword scopes, none of the runner's modules or its
 * logger, and nothing heavy before the Claude Code executor has started Claude Code.
 */
import { describe, expect, test } from "bun:test";
import { join, relative, resolve } from "node:path";
import { REPO_ROOT } from "../support/processes.ts";

interface Graph {
  /** Every module reachable from the entry, repo-relative. */
  all: string[];
  /** Only through static imports: what is loaded before the entry's first line runs. */
  static: string[];
}

async function moduleGraph(entry: string): Promise<Graph> {
  const { metafile } = await Bun.build({ entrypoints: [join(REPO_ROOT, entry)], target: "bun", metafile: true });
  const inputs = metafile!.inputs;
  const repoPath = (path: string) => relative(REPO_ROOT, resolve(path));
  const byPath = new Map(Object.entries(inputs).map(([path, input]) => [repoPath(path), input]));
  const walk = (onlyStatic: boolean): string[] => {
    const seen = new Set<string>([entry]);
    const queue = [entry];
    for (let path = queue.pop(); path !== undefined; path = queue.pop()) {
      for (const edge of byPath.get(path)?.imports ?? []) {
        const next = repoPath(edge.path);
        if ((onlyStatic && edge.kind !== "import-statement") || seen.has(next)) continue;
        seen.add(next);
        queue.push(next);
      }
    }
    return [...seen].sort();
  };
  return { all: walk(false), static: walk(true) };
}

/** The runner's side: its commands, loop, coordinator client, MCP server, logger and CLI parser. */
const RUNNER_ONLY = [/^src\/(cli|runner|coordinator|mcp|exec)\//, /node_modules\/(consola|citty)\//];
/** arktype itself, but for its config entry (which only configures the schema layer). */
const ARKTYPE_PARSER = /node_modules\/arktype\/(?!out\/config\.js$)/;

describe("executor module graphs", () => {
  for (const entry of ["src/executors/test-executor.ts", "src/executors/claude-code-entry.ts"]) {
    test(`${entry}: no arktype parser, nothing of the runner`, async () => {
      const { all } = await moduleGraph(entry);
      expect(all.some((path) => path.includes("node_modules/@ark/schema/"))).toBe(true);
      expect(all.filter((path) => ARKTYPE_PARSER.test(path))).toEqual([]);
      expect(all.filter((path) => RUNNER_ONLY.some((pattern) => pattern.test(path)))).toEqual([]);
    });
  }

  test("the Claude Code executor's entry loads neither the Agent SDK nor the validator before starting Claude Code", async () => {
    const { static: before } = await moduleGraph("src/executors/claude-code-entry.ts");
    const heavy = before.filter((path) =>
      /node_modules\/(?!@anthropic-ai\/claude-agent-sdk\/package\.json$)/.test(path),
    );
    expect(heavy).toEqual([]);
  });
});
