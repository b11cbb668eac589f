/**
 * The persistent sessions whose executors this runner keeps alive between turns (profile
 * lifecycle `persistent`, protocol 2.2): which one is serving a run and which wait idle, the
 * bounds on idle ones (how many, how long), and how each ends when it has no run.
 */
import type { SessionEnd } from "../coordinator/client.ts";
import type { PersistentExecutor } from "../process/persistent-executor.ts";
import type { RunTokens } from "../protocol/run-tokens.ts";
import { log } from "../shared/log.ts";
import { membersOfGroups, residentBytes } from "../shared/process-group.ts";
import type { RunJournal } from "./run-journal.ts";

/** One session's executor, kept alive by the runner. */
export interface LiveSession {
  readonly sessionId: string;
  readonly executor: PersistentExecutor;
  /** The run token its process was started with (in its gateway and MCP URLs): live as long as the process. */
  readonly token: string;
  /** The run whose turn is under way; undefined while idle. */
  runId?: string;
  /** When it went idle (performance.now()), while idle. */
  idleSince?: number;
  /** Set once it is being ended: resolves when it is gone and reported. */
  ending?: Promise<void>;
  idleTimer?: ReturnType<typeof setTimeout>;
}

export interface LiveSessionsOptions {
  /** How many may wait idle at once; the longest idle is ended first. */
  maxIdle: number;
  /** An idle session is ended after this long. */
  idleTimeoutMs: number;
  /** Between the shutdown line and SIGTERM, and between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  journal: Pick<RunJournal, "sessionStarted" | "sessionEnded">;
  /** A session's token is revoked when its executor is gone. */
  tokens: Pick<RunTokens, "revoke">;
  /** A session ended while it had no run: the coordinator must hear how. */
  report(sessionId: string, end: SessionEnd): void;
}

const NO_IDLE_SESSIONS_AT_2_1 = "the coordinator now speaks protocol 2.1, which has no idle sessions";

/** Why an idle session is ended; only a stop request can end it as `stopped`. */
type EndReason = { kind: "stop" } | { kind: "evicted" | "timeout" | "shutdown"; detail: string };

export class LiveSessions {
  private readonly sessions = new Map<string, LiveSession>();

  constructor(private readonly options: LiveSessionsOptions) {}

  get(sessionId: string): LiveSession | undefined {
    return this.sessions.get(sessionId);
  }

  get size(): number {
    return this.sessions.size;
  }

  get idleCount(): number {
    return this.idle().length;
  }

  idleSessionIds(): string[] {
    return this.idle().map((session) => session.sessionId);
  }

  /** The resident memory of the idle sessions' processes (their whole groups), in bytes. */
  idleMemoryBytes(): number {
    const groups = new Set(this.idle().map((session) => session.executor.pid));
    if (groups.size === 0) return 0;
    let bytes = 0;
    for (const pid of membersOfGroups(groups)) bytes += residentBytes(pid) ?? 0;
    return bytes;
  }

  /**
   * A new executor whose first turn serves `runId`. It keeps `token` (issued for that run) for
   * its later turns: revoked once the executor is gone, not when the first run ends. Only
   * bookkeeping, which cannot fail; the journal learns of it through `journalStarted`.
   */
  add(sessionId: string, executor: PersistentExecutor, runId: string, token: string): LiveSession {
    const session: LiveSession = { sessionId, executor, token, runId };
    this.sessions.set(sessionId, session);
    void executor.process.exited.then((status) => {
      // During a turn the run reports the exit; while it is being ended, its ending does.
      if (this.sessions.get(sessionId) !== session || session.runId !== undefined || session.ending) return;
      const end: SessionEnd = status.code === 0 ? "finished" : "failed";
      log.warn(
        `Session ${sessionId}: its executor ended while waiting for the next turn (${status.signal ?? `exit code ${status.code}`}); reporting it ${end}`,
      );
      this.remove(session);
      this.options.journal.sessionEnded(sessionId, end);
      this.options.report(sessionId, end);
    });
    return session;
  }

  /**
   * Journals a new session's executor, for the next runner process to end should this one die.
   * Called by its first run once that run supervises it: a journal that throws stops it there.
   */
  journalStarted(session: LiveSession): void {
    this.options.journal.sessionStarted(session.sessionId, session.executor.process);
  }

  /** A turn starts on an idle session. */
  resume(session: LiveSession, runId: string): void {
    clearTimeout(session.idleTimer);
    session.runId = runId;
    session.idleSince = undefined;
  }

