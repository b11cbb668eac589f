/**
 * A run never ends unanswered: whatever fails in the runner's own handling of it (a dependency
 * that throws), its executor is stopped and the run reported failed, and the runner goes on.
 */
import { expect, test } from "bun:test";
import { groupAlive } from "../../src/shared/process-group.ts";
import { executorsOf } from "../support/processes.ts";
import { noJournal, startHeldRunsHarness } from "../support/runner-harness.ts";

test("a run whose handling throws after its executor started is stopped and reported failed; the next run works", async () => {
  let broken = true;
  let started: number | undefined;
  const { harness, release } = await startHeldRunsHarness({
    journal: {
      ...noJournal,
      runStarted(_runId, _sessionId, executor) {
        if (!broken) return;
        started = executor.pid;
        throw new Error("EIO: the disk went away");
      },
    },
  });
  const runId = harness.handRun({ session_id: "ses_throw" });
  const report = await harness.fake.waitFor((r) => r.path === `/runner/runs/${runId}/failed`);
  expect(report.body.error).toBe("the runner failed handling the run: EIO: the disk went away");
  // Its executor had been started; its outcome is queued only once all of it is gone.
  expect(started).toBeNumber();
  expect(groupAlive(started!)).toBe(false);
  expect(executorsOf("ses_throw")).toEqual([]);

  broken = false;
  const next = harness.handRun({ session_id: "ses_next" });
  await release.waiting("ses_next");
  release.release("ses_next");
  await harness.fake.waitFor((r) => r.path === `/runner/runs/${next}/completed`);
});
