/**
 * Persistent sessions (profile lifecycle `persistent`, protocol 2.2) end to end: the persistent
 * fixture executor against the fake coordinator at 2.2. Turns in one process, idle sessions and
 * how each one ends (stop, death, bounds, shutdown, removal, the runner's own failure), resumes
 * without a live process, the order of a session's reports. Crashes of the runner process itself
 * are in tests/faults/runner-lifecycle.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import { type IdleSessions, noObserver, type RunnerObserver } from "../../src/runner/observer.ts";
import { captureLog } from "../support/fault-tools.ts";
import { completedBody, persistentProfile } from "../support/generations.ts";
import { executorsOf, goneWithin, isAlive } from "../support/processes.ts";
import { type HarnessOptions, noJournal, type RunnerHarness, startRunnerHarness } from "../support/runner-harness.ts";

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

/** Hands a session's first turn to the runner and waits until it completed; returns its run and its executor's pid. */
async function firstTurnCompleted(h: RunnerHarness, sessionId: string, prompt: string) {
  const runId = h.handRun({ session_id: sessionId, prompt });
  await h.fake.waitForStatus(runId, ["completed"]);
  const { pid } = await turnRecord(h, sessionId, 1);
  return { runId, pid };
}

/**
 * Leaves a session being ended: its executor ignores the shutdown line, so ending it, once a stop
 * while idle asks for it, takes the grace twice (shutdown, then SIGTERM). Resolves once that began.
 */
async function sessionBeingEnded(h: RunnerHarness, sessionId: string): Promise<void> {
  const first = h.handRun({ session_id: sessionId, prompt: "ignore-shutdown" });
  await h.fake.waitForStatus(first, ["completed"]);
  const log = captureLog();
  h.fake.requestSessionStop(sessionId);
  await log.waitFor(new RegExp(`Ending session ${sessionId}`));
}

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

describe("stops", () => {
  test("a stop during a turn ends the process and the run is reported stopped", async () => {
    const h = await persistentHarness();
    const runId = h.handRun({ session_id: "ses_stop_turn", prompt: "hang" });
    const { pid } = await turnRecord(h, "ses_stop_turn", 1);
    h.fake.requestStop(runId);
    const report = await finalReport(h, runId);
    expect(report.path).toEndWith("/stopped");
    expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGTERM" });
    expect(await goneWithin(pid, 2000)).toBe(true);
    expect(h.fake.sessionStatus.get("ses_stop_turn")).toBe("stopped");
    expect(sessionReports(h, "ses_stop_turn")).toEqual([]);
  });

  test("a stop while idle: the shutdown line ends the process, the session is reported finished, its token revoked", async () => {
    const h = await persistentHarness();
    const { runId, pid } = await firstTurnCompleted(h, "ses_stop_idle", "one");
    expect(h.fake.requestSessionStop("ses_stop_idle").body.status).toBe("stopping");
    await h.fake.waitForSessionStatus("ses_stop_idle", ["finished"]);
    expect(sessionReports(h, "ses_stop_idle")).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    expect(await goneWithin(pid, 2000)).toBe(true);
    expect(h.tokens.size).toBe(0);
    expect(h.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "completed"]);
  });

  test("a stop while idle for an executor that ignores the shutdown and SIGTERM: SIGKILL, reported stopped", async () => {
    const h = await persistentHarness();
    const { pid } = await firstTurnCompleted(h, "ses_stubborn", "ignore-shutdown");
    h.fake.requestSessionStop("ses_stubborn");
    await h.fake.waitForSessionStatus("ses_stubborn", ["stopped"]);
    expect(sessionReports(h, "ses_stubborn")).toEqual([{ runner_id: "lnch_test", status: "stopped" }]);
    expect(await goneWithin(pid, 2000)).toBe(true);
  });

  test("a stop for a resume that waits for its session's executor to end: no executor starts for it, it is reported stopped", async () => {
    const h = await persistentHarness();
    await sessionBeingEnded(h, "ses_wait_stop");
    const resumed = h.handRun({ session_id: "ses_wait_stop", type: "resume_session", prompt: "hang" });
    await h.fake.waitForStatus(resumed, ["claimed"]);
    expect(h.fake.requestStop(resumed).body.status).toBe("stopping");
    const report = await finalReport(h, resumed);
    expect(report.path).toEndWith("/stopped");
    expect(h.fake.reportsFor(resumed).map((r) => r.kind)).toEqual(["stopped"]);
    expect(invocations(h, "ses_wait_stop").map((i) => i.mode)).toEqual(["start"]);
    expect(executorsOf("ses_wait_stop")).toEqual([]);
  });

  test("a stop while idle reaches a runner at capacity, which does not poll: it asks about its idle sessions", async () => {
    const h = await persistentHarness({ flags: { "max-concurrent-runs": "1" } });
    const idle = h.handRun({ session_id: "ses_idle_cap", prompt: "one" });
    await h.fake.waitForStatus(idle, ["completed"]);
    const busy = h.handRun({ session_id: "ses_busy_cap", prompt: "hang" });
    await turnRecord(h, "ses_busy_cap", 1);
    const polls = h.fake.find("GET", "/runner/runs").length;
    h.fake.requestSessionStop("ses_idle_cap");
    await h.fake.waitForSessionStatus("ses_idle_cap", ["finished"], 10_000);
    expect(h.fake.find("GET", "/sessions/ses_idle_cap/status").length).toBeGreaterThan(0);
    expect(h.fake.find("GET", "/runner/runs").length).toBe(polls);
    expect(h.fake.reportsFor(busy).map((r) => r.kind)).toEqual(["started"]);
  });
});

