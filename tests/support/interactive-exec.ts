/**
 * `agent-runner exec --interactive` as a real process, without a pseudo-terminal: lines written to
 * its piped stdin, its stdout and stderr read as they come, a Ctrl+C sent as SIGINT, a Ctrl+D as the
 * end of its stdin. Also: the processes a test's exec left behind, found by an environment mark.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { cleanEnv, killTree, OutputWatcher, REPO_ROOT } from "./processes.ts";
import { onTeardown } from "./teardown.ts";

const INDEX = join(REPO_ROOT, "index.ts");
/** The variable that marks every process started for one exec (the executor inherits it, and its children). */
const MARK = "AR_TEST_EXEC_MARK";

export class InteractiveExec {
  readonly process: Subprocess<"pipe", "pipe", "pipe">;
  readonly stdout: OutputWatcher;
  readonly stderr: OutputWatcher;
  readonly exited: Promise<number>;
  /** Every process started for this exec carries it in its environment. */
  readonly mark = randomUUID();

  /** `exec --interactive` with `args` (with `oneShot`: plain `exec`, for the same harness). */
  constructor(args: string[], options: { env?: Record<string, string | undefined>; cwd: string; oneShot?: boolean }) {
    const mode = options.oneShot ? [] : ["--interactive"];
    this.process = Bun.spawn([process.execPath, INDEX, "exec", ...mode, ...args], {
      cwd: options.cwd,
      env: cleanEnv({ ...options.env, [MARK]: this.mark }),
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    onTeardown(() => killTree(this.process));
    onTeardown(() => killMarked(this.mark));
    this.stdout = new OutputWatcher([this.process.stdout]);
    this.stderr = new OutputWatcher([this.process.stderr]);
    this.exited = this.process.exited;
  }

  /** Types a line (and Enter). */
  type(line: string): void {
    this.process.stdin.write(`${line}\n`);
    this.process.stdin.flush();
  }

  /** Ctrl+D at the prompt: the end of its input. */
  endInput(): void {
    this.process.stdin.end();
  }

  /** Ctrl+C: SIGINT to exec (a terminal sends it to the foreground group, which the executor is not in). */
  ctrlC(): void {
    this.process.kill("SIGINT");
  }

  /** stdout's lines so far. */
  answers(): string[] {
    return this.stdout.output.split("\n").filter(Boolean);
  }

  /** The pids of exec's children (its executor, or the sandbox's bwrap). */
  children(): number[] {
    try {
      const text = readFileSync(`/proc/${this.process.pid}/task/${this.process.pid}/children`, "utf8").trim();
      return text === "" ? [] : text.split(" ").map(Number);
    } catch {
      return [];
    }
  }

  /** Resolves once exec has exited and its output is read; its exit code. */
  async end(): Promise<number> {
    const code = await this.exited;
    await Promise.all([this.stdout.closed, this.stderr.closed]);
    return code;
  }

  /** The processes still running that were started for this exec (exec itself excluded). */
  leftovers(): number[] {
    return marked(this.mark).filter((pid) => pid !== this.process.pid);
  }
}

/** Running processes whose environment carries `MARK=mark`. */
export function marked(mark: string): number[] {
  const needle = `${MARK}=${mark}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(needle)) found.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

function killMarked(mark: string): void {
  for (const pid of marked(mark)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

/** Waits up to `timeoutMs` for the marked processes to be gone (checked every 20 ms); what is left. */
export async function leftoversAfter(exec: InteractiveExec, timeoutMs: number): Promise<number[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = exec.leftovers();
    if (left.length === 0 || performance.now() > deadline) return left;
    await Bun.sleep(20);
  }
}
