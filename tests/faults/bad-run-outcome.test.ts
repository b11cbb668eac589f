/**
 * A run handed out malformed is failed at once; that failure is an outcome like any other: kept in
 * the journal until the coordinator has it, so a runner that exits before it is delivered (the
 * coordinator's reports hang) delivers it at its next start.
 */
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { join } from "node:path";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { GENERATIONS } from "../support/generations.ts";
import { tempDir } from "../support/processes.ts";

describe.each(GENERATIONS)("protocol %s", (protocol) => {
  test("a malformed run's failure, undelivered at exit, is delivered by the next start", async () => {
    const stateDir = tempDir("ar-state-");
    const fake = startFakeCoordinator({ protocol });
    let reportsHang = true;
    fake.on("POST", /\/failed$/, () => (reportsHang ? new Promise<Response>(() => {}) : undefined));
    const start = () =>
      startCli(
        ["--profile", "fault", "--profiles-dir", profilesDirFor(join(FAULT_FIXTURES, "outcome")), "-c", fake.url],
        { AGENT_RUNNER_STATE_DIR: stateDir },
      );
    const first = start();
    await fake.waitForRequest("GET", "/runner/runs");
    // A session id that is not a string: malformed in both generations.
    fake.hand({ run: { run_id: "run_malformed", type: "start_session", session_id: 42, prompt: "p" } });
    await fake.waitForRequest("POST", "/runner/runs/run_malformed/failed");
    first.process.kill("SIGTERM");
    await first.waitFor(/Delivering 1 report\(s\)/);
    first.process.kill("SIGTERM");
    expect(await first.process.exited).toBe(130);

    reportsHang = false;
    fake.heldBy = hostname();
    const restartedAt = performance.now();
    start();
    const report = await fake.waitFor(
      (r) => r.at > restartedAt && r.method === "POST" && r.path === "/runner/runs/run_malformed/failed",
      20_000,
    );
    expect(report.body.error).toContain("Malformed run payload");
    expect(report.body.error).toContain("session_id must be a string");
  });
});