describe("the executor dies", () => {
  test("during a turn: the run is reported failed with its exit code", async () => {
    const h = await persistentHarness();
    const runId = h.handRun({ session_id: "ses_die_turn", prompt: "exit 3" });
    const report = await finalReport(h, runId);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toBe("Process exited with code 3");
    expect(h.fake.sessionStatus.get("ses_die_turn")).toBe("failed");
    expect(sessionReports(h, "ses_die_turn")).toEqual([]);
    // The session is gone: a resume starts a new process that resumes it.
    const resumed = h.handRun({ session_id: "ses_die_turn", type: "resume_session", prompt: "again" });
    await h.fake.waitForStatus(resumed, ["completed"]);
    expect(invocations(h, "ses_die_turn").map((i) => i.mode)).toEqual(["start", "resume"]);
  });

  test("while idle, exiting 0 on its own: the session is reported finished", async () => {
    const h = await persistentHarness();
    const runId = h.handRun({ session_id: "ses_exit_idle", prompt: "exit-when-idle" });
    await h.fake.waitForStatus(runId, ["completed"]);
    expect(h.fake.reportsFor(runId).at(-1)!.body).toEqual(completedBody("2.2", "idle"));
    await h.fake.waitForSessionStatus("ses_exit_idle", ["finished"]);
    expect(sessionReports(h, "ses_exit_idle")).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    expect(h.tokens.size).toBe(0);
  });

  test("while idle: the session is reported failed (killed by a signal)", async () => {
    const h = await persistentHarness();
    const { pid } = await firstTurnCompleted(h, "ses_die_idle", "one");
    process.kill(pid, "SIGKILL");
    await h.fake.waitForSessionStatus("ses_die_idle", ["failed"]);
    expect(sessionReports(h, "ses_die_idle")).toEqual([{ runner_id: "lnch_test", status: "failed" }]);
    expect(h.tokens.size).toBe(0);
  });
});

describe("resumes", () => {
  test("an idle executor that closed its stdin: the resume is served by a new process and the old one is killed", async () => {
    const h = await persistentHarness();
    const { pid: deaf } = await firstTurnCompleted(h, "ses_deaf", "close-stdin");
    const resumed = h.handRun({ session_id: "ses_deaf", type: "resume_session", prompt: "again" });
    await h.fake.waitForStatus(resumed, ["completed"]);
    expect(invocations(h, "ses_deaf").map((i) => i.mode)).toEqual(["start", "resume"]);
    expect(await goneWithin(deaf, 2000)).toBe(true);
    expect(executorsOf("ses_deaf")).toHaveLength(1);
  });

  test("a resume while the session's turn is under way is reported failed as busy; the turn goes on", async () => {
    const h = await persistentHarness();
    const first = h.handRun({ session_id: "ses_busy", prompt: "hang" });
    await turnRecord(h, "ses_busy", 1);
    const second = h.handRun({ session_id: "ses_busy", type: "resume_session", prompt: "two" });
    const report = await finalReport(h, second);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("busy");
    expect(h.fake.reportsFor(first).map((r) => r.kind)).toEqual(["started"]);
    expect(h.worker.activeRunCount).toBe(1);
  });

  test("two resumes for a session whose executor is being ended: one new process takes a turn, the other run is refused as busy", async () => {
    const h = await persistentHarness();
    await sessionBeingEnded(h, "ses_twice");
    const a = h.handRun({ session_id: "ses_twice", type: "resume_session", prompt: "hang" });
    const b = h.handRun({ session_id: "ses_twice", type: "resume_session", prompt: "hang" });
    await h.fake.waitFor((r) => r.path === `/runner/runs/${a}/started` || r.path === `/runner/runs/${b}/started`);
    const refused = await h.fake.waitFor(
      (r) => r.path === `/runner/runs/${a}/failed` || r.path === `/runner/runs/${b}/failed`,
    );
    expect(refused.body.error).toContain("busy");
    await h.fake.waitFor((r) => r.path === "/sessions/ses_twice/events" && r.body?.invocation?.mode === "resume");
    expect(invocations(h, "ses_twice").map((i) => i.mode)).toEqual(["start", "resume"]);
    expect(h.worker.activeRunCount).toBe(1);
  });

  test("--max-idle-sessions 1: the longest idle is ended and reported finished; its resume starts a new process", async () => {
    const h = await persistentHarness({ flags: { "max-idle-sessions": "1" } });
    const { pid: oldPid } = await firstTurnCompleted(h, "ses_old", "a");
    const b = h.handRun({ session_id: "ses_new", prompt: "b" });
    await h.fake.waitForStatus(b, ["completed"]);
    await h.fake.waitForSessionStatus("ses_old", ["finished"]);
    expect(sessionReports(h, "ses_old")).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    expect(await goneWithin(oldPid, 2000)).toBe(true);
    expect(h.fake.sessionStatus.get("ses_new")).toBe("idle");
    expect(sessionReports(h, "ses_new")).toEqual([]);

    const resumed = h.handRun({ session_id: "ses_old", type: "resume_session", prompt: "again" });
    await h.fake.waitForStatus(resumed, ["completed"]);
    expect(h.fake.reportsFor(resumed)).toEqual([STARTED, { kind: "completed", body: completedBody("2.2", "idle") }]);
    const [, second] = invocations(h, "ses_old");
    expect(second).toMatchObject({ schema_version: "2.2", mode: "resume", parameters: { prompt: "again" } });
    const turns = h.fake.find("POST", "/sessions/ses_old/events").filter((r) => r.body?.turn === 1);
    expect(turns).toHaveLength(2);
    expect(turns[0]!.body.pid).toBe(oldPid);
    expect(turns[1]!.body.pid).not.toBe(oldPid);
  });
});

