/**
 * The run journal: what a runner process has in hand (its runner id, each active run's executor
 * process group, each persistent session's executor, each outcome not yet delivered), kept in a
 * file under the state directory so that the next process of the same identity can clean up
 * after one that died. A safety net: a write that fails is logged and counted, never thrown.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunReport, SessionEnd } from "../coordinator/client.ts";
import { type } from "../shared/arktype.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { parseJson } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { isSameProcessAlive, processStartTime } from "../shared/process-group.ts";

/** What makes two runner processes the same runner: the coordinator's identity, per coordinator. */
export interface RunnerIdentity {
  coordinatorUrl: string;
  hostname: string;
  projectDir: string;
  profile: string;
}

const FinalReport = type({ kind: "'completed'", "sessionStatus?": "'idle' | 'finished'" })
  .or({ kind: "'failed'", error: "string", "exitCode?": "number" })
  .or({ kind: "'stopped'", signal: "'SIGTERM' | 'SIGKILL'" });

const JournalRun = type({
  session_id: "string",
  started_at: "string",
  /** The executor's process group (its pid), and its start time. */
  "pgid?": "number",
  "pgid_start?": "string",
  /** The final report, once the run ended, until the coordinator has it. */
  "outcome?": FinalReport,
});
export type JournalRun = typeof JournalRun.infer;

/** A persistent session's executor, alive between turns; or how the session ended, until reported. */
const JournalSession = type({
  "pgid?": "number",
  "pgid_start?": "string",
  "outcome?": "'finished' | 'failed' | 'stopped'",
});
export type JournalSession = typeof JournalSession.infer;

const JournalFile = type({
  version: "1",
  pid: "number",
  "pid_start?": "string",
  "runner_id?": "string",
  runs: { "[string]": JournalRun },
  "sessions?": { "[string]": JournalSession },
});
type JournalFile = typeof JournalFile.infer;

/** A runner process of this identity that ended without cleaning up. */
export interface PreviousIncarnation {
  pid: number;
  runnerId?: string;
  runs: Record<string, JournalRun>;
  sessions: Record<string, JournalSession>;
}

/** Another live runner process holds this identity's journal. */
export class JournalInUseError extends Error {
  override name = "JournalInUseError";
  constructor(
    message: string,
    readonly pid: number,
  ) {
    super(message);
  }
}

export interface RunJournalOptions {
  /** A write failed (the run goes on without the safety net); for the metrics. */
  onWriteFailed?: () => void;
}

export class RunJournal {
  private readonly data: JournalFile & { sessions: Record<string, JournalSession> };
  /** The causes of failed writes already logged (an error code each): one line per cause, not per write. */
  private readonly failures = new Set<string>();

  private constructor(
    readonly path: string,
    pid: number,
    private readonly options: RunJournalOptions,
  ) {
    this.data = { version: 1, pid, pid_start: processStartTime(pid), runs: {}, sessions: {} };
  }

