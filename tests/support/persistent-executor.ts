/** An executor run as a persistent session for tests: lines written to its stdin, its stdout read line by line. */
import type { Subprocess } from "bun";
import { LIFECYCLE_ENV } from "../../src/protocol/lifecycle.ts";
import {
  type ExecutorLine,
  INTERRUPT_LINE,
  parseExecutorLine,
  SHUTDOWN_LINE,
  turnLine,
} from "../../src/protocol/session-lines.ts";
import type { JsonObject } from "../../src/shared/validation.ts";
import { onTeardown } from "./teardown.ts";

export class PersistentExecutor {
  readonly process: Subprocess<"pipe", "pipe", "pipe">;
  readonly exited: Promise<number>;
  private stdoutText = "";
  private stderrText = "";
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private readonly stdoutDone: Promise<void>;

  /** Starts `argv` with AGENT_RUNNER_LIFECYCLE=persistent and writes `invocation` as its first line. */
  constructor(
    argv: string[],
    invocation: JsonObject,
    options: {
      env: Record<string, string | undefined>;
      cwd?: string;
      timeoutMs?: number;
      /** Descriptors the child gets from 4 on (a sandbox's mounts). */
      fds?: number[];
    },
  ) {
    this.process = Bun.spawn(argv, {
      cwd: options.cwd,
      env: { ...options.env, [LIFECYCLE_ENV]: "persistent" },
      stdio: ["pipe", "pipe", "pipe", "ignore", ...(options.fds ?? [])],
      timeout: options.timeoutMs ?? 60_000,
    }) as Subprocess<"pipe", "pipe", "pipe">;
    onTeardown(() => this.process.kill("SIGKILL"));
    this.stdoutDone = this.readStdout();
    void this.readStderr();
    this.exited = this.process.exited;
    this.write(`${JSON.stringify(invocation)}\n`);
  }

  get pid(): number {
    return this.process.pid;
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Writes raw text to its stdin. */
  write(text: string): void {
    this.process.stdin.write(text);
    this.process.stdin.flush();
  }

  turn(parameters: JsonObject): void {
    this.write(turnLine(parameters));
  }

  interrupt(): void {
    this.write(INTERRUPT_LINE);
  }

  shutdown(): void {
    this.write(SHUTDOWN_LINE);
  }

  /** Closes its stdin (end of input). */
  endInput(): void {
    this.process.stdin.end();
  }

  /** The next line of its stdout, which must be a whole turn_complete; rejects when stdout ends first. */
  async turnComplete(): Promise<ExecutorLine> {
    const line = await this.nextLine();
    if (line === undefined) throw new Error(`stdout ended without a turn_complete; stderr:\n${this.stderrText}`);
    const message = parseExecutorLine(line);
    if (typeof message?.result !== "string") throw new Error(`not a turn_complete with a result: ${line}`);
    return message;
  }

  /** The next line of its stdout, or undefined once it has ended. */
  async nextLine(): Promise<string | undefined> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      const ended = await Promise.race([
        this.stdoutDone.then(() => true),
        new Promise<boolean>((resolve) => this.waiters.push(() => resolve(false))),
      ]);
      if (ended && this.lines.length === 0) return undefined;
    }
  }

  /** Everything it printed on stdout after the lines already taken, once it has exited. */
  async rest(): Promise<string[]> {
    await this.stdoutDone;
    return this.lines.splice(0);
  }

  private async readStdout(): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of this.process.stdout) {
      const text = decoder.decode(chunk, { stream: true });
      this.stdoutText += text;
      pending += text;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of this.waiters.splice(0)) wake();
    }
    if (pending !== "") this.lines.push(pending);
    for (const wake of this.waiters.splice(0)) wake();
  }

  private async readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.process.stderr) this.stderrText += decoder.decode(chunk, { stream: true });
  }
}