describe("bounds", () => {
  test("--max-idle-sessions 0: completed says finished and the process is ended", async () => {
    const h = await persistentHarness({ flags: { "max-idle-sessions": "0" } });
    const runId = h.handRun({ session_id: "ses_none_idle", prompt: "one" });
    await h.fake.waitForStatus(runId, ["completed"]);
    expect(h.fake.reportsFor(runId)).toEqual([STARTED, { kind: "completed", body: completedBody("2.2", "finished") }]);
    const { pid } = await turnRecord(h, "ses_none_idle", 1);
    expect(await goneWithin(pid, 3000)).toBe(true);
    expect(h.fake.sessionStatus.get("ses_none_idle")).toBe("finished");
    expect(sessionReports(h, "ses_none_idle")).toEqual([]);
  });

  test("--idle-session-timeout: a session idle that long is ended and reported finished", async () => {
    const h = await persistentHarness({ flags: { "idle-session-timeout": "1" } });
    const { pid } = await firstTurnCompleted(h, "ses_timeout", "one");
    await h.fake.waitForSessionStatus("ses_timeout", ["finished"], 5000);
    expect(sessionReports(h, "ses_timeout")).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    expect(await goneWithin(pid, 2000)).toBe(true);
  });
});

describe("what /readyz and /metrics read of the idle sessions", () => {
  test("their number, and the resident memory of their executors' processes", async () => {
    let read: (() => IdleSessions) | undefined;
    const observer: RunnerObserver = {
      ...noObserver,
      trackIdleSessions: (idle) => {
        read = idle;
      },
    };
    const h = await persistentHarness({ observer });
    expect(read?.()).toEqual({ count: 0, memoryBytes: 0 });
    const runs = ["ses_mem_1", "ses_mem_2"].map((sessionId) => h.handRun({ session_id: sessionId, prompt: "one" }));
    for (const runId of runs) await h.fake.waitForStatus(runId, ["completed"]);
    // Each fixture executor is a Bun process: tens of MB resident.
    const MIB = 1024 * 1024;
    const both = read!();
    expect(both.count).toBe(2);
    expect(both.memoryBytes).toBeGreaterThan(2 * 10 * MIB);
    h.fake.requestSessionStop("ses_mem_1");
    await h.fake.waitForSessionStatus("ses_mem_1", ["finished"]);
    const one = read!();
    expect(one.count).toBe(1);
    expect(one.memoryBytes).toBeGreaterThan(10 * MIB);
  });
});

describe("runner shutdown", () => {
  test("first signal with an idle session: the session is ended and reported finished, then the runner deregisters", async () => {
    const h = await persistentHarness();
    const { pid } = await firstTurnCompleted(h, "ses_shutdown", "one");
    h.worker.shutdown("SIGTERM");
    await h.done;
    expect(isAlive(pid)).toBe(false);
    const status = h.fake.find("POST", "/runner/sessions/ses_shutdown/status");
    expect(status.map((r) => r.body)).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    const [deregister] = h.fake.find("DELETE", "/runners/lnch_test");
    expect(deregister!.at).toBeGreaterThan(status[0]!.at);
    expect(h.fake.sessionStatus.get("ses_shutdown")).toBe("finished");
  });
});

