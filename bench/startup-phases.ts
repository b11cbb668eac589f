#!/usr/bin/env bun
/**
 * `bun bench/startup-phases.ts [--compiled]`: where the runner's start-up time and memory go.
 * Loads the modules the CLI loads, in the order it loads them, then does what runRunner does
 * before registering (gateway, MCP server), and prints the time and RSS after each step.
 * With --compiled it builds this file with `bun build --compile --minify` into a temp dir and runs
 * that, which is how the single executable starts.
 */
import { readFileSync } from "node:fs";

const rss = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) / 1024);

if (process.argv.includes("--compiled")) {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "ar-phases-"));
  try {
    const out = join(dir, "phases");
    const build = Bun.spawnSync(["bun", "build", "--compile", "--minify", import.meta.path, "--outfile", out], {
      stderr: "pipe",
    });
    if (build.exitCode !== 0) throw new Error(build.stderr.toString());
    const run = Bun.spawnSync([out], { stdout: "inherit", stderr: "inherit" });
    process.exit(run.exitCode ?? 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows: Array<[string, number, number]> = [];
let last = performance.now();
// performance.now() counts from the process's start: the first row is the runtime's own boot.
rows.push(["runtime boot (before the first line of JS)", last, rss()]);
async function step(name: string, body: () => unknown) {
  await body();
  const now = performance.now();
  rows.push([name, now - last, rss()]);
  last = now;
}

await step("citty", () => import("citty"));
await step("consola + src/shared/log.ts", () => import("../src/shared/log.ts"));
await step("src/config/runner-config.ts", () => import("../src/config/runner-config.ts"));
await step("arktype (module init: builds its keyword scopes)", () => import("arktype"));
await step("src/config/profiles.ts (+ shared/json, own types)", () => import("../src/config/profiles.ts"));
await step("src/coordinator/client.ts + runner/agent-worker.ts (their arktype types)", async () => {
  await import("../src/coordinator/client.ts");
  await import("../src/runner/agent-worker.ts");
});
await step("src/runner/start-runner.ts + gateway, auth", () => import("../src/runner/start-runner.ts"));
await step("src/mcp/server.ts (module only)", () => import("../src/mcp/server.ts"));
let mcp: { stop(): Promise<void> } | undefined;
let gateway: { stop(): Promise<void> } | undefined;
await step("startGateway()", async () => {
  const { startGateway } = await import("../src/runner/gateway.ts");
  const { CoordinatorHttp } = await import("../src/coordinator/http.ts");
  const { RunTokens } = await import("../src/runner/run-tokens.ts");
  const http = new CoordinatorHttp("http://127.0.0.1:9");
  gateway = startGateway({ http, hostname: "h", executorProfile: "p", tokens: new RunTokens() });
});
await step("startMcpServer() (imports the MCP SDK + zod, tools)", async () => {
  const { startMcpServer } = await import("../src/mcp/server.ts");
  const { CoordinatorHttp } = await import("../src/coordinator/http.ts");
  const { RunTokens } = await import("../src/runner/run-tokens.ts");
  mcp = await startMcpServer({ coordinator: new CoordinatorHttp("http://127.0.0.1:9"), tokens: new RunTokens() });
});
await step("loadProfile('test') (arktype validation, fs checks)", async () => {
  const { loadProfile } = await import("../src/config/profiles.ts");
  loadProfile("test");
});
await Promise.all([mcp?.stop(), gateway?.stop()]);
Bun.gc(true);
rows.push(["after Bun.gc(true)", 0, rss()]);

const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
console.log(`${"step".padEnd(62)} ${"ms".padStart(7)} ${"RSS MB".padStart(7)}`);
for (const [name, ms, mb] of rows)
  console.log(`${name.padEnd(62)} ${ms.toFixed(1).padStart(7)} ${String(mb).padStart(7)}`);
console.log(`${"total".padEnd(62)} ${total.toFixed(1).padStart(7)}`);
