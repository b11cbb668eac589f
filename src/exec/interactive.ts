/**
 * `exec --interactive`: a conversation with one persistent executor of a profile. Each line typed
 * is a turn of the same session (the first one, or `--prompt`, starts it); each answer is handed
 * on as its turn completes. Ctrl+C interrupts the running turn (again: stops the executor,
 * SIGTERM then SIGKILL after the grace; a third time: kills it); at the prompt Ctrl+C, like the
 * end of input, ends the session (the shutdown line, then SIGTERM and SIGKILL if it stays).
 */
import { createInterface, type Interface } from "node:readline";
import type { ExitStatus } from "../process/executor-process.ts";
import type { PersistentExecutor, ShutdownEnd } from "../process/persistent-executor.ts";
import type { JsonObject } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { resultOfRecords } from "./local-gateway.ts";
import {
  endOf,
  type LocalExecutor,
  type LocalExecutorOptions,
  type LocalRunResult,
  signalExitCode,
  startLocalExecutor,
} from "./run-local.ts";

/** One turn's answer, as the turn completes. */
export interface TurnAnswer {
  turn: number;
  /** The turn_complete's result, or else what the turn's events said (its result event, else its last assistant message). */
  result: string;
  /** The structured output of the turn's result event, when the agent answered with one. */
  data?: JsonObject;
  /** A Ctrl+C cut it short. */
  interrupted: boolean;
}

/** The lines typed, one prompt each. */
export interface PromptLines {
  /** The next line; undefined at the end of input. */
  next(): Promise<string | undefined>;
}

export interface InteractiveOptions extends Omit<LocalExecutorOptions, "prompt"> {
  /** The first turn's prompt; without it, the first line typed. */
  prompt?: string;
  lines: PromptLines;
  /** Between the shutdown line and SIGTERM, and between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  onAnswer(answer: TurnAnswer): void;
}

/** No session was started: the input ended, or a signal came, before the first prompt. */
export interface NothingStarted {
  nothingStarted: true;
  exitCode: number;
  signal?: string;
}

export type InteractiveOutcome = LocalRunResult | NothingStarted;

/**
 * Where the conversation is, which decides what a Ctrl+C does: `first` (waiting for the first
 * prompt), `turn` (one under way), `prompt` (waiting for the next line), `ending` (shutdown sent).
 */
type Phase = "first" | "turn" | "prompt" | "ending";

/** What a signal does next: 1 ends the turn or the session cleanly, 2 stops the executor, 3 kills it. */
type Step = 0 | 1 | 2 | 3;

/** What ended the wait at the prompt. */
type AtPrompt = { kind: "line"; line: string } | { kind: "end" } | { kind: "exited"; status: ExitStatus };

export class InteractiveSession {
  private phase: Phase = "first";
  /** How far the signals since the phase began have escalated. */
  private step: Step = 0;
  private started?: LocalExecutor<PersistentExecutor>;
  /** Ends the wait for a line when a signal comes at the prompt (or before the first one). */
  private wake = Promise.withResolvers<{ kind: "end"; signal: string }>();
  /** The signal that ended the wait for a line, if one did. */
  private endSignal?: string;
  /** A stop (SIGTERM or SIGKILL) went to the executor: it is on its way out. */
  private stopped = false;

  constructor(private readonly options: InteractiveOptions) {}

  /** Ctrl+C (SIGINT): see the module's comment. */
  interrupt(signal = "SIGINT"): void {
    this.escalate(signal, (this.step + 1) as Step);
  }

  /** SIGTERM or SIGHUP to exec: at the prompt the session ends as on Ctrl+C; in a turn the executor is stopped at once. */
  terminate(signal = "SIGTERM"): void {
    this.escalate(signal, this.phase === "turn" ? (Math.max(this.step + 1, 2) as Step) : ((this.step + 1) as Step));
  }

  /** Runs the conversation to its end. */
  async run(): Promise<InteractiveOutcome> {
    let prompt = this.options.prompt;
    if (prompt === undefined) {
      log.debug("Waiting for the first prompt on stdin");
      const first = await this.nextPrompt();
      if (first.kind !== "line") {
        const signal = first.kind === "end" ? this.endSignal : undefined;
        return { nothingStarted: true, exitCode: signal ? signalExitCode(signal) : 0, ...(signal ? { signal } : {}) };
      }
      prompt = first.line;
    }
    this.enter("turn");
    this.started = await startLocalExecutor({ ...this.options, prompt }, "persistent");
    try {
      return await this.converse();
    } finally {
      // Every way out above waits for the executor's end; should one fail, nothing of it stays.
      this.started.executor.process.kill();
      await this.started.close();
    }
  }