describe("the runner's own failures", () => {
  test("a journal that throws when a session's executor starts: the executor is stopped, the run reported failed, the session free", async () => {
    let broken = true;
    const h = await persistentHarness({
      journal: {
        ...noJournal,
        sessionStarted() {
          if (broken) throw new Error("EIO: the disk went away");
        },
      },
    });
    const runId = h.handRun({ session_id: "ses_eio", prompt: "one" });
    const report = await finalReport(h, runId);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("EIO: the disk went away");
    // Its executor had been started; the run's outcome is queued only once it is gone.
    expect(executorsOf("ses_eio")).toEqual([]);
    expect(h.tokens.size).toBe(0);

    broken = false;
    const resumed = h.handRun({ session_id: "ses_eio", type: "resume_session", prompt: "again" });
    await h.fake.waitForStatus(resumed, ["completed"]);
    expect(invocations(h, "ses_eio").at(-1)).toMatchObject({ mode: "resume", parameters: { prompt: "again" } });
  });
});

describe("removed from outside", () => {
  test("deregistered with a session idle: the session is ended and its end delivered, the registration made for it taken back", async () => {
    const h = await persistentHarness();
    const { pid } = await firstTurnCompleted(h, "ses_removed", "one");
    h.fake.deregister();
    await h.done;
    expect(isAlive(pid)).toBe(false);
    expect(h.fake.sessionStatus.get("ses_removed")).toBe("finished");
    const taken = h.fake
      .find("POST", "/runner/sessions/ses_removed/status")
      .filter((r) => r.status === 200)
      .map((r) => r.body);
    expect(taken).toEqual([{ runner_id: "lnch_test", status: "finished" }]);
    expect(h.fake.registered).toBe(false);
  });
});

describe("a persistent profile against a 2.1 coordinator", () => {
  test("each run gets an executor of its own, one-shot, with a warning at start", async () => {
    const log = captureLog();
    const h = await persistentHarness({ fake: { protocol: "2.1" } });
    await log.waitFor(/Profile 'test' is persistent, but a coordinator of protocol 2\.1 has no idle sessions/);
    const first = h.handRun({ session_id: "ses_21", prompt: "one" });
    await h.fake.waitForStatus(first, ["completed"]);
    const second = h.handRun({ session_id: "ses_21", type: "resume_session", prompt: "two" });
    await h.fake.waitForStatus(second, ["completed"]);
    for (const runId of [first, second])
      expect(h.fake.reportsFor(runId)).toEqual([STARTED, { kind: "completed", body: completedBody("2.1") }]);
    const turns = h.fake.find("POST", "/sessions/ses_21/events").filter((r) => r.body?.turn === 1);
    expect(turns.map((r) => r.body.lifecycle)).toEqual(["one_shot", "one_shot"]);
    expect(turns[0]!.body.pid).not.toBe(turns[1]!.body.pid);
    expect(invocations(h, "ses_21").map((i) => [i.schema_version, i.mode, i.prompt])).toEqual([
      ["2.1", "start", "one"],
      ["2.1", "resume", "two"],
    ]);
  });
});

describe("the order of a session's reports", () => {
  test("the end of a session is not delivered before its last run's completed, however slow the coordinator", async () => {
    const log = captureLog();
    const h = await persistentHarness({ flags: { "idle-session-timeout": "1" } });
    const held = Promise.withResolvers<void>();
    let releasedAt = Number.POSITIVE_INFINITY;
    h.fake.on("POST", /^\/runner\/runs\/[^/]+\/completed$/, async () => {
      await held.promise;
      releasedAt = performance.now();
      return undefined;
    });
    const runId = h.handRun({ session_id: "ses_order", prompt: "one" });
    const completed = await h.fake.waitForRequest("POST", `/runner/runs/${runId}/completed`);
    // The session times out and ends while its run's completed is still unanswered.
    await log.waitFor(/Session ses_order ended .*reported finished/);
    // A poll answered after that: a report sent out of turn would have reached the coordinator by now.
    await h.fake.nextPoll();
    expect(sessionReports(h, "ses_order")).toEqual([]);
    held.resolve();
    const status = await h.fake.waitForRequest("POST", "/runner/sessions/ses_order/status");
    await Promise.all([completed.answered, status.answered]);
    // Sent only once the completed was answered: the coordinator ends with the session finished, not idle.
    expect(status.at).toBeGreaterThan(releasedAt);
    expect(status.body).toEqual({ runner_id: "lnch_test", status: "finished" });
    expect(h.fake.find("POST", `/runner/runs/${runId}/completed`)).toHaveLength(1);
    expect(h.fake.sessionStatus.get("ses_order")).toBe("finished");
  });
});