  /**
   * Takes the journal of this identity. Returns what a dead earlier process left behind; throws
   * JournalInUseError while that process is alive, ConfigError when the directory is unusable.
   */
  static open(
    stateDir: string,
    identity: RunnerIdentity,
    options: RunJournalOptions = {},
  ): { journal: RunJournal; previous?: PreviousIncarnation } {
    const dir = join(stateDir, "runners");
    const key = createHash("sha256")
      .update([identity.coordinatorUrl, identity.hostname, identity.projectDir, identity.profile].join("\n"))
      .digest("hex")
      .slice(0, 16);
    const path = join(dir, `${key}.json`);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new ConfigError(
        `State directory ${stateDir} cannot be used (--state-dir / AGENT_RUNNER_STATE_DIR): ${messageOf(error)}`,
      );
    }
    const earlier = readJournal(path);
    if (earlier && earlier.pid !== process.pid && isSameProcessAlive(earlier.pid, earlier.pid_start)) {
      throw new JournalInUseError(
        `Another runner process (pid ${earlier.pid}) is running with this identity (hostname ${identity.hostname}, project dir ${identity.projectDir}, profile '${identity.profile}', coordinator ${identity.coordinatorUrl}); its journal is ${path}. Stop it, or give this one another --project-dir, --profile or --state-dir.`,
        earlier.pid,
      );
    }
    const journal = new RunJournal(path, process.pid, options);
    // At start a journal that cannot be written is the operator's to fix before any run is taken.
    try {
      journal.writeFile();
    } catch (error) {
      throw new ConfigError(
        `State directory ${stateDir} cannot be used (--state-dir / AGENT_RUNNER_STATE_DIR): ${messageOf(error)}`,
      );
    }
    const sessions = earlier?.sessions ?? {};
    const previous =
      earlier &&
      (earlier.runner_id !== undefined || Object.keys(earlier.runs).length > 0 || Object.keys(sessions).length > 0)
        ? { pid: earlier.pid, runnerId: earlier.runner_id, runs: earlier.runs, sessions }
        : undefined;
    return { journal, previous };
  }

  setRunnerId(runnerId: string): void {
    if (this.data.runner_id === runnerId) return;
    this.data.runner_id = runnerId;
    this.write();
  }

  /** A run's executor is running in process group `pgid`. */
  runStarted(runId: string, sessionId: string, pgid?: number): void {
    this.data.runs[runId] = {
      session_id: sessionId,
      started_at: new Date().toISOString(),
      ...(pgid === undefined ? {} : { pgid, pgid_start: processStartTime(pgid) }),
    };
    this.write();
  }

  /** A run ended; its final report is on its way to the coordinator. */
  runEnded(runId: string, sessionId: string, outcome: RunReport): void {
    if (outcome.kind === "started") return;
    const run = this.data.runs[runId] ?? { session_id: sessionId, started_at: new Date().toISOString() };
    this.data.runs[runId] = { session_id: run.session_id, started_at: run.started_at, outcome };
    this.write();
  }

  /** A persistent session's executor runs in process group `pgid` (it outlives its runs). */
  sessionStarted(sessionId: string, pgid: number): void {
    this.data.sessions[sessionId] = { pgid, pgid_start: processStartTime(pgid) };
    this.write();
  }

  /**
   * A persistent session's executor is gone: with `outcome`, the session ended between runs and
   * that is on its way to the coordinator; without, a run's report says it all.
   */
  sessionEnded(sessionId: string, outcome?: SessionEnd): void {
    if (outcome) this.data.sessions[sessionId] = { outcome };
    else delete this.data.sessions[sessionId];
    this.write();
  }

  /** The coordinator has the run's outcome (or refused it for good): nothing left to do for it. */
  settled(runId: string): void {
    if (!(runId in this.data.runs)) return;
    delete this.data.runs[runId];
    this.write();
  }

  /** The coordinator has how the session ended (or refused it for good). */
  sessionSettled(sessionId: string): void {
    if (this.data.sessions[sessionId]?.outcome === undefined) return;
    delete this.data.sessions[sessionId];
    this.write();
  }

  get runCount(): number {
    return Object.keys(this.data.runs).length + Object.keys(this.data.sessions).length;
  }

  /** At a clean exit: nothing left means no journal; undelivered outcomes stay for the next start. */
  close(): void {
    if (this.runCount > 0) {
      this.write();
      return;
    }
    try {
      rmSync(this.path, { force: true });
    } catch (error) {
      this.failed(error, "remove");
    }
  }

  /**
   * Keeps the journal on disk; a failure is logged (once per cause) and counted, and the runner
   * goes on without the safety net: its runs are supervised and reported all the same.
   */
  private write(): void {
    try {
      this.writeFile();
    } catch (error) {
      this.failed(error, "write");
    }
  }

  /** Whole-file writes through a rename: a crash never leaves half a journal. */
  private writeFile(): void {
    const temp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify(this.data)}\n`, { mode: 0o600 });
    renameSync(temp, this.path);
  }

  private failed(error: unknown, what: string): void {
    this.options.onWriteFailed?.();
    const cause = (error as NodeJS.ErrnoException)?.code ?? messageOf(error);
    if (this.failures.has(cause)) return;
    this.failures.add(cause);
    log.error(
      `Run journal ${this.path}: ${what} failed (${messageOf(error)}); runs go on and are reported, but a crash now could not be cleaned up after. Further failures of this kind are counted in agent_runner_journal_write_failures_total`,
    );
  }
}

function readJournal(path: string): JournalFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    return parseJson(text, JournalFile, `Run journal ${path}`);
  } catch {
    // Unreadable: nothing can be learned from it, and it must not stop the runner.
    return undefined;
  }
}
