/**
 * The worker loop under faults, against a fake coordinator that behaves like the reference one
 * where it matters: a poll whose client hung up still claims a run, reports need a registration,
 * a stop request marks the run `stopping`, and whatever report arrives last sets the run's status.
 */
import { describe, expect, test } from "bun:test";
import { captureLog } from "../support/fault-tools.ts";
import { GENERATIONS } from "../support/generations.ts";
import { type RunnerHarness, startHeldRunsHarness, startRunnerHarness } from "../support/runner-harness.ts";

const finalReport = (h: RunnerHarness, runId: string) =>
  h.fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"));

describe.each(GENERATIONS)("graceful shutdown (protocol %s)", (protocol) => {
  test("a run the in-flight poll brings after the stop signal is not lost", async () => {
    const harness = await startRunnerHarness({ fake: { protocol, abortedPollsClaim: true, pollTimeoutSeconds: 2 } });
    await harness.fake.waitForRequest("GET", "/runner/runs");
    harness.worker.shutdown("SIGTERM");
    const runId = harness.handRun();
    await harness.done;
    expect(harness.fake.lost).toEqual([]);
    expect(["completed", "failed"]).toContain(harness.fake.runStatus.get(runId) as string);
  });

  test("a stop requested while the runner drains is honoured", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { protocol },
    });
    const runId = harness.handRun({ session_id: "ses_drain" });
    await release.waiting("ses_drain");
    harness.worker.shutdown("SIGTERM");
    harness.fake.requestStop(runId);
    await harness.fake.waitForStatus(runId, ["stopped"], 10_000);
    await harness.done;
  });
});

describe("graceful shutdown", () => {
  test("2.1: a stop while the blueprint is being fetched is reported stopped, and nothing is spawned", async () => {
    const gate = Promise.withResolvers<void>();
    const harness = await startRunnerHarness({ fake: { agents: { slow: { name: "slow" } } } });
    harness.fake.on("GET", /^\/agents\/slow$/, async () => {
      await gate.promise;
      return undefined;
    });
    const runId = harness.handRun({ agent_name: "slow" });
    await harness.fake.waitForRequest("GET", "/agents/slow");
    const log = captureLog();
    harness.fake.handStop([runId]);
    await log.waitFor(/Stop for run .* before its executor started/);
    gate.resolve();
    const report = await finalReport(harness, runId);
    expect(report.path).toBe(`/runner/runs/${runId}/stopped`);
    expect(harness.fake.find("POST", `/runner/runs/${runId}/started`)).toEqual([]);
  });
});

describe("poll replies", () => {
  test("2.1: a reply carrying both stop_runs and a run handles both", async () => {
    const harness = await startRunnerHarness();
    harness.fake.hand({
      stop_runs: ["run_elsewhere"],
      run: { run_id: "run_both", type: "start_session", session_id: "ses_both", prompt: "p" },
    });
    await harness.fake.waitForStatus("run_both", ["completed"]);
  });

  test("polls answered at once with nothing are paced, not repeated in a busy loop", async () => {
    const harness = await startRunnerHarness();
    const polls = () => harness!.fake.find("GET", "/runner/runs");
    harness.fake.on("GET", /^\/runner\/runs$/, () => new Response(null, { status: 204 }));
    const base = polls().length;
    await harness.fake.waitFor(() => polls().length >= base + 3, 10_000);
    const [first, , third] = polls().slice(base);
    // Paced to about one a second; without pacing these come microseconds apart.
    expect(third!.at - first!.at).toBeGreaterThanOrEqual(1500);
  });
});

describe.each(GENERATIONS)("reports (protocol %s)", (protocol) => {
  test("a started report answered after the request timeout is not overtaken by the final report", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, requestTimeoutMs: 300 });
    let first = true;
    harness.fake.on("POST", /\/started$/, async () => {
      if (!first) return undefined;
      first = false;
      await Bun.sleep(1000);
      return undefined;
    });
    const runId = harness.handRun();
    const started = await harness.fake.waitForRequest("POST", `/runner/runs/${runId}/started`);
    await finalReport(harness, runId);
    await started.answered;
    expect(harness.fake.runStatus.get(runId)).toBe("completed");
  });

  test("the outcome of a run is delivered after the runner was deregistered from outside", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { protocol, strictReports: true },
    });
    const log = captureLog();
    const runId = harness.handRun({ session_id: "ses_removed" });
    await release.waiting("ses_removed");
    harness.fake.deregister();
    await log.waitFor(/deregistered this runner/);
    release.release("ses_removed");
    await harness.fake.waitForStatus(runId, ["completed"], 10_000);
    await harness.done;
    // The registration made only to deliver the outcome is taken back.
    expect(harness.fake.registered).toBe(false);
  });
});

