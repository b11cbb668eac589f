/** Tools for the fault tests: fault fixtures and profiles, a runner as a real CLI process, its memory, waiting on a condition, a crash. */
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { ConsolaReporter } from "consola";
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import { log } from "../../src/shared/log.ts";
import type { FakeCoordinator } from "./fake-coordinator.ts";
import { cleanEnv, killTree, REPO_ROOT, tempDir } from "./processes.ts";
import { onTeardown } from "./teardown.ts";

export const FAULT_FIXTURES = join(import.meta.dir, "..", "fixtures", "faults");

/** A profile running one of the fault-suite fixture executors (for the in-process harness). */
export function faultProfile(fixture: string): ExecutorProfile {
  const command = join(FAULT_FIXTURES, fixture);
  return {
    name: "fault",
    type: "fault-executor",
    command,
    config: {},
    lifecycle: "one_shot",
    source: "test",
    argv: [command],
  };
}

/** Resident and peak memory of a process, in MB (Linux /proc). */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: Math.round(kb("VmRSS") / 102.4) / 10, peak: Math.round(kb("VmHWM") / 102.4) / 10 };
}

/** Waits for a condition no event announces (a count inside the runner), checking every 10 ms. */
export async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Collects what the in-process runner logs, for asserting on its messages, until `stop()` or the test's end. */
export function captureLog() {
  const lines: string[] = [];
  const reporter: ConsolaReporter = {
    log(entry) {
      lines.push(
        [entry.message, ...entry.args]
          .filter((part) => part !== undefined)
          .map(String)
          .join(" "),
      );
    },
  };
  log.addReporter(reporter);
  const stop = () => log.removeReporter(reporter);
  onTeardown(stop);
  return {
    lines,
    /** Resolves with the first line (already logged or still to come) that matches. */
    async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
      await until(
        () => lines.some((line) => pattern.test(line)),
        `a log line matching ${pattern}:\n${lines.join("\n")}`,
        timeoutMs,
      );
      return lines.find((line) => pattern.test(line))!;
    },
    stop,
  };
}

/** A temp directory holding one profile `fault` for the given fixture; removed after the test. */
export function profilesDirFor(command: string): string {
  const dir = tempDir("ar-faults-");
  writeFileSync(join(dir, "fault.json"), JSON.stringify({ type: "fault", command }));
  return dir;
}

export interface CliRunner {
  process: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything written so far to stdout and stderr (only the last `keepBytes`). */
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  closed: Promise<void>;
  kill(): Promise<void>;
}

/**
 * `bun index.ts …` as its own process (the runner's memory must be its own to be measured).
 * Output is drained continuously and only a tail kept, so a flood cannot grow the test's memory.
 * Killed after the test with all it started.
 */
export function startCli(args: string[], env: Record<string, string> = {}, keepBytes = 200_000): CliRunner {
  const child = Bun.spawn([process.execPath, join(REPO_ROOT, "index.ts"), ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv({ NO_COLOR: "1", ...env }),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  onTeardown(() => killTree(child));
  let tail = "";
  const allLines: Array<(line: string) => void> = [];
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let partial = "";
    const onLine = (line: string) => {
      for (const listener of allLines) listener(line);
    };
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      tail = (tail + text).slice(-keepBytes);
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
    if (partial) onLine(partial);
  };
  const closed = Promise.all([read(child.stdout), read(child.stderr)]).then(() => {});
  return {
    process: child,
    output: () => tail,
    async waitFor(pattern, timeoutMs = 20_000) {
      if (pattern.test(tail)) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`runner output never matched ${pattern}:\n${tail.slice(-5000)}`)),
          timeoutMs,
        );
        allLines.push((line) => {
          if (pattern.test(line)) {
            clearTimeout(timer);
            resolve();
          }
        });
        void closed.then(() => {
          if (!pattern.test(tail)) {
            clearTimeout(timer);
            reject(new Error(`runner exited; output never matched ${pattern}:\n${tail.slice(-5000)}`));
          }
        });
      });
    },
    closed,
    async kill() {
      child.kill("SIGKILL");
      await child.exited;
    },
  };
}

/**
 * SIGKILLs `runner` and waits for its end. The coordinator still counts the dead incarnation
 * online, as it would after a crash: the next registration gets 409 until it is adopted.
 */
export async function crashRunner(fake: FakeCoordinator, runner: CliRunner): Promise<void> {
  runner.process.kill("SIGKILL");
  await runner.process.exited;
  fake.heldBy = hostname();
}
