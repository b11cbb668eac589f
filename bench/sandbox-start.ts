#!/usr/bin/env bun
/**
 * `bun bench/sandbox-start.ts [--runs N]`: what the bubblewrap sandbox adds to an executor's start.
 * Time from the ExecutorProcess constructor (the sandbox's mounts worked out included) to the
 * executor's first line on stdout, without and with a sandbox, runs interleaved; medians and p90
 * of N (default 20) after 3 warm-up runs each.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { INSTALL_DIR } from "../src/config/install-dir.ts";
import { claudeCodeSandboxNeeds } from "../src/executors/sandbox-needs.ts";
import { ExecutorProcess } from "../src/process/executor-process.ts";
import type { SandboxOptions } from "../src/process/sandbox.ts";
import { checkBubblewrap } from "../src/process/sandbox-check.ts";

const REPO = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--runs");
const RUNS = at >= 0 ? Number(process.argv[at + 1]) : 20;

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const ms = (value: number) => `${value.toFixed(1)} ms`;

/** Milliseconds from the constructor to the first stdout line; the executor is then awaited. */
async function firstLine(
  argv: string[],
  env: Record<string, string | undefined>,
  cwd: string,
  sandbox?: SandboxOptions,
) {
  let first: number | undefined;
  const start = performance.now();
  const executor = new ExecutorProcess({
    argv,
    input: "{}",
    env,
    cwd,
    sandbox,
    stdout: "lines",
    onOutput: (stream) => {
      if (stream === "stdout") first ??= performance.now() - start;
    },
  });
  // Resolves once the output is read, the first line included.
  const status = await executor.exited;
  if (first === undefined) throw new Error(`${argv.join(" ")} wrote nothing (${JSON.stringify(status)})`);
  if (status.code !== 0) throw new Error(`${argv.join(" ")} ended ${JSON.stringify(status)}: ${executor.stderrTail()}`);
  return first;
}

const check = checkBubblewrap();
if (!check.ok) throw new Error(check.reason);
const base = mkdtempSync("/var/tmp/ar-sbx-bench-");
try {
  const home = join(base, "home");
  const project = join(base, "project");
  mkdirSync(home);
  mkdirSync(project);
  const env = { PATH: process.env.PATH, HOME: home };
  const sandbox: SandboxOptions = {
    settings: { extraWritable: [], extraHidden: [] },
    stateDirs: [join(base, "state")],
    runnerDir: INSTALL_DIR,
    needs: claudeCodeSandboxNeeds(env),
  };
  const executors: Array<[string, string[]]> = [
    ["/bin/echo (C, no runtime)", ["/bin/echo", "started"]],
    ["test executor --help (Bun)", [join(REPO, "executors/test-executor/ao-test-exec"), "--help"]],
    ["Claude Code executor --help (Bun + SDK)", [join(REPO, "executors/claude-code/ao-claude-code-exec"), "--help"]],
  ];
  console.log(`uid ${process.getuid?.()}, bwrap ${check.bwrap}, ${RUNS} runs each, spawn → first stdout line`);
  console.log(`${"executor".padEnd(40)} ${"direct p50/p90".padEnd(18)} ${"sandboxed p50/p90".padEnd(18)} added p50`);
  for (const [name, argv] of executors) {
    const direct: number[] = [];
    const sandboxed: number[] = [];
    // The direct runs fill Bun's transpiler cache in the home; the sandbox shows it read-only.
    for (let i = 0; i < 3; i++) {
      await firstLine(argv, env, project);
      await firstLine(argv, env, project, sandbox);
    }
    for (let i = 0; i < RUNS; i++) {
      direct.push(await firstLine(argv, env, project));
      sandboxed.push(await firstLine(argv, env, project, sandbox));
    }
    const pair = (values: number[]) => `${ms(quantile(values, 0.5))} / ${ms(quantile(values, 0.9))}`;
    const added = quantile(sandboxed, 0.5) - quantile(direct, 0.5);
    console.log(`${name.padEnd(40)} ${pair(direct).padEnd(18)} ${pair(sandboxed).padEnd(18)} ${ms(added)}`);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