describe("reports", () => {
  test("a successful report ends the poll's backoff: polling resumes at once, not after the backoff", async () => {
    const { harness, release } = await startHeldRunsHarness({
      retryInitialMs: 4000,
    });
    const runId = harness.handRun({ session_id: "ses_backoff" });
    await release.waiting("ses_backoff");
    harness.fake.on("GET", /^\/runner\/runs$/, () => new Response("overloaded", { status: 503 }));
    const polls = () => harness!.fake.find("GET", "/runner/runs").length;
    const before = polls();
    // Two failed polls: the next retry is now 4 to 8 s away.
    await harness.fake.waitFor(() => polls() >= before + 2, 15_000);
    harness.fake.on("GET", /^\/runner\/runs$/, () => new Response(null, { status: 204 }));
    release.release("ses_backoff");
    const completed = await finalReport(harness, runId);
    const next = await harness.fake.waitFor((r) => r.path === "/runner/runs" && r.at > completed.at, 15_000);
    expect(next.at - completed.at).toBeLessThan(3000);
  });
});

describe.each(GENERATIONS)("registering again (protocol %s)", (protocol) => {
  test("a 409 from another runner holding the identity is not adopted: no polling under its id", async () => {
    const log = captureLog();
    const harness = await startRunnerHarness({ fake: { protocol } });
    await harness.fake.waitForRequest("GET", "/runner/runs");
    harness.fake.heldBy = "other-host";
    harness.fake.forgetRunner();
    const registrations = () => harness!.fake.find("POST", "/runner/register");
    // The first registration, then two refused with 409.
    await harness.fake.waitFor(() => registrations().length >= 3, 5000);
    const conflict = registrations()[1]!;
    expect(harness.fake.find("GET", "/runner/runs").filter((r) => r.at > conflict.at)).toEqual([]);
    await log.waitFor(/held by another runner/);
    harness.fake.heldBy = undefined;
    const registered = await harness.fake.waitFor(
      (r) => r.path === "/runner/register" && r.at > conflict.at && !harness!.fake.heldBy,
    );
    await harness.fake.waitFor((r) => r.path === "/runner/runs" && r.at > registered.at);
  });

  test("a 409 for its own registration whose reply was lost is adopted", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, requestTimeoutMs: 500 });
    await harness.fake.waitForRequest("GET", "/runner/runs");
    let lose = true;
    harness.fake.on("POST", /^\/runner\/register$/, async () => {
      if (!lose) return undefined;
      lose = false;
      harness!.fake.registered = true;
      harness!.fake.heldBy = "test-host";
      await Bun.sleep(1500);
      return Response.json({ runner_id: "lnch_test" });
    });
    harness.fake.forgetRunner();
    const registrations = () => harness!.fake.find("POST", "/runner/register");
    await harness.fake.waitFor(() => registrations().length >= 3);
    const conflict = registrations()[2]!;
    await harness.fake.waitFor((r) => r.path === "/runner/runs" && r.at > conflict.at);
  });

  test("a probe that timed out registered nothing: a 409 after it is another runner's, not adopted", async () => {
    const log = captureLog();
    const harness = await startRunnerHarness({ fake: { protocol }, requestTimeoutMs: 500 });
    await harness.fake.waitForRequest("GET", "/runner/runs");
    let hang = true;
    harness.fake.on("POST", /^\/runner\/sessions\/protocol-probe\/status$/, async () => {
      if (!hang) return undefined;
      hang = false;
      await Bun.sleep(1500);
      return undefined;
    });
    harness.fake.heldBy = "other-host";
    harness.fake.forgetRunner();
    const registrations = () => harness!.fake.find("POST", "/runner/register");
    // The first registration, then two refused with 409.
    await harness.fake.waitFor(() => registrations().length >= 3, 10_000);
    const conflict = registrations()[1]!;
    expect(harness.fake.find("GET", "/runner/runs").filter((r) => r.at > conflict.at)).toEqual([]);
    await log.waitFor(/held by another runner/);
  });
});

describe("registering again", () => {
  test("a stop signal ends re-registering at once when nothing is left to deliver", async () => {
    const harness = await startRunnerHarness({ retryInitialMs: 200 });
    await harness.fake.waitForRequest("GET", "/runner/runs");
    harness.fake.on("POST", /^\/runner\/register$/, () => new Response("bad gateway", { status: 502 }));
    harness.fake.forgetRunner();
    const registerCalls = () => harness!.fake.find("POST", "/runner/register").length;
    await harness.fake.waitFor(() => registerCalls() >= 3);
    const stoppedAt = performance.now();
    harness.worker.shutdown("SIGTERM");
    await harness.done;
    expect(performance.now() - stoppedAt).toBeLessThan(5000);
  });
});

describe("durations from the coordinator", () => {
  test("an absurd heartbeat interval from the coordinator is clamped with a warning, not a timer overflow", async () => {
    const log = captureLog();
    const harness = await startRunnerHarness({ fake: { heartbeatIntervalSeconds: 3_000_000 } });
    await log.waitFor(/heartbeat_interval_seconds 3000000.*using 3600/);
    await harness.fake.waitForRequest("GET", "/runner/runs");
    await Bun.sleep(300);
    expect(harness.fake.find("POST", "/runner/heartbeat").length).toBeLessThanOrEqual(1);
  });
});
