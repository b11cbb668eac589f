/**
 * Persistent sessions (profile lifecycle `persistent`, protocol 2.2) end to end: the persistent
 * fixture executor against the fake coordinator at 2.2. Turns in one process, idle sessions and
 * how each one ends (stop, death, bounds, shutdown), resumes without a live process, report order.
 */
import { describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import type { HarnessOptions, RunnerHarness } from "../support/runner-harness.ts";
import { startRunnerHarness } from "../support/runner-harness.ts";
import { completedBody, persistentProfile } from "../support/generations.ts";
import { captureLog } from "../support/fault-tools.ts";
import { goneWithin, isAlive } from "../support/processes.ts";

const STARTED = { kind: "started", body: { runner_id: "lnch_test" } };

function persistentHarness(options: HarnessOptions = {}): Promise<RunnerHarness> {
  return startRunnerHarness({ profile: persistentProfile(), ...options, fake: { protocol: "2.2", ...options.fake } });
}

/** What the fixture recorded for a turn (the nth of its process, counted from 1). */
const turnRecord = async (h: RunnerHarness, sessionId: string, turn: number) =>
  (await h.fake.waitFor((r) => r.path === `/sessions/${sessionId}/events` && r.body?.turn === turn)).body;

/** The invocation lines the fixture processes of a session were started with, in order. */
const invocations = (h: RunnerHarness, sessionId: string) =>
  h.fake
    .find("POST", `/sessions/${sessionId}/events`)
    .filter((r) => r.body?.invocation)
    .map((r) => r.body.invocation);

const finalReport = (h: RunnerHarness, runId: string) =>
  h.fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"));

const sessionReports = (h: RunnerHarness, sessionId: string) =>
  h.fake.find("POST", `/runner/sessions/${sessionId}/status`).map((r) => r.body);

describe("turns", () => {
  test("two turns run in one process; completed says idle; the next turn makes the idle session running", async () => {
    const h = await persistentHarness({ flags: { "project-dir": "/tmp" } });
    const first = h.handRun({ session_id: "ses_p1", prompt: "one" });
    await h.fake.waitForStatus(first, ["completed"]);
    expect(h.fake.reportsFor(first)).toEqual([STARTED, { kind: "completed", body: completedBody("2.2", "idle") }]);
    expect(h.fake.sessionStatus.get("ses_p1")).toBe("idle");

    const second = h.handRun({ session_id: "ses_p1", type: "resume_session", prompt: "hang" });
    await h.fake.waitForRequest("POST", `/runner/runs/${second}/started`).then((r) => r.answered);
    expect(h.fake.sessionStatus.get("ses_p1")).toBe("running");
    const [one, two] = [await turnRecord(h, "ses_p1", 1), await turnRecord(h, "ses_p1", 2)];
    expect(two.pid).toBe(one.pid);
    expect(two.prompt).toBe("hang");
    expect(one.lifecycle).toBe("persistent");
    expect(invocations(h, "ses_p1")).toEqual([
      {
        schema_version: "2.2",
        mode: "start",
        session_id: "ses_p1",
        project_dir: realpathSync("/tmp"),
        parameters: { prompt: "one" },
      },
    ]);
    expect(isAlive(one.pid)).toBe(true);
  });
});
