#!/usr/bin/env bun
/**
 * `bun bench/sandbox-start.ts [--runs N]`: what the bubblewrap sandbox adds to an executor's start.
 * Time from Bun.spawn to the executor's first write on its stdout pipe, directly and through
 * bubblewrapArgv's prefix, runs interleaved; medians of N (default 20) after 3 warm-up runs each. A
 * third column shows what hiding Bun's transpiler cache would cost.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { bubblewrapArgv, checkBubblewrap } from "../src/process/sandbox.ts";

const REPO = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--runs");
const RUNS = at >= 0 ? Number(process.argv[at + 1]) : 20;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const ms = (value: number) => `${value.toFixed(2)} ms`;

/** Milliseconds from spawn to the first stdout chunk; the process is then awaited. */
async function firstWrite(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  const start = performance.now();
  const child = Bun.spawn(argv, { env, stdin: new Blob(["{}"]), stdout: "pipe", stderr: "ignore", detached: true });
  const reader = child.stdout.getReader();
  const { done } = await reader.read();
  const elapsed = performance.now() - start;
  if (done) throw new Error(`${argv.join(" ")} wrote nothing (exit ${await child.exited})`);
  while (!(await reader.read()).done);
  const code = await child.exited;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}`);
  return elapsed;
}

const check = checkBubblewrap();
if (!check.ok) throw new Error(check.reason);
const checkTimes: number[] = [];
for (let i = 0; i < 5; i++) {
  const start = performance.now();
  checkBubblewrap();
  checkTimes.push(performance.now() - start);
}

const base = mkdtempSync("/var/tmp/ar-sbx-bench-");
try {
  const home = join(base, "home");
  const project = join(base, "project");
  mkdirSync(home);
  mkdirSync(project);
  const env = { PATH: process.env.PATH, HOME: home };
  const options = { projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: { extraWritable: [], extraHidden: [] }, env };
  const argvTimes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    bubblewrapArgv(options);
    argvTimes.push(performance.now() - start);
  }

  const executors: Array<[string, string[]]> = [
    ["/bin/echo (C, no runtime)", ["/bin/echo", "started"]],
    ["test executor --help (Bun)", [join(REPO, "executors/test-executor/ao-test-exec"), "--help"]],
    ["Claude Code executor --help (Bun + SDK)", [join(REPO, "executors/claude-code/ao-claude-code-exec"), "--help"]],
  ];
  console.log(`uid ${process.getuid?.()}, ${RUNS} runs each; checkBubblewrap ${ms(median(checkTimes))}, bubblewrapArgv ${ms(median(argvTimes))}`);
  console.log("executor                                 direct     sandboxed  added      sandboxed, Bun's cache not shown");
  for (const [name, argv] of executors) {
    const times: Record<"direct" | "sandboxed" | "uncached", number[]> = { direct: [], sandboxed: [], uncached: [] };
    // The direct runs fill Bun's transpiler cache in the home; the sandbox shows it read-only once it exists.
    for (let i = 0; i < 3; i++) await firstWrite(argv, env);
    const prefix = bubblewrapArgv(options);
    const uncached = bubblewrapArgv({ ...options, env: { ...env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" } });
    for (let i = 0; i < 3; i++) await firstWrite([...prefix, ...argv], env);
    for (let i = 0; i < RUNS; i++) {
      times.direct.push(await firstWrite(argv, env));
      times.sandboxed.push(await firstWrite([...prefix, ...argv], env));
      times.uncached.push(await firstWrite([...uncached, ...argv], env));
    }
    const [d, s, u] = [median(times.direct), median(times.sandboxed), median(times.uncached)];
    console.log(`${name.padEnd(40)} ${ms(d).padEnd(10)} ${ms(s).padEnd(10)} ${ms(s - d).padEnd(10)} ${ms(u)}`);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
