import type { Subprocess } from "bun";
import { join } from "node:path";

export const REPO_ROOT = join(import.meta.dir, "..", "..");

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

/** Environment for a runner child: none of the outer runner settings leak in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (/^(AUTH0_|AGENT_|RUNNER_TAGS$|PROJECT_DIR$|POLL_TIMEOUT$|HEARTBEAT_INTERVAL$)/.test(name)) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

export interface RunnerChild {
  process: Subprocess<"ignore", "pipe", "pipe">;
  output: OutputWatcher;
}

/** Starts `bun index.ts …` as a real process. */
export function spawnRunner(args: string[], env: Record<string, string> = {}): RunnerChild {
  const child = Bun.spawn([process.execPath, join(REPO_ROOT, "index.ts"), ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(env),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  return { process: child, output: new OutputWatcher([child.stdout, child.stderr]) };
}
