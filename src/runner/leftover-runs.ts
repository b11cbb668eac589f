/** What a dead earlier runner process of the same identity left behind: its executors stopped, its runs and sessions answered. */
import type { RunReport, SessionEnd } from "../coordinator/client.ts";
import { killLeftoverCgroup } from "../process/cgroups.ts";
import { killMarkedProcesses } from "../process/orphans.ts";
import { log } from "../shared/log.ts";
import { killLeftoverGroup } from "../shared/process-group.ts";
import type { JournalRun, PreviousIncarnation } from "./run-journal.ts";

/** A report a dead process owed: a run's outcome, or how a persistent session ended between runs. */
export type LeftoverReport =
  | { runId: string; sessionId: string; report: RunReport }
  | { sessionId: string; sessionEnd: SessionEnd };

/**
 * Kills the executor process groups of runs the earlier process had active and of the persistent
 * sessions it kept (they would go on burning model tokens with nobody to report them), and returns
 * what each is owed: a run's real outcome when that was known but not delivered, else `failed`
 * saying why; a session that was waiting for its next turn ended `finished` (its last turn
 * completed; a later turn resumes it in a new process).
 */
export function reapLeftovers(previous: PreviousIncarnation): LeftoverReport[] {
  const reports: LeftoverReport[] = [];
  const activeSessions = new Set<string>();
  const killed = new Set<number>();
  /**
   * Kills what is left of an executor: its cgroup (everything in it, wherever it went), its
   * process group, and any process carrying its mark (a daemon in a session of its own that PID 1
   * adopted when the runner died). True when anything of it was found to kill.
   */
  const kill = (executor: Pick<JournalRun, "pgid" | "pgid_start" | "cgroup" | "mark">) => {
    const { pgid, pgid_start, cgroup, mark } = executor;
    if (pgid !== undefined && killed.has(pgid)) return true;
    const inCgroup =
      cgroup !== undefined && killLeftoverCgroup(cgroup, { pid: previous.pid, start: previous.pidStart });
    const inGroup = pgid !== undefined && killLeftoverGroup(pgid, pgid_start);
    const marked = mark !== undefined && killMarkedProcesses([mark]) > 0;
    if (pgid !== undefined && (inCgroup || inGroup || marked)) killed.add(pgid);
    return inCgroup || inGroup || marked;
  };
  for (const [runId, run] of Object.entries(previous.runs)) {
    if (run.outcome) {
      log.info(
        `Run ${runId} ended as ${run.outcome.kind} before the previous runner process (pid ${previous.pid}) died; reporting it`,
      );
      reports.push({ runId, sessionId: run.session_id, report: run.outcome });
      continue;
    }
    activeSessions.add(run.session_id);
    const stopped = kill(run);
    const error = `runner process ended unexpectedly (pid ${previous.pid}) while the run was active${stopped ? "; its executor was stopped when the runner restarted" : ""}`;
    log.warn(`Run ${runId} (session ${run.session_id}): ${error}`);
    reports.push({ runId, sessionId: run.session_id, report: { kind: "failed", error } });
  }
  for (const [sessionId, session] of Object.entries(previous.sessions)) {
    if (session.outcome) {
      log.info(`Session ${sessionId} ended ${session.outcome} before the previous runner process died; reporting it`);
      reports.push({ sessionId, sessionEnd: session.outcome });
      continue;
    }
    kill(session);
    // A session with a run under way is answered by that run's report.
    if (activeSessions.has(sessionId)) continue;
    log.info(
      `Session ${sessionId} was waiting for its next turn when the previous runner process (pid ${previous.pid}) died: its executor was stopped; reporting it finished`,
    );
    reports.push({ sessionId, sessionEnd: "finished" });
  }
  return reports;
}
