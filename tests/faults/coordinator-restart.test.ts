import { expect, test } from "bun:test";
import { faultProfile, until } from "../support/fault-tools.ts";
import { completedBody, GENERATIONS, type Generation } from "../support/generations.ts";
import { releaseServer } from "../support/release-server.ts";
import { startRunnerHarness } from "../support/runner-harness.ts";

type Kind = "ok" | "fail" | "silent";
const KINDS: Kind[] = ["ok", "fail", "silent"];
const RUNS = 50;

/** What the coordinator must end up with for each kind of run (the `outcome` fixture's contract). */
function expected(kind: Kind, sessionId: string, protocol: Generation) {
  if (kind === "ok") return { kind: "completed", body: completedBody(protocol) };
  if (kind === "fail")
    return {
      kind: "failed",
      body: { runner_id: "lnch_test", error: `planned failure for ${sessionId}`, exit_code: 3 },
    };
  return { kind: "failed", body: { runner_id: "lnch_test", error: "Process exited with code 7", exit_code: 7 } };
}

test.each(GENERATIONS)(
  "coordinator killed and restarted twice while 50 runs execute: 0 lost, 0 duplicated (protocol %s)",
  async (protocol) => {
    const release = releaseServer();
    const h = await startRunnerHarness({
      fake: { protocol },
      profile: faultProfile("outcome"),
      env: { FAULT_RELEASE_URL: release.url },
    });
    const runs = Array.from({ length: RUNS }, (_, i) => {
      const kind = KINDS[i % 3]!;
      return { runId: `run_r${i}`, sessionId: `ses_${kind}_${i}`, kind };
    });
    for (const run of runs)
      h.fake.handRun({ run_id: run.runId, type: "start_session", session_id: run.sessionId, prompt: "p" });
    // All 50 executors running, their `started` delivered.
    await Promise.all(runs.map((run) => release.waiting(run.sessionId)));
    await Promise.all(runs.map((run) => h.fake.waitForRequest("POST", `/runner/runs/${run.runId}/started`)));

    // Taken by the coordinator: at 2.2, as at the reference, a report from a runner it forgot is refused (401) and sent again.
    const outcomeArrived = (runId: string) => h.fake.waitForStatus(runId, ["completed", "failed"]);
    const [a, b, c] = [runs.slice(0, 17), runs.slice(17, 34), runs.slice(34)];
    const incarnations: number[] = [];
    // Reports received, less those refused (still being answered: taken, as their run's status says).
    const reportsSoFar = () =>
      h.fake.requests.filter(
        (r) => /^\/runner\/runs\/.+\/(completed|failed)$/.test(r.path) && (r.status === undefined || r.status < 300),
      ).length;

    // Incarnation 1: a third of the runs end while it is up.
    for (const run of a) release.release(run.sessionId);
    await Promise.all(a.map((run) => outcomeArrived(run.runId)));
    incarnations.push(reportsSoFar());

    // Killed with no report in flight: a report whose reply is cut off would be sent again (delivery
    // is at least once), which is the coordinator's to absorb, not what this test counts.
    await until(() => h.worker.outbox.pendingCount === 0, "batch A reports to be acknowledged");
    await h.fake.down();
    // A third end while it is down, so their reports wait in the outbox.
    for (const run of b) release.release(run.sessionId);
    await until(() => h.worker.activeRunCount === c.length, "batch B executors to exit");
    expect(h.worker.outbox.pendingCount).toBe(b.length);
    // Incarnation 2: same port, still knows the runner.
    h.fake.up();
    await Promise.all(b.map((run) => outcomeArrived(run.runId)));
    incarnations.push(reportsSoFar() - incarnations[0]!);

    // Killed again; the last third end while it is down. Incarnation 3 has forgotten the runner.
    await until(() => h.worker.outbox.pendingCount === 0, "batch B reports to be acknowledged");
    await h.fake.down();
    for (const run of c) release.release(run.sessionId);
    await until(() => h.worker.activeRunCount === 0, "batch C executors to exit");
    h.fake.up({ forgetRunner: true });
    await Promise.all(c.map((run) => outcomeArrived(run.runId)));
    incarnations.push(reportsSoFar() - incarnations[0]! - incarnations[1]!);
    // Its next poll is refused as unknown, so the runner registers again.
    await h.fake.waitFor(() => h.fake.find("POST", "/runner/register").length === 2);

    // Shut down (flush + deregister) so any late duplicate would have arrived before counting.
    await h.close();

    let lost = 0;
    let duplicated = 0;
    for (const run of runs) {
      const reports = h.fake.reportsTakenFor(run.runId);
      const outcomes = reports.filter((r) => r.kind !== "started");
      if (outcomes.length === 0) lost++;
      duplicated +=
        Math.max(0, reports.filter((r) => r.kind === "started").length - 1) + Math.max(0, outcomes.length - 1);
      expect(reports).toEqual([
        { kind: "started", body: { runner_id: "lnch_test" } },
        expected(run.kind, run.sessionId, protocol),
      ]);
    }
    console.log(
      `coordinator restarts (protocol ${protocol}): ${RUNS} runs, outcomes received per incarnation ${incarnations.join(" + ")}, lost ${lost}, duplicated ${duplicated}; registrations ${h.fake.find("POST", "/runner/register").length}, reports refused as from an unknown runner and sent again ${h.fake.requests.filter((r) => r.path.startsWith("/runner/runs/") && r.status === 401).length}`,
    );
    expect({ lost, duplicated }).toEqual({ lost: 0, duplicated: 0 });
    expect(incarnations).toEqual([a.length, b.length, c.length]);
    // The third incarnation had forgotten the runner: it registered again.
    expect(h.fake.find("POST", "/runner/register").length).toBe(2);
  },
);

test("an executor that ignores SIGTERM is SIGKILLed within grace + 1 s and reported so", async () => {
  const graceSeconds = 1;
  const harness = await startRunnerHarness({
    profile: faultProfile("ignore-term"),
    flags: { "stop-grace-seconds": String(graceSeconds) },
  });
  const runId = harness.handRun({ session_id: "ses_ignore_term" });
  const ready = await harness.fake.waitFor((r) => r.path === "/sessions/ses_ignore_term/events");
  const pid = ready.body.pid as number;
  const stopAt = performance.now();
  harness.fake.handStop([runId]);
  const report = await harness.fake.waitForRequest("POST", `/runner/runs/${runId}/stopped`);
  const tookMs = report.at - stopAt;
  console.log(
    `SIGTERM ignored: stopped by ${report.body.signal} ${tookMs.toFixed(0)} ms after the stop (grace ${graceSeconds} s)`,
  );
  expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGKILL" });
  expect(tookMs).toBeGreaterThanOrEqual(graceSeconds * 1000 - 50);
  expect(tookMs).toBeLessThan((graceSeconds + 1) * 1000);
  // The process is gone, not left behind.
  expect(() => process.kill(pid, 0)).toThrow();
  expect(harness.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "stopped"]);
});
