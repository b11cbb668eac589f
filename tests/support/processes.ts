/** Child processes for tests: the repo root, a clean environment, runners and executors as real processes. */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { runnerEnvironmentVariables } from "../../src/config/flags.ts";
import { descendantsOf } from "../../src/shared/process-group.ts";
import { onTeardown } from "./teardown.ts";

export const REPO_ROOT = join(import.meta.dir, "..", "..");
export const TEST_EXECUTOR = join(REPO_ROOT, "executors/test-executor/ao-test-exec");
export const CLAUDE_CODE_EXECUTOR = join(REPO_ROOT, "executors/claude-code/ao-claude-code-exec");

export interface ProcessOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end with the given stdin; a hung one is killed after `timeoutMs`. */
export async function runProcess(
  argv: string[],
  options: { stdin?: string; env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<ProcessOutcome> {
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 60_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

/** A new temp directory in `where` (default: the system's), removed after the test. */
export function tempDir(prefix: string, where = tmpdir()): string {
  const dir = mkdtempSync(join(where, prefix));
  onTeardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Temp directories removed by `cleanup()` (for those a file keeps across its tests). */
export class TempDirs {
  private dirs: string[] = [];

  /** A new directory in `where` (default: the system's temp directory). */
  make(prefix = "ar-exec-", where = tmpdir()): string {
    const dir = mkdtempSync(join(where, prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Collects a child's stdout and stderr as they arrive, and lets a test await a line. */
export class OutputWatcher {
  private text = "";
  private waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  readonly closed: Promise<void>;

  constructor(streams: ReadableStream<Uint8Array>[]) {
    this.closed = Promise.all(streams.map((stream) => this.read(stream))).then(() => {});
  }

  get output(): string {
    return this.text;
  }

  /** Resolves when the output so far matches; rejects if the streams close without it. */
  waitFor(pattern: RegExp): Promise<void> {
    if (pattern.test(this.text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ pattern, resolve });
      void this.closed.then(() => {
        if (!pattern.test(this.text)) reject(new Error(`output never matched ${pattern}:\n${this.text}`));
      });
    });
  }

  private async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.text += decoder.decode(chunk, { stream: true });
      const ready = this.waiters.filter((w) => w.pattern.test(this.text));
      this.waiters = this.waiters.filter((w) => !ready.includes(w));
      for (const waiter of ready) waiter.resolve();
    }
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = Bun.spawnSync(["ps", "-o", "stat=", "-p", String(pid)])
    .stdout.toString()
    .trim();
  return stat !== "" && !stat.startsWith("Z");
}

/**
 * True once the process has exited (or is a zombie), checked every 20 ms up to `timeoutMs`:
 * nothing announces the end of a process that is not our child, so this looks until it is gone.
 */
export async function goneWithin(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!isAlive(pid)) return true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(20);
  }
}

/** The processes below `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const parents = [pid];
  for (let parent = parents.pop(); parent !== undefined; parent = parents.pop()) {
    try {
      for (const task of readdirSync(`/proc/${parent}/task`)) {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, "utf8").trim();
        if (!children) continue;
        const pids = children.split(" ").map(Number);
        found.push(...pids);
        parents.push(...pids);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/**
 * SIGKILLs a process and every process below it, and waits for it to end. The tree is read first:
 * a runner killed mid-run leaves executors in groups of their own that nothing would find after.
 */
export async function killTree(child: Subprocess): Promise<void> {
  const below = child.exitCode === null && child.signalCode === null ? descendants(child.pid) : [];
  child.kill("SIGKILL");
  for (const pid of below) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  await child.exited;
}

/** Settings of the runner or an executor that must not leak from the test's own environment. */
const OUTER_VARIABLES = new Set([...runnerEnvironmentVariables(), "CLAUDE_CODE_EXECUTABLE"]);
const isOuterSetting = (name: string) => /^(AUTH0_|AGENT_)/.test(name) || OUTER_VARIABLES.has(name);

/** Environment for a child (runner or executor): none of the outer settings, no colours, plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [name, value] of Object.entries({ ...process.env, ...extra })) {
    if (value === undefined || (isOuterSetting(name) && !(name in extra))) continue;
    env[name] = value;
  }
  return env;
}

export interface RunnerChild {
  process: Subprocess<"ignore", "pipe", "pipe">;
  output: OutputWatcher;
}

/** Starts `bun index.ts …` as a real process, killed after the test with all it started. */
export function spawnRunner(args: string[], env: Record<string, string> = {}): RunnerChild {
  const child = Bun.spawn([process.execPath, join(REPO_ROOT, "index.ts"), ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(env),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  onTeardown(() => killTree(child));
  return { process: child, output: new OutputWatcher([child.stdout, child.stderr]) };
}

/** This test process's descendants started for a session (by the environment the runner gave them). */
export function executorsOf(sessionId: string): number[] {
  return descendantsOf(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`AGENT_SESSION_ID=${sessionId}`);
    } catch {
      return false;
    }
  });
}
