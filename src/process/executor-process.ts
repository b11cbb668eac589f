/**
 * One executor process: spawned in its own process group, fed its invocation on stdin, its
 * output drained continuously, stopped with SIGTERM then SIGKILL. Knows nothing of runs.
 */
import type { Subprocess } from "bun";
import { within } from "../shared/retry.ts";
import { drain, MAX_LINE_CHARS, Tail } from "./output.ts";

/** How much of an executor's stderr is kept for the failure report. */
export const STDERR_TAIL_BYTES = 8 * 1024;
/** After exit, how long stray grandchildren holding stderr open may delay the outcome. */
const DRAIN_AFTER_EXIT_MS = 1000;

export type ExitStatus = { code: number; signal: null } | { code: null; signal: string };
export type StopSignal = "SIGTERM" | "SIGKILL";

export interface ExecutorProcessOptions {
  argv: string[];
  /** Written to the executor's stdin, which is then closed. */
  input: string;
  env: Record<string, string | undefined>;
  /** Working directory (default: this process's). */
  cwd?: string;
  /**
   * stdout: `ignore`d, each line handed to `onOutput`, or `capture`d whole for `stdout()`.
   * stderr: kept as a tail (and each line handed to `onOutput`), or `inherit`ed (a terminal).
   */
  stdout?: "ignore" | "lines" | "capture";
  stderr?: "tail" | "inherit";
  onOutput?: (stream: "stdout" | "stderr", line: string) => void;
}

/**
 * Spawned in its own process group, so a Ctrl+C meant for the runner does not reach it and a
 * stop reaches its children too; output is drained so it can never block on a full pipe.
 */
export class ExecutorProcess {
  readonly pid: number;
  /** Resolves once, when the process has exited and its output is read. */
  readonly exited: Promise<ExitStatus>;
  private readonly child: Subprocess<Uint8Array, "pipe" | "ignore", "pipe" | "inherit">;
  private readonly stderr = new Tail(STDERR_TAIL_BYTES);
  private readonly captured: Uint8Array[] = [];
  private hasExited = false;

  /** Throws when the program cannot be started (missing, not executable). */
  constructor(options: ExecutorProcessOptions) {
    const stdoutMode = options.stdout ?? "ignore";
    const stderrMode = options.stderr ?? "tail";
    this.child = Bun.spawn(options.argv, {
      stdin: new TextEncoder().encode(options.input),
      stdout: stdoutMode === "ignore" ? "ignore" : "pipe",
      stderr: stderrMode === "inherit" ? "inherit" : "pipe",
      env: options.env,
      cwd: options.cwd,
      detached: true,
    });
    this.pid = this.child.pid;
    const { onOutput } = options;
    const lines = (stream: "stdout" | "stderr") =>
      onOutput ? (line: string) => onOutput(stream, line.slice(0, MAX_LINE_CHARS)) : undefined;
    const drained: Promise<void>[] = [];
    if (this.child.stderr instanceof ReadableStream) {
      drained.push(drain(this.child.stderr, (chunk) => this.stderr.push(chunk), lines("stderr")));
    }
    if (this.child.stdout instanceof ReadableStream) {
      const keep = stdoutMode === "capture" ? (chunk: Uint8Array) => this.captured.push(chunk) : () => {};
      drained.push(drain(this.child.stdout, keep, stdoutMode === "lines" ? lines("stdout") : undefined));
    }
    this.exited = this.child.exited.then(async (code) => {
      this.hasExited = true;
      await within(DRAIN_AFTER_EXIT_MS, Promise.allSettled(drained));
      const signal = this.child.signalCode;
      return signal ? { code: null, signal: String(signal) } : { code, signal: null };
    });
  }

  /** The last few KB the executor wrote to stderr (empty when stderr is inherited). */
  stderrTail(): string {
    return this.stderr.text();
  }

  /** Everything the executor wrote to stdout, when it was captured. */
  stdout(): string {
    return Buffer.concat(this.captured).toString("utf8");
  }

  /**
   * SIGTERM, then SIGKILL if the process is still there after the grace period. Resolves with
   * the signal that ended it, or undefined if it had already exited.
   */
  async stop(graceMs: number): Promise<StopSignal | undefined> {
    if (this.hasExited) return undefined;
    this.signal("SIGTERM");
    if (await within(graceMs, this.exited)) return "SIGTERM";
    this.signal("SIGKILL");
    await this.exited;
    return "SIGKILL";
  }

  private signal(signal: StopSignal): void {
    try {
      // The whole group: an executor's own children (an agent's tools) go with it.
      process.kill(-this.pid, signal);
    } catch {
      this.child.kill(signal);
    }
  }
}
