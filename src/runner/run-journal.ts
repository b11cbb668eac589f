/**
 * The run journal: what a runner process has in hand (its runner id, each active run's executor
 * and each persistent session's: process group, cgroup, mark; each outcome not yet delivered), kept in a
 * file under the state directory so that the next process of the same identity can clean up
 * after one that died. A safety net: a write that fails is logged and counted, never thrown.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { RunReport, SessionEnd } from "../coordinator/client.ts";
import { lockFile } from "../process/libc.ts";
import { RunUsageReport } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { parseJson, validate } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { isSameProcessAlive, processStartTime } from "../shared/process-group.ts";
import { limitText, readSmallFile, SmallFileError } from "../shared/small-file.ts";

/** What makes two runner processes the same runner: the coordinator's identity, per coordinator. */
export interface RunnerIdentity {
  coordinatorUrl: string;
  hostname: string;
  projectDir: string;
  profile: string;
}

const FinalReport = type({ kind: "'completed'", "sessionStatus?": "'idle' | 'finished'", "usage?": RunUsageReport })
  .or({ kind: "'failed'", error: "string", "exitCode?": "number", "usage?": RunUsageReport })
  .or({ kind: "'stopped'", signal: "'SIGTERM' | 'SIGKILL'" });

const JournalRun = type({
  session_id: "string",
  started_at: "string",
  /** The executor's process group (its pid), and its start time. 0 and 1 would signal the runner's own group or init. */
  "pgid?": "number.integer > 1",
  "pgid_start?": "string",
  /** The executor's own cgroup, when it had one. */
  "cgroup?": "string",
  /** The mark in the environment of every process the executor started. */
  "mark?": "string",
  /** The final report, once the run ended, until the coordinator has it. */
  "outcome?": FinalReport,
});
export type JournalRun = typeof JournalRun.infer;

/** A persistent session's executor, alive between turns; or how the session ended, until reported. */
const JournalSession = type({
  "pgid?": "number.integer > 1",
  "pgid_start?": "string",
  "cgroup?": "string",
  "mark?": "string",
  "outcome?": "'finished' | 'failed' | 'stopped'",
});
export type JournalSession = typeof JournalSession.infer;

const JournalFile = type({
  version: "1",
  pid: "number.integer > 0",
  "pid_start?": "string",
  "runner_id?": "string",
  runs: { "[string]": JournalRun },
  "sessions?": { "[string]": JournalSession },
});
type JournalFile = typeof JournalFile.infer;

/** `<state-dir>/runners/<key>.json`, the key a hash of the identity. */
export function journalPath(stateDir: string, identity: RunnerIdentity): string {
  const key = createHash("sha256")
    .update([identity.coordinatorUrl, identity.hostname, identity.projectDir, identity.profile].join("\n"))
    .digest("hex")
    .slice(0, 16);
  return join(stateDir, "runners", `${key}.json`);
}

/** What finds an executor's processes again: its group, its cgroup if it had one, its mark. */
export interface ExecutorTrace {
  pid: number;
  cgroup?: string;
  mark?: string;
}

function traceFields(executor: ExecutorTrace) {
  const { pid, cgroup, mark } = executor;
  return {
    pgid: pid,
    pgid_start: processStartTime(pid),
    ...(cgroup === undefined ? {} : { cgroup }),
    ...(mark === undefined ? {} : { mark }),
  };
}

/** A runner process of this identity that ended without cleaning up. */
export interface PreviousIncarnation {
  pid: number;
  /** Its start time: with the pid, what names the run cgroups it made. */
  pidStart?: string;
  runnerId?: string;
  runs: Record<string, JournalRun>;
  sessions: Record<string, JournalSession>;
}

/** Another live runner process holds this identity's journal. */
export class JournalInUseError extends Error {
  override name = "JournalInUseError";
  constructor(
    message: string,
    readonly pid: number | undefined,
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
    private readonly lock: number,
  ) {
    this.data = { version: 1, pid, pid_start: processStartTime(pid), runs: {}, sessions: {} };
  }

