/**
 * The poll hold and heartbeat interval a coordinator gives at registration are kept within what
 * the runner's own flags accept, below as above: a coordinator that says a millisecond (a unit
 * mistaken) must not make the runner heartbeat in a loop or call itself unready while answered.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { coordinatorTiming } from "../../src/runner/registrar.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { tempDir } from "../support/processes.ts";

const FLAGS_UNSET = { pollTimeoutSeconds: undefined, heartbeatIntervalSeconds: undefined };

test("a hold and an interval below a second are taken as a second; above the bound, as the bound", () => {
  expect(
    coordinatorTiming(FLAGS_UNSET, { runner_id: "r", poll_timeout_seconds: 0.001, heartbeat_interval_seconds: 1e-9 }),
  ).toEqual({ holdSeconds: 1, heartbeatSeconds: 1 });
  expect(
    coordinatorTiming(FLAGS_UNSET, { runner_id: "r", poll_timeout_seconds: 1e9, heartbeat_interval_seconds: 1e9 }),
  ).toEqual({ holdSeconds: 600, heartbeatSeconds: 3600 });
});

test("a runner told to heartbeat every millisecond heartbeats about once a second, and says why", async () => {
  const fake = startFakeCoordinator({ heartbeatIntervalSeconds: 0.001, pollTimeoutSeconds: 0.001 });
  const runner = startCli(
    ["--profile", "fault", "--profiles-dir", profilesDirFor(join(FAULT_FIXTURES, "outcome")), "-c", fake.url],
    { AGENT_RUNNER_STATE_DIR: tempDir("ar-state-") },
  );
  // Empty polls are paced a second apart: three of them span two seconds at least.
  const first = await fake.waitForRequest("GET", "/runner/runs");
  await fake.waitFor((r) => r.path === "/runner/runs" && fake.find("GET", "/runner/runs").length >= 4);
  const third = fake.find("GET", "/runner/runs")[3]!;
  const beats = fake.find("POST", "/runner/heartbeat").filter((r) => r.at >= first.at && r.at <= third.at);
  expect(beats.length).toBeLessThanOrEqual(5);
  expect(runner.output()).toContain("The coordinator's heartbeat_interval_seconds 0.001 is below 1 s; using 1");
});
