/** What a dead earlier runner process of the same identity left behind: its executors stopped, its runs answered. */
import type { RunReport } from "../coordinator/client.ts";
import { log } from "../shared/log.ts";
import { killLeftoverGroup } from "../shared/process-group.ts";
import type { PreviousIncarnation } from "./run-journal.ts";

export interface LeftoverReport {
  runId: string;
  sessionId: string;
  report: RunReport;
}

/**
 * Kills the executor process groups of runs the earlier process had active (they would go on
 * burning model tokens with nobody to report them), and returns the report each run is owed:
 * its real outcome when that was known but not delivered, else `failed` saying why.
 */
export function reapLeftovers(previous: PreviousIncarnation): LeftoverReport[] {
  const reports: LeftoverReport[] = [];
  for (const [runId, run] of Object.entries(previous.runs)) {
    if (run.outcome) {
      log.info(
        `Run ${runId} ended as ${run.outcome.kind} before the previous runner process (pid ${previous.pid}) died; reporting it`,
      );
      reports.push({ runId, sessionId: run.session_id, report: run.outcome });
      continue;
    }
    const killed = run.pgid !== undefined && killLeftoverGroup(run.pgid, run.pgid_start);
    const error = `runner process ended unexpectedly (pid ${previous.pid}) while the run was active${killed ? "; its executor was stopped when the runner restarted" : ""}`;
    log.warn(`Run ${runId} (session ${run.session_id}): ${error}`);
    reports.push({ runId, sessionId: run.session_id, report: { kind: "failed", error } });
  }
  return reports;
}
