/**
 * A persistent executor: one process serving turn after turn of its session. The invocation is
 * its first line on stdin, each later turn a `turn` line; it says `turn_complete` on stdout after
 * each turn, and a `shutdown` line (or end-of-file) ends it. Knows nothing of runs.
 */
import { INTERRUPT_LINE, parseExecutorLine, SHUTDOWN_LINE, turnLine } from "../protocol/session-lines.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
import { within } from "../shared/retry.ts";
import type { JsonObject } from "../shared/validation.ts";
import { ExecutorProcess, type ExecutorProcessOptions, type ExitStatus } from "./executor-process.ts";

/**
 * The longest stdout line read whole: a `turn_complete` line carries the turn's answer. A longer
 * one is recognized by its start (`{"type": "turn_complete"`, as executors write it).
 */
const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;
const TURN_COMPLETE_START = /^\s*\{\s*"type"\s*:\s*"turn_complete"/;

/** How a turn ended: the executor said so (and lives on), or it exited. */
export type TurnEnd =
  | { kind: "completed"; result?: string; interrupted?: boolean }
  | { kind: "exited"; status: ExitStatus };

/** How a shutdown ended it: on its own after the shutdown line (with its exit), or by a signal. */
export type ShutdownEnd = { kind: "exited"; status: ExitStatus } | { kind: "killed"; signal: StopSignal };

export type PersistentExecutorOptions = Omit<ExecutorProcessOptions, "keepInputOpen" | "stdout" | "maxStdoutLineChars">;

export class PersistentExecutor {
  readonly process: ExecutorProcess;
  /** The turn under way (the first one from the start: the invocation is its input). */
  private turn?: PromiseWithResolvers<TurnEnd> = Promise.withResolvers<TurnEnd>();

  /** Spawns it with the invocation as its first line (`input`); throws like ExecutorProcess. */
  constructor(options: PersistentExecutorOptions) {
    const { onOutput } = options;
    this.process = new ExecutorProcess({
      ...options,
      input: `${options.input}\n`,
      keepInputOpen: true,
      stdout: "lines",
      maxStdoutLineChars: MAX_MESSAGE_CHARS,
      onOutput: (stream, line) => {
        if (stream === "stdout") this.read(line);
        onOutput?.(stream, line);
      },
    });
    void this.process.exited.then((status) => this.end({ kind: "exited", status }));
  }

  get pid(): number {
    return this.process.pid;
  }

  /** True while a turn is under way. */
  get busy(): boolean {
    return this.turn !== undefined;
  }

  /** The end of the turn under way: its `turn_complete`, or the exit. Throws when no turn is under way. */
  turnEnded(): Promise<TurnEnd> {
    if (!this.turn) throw new Error("no turn is under way");
    return this.turn.promise;
  }

  /**
   * Starts the next turn. False when it cannot take one: a turn is under way, or it no longer
   * reads its input. One that no longer reads it (it closed its stdin and lives on) can neither
   * take a turn nor be shut down by a line: it is killed, with all it started.
   */
  startTurn(parameters: JsonObject): boolean {
    if (this.turn) return false;
    const turn = Promise.withResolvers<TurnEnd>();
    if (!this.process.writeInput(turnLine(parameters))) {
      this.process.kill();
      return false;
    }
    this.turn = turn;
    return true;
  }

  /** Asks it to end the turn under way early; false when nothing was sent. */
  interrupt(): boolean {
    return this.turn !== undefined && this.process.writeInput(INTERRUPT_LINE);
  }

  /**
   * Ends it: the shutdown line and end-of-file, `graceMs` to exit on its own, then SIGTERM and,
   * after another `graceMs`, SIGKILL to its group.
   */
  async shutdown(graceMs: number): Promise<ShutdownEnd> {
    this.process.writeInput(SHUTDOWN_LINE);
    this.process.closeInput();
    if (await within(graceMs, this.process.exited)) return { kind: "exited", status: await this.process.exited };
    const signal = await this.process.stop(graceMs);
    return signal ? { kind: "killed", signal } : { kind: "exited", status: await this.process.exited };
  }

  private read(line: string): void {
    const message = parseExecutorLine(line) ?? (TURN_COMPLETE_START.test(line) ? { type: "turn_complete" } : undefined);
    if (message?.type !== "turn_complete") return;
    const { type: _, ...end } = message;
    this.end({ kind: "completed", ...end });
  }

  private end(end: TurnEnd): void {
    const turn = this.turn;
    this.turn = undefined;
    turn?.resolve(end);
  }
}
