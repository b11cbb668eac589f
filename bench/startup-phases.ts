#!/usr/bin/env bun
/**
 * `bun bench/startup-phases.ts [--compiled] [--build-flags "<extra bun build flags>"]`: where the
 * runner's start-up time and memory go. Loads the modules the CLI loads, in the order it loads
 * them, then does what runRunner does before registering (gateway, MCP server, a first request),
 * and prints the time and RSS after each step, split into anonymous memory (heap, JIT, malloc)
 * and file-backed pages (the executable's code and embedded bytecode, shared with the page cache).
 * With --compiled it builds this file with the flags of package.json's build script (less the
 * sourcemap) into a temp dir and runs that; --build-flags adds flags to that build to see what
 * they change. Like index.ts, it starts with the start-up JIT policy.
 */
import { readFileSync } from "node:fs";
import pkg from "../package.json" with { type: "json" };

Bun.unsafe.setJITPolicy(1000);

/** VmRSS, RssAnon, RssFile of this process, in MB. */
function memory(): [number, number, number] {
  const status = readFileSync("/proc/self/status", "utf8");
  const mb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) / 1024;
  return [mb("VmRSS"), mb("RssAnon"), mb("RssFile")];
}

if (process.argv.includes("--compiled")) {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const at = process.argv.indexOf("--build-flags");
  const extra = at >= 0 ? (process.argv[at + 1] ?? "").split(" ").filter(Boolean) : [];
  const dir = mkdtempSync(join(tmpdir(), "ar-phases-"));
  try {
    const out = join(dir, "phases");
    // The same flags as package.json's build (less the sourcemap), so the numbers are the executable's.
    const script = pkg.scripts.build.split(/\s+/);
    const flags = [
      ...script.filter((word, i) => word.startsWith("--") && word !== "--sourcemap" && script[i - 1] !== "--outfile"),
      ...extra,
    ].filter((flag) => flag !== "--outfile");
    const build = Bun.spawnSync(["bun", "build", ...flags, import.meta.path, "--outfile", out], { stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(build.stderr.toString());
    console.log(`bun build ${flags.join(" ")}`);
    const run = Bun.spawnSync([out], { stdout: "inherit", stderr: "inherit" });
    process.exit(run.exitCode ?? 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows: Array<[string, number, [number, number, number]]> = [];
let last = performance.now();
// performance.now() counts from the process's start: the first row is the runtime's own boot.
rows.push(["runtime boot (before the first line of JS)", last, memory()]);
async function step(name: string, body: () => unknown) {
  await body();
  const now = performance.now();
  rows.push([name, now - last, memory()]);
  last = now;
}

await step("citty", () => import("citty"));
await step("consola + src/shared/log.ts", () => import("../src/shared/log.ts"));
await step("src/config/runner-config.ts", () => import("../src/config/runner-config.ts"));
// Through src/shared/arktype.ts, as every module does: arktype configured jitless before its scopes are built.
await step("arktype (jitless; module init builds its keyword scopes)", () => import("../src/shared/arktype.ts"));
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
  const { RunTokens } = await import("../src/protocol/run-tokens.ts");
  const http = new CoordinatorHttp("http://127.0.0.1:9");
  gateway = startGateway({ http, hostname: "h", executorProfile: "p", tokens: new RunTokens() });
});
await step("startMcpServer() (the MCP SDK loads on the first request)", async () => {
  const { startMcpServer } = await import("../src/mcp/server.ts");
  const { CoordinatorHttp } = await import("../src/coordinator/http.ts");
  const { RunTokens } = await import("../src/protocol/run-tokens.ts");
  mcp = await startMcpServer({ coordinator: new CoordinatorHttp("http://127.0.0.1:9"), tokens: new RunTokens() });
});
await step("loadProfile('test') (arktype validation, fs checks)", async () => {
  const { loadProfile } = await import("../src/config/profiles.ts");
  loadProfile("test");
});
await step("a first fetch() (HTTP client; registration does one)", async () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ ok: true }) });
  await (await fetch(`http://127.0.0.1:${server.port}/`)).json();
  await server.stop(true);
});
Bun.gc(true);
rows.push(["after Bun.gc(true)", 0, memory()]);
await Bun.sleep(1000);
rows.push(["1 s later (what an idle runner settles at)", 0, memory()]);
await Promise.all([mcp?.stop(), gateway?.stop()]);

const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
const num = (value: number, width: number) => value.toFixed(1).padStart(width);
console.log(
  `${"step".padEnd(62)} ${"ms".padStart(7)} ${"RSS MB".padStart(7)} ${"anon".padStart(6)} ${"file".padStart(6)}`,
);
for (const [name, ms, [rss, anon, file]] of rows)
  console.log(`${name.padEnd(62)} ${num(ms, 7)} ${num(rss, 7)} ${num(anon, 6)} ${num(file, 6)}`);
console.log(`${"total".padEnd(62)} ${num(total, 7)}`);
