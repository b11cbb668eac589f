/**
 * The runner told to exit at once (a signal past the graceful stages): nothing it started may
 * outlive it, whether a run's executor in its stop's grace or a persistent session's executor
 * being ended at shutdown. The journal still has them for the next start to report.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { goneWithin, tempDir } from "../support/processes.ts";
import { FIXTURES } from "../support/runner-harness.ts";
import { killAfterTest } from "../support/teardown.ts";

/** Runner flags: a grace far longer than the test, so only the exit itself can end the executor. */
const LONG_GRACE = ["--stop-grace-seconds", "600"];

test("the third Ctrl+C: a run's executor that ignores SIGTERM, in its stop's grace, is killed as the runner exits", async () => {
  const fake = startFakeCoordinator();
  const profiles = profilesDirFor(join(FAULT_FIXTURES, "ignore-term"));
  const runner = startCli(["--profile", "fault", "--profiles-dir", profiles, "-c", fake.url, ...LONG_GRACE], {
    AGENT_RUNNER_STATE_DIR: tempDir("ar-state-"),
  });
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_now", type: "start_session", session_id: "ses_now", prompt: "p" });
  const executor: number = (await fake.waitFor((r) => r.body?.event_type === "ready")).body.pid;
  killAfterTest(executor);
  runner.process.kill("SIGINT");
  await runner.waitFor(/taking no new runs/);
  runner.process.kill("SIGINT");
  await runner.waitFor(/Stopping run run_now/);
  runner.process.kill("SIGINT");
  expect(await runner.process.exited).toBe(130);
  expect(await goneWithin(executor, 5000)).toBe(true);
});

async function persistentRunner(fake: FakeCoordinator) {
  const profiles = tempDir("ar-persistent-");
  const profile = { type: "autonomous", command: join(FIXTURES, "persistent"), lifecycle: "persistent" };
  writeFileSync(join(profiles, "persistent.json"), JSON.stringify(profile));
  return startCli(["--profile", "persistent", "--profiles-dir", profiles, "-c", fake.url, ...LONG_GRACE], {
    AGENT_RUNNER_STATE_DIR: tempDir("ar-state-"),
  });
}

test("a signal while idle sessions are ended at shutdown: an executor that ignores the shutdown line is killed as the runner exits", async () => {
  const fake = startFakeCoordinator({ protocol: "2.2" });
  const runner = await persistentRunner(fake);
  await fake.waitForRequest("GET", "/runner/runs");
  const run = fake.handRun({ session_id: "ses_stay", prompt: "ignore-shutdown" });
  await fake.waitForStatus(run.run_id, ["completed"]);
  const executor: number = (await fake.waitFor((r) => r.path === "/sessions/ses_stay/events" && r.body?.turn === 1))
    .body.pid;
  killAfterTest(executor);
  runner.process.kill("SIGTERM");
  await runner.waitFor(/Ending 1 persistent session/);
  runner.process.kill("SIGTERM");
  expect(await runner.process.exited).toBe(130);
  expect(await goneWithin(executor, 5000)).toBe(true);
});