  private async converse(): Promise<LocalRunResult> {
    const { executor, gateway } = this.started!;
    // A signal that came while the executor was being started acts now.
    this.act();
    for (let turn = 1, from = 0; ; turn++) {
      const end = await executor.turnEnded();
      if (end.kind === "exited") {
        if (end.status.code === 0) log.warn(`The executor exited during turn ${turn} without completing it`);
        return this.outcome(end.status, `during turn ${turn}`);
      }
      // Stopped as the turn completed: it is ending, there is no next prompt.
      if (this.stopped) return this.outcome(await executor.process.exited, `during turn ${turn}`);
      this.enter("prompt");
      const reported = end.result ? undefined : resultOfRecords(gateway.records.slice(from));
      this.options.onAnswer({
        turn,
        result: end.result || (reported?.text ?? ""),
        ...(reported?.data ? { data: reported.data } : {}),
        interrupted: end.interrupted === true,
      });
      const next = await this.nextPrompt();
      if (next.kind === "exited") {
        log.warn("The executor ended the session by itself while waiting for the next prompt");
        return this.outcome(next.status, "while waiting for the next prompt");
      }
      if (next.kind === "end") return this.shutdown();
      from = gateway.records.length;
      this.enter("turn");
      if (!executor.startTurn({ prompt: next.line })) {
        log.warn("The executor no longer reads its input (its stdin is closed): it is ended");
        return this.outcome(await executor.process.exited, `before turn ${turn + 1}`);
      }
      log.debug(`Turn ${turn + 1} sent to the executor (pid ${executor.pid})`);
    }
  }

  /** The next non-blank line, unless the input ends, a signal ends the session, or the executor exits first. */
  private async nextPrompt(): Promise<AtPrompt> {
    const exited = this.started?.executor.process.exited.then((status) => ({ kind: "exited", status }) as const);
    for (;;) {
      // Input that cannot be read is its end.
      const line = this.options.lines.next().then(
        (text) => (text === undefined ? ({ kind: "end" } as const) : text),
        () => ({ kind: "end" }) as const,
      );
      const next = await Promise.race([line, this.wake.promise, ...(exited ? [exited] : [])]);
      if (typeof next === "string") {
        if (next.trim() === "") continue;
        return { kind: "line", line: next };
      }
      if (next.kind === "end" && "signal" in next) this.endSignal = next.signal;
      return next;
    }
  }

  /** Ends the session: the shutdown line and end of input, then SIGTERM and SIGKILL after the grace each. */
  private async shutdown(): Promise<LocalRunResult> {
    this.phase = "ending";
    this.step = Math.max(this.step, 1) as Step;
    const ending = this.started!.executor.shutdown(this.options.stopGraceMs);
    // Signals that came on top of the one that ended the session act now.
    this.act();
    const ended: ShutdownEnd = await ending;
    const status: ExitStatus = ended.kind === "exited" ? ended.status : { code: null, signal: ended.signal };
    return this.outcome(status);
  }

  private enter(phase: Phase): void {
    this.phase = phase;
    this.step = 0;
  }

  private escalate(signal: string, step: Step): void {
    this.step = Math.min(step, 3) as Step;
    if (this.phase === "first" || this.phase === "prompt") this.wake.resolve({ kind: "end", signal });
    // Before the first prompt nothing runs: the wait ends, and with it exec.
    if (this.phase === "first") return;
    if (this.step === 1) {
      log.warn(
        this.phase === "turn"
          ? `${signal}: interrupting the turn; Ctrl+C again to stop the executor`
          : `${signal}: ending the session; Ctrl+C again to stop the executor`,
      );
    } else if (this.step === 2) {
      const grace = this.options.stopGraceMs / 1000;
      log.warn(`${signal}: stopping the executor (SIGTERM, SIGKILL in ${grace} s); Ctrl+C again to kill it now`);
    } else log.warn(`${signal} again: killing the executor now (SIGKILL)`);
    this.act();
  }

  /** Does what the signals so far ask of the executor, once it exists and a turn runs or the session ends. */
  private act(): void {
    const executor = this.started?.executor;
    if (!executor || (this.phase !== "turn" && this.phase !== "ending")) return;
    if (this.step === 1 && this.phase === "turn") executor.interrupt();
    else if (this.step === 2) {
      this.stopped = true;
      void executor.process.stop(this.options.stopGraceMs);
    } else if (this.step === 3) {
      this.stopped = true;
      executor.process.kill();
    }
  }

  private outcome(status: ExitStatus, endedWhen?: string): LocalRunResult {
    // Every turn's usage event counts: the whole conversation's.
    const end = endOf(this.started!, status, this.options);
    const last = resultOfRecords(end.records);
    return {
      ...end,
      stdout: "",
      result: last?.text ?? "",
      ...(last?.data ? { resultData: last.data } : {}),
      ...(endedWhen && end.exitCode !== 0 ? { endedWhen } : {}),
    };
  }
}

/** This process's stdin, line by line, in the terminal's own line mode (its Ctrl+C stays a SIGINT, Ctrl+D an end of input). */
export class TerminalLines implements PromptLines {
  private readonly reader: Interface;
  private readonly lines: AsyncIterator<string>;

  constructor() {
    this.reader = createInterface({ input: process.stdin, terminal: false, crlfDelay: Number.POSITIVE_INFINITY });
    this.lines = this.reader[Symbol.asyncIterator]();
  }

  async next(): Promise<string | undefined> {
    const terminal = process.stdin.isTTY;
    if (terminal) process.stderr.write("> ");
    const { value, done } = await this.lines.next();
    // Ctrl+D leaves the cursor after the prompt.
    if (done && terminal) process.stderr.write("\n");
    return done ? undefined : value;
  }

  /** Stops reading: nothing of stdin keeps the process alive. */
  close(): void {
    this.reader.close();
    process.stdin.destroy();
  }
}