  /**
   * Takes the journal of this identity. Returns what a dead earlier process left behind; throws
   * JournalInUseError while another process holds it, ConfigError when the directory is unusable.
   * The journal is held with an exclusive lock on its lock file, which the kernel lets go of when
   * this process ends however it ends: two runners started at once cannot both take it.
   */
  static open(
    stateDir: string,
    identity: RunnerIdentity,
    options: RunJournalOptions = {},
  ): { journal: RunJournal; previous?: PreviousIncarnation } {
    const path = journalPath(stateDir, identity);
    const dir = dirname(path);
    let lock: number;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      lock = openSync(`${path}.lock`, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    } catch (error) {
      throw new ConfigError(
        `State directory ${stateDir} cannot be used (--state-dir / AGENT_RUNNER_STATE_DIR): ${messageOf(error)}`,
      );
    }
    const locked = lockFile(lock);
    let earlier: JournalFile | undefined;
    try {
      earlier = locked === "held" ? peekJournal(path) : readJournal(path);
    } catch (error) {
      closeSync(lock);
      throw error;
    }
    const alive = earlier !== undefined && isSameProcessAlive(earlier.pid, earlier.pid_start);
    // Without the lock (no libc), the earlier process's liveness is all there is to go by.
    if (locked === "held" || (locked === "unavailable" && alive && earlier?.pid !== process.pid)) {
      closeSync(lock);
      const who = alive ? `Another runner process (pid ${earlier?.pid})` : "Another runner process";
      throw new JournalInUseError(
        `${who} is running with this identity (hostname ${identity.hostname}, project dir ${identity.projectDir}, profile '${identity.profile}', coordinator ${identity.coordinatorUrl}); its journal is ${path}. Stop it, or give this one another --project-dir, --profile or --state-dir.`,
        alive ? earlier?.pid : undefined,
      );
    }
    const journal = new RunJournal(path, process.pid, options, lock);
    // At start a journal that cannot be written is the operator's to fix before any run is taken.
    try {
      journal.writeFile();
    } catch (error) {
      closeSync(lock);
      throw new ConfigError(
        `State directory ${stateDir} cannot be used (--state-dir / AGENT_RUNNER_STATE_DIR): ${messageOf(error)}`,
      );
    }
    const sessions = earlier?.sessions ?? {};
    const previous =
      earlier &&
      (earlier.runner_id !== undefined || Object.keys(earlier.runs).length > 0 || Object.keys(sessions).length > 0)
        ? { pid: earlier.pid, pidStart: earlier.pid_start, runnerId: earlier.runner_id, runs: earlier.runs, sessions }
        : undefined;
    return { journal, previous };
  }

  setRunnerId(runnerId: string): void {
    if (this.data.runner_id === runnerId) return;
    this.data.runner_id = runnerId;
    this.write();
  }

  /** A run's executor is running: in its process group, in its own cgroup if it has one, its processes marked. */
  runStarted(runId: string, sessionId: string, executor: ExecutorTrace): void {
    this.data.runs[runId] = { session_id: sessionId, started_at: new Date().toISOString(), ...traceFields(executor) };
    this.write();
  }

  /** A run ended; its final report is on its way to the coordinator. */
  runEnded(runId: string, sessionId: string, outcome: RunReport): void {
    if (outcome.kind === "started") return;
    const run = this.data.runs[runId] ?? { session_id: sessionId, started_at: new Date().toISOString() };
    this.data.runs[runId] = { session_id: run.session_id, started_at: run.started_at, outcome };
    this.write();
  }

