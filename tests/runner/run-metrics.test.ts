/**
 * What a run tells the observer (and so /metrics): its outcome and, when it failed, why, from
 * each place RunJob fails a run; its queue wait; its executor's first sign of life.
 */
import { describe, expect, test } from "bun:test";
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import { noObserver, type RunEnd, type RunnerObserver } from "../../src/runner/observer.ts";
import { isoNow } from "../support/fake-sessions.ts";
import {
  FIXTURES,
  fixtureProfile,
  type HarnessOptions,
  noJournal,
  startRunnerHarness,
} from "../support/runner-harness.ts";

/** An observer that keeps what it is told about runs. */
function recordingObserver() {
  const ends: RunEnd[] = [];
  const started: Array<number | undefined> = [];
  const responded: number[] = [];
  const waiters: Array<() => void> = [];
  const observer: RunnerObserver = {
    ...noObserver,
    runStarted: (queueWaitSeconds) => void started.push(queueWaitSeconds),
    executorResponded: (seconds) => void responded.push(seconds),
    runEnded: (end) => {
      ends.push(end);
      for (const wake of waiters.splice(0)) wake();
    },
  };
  return {
    observer,
    ends,
    started,
    responded,
    /** The end of the nth run (counting from 1), once it came. */
    async end(n: number): Promise<RunEnd> {
      while (ends.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return ends[n - 1]!;
    },
  };
}

async function harnessWith(options: HarnessOptions) {
  const recorder = recordingObserver();
  const harness = await startRunnerHarness({ ...options, observer: recorder.observer });
  return { harness, recorder };
}

describe("failure reasons: each place a run fails says why", () => {
  test("executor_exit: the executor exited non-zero (its duration counted)", async () => {
    const { harness, recorder } = await harnessWith({ fixture: "fail" });
    harness.handRun();
    const end = await recorder.end(1);
    expect(end).toMatchObject({ outcome: "failed", reason: "executor_exit" });
    expect(end.durationSeconds).toBeGreaterThan(0);
  });

  test("timeout: --run-timeout stopped it; counted timed_out", async () => {
    const { harness, recorder } = await harnessWith({ fixture: "hang", flags: { "run-timeout": "1" } });
    harness.handRun();
    expect(await recorder.end(1)).toMatchObject({ outcome: "timed_out", reason: "timeout" });
  });

  test("bad_run: a run type the runner does not know", async () => {
    const { harness, recorder } = await harnessWith({});
    harness.handRun({ type: "fork_session" });
    expect(await recorder.end(1)).toEqual({ outcome: "failed", reason: "bad_run", durationSeconds: undefined });
  });

  test("bad_run: a malformed run payload, reported failed by the worker", async () => {
    const { harness, recorder } = await harnessWith({});
    harness.fake.hand({ run: { run_id: "run_shapeless", type: "start_session", prompt: "p" } });
    expect(await recorder.end(1)).toEqual({ outcome: "failed", reason: "bad_run" });
    expect(recorder.started).toEqual([]);
  });

  test("tag_mismatch: --require-matching-tags refused it", async () => {
    const { harness, recorder } = await harnessWith({ flags: { tags: "gpu", "require-matching-tags": true } });
    harness.handRun({ demands: { tags: ["cpu"] } });
    expect(await recorder.end(1)).toMatchObject({ outcome: "failed", reason: "tag_mismatch" });
  });

  test("blueprint_error: the coordinator does not know the run's agent (2.1)", async () => {
    const { harness, recorder } = await harnessWith({});
    harness.handRun({ agent_name: "nobody-knows-me" });
    expect(await recorder.end(1)).toMatchObject({ outcome: "failed", reason: "blueprint_error" });
  });

  test("spawn_error: the executor cannot be started (its project directory is missing)", async () => {
    const { harness, recorder } = await harnessWith({});
    harness.handRun({ project_dir: "/nonexistent/project" });
    expect(await recorder.end(1)).toEqual({ outcome: "failed", reason: "spawn_error", durationSeconds: undefined });
    expect(recorder.responded).toEqual([]);
  });

  test("busy: a resume while the session's turn is still under way (persistent, 2.2)", async () => {
    const profile: ExecutorProfile = { ...fixtureProfile("persistent"), lifecycle: "persistent" };
    const { harness, recorder } = await harnessWith({ profile, fake: { protocol: "2.2" } });
    harness.fake.handRun({ run_id: "run_turn1", type: "start_session", session_id: "ses_busy", prompt: "hang" });
    await harness.fake.waitFor((r) => r.path === "/runner/runs/run_turn1/started");
    harness.fake.handRun({ run_id: "run_turn2", type: "resume_session", session_id: "ses_busy", prompt: "again" });
    expect(await recorder.end(1)).toMatchObject({ outcome: "failed", reason: "busy" });
  });

  test("runner_error: the runner itself failed handling the run", async () => {
    const broken = {
      ...noJournal,
      runStarted() {
        throw new Error("disk on fire");
      },
    };
    const { harness, recorder } = await harnessWith({ fixture: "hang", journal: broken });
    const runId = harness.handRun();
    expect(await recorder.end(1)).toMatchObject({ outcome: "failed", reason: "runner_error" });
    const report = await harness.fake.waitFor((r) => r.path === `/runner/runs/${runId}/failed`);
    expect(report.body.error).toContain("disk on fire");
  });

  test("completed and stopped runs carry no reason", async () => {
    const { harness, recorder } = await harnessWith({ fixture: "hang" });
    harness.handRun({ run_id: "run_stop_me" });
    await harness.fake.waitFor((r) => r.path === "/runner/runs/run_stop_me/started");
    harness.fake.handStop(["run_stop_me"]);
    const end = await recorder.end(1);
    expect(end.outcome).toBe("stopped");
    expect(end.reason).toBeUndefined();
  });
});

describe("timings", () => {
  test("queue wait: from the run's created_at to its executor's start; none for a run without it", async () => {
    const { harness, recorder } = await harnessWith({ fixture: "capture" });
    harness.handRun({ run_id: "run_waited", created_at: isoNow(-5) });
    await recorder.end(1);
    harness.handRun({ run_id: "run_unsaid" });
    await recorder.end(2);
    expect(recorder.started).toHaveLength(2);
    expect(recorder.started[0]).toBeGreaterThanOrEqual(5);
    expect(recorder.started[0]).toBeLessThan(30);
    expect(recorder.started[1]).toBeUndefined();
  });

  test("queue wait: a created_at without a zone is UTC; one ahead of this clock (clocks apart) is no observation", async () => {
    const { harness, recorder } = await harnessWith({ fixture: "capture" });
    harness.handRun({ created_at: isoNow(-60).replace("+00:00", "") });
    await recorder.end(1);
    harness.handRun({ created_at: isoNow(3600) });
    await recorder.end(2);
    expect(recorder.started[0]).toBeGreaterThanOrEqual(60);
    expect(recorder.started[0]).toBeLessThan(90);
    expect(recorder.started[1]).toBeUndefined();
  });

  test("executor start: once per spawned executor, at its first output or its first gateway request; never for one that says nothing", async () => {
    // `fail` writes to stderr, `capture` only calls the gateway, `exit-silent` does neither.
    for (const [fixture, expected] of [
      ["fail", 1],
      ["capture", 1],
      ["exit-silent", 0],
    ] as const) {
      const { harness, recorder } = await harnessWith({ fixture });
      harness.handRun();
      await recorder.end(1);
      expect({ fixture, observed: recorder.responded.length }).toEqual({ fixture, observed: expected });
      for (const seconds of recorder.responded) expect(seconds).toBeGreaterThan(0);
      await harness.close();
    }
  });
});

// The fixtures the tests above use: each must be there, or a failure would be for the wrong reason.
test("the fixtures exist", async () => {
  for (const fixture of ["fail", "hang", "capture", "exit-silent", "persistent"]) {
    expect(await Bun.file(`${FIXTURES}/${fixture}`).exists()).toBe(true);
  }
});
