import type { Subprocess } from "bun";
import { sleep } from "./backoff.ts";
import { log } from "./log.ts";

/** How much of an executor's stderr is kept for the failure report. */
export const STDERR_TAIL_BYTES = 8 * 1024;
/** After exit, how long stray grandchildren holding stderr open may delay the outcome. */
const DRAIN_AFTER_EXIT_MS = 1000;
const LOG_LINE_MAX = 2000;

/** Executors reach the coordinator through a gateway that holds the credentials; they run AI
 * agents, and never get the client secret. */
const WITHHELD_FROM_EXECUTORS = ["AUTH0_RUNNER_CLIENT_SECRET"];

/** The environment an executor starts with: the base one less the secrets, plus `vars`. */
export function executorEnvironment(
  base: Record<string, string | undefined>,
  vars: Record<string, string>,
): Record<string, string | undefined> {
  const env = { ...base, ...vars };
  for (const name of WITHHELD_FROM_EXECUTORS) delete env[name];
  return env;
}

export type ExitStatus = { code: number; signal: null } | { code: null; signal: string };
export type StopSignal = "SIGTERM" | "SIGKILL";

export interface ExecutorProcessOptions {
  argv: string[];
  /** Written to the executor's stdin, which is then closed. */
  input: string;
  env: Record<string, string | undefined>;
  /** Names the process in log lines. */
  label: string;
  /** Log every output line at debug level (otherwise stdout is discarded and stderr only kept as a tail). */
  logOutput: boolean;
}

/** Keeps the last `limit` bytes of a stream without holding the rest. */
class Tail {
  private chunks: Uint8Array[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.byteLength >= this.limit) {
      this.size -= this.chunks.shift()!.byteLength;
    }
  }

  text(): string {
    const bytes = Buffer.concat(this.chunks);
    const start = Math.max(0, bytes.byteLength - this.limit);
    return bytes.subarray(start).toString("utf8");
  }
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
  onLine?: (line: string) => void,
): Promise<void> {
  const decoder = onLine ? new TextDecoder() : undefined;
  let partial = "";
  for await (const chunk of stream) {
    onChunk(chunk);
    if (decoder && onLine) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
      // A flood without newlines must not grow the buffer without bound.
      if (partial.length > LOG_LINE_MAX) {
        onLine(partial);
        partial = "";
      }
    }
  }
  if (onLine && partial) onLine(partial);
}

/**
 * One executor process: spawned in its own process group (so a Ctrl+C meant for the runner does
 * not reach it, and a stop reaches its children too), fed its invocation on stdin, its output
 * drained continuously so it can never block on a full pipe.
 */
export class ExecutorProcess {
  readonly pid: number;
  /** Resolves once, when the process has exited and its stderr is read. */
  readonly exited: Promise<ExitStatus>;
  private readonly process: Subprocess<Uint8Array, "pipe" | "ignore", "pipe">;
  private readonly stderr = new Tail(STDERR_TAIL_BYTES);
  private hasExited = false;

  /** Throws when the program cannot be started (missing, not executable). */
  constructor(options: ExecutorProcessOptions) {
    this.process = Bun.spawn(options.argv, {
      stdin: new TextEncoder().encode(options.input),
      stdout: options.logOutput ? "pipe" : "ignore",
      stderr: "pipe",
      env: options.env,
      detached: true,
    });
    this.pid = this.process.pid;
    const logLine = options.logOutput
      ? (stream: string) => (line: string) => log.debug(`[${options.label} ${stream}] ${line.slice(0, LOG_LINE_MAX)}`)
      : undefined;
    const drained = [
      drain(this.process.stderr, (chunk) => this.stderr.push(chunk), logLine?.("stderr")),
      this.process.stdout instanceof ReadableStream ? drain(this.process.stdout, () => {}, logLine?.("stdout")) : undefined,
    ];
    this.exited = this.process.exited.then(async (code) => {
      this.hasExited = true;
      await Promise.race([Promise.allSettled(drained), sleep(DRAIN_AFTER_EXIT_MS)]);
      const signal = this.process.signalCode;
      return signal ? { code: null, signal: String(signal) } : { code, signal: null };
    });
  }

  /** The last few KB the executor wrote to stderr. */
  stderrTail(): string {
    return this.stderr.text();
  }

  /**
   * SIGTERM, then SIGKILL if the process is still there after the grace period. Resolves with
   * the signal that ended it, or undefined if it had already exited.
   */
  async stop(graceMs: number): Promise<StopSignal | undefined> {
    if (this.hasExited) return undefined;
    this.signal("SIGTERM");
    const exitedInGrace = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (exitedInGrace) return "SIGTERM";
    this.signal("SIGKILL");
    await this.exited;
    return "SIGKILL";
  }

  private signal(signal: StopSignal): void {
    try {
      // The whole group: an executor's own children (an agent's tools) go with it.
      process.kill(-this.pid, signal);
    } catch {
      this.process.kill(signal);
    }
  }
}