  /** A persistent session's executor is running (it outlives its runs). */
  sessionStarted(sessionId: string, executor: ExecutorTrace): void {
    this.data.sessions[sessionId] = traceFields(executor);
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
    if (this.runCount > 0) this.write();
    else {
      try {
        rmSync(this.path, { force: true });
      } catch (error) {
        this.failed(error, "remove");
      }
    }
    closeSync(this.lock);
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

  /**
   * Whole-file writes through a rename, each on disk before the next step: neither a crash nor a
   * power loss leaves half a journal, or an empty one.
   */
  private writeFile(): void {
    const temp = `${this.path}.${process.pid}.tmp`;
    const fd = openSync(temp, "w", 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(this.data)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, this.path);
    const dir = openSync(dirname(this.path), "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
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

/**
 * Why the journal at `path` is not this user's alone (it says which processes to kill), or
 * undefined. Its directory is checked too: whoever can write that can put another file there.
 */
function untrusted(path: string): string | undefined {
  const uid = process.getuid?.();
  // The directory as it is (a link could lead anywhere); the journal as what it leads to (what
  // is not a regular file is set aside below).
  for (const [at, look] of [
    [dirname(path), lstatSync],
    [path, statSync],
  ] as const) {
    let stat: ReturnType<typeof statSync>;
    try {
      stat = look(at);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) return `${at} is a symbolic link`;
    if (!stat.isFile() && !stat.isDirectory()) continue;
    if ((uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
      return `${at} is owned by uid ${stat.uid} with mode ${(stat.mode & 0o777).toString(8)}`;
    }
  }
  return undefined;
}

/** Who holds the journal, when another process does: read only, never set aside. */
function peekJournal(path: string): JournalFile | undefined {
  try {
    return parseJson(readSmallFile(path, MAX_JOURNAL_BYTES), JournalFile, "its content");
  } catch {
    return undefined;
  }
}

/**
 * A journal holds a few hundred bytes a run, and up to some 50 KB for a failed run's stderr tail
 * (escaped): 16 MiB is hundreds of undelivered outcomes, far more than a runner ever has in hand.
 */
const MAX_JOURNAL_BYTES = 16 * 1024 * 1024;

/** Moves what is at `path` to `<path>.<kind>-<time>`, for the operator to look at; returns the new path. */
function setAside(path: string, kind: string): string {
  const aside = `${path}.${kind}-${new Date().toISOString().replaceAll(":", "")}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    throw new ConfigError(`Run journal ${path} cannot be used, nor moved aside to ${aside}: ${messageOf(error)}`);
  }
  return aside;
}

/** The keys of a damaged journal's `runs` or `sessions`, if it has such an object. */
function keysOf(data: unknown, field: "runs" | "sessions"): string[] | undefined {
  const value = (data as Record<string, unknown> | null)?.[field];
  return value !== null && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : undefined;
}

/** What a damaged journal still shows: its run ids (or what looks like them in its text), its persistent sessions. */
function whatItNames(text: string, data: unknown): string {
  const runIds =
    keysOf(data, "runs") ?? [...text.matchAll(/(?:"runs":\{|\},)"([^"\\]{1,200})":\{/g)].map((match) => match[1]!);
  const sessionIds = keysOf(data, "sessions") ?? [];
  const named = [
    runIds.length > 0 ? `run(s) ${runIds.join(", ")}` : "",
    sessionIds.length > 0 ? `persistent session(s) ${sessionIds.join(", ")}` : "",
  ].filter(Boolean);
  return named.length === 0
    ? "no run id can be read from it"
    : `it names ${named.join(" and ")}: what of theirs was not yet delivered will not be reported by this runner`;
}

/**
 * The journal a runner process of this identity left, or undefined when there is none to use.
 * What is at the path but cannot be a journal (a FIFO, a device, a directory, a file over the
 * limit, text that is not a journal) is moved aside and said, and the start goes on; a journal
 * that cannot be read at all (permissions) stops the start: it may hold undelivered outcomes.
 */
function readJournal(path: string): JournalFile | undefined {
  const why = untrusted(path);
  if (why) {
    log.warn(`Run journal ${path}: ${why}, so others could have written it: nothing in it is acted on`);
    return undefined;
  }
  let text: string;
  try {
    text = readSmallFile(path, MAX_JOURNAL_BYTES);
  } catch (error) {
    if (!(error instanceof SmallFileError)) throw error;
    if (error.code === "ENOENT") return undefined;
    if (error.refusal === "not a regular file") {
      const aside = setAside(path, "not-a-file");
      log.warn(
        `Run journal ${path} is ${error.message}: it holds no runs. Moved it to ${aside}; this runner starts a new journal.`,
      );
      return undefined;
    }
    if (error.refusal === "too big") {
      const size = statSync(path).size;
      const aside = setAside(path, "too-big");
      log.error(
        `Run journal ${path} is ${size} bytes, over the ${limitText(MAX_JOURNAL_BYTES)} limit for a journal: set aside unread as ${aside}; this runner starts a new journal. ` +
          "It may hold undelivered outcomes of runs an earlier runner process had in hand: this runner will not report them.",
      );
      return undefined;
    }
    throw new ConfigError(
      `Run journal ${path} cannot be read: ${error.message}. It may hold undelivered outcomes of an earlier runner process: make it readable, or move it away to start without them.`,
    );
  }
  let data: unknown;
  let problem: string;
  try {
    data = JSON.parse(text);
    return validate(data, JournalFile, "its content");
  } catch (error) {
    problem = messageOf(error);
  }
  const aside = setAside(path, "corrupt");
  log.warn(
    `Run journal ${path} cannot be used (${problem}); kept as ${aside}, and this runner starts a new journal. It is ${Buffer.byteLength(text)} bytes; ${whatItNames(text, data)}.`,
  );
  return undefined;
}
