/**
 * An executor's session as the kit runs it: what a session is to the kit, its turns each bounded
 * by the stop watch and followed by its result event (invocation 2.2), and a persistent session's
 * loop over the runner's stdin lines.
 */
import { type Invocation, invocationParameters } from "../../protocol/invocation.ts";
import { sessionEvents } from "../../protocol/session-events.ts";
import { parseSessionCommand, type SessionCommand, turnCompleteLine } from "../../protocol/session-lines.ts";
import { messageOf } from "../../shared/errors.ts";
import type { JsonObject } from "../../shared/validation.ts";
import { AsyncQueue } from "./async-queue.ts";
import type { ExecutorLog } from "./executor-log.ts";
import type { SessionReporter } from "./gateway-client.ts";
import type { StdinReader } from "./stdin-reader.ts";
import type { StopWatch } from "./stop-watch.ts";

/** How a turn ended. */
export interface TurnOutcome {
  /** Its answer: printed on stdout (one-shot), the `turn_complete`'s result (persistent). */
  result: string;
  /** Under invocation 2.2, the structured output the blueprint's output_schema asked for (`result` is its JSON). */
  data?: JsonObject;
  /** An `interrupt` cut it short. */
  interrupted?: boolean;
}

/** One agent session: its first turn from the invocation, further ones from `turn` lines (persistent). */
export interface ExecutorSession {
  /** Runs one turn on its parameters. Throw ExecutorError (or InvocationError) to fail it, and the run. */
  turn(parameters: JsonObject): Promise<TurnOutcome>;
  /** Ends the running turn early, keeping the session. Without it, an `interrupt` is ignored. */
  interrupt?(): void;
  /** Ends the session after its last turn (shutdown, end of input, or a one-shot run's turn). */
  finish(): Promise<void>;
  /** Ends whatever the session still runs, on any way out (after finish, a failure or a stop). Never throws. */
  dispose?(): Promise<void>;
}

/** Runs a session's turns one at a time, and passes an interrupt to the one running. */
export class TurnRunner {
  private running = false;

  constructor(
    readonly session: ExecutorSession,
    readonly invocation: Invocation,
    private readonly reporter: SessionReporter,
    private readonly stop: StopWatch,
  ) {}

  async run(parameters: JsonObject): Promise<TurnOutcome> {
    this.stop.signal.throwIfAborted();
    this.running = true;
    let outcome: TurnOutcome;
    try {
      outcome = await this.stop.bound(this.session.turn(parameters));
    } finally {
      this.running = false;
    }
    // Invocation 2.2 reads a session's result from its result events (2.1 from its last message).
    if (this.invocation.schema_version === "2.2") {
      const result = outcome.data ? { text: null, data: outcome.data } : { text: outcome.result, data: null };
      await this.stop.bound(this.reporter.event(sessionEvents.result(this.invocation.session_id, result)));
    }
    return outcome;
  }

  interrupt(log: ExecutorLog): void {
    if (!this.running) log.debug("interrupt: no turn is running; ignored");
    else if (!this.session.interrupt) log.debug("interrupt: this executor cannot cut a turn short; it runs to its end");
    else {
      log.debug("interrupt: ending the running turn");
      this.session.interrupt();
    }
  }
}

type QueuedCommand = Exclude<SessionCommand, { type: "interrupt" }>;

/**
 * Reads the runner's lines after the invocation: turns and shutdown are queued in order, an
 * interrupt acts at once on the running turn, anything else is logged and ignored.
 */
async function readCommands(stdin: StdinReader, queue: AsyncQueue<QueuedCommand>, turns: TurnRunner, log: ExecutorLog) {
  try {
    for (let line = await stdin.readLine(); line !== undefined; line = await stdin.readLine()) {
      if (line.trim() === "") continue;
      let command: SessionCommand;
      try {
        command = parseSessionCommand(line);
      } catch (error) {
        log.warn(`ignored a line on stdin: ${messageOf(error)}`);
        continue;
      }
      if (command.type === "interrupt") turns.interrupt(log);
      else queue.push(command);
    }
  } catch (error) {
    log.warn(`stdin could not be read (${messageOf(error)}): taken as its end`);
  }
  queue.end();
}

/**
 * A persistent session: the invocation's turn, then one per `turn` line, each answered with a
 * `turn_complete` line on stdout; returns at `shutdown` or the end of input. A turn that fails
 * throws (the kit reports it and exits 1).
 */
export async function runPersistentSession(
  turns: TurnRunner,
  stdin: StdinReader,
  stdout: (text: string) => Promise<unknown>,
  log: ExecutorLog,
  stop: StopWatch,
): Promise<void> {
  // The turn and shutdown commands read so far, in order; the end of input ends it.
  const queue = new AsyncQueue<QueuedCommand>();
  void readCommands(stdin, queue, turns, log);
  let parameters = invocationParameters(turns.invocation);
  for (;;) {
    const outcome = await turns.run(parameters);
    await stdout(turnCompleteLine(outcome.result, outcome.interrupted));
    const next = await queue.next(stop.signal);
    if (next === undefined) {
      log.debug("end of stdin: the session ends");
      return;
    }
    if (next.type === "shutdown") {
      log.debug("shutdown: the session ends");
      return;
    }
    parameters = next.parameters;
  }
}