  /**
   * The turn is over and the executor lives on. Returns how the session stands: `idle` (kept for
   * its next turn), or `finished` when no idle session may be kept (`--max-idle-sessions 0`, or
   * not `keepIdle`: the coordinator now speaks 2.1): it is ended now, and the run's report says so.
   */
  turnCompleted(session: LiveSession, keepIdle: boolean): "idle" | "finished" {
    session.runId = undefined;
    if (this.options.maxIdle === 0 || !keepIdle) {
      const detail = keepIdle ? "no session is kept idle (--max-idle-sessions 0)" : NO_IDLE_SESSIONS_AT_2_1;
      void this.end(session, { kind: "evicted", detail }, false);
      return "finished";
    }
    session.idleSince = performance.now();
    const timeoutS = this.options.idleTimeoutMs / 1000;
    session.idleTimer = setTimeout(
      () => void this.end(session, { kind: "timeout", detail: `idle for ${timeoutS} s (--idle-session-timeout)` }),
      this.options.idleTimeoutMs,
    );
    const idle = this.idle();
    for (const oldest of idle.slice(0, Math.max(0, idle.length - this.options.maxIdle))) {
      void this.end(oldest, {
        kind: "evicted",
        detail: `the longest idle of more than ${this.options.maxIdle} (--max-idle-sessions)`,
      });
    }
    return "idle";
  }

  /** The session's executor ended during a turn (the run reports it): forgotten. */
  forget(session: LiveSession): void {
    if (this.sessions.get(session.sessionId) !== session) return;
    this.remove(session);
    this.options.journal.sessionEnded(session.sessionId);
  }

  /**
   * A stop for a session with no run under way: the shutdown line, then SIGTERM and SIGKILL;
   * reported `finished` when it exits cleanly, else `stopped`. False when it is not idle here.
   */
  stopIdle(sessionId: string): boolean {
    const session = this.sessions.get(sessionId);
    if (!session || session.runId !== undefined || session.ending) return false;
    void this.end(session, { kind: "stop" });
    return true;
  }

  /**
   * The coordinator now speaks protocol 2.1: it has no idle sessions, nor a route to hear how one
   * ended. The idle ones are ended without a report (a resume there starts a one-shot executor,
   * which must not run beside them).
   */
  endIdleUnreported(): void {
    for (const session of this.idle())
      void this.end(session, { kind: "evicted", detail: NO_IDLE_SESSIONS_AT_2_1 }, false);
  }

  /** Ends every idle session (the runner is shutting down); resolves when they are gone. */
  async endAll(): Promise<void> {
    const ending = this.idle().map((session) =>
      this.end(session, { kind: "shutdown", detail: "the runner is shutting down" }),
    );
    const already = [...this.sessions.values()].flatMap((session) => (session.ending ? [session.ending] : []));
    await Promise.all([...ending, ...already]);
  }

  /** The idle sessions, the longest idle first. */
  private idle(): LiveSession[] {
    return [...this.sessions.values()]
      .filter((session) => session.runId === undefined && !session.ending)
      .sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0));
  }

  /**
   * Ends an idle session and, with `report`, tells the coordinator how: `finished` (its last turn
   * completed), or `stopped` when a stop request needed a signal to end it.
   */
  private end(session: LiveSession, reason: EndReason, report = true): Promise<void> {
    if (session.ending) return session.ending;
    clearTimeout(session.idleTimer);
    const { sessionId } = session;
    log.info(
      `Ending session ${sessionId} (${reason.kind === "stop" ? "a stop was requested" : reason.detail}): shutdown, SIGTERM after ${this.options.stopGraceMs / 1000} s`,
    );
    session.ending = (async () => {
      const ended = await session.executor.shutdown(this.options.stopGraceMs);
      const clean = ended.kind === "exited" && ended.status.code === 0;
      const end: SessionEnd = reason.kind === "stop" && !clean ? "stopped" : "finished";
      this.remove(session);
      this.options.journal.sessionEnded(sessionId, report ? end : undefined);
      if (report) this.options.report(sessionId, end);
      log.info(
        `Session ${sessionId} ended (${ended.kind === "killed" ? `by ${ended.signal}` : `exit code ${ended.status.code ?? ended.status.signal}`})${report ? `; reported ${end}` : ""}`,
      );
    })();
    return session.ending;
  }

  private remove(session: LiveSession): void {
    clearTimeout(session.idleTimer);
    this.options.tokens.revoke(session.token);
    if (this.sessions.get(session.sessionId) === session) this.sessions.delete(session.sessionId);
  }
}
