/**
 * The fleet controls end to end, against the fake coordinator: capacity, run timeout, ephemeral
 * runners (--max-runs, --exit-after-idle), the health server's answers, JSON logs.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { isoNow } from "../support/fake-sessions.ts";
import { type CliRunner, FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { GENERATIONS } from "../support/generations.ts";
import { parsePrometheusText, sampleValue } from "../support/prometheus-text.ts";
import { releaseServer } from "../support/release-server.ts";
import { FIXTURES, startHeldRunsHarness, startRunnerHarness } from "../support/runner-harness.ts";

/** A real runner process for the fault profile running `executor`, against `fake`. */
function startRunner(
  fake: FakeCoordinator,
  executor: string,
  args: string[],
  env: Record<string, string> = {},
): CliRunner {
  const profiles = profilesDirFor(executor);
  return startCli(
    ["--profile", "fault", "--profiles-dir", profiles, "-c", fake.url, "--stop-grace-seconds", "1", ...args],
    { AGENT_RUNNER_STATE_DIR: join(profiles, "state"), ...env },
  );
}

const run = (id: string, session = `ses_${id}`) => ({
  run_id: id,
  type: "start_session",
  session_id: session,
  prompt: "p",
});

describe("--max-concurrent-runs", () => {
  test("never more runs at once than the limit; the rest wait at the coordinator and start as slots free up", async () => {
    const { harness, release } = await startHeldRunsHarness({
      flags: { "max-concurrent-runs": "2" },
    });
    for (const n of [1, 2, 3, 4]) harness.fake.handRun(run(`run_cap${n}`));
    await release.waiting("ses_run_cap1");
    await release.waiting("ses_run_cap2");
    const pollsAtCapacity = harness.fake.find("GET", "/runner/runs").length;
    // At capacity the runner asks for nothing: two runs stay queued at the coordinator.
    await Bun.sleep(500);
    expect(harness.fake.find("GET", "/runner/runs").length).toBe(pollsAtCapacity);
    expect(harness.worker.activeRunCount).toBe(2);
    release.release("ses_run_cap1");
    await release.waiting("ses_run_cap3");
    expect(harness.worker.activeRunCount).toBe(2);
    release.release("ses_run_cap2");
    await release.waiting("ses_run_cap4");
    release.release("ses_run_cap3");
    release.release("ses_run_cap4");
    for (const n of [1, 2, 3, 4]) await harness.fake.waitForStatus(`run_cap${n}`, ["completed"]);
  });

  test.each(GENERATIONS)("the registration says what the limit is (protocol %s)", async (protocol) => {
    const harness = await startRunnerHarness({ fake: { protocol }, flags: { "max-concurrent-runs": "3" } });
    expect(harness.fake.find("POST", "/runner/register")[0]!.body.max_concurrent_runs).toBe(3);
  });
});

describe("--run-timeout", () => {
  test("a run active longer is stopped (its group killed after the grace) and reported failed naming the timeout", async () => {
    const harness = await startRunnerHarness({
      fixture: "hang",
      env: { FIXTURE_IGNORE_SIGTERM: "1" },
      flags: { "run-timeout": "1" },
    });
    const runId = harness.handRun();
    const report = await harness.fake.waitFor((r) => r.path === `/runner/runs/${runId}/failed`, 15_000);
    expect(report.body.error).toStartWith("run exceeded the run timeout of 1 s");
    expect(report.body.error).toContain("SIGKILL");
  });
});

describe("ephemeral runners", () => {
  test.each(GENERATIONS)(
    "--max-runs 1: takes one run, deregisters and exits 0 once it ended; the next run is left to others (protocol %s)",
    async (protocol) => {
      const fake = startFakeCoordinator({ protocol });
      const runner = startRunner(fake, join(FAULT_FIXTURES, "outcome"), ["--max-runs", "1"]);
      await fake.waitForRequest("GET", "/runner/runs");
      fake.handRun(run("run_only"));
      fake.handRun(run("run_next"));
      expect(await runner.process.exited).toBe(0);
      expect(fake.runStatus.get("run_only")).toBe("completed");
      // Never claimed: 2.1 keeps no status for what it did not hand out, 2.2 keeps the run pending.
      if (protocol === "2.1") expect(fake.runStatus.get("run_next")).toBeUndefined();
      else expect(fake.runStatus.get("run_next")).toBe("pending");
      expect(fake.find("DELETE", /^\/runners\//)).toHaveLength(1);
      expect(runner.output()).toContain("Took 1 run(s) (--max-runs 1)");
    },
  );

  test("--exit-after-idle: with no run for that long, deregisters and exits 0 saying why", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1 });
    const runner = startRunner(fake, join(FAULT_FIXTURES, "outcome"), ["--exit-after-idle", "1"]);
    expect(await runner.process.exited).toBe(0);
    expect(runner.output()).toContain("No run for 1 s (--exit-after-idle 1): deregistering and exiting");
    expect(fake.find("DELETE", /^\/runners\//)).toHaveLength(1);
  });
});

describe("--health-addr", () => {
  test("/readyz stays 200 with busy true while the limit is reached, draining after a stop signal; /metrics counts the runs", async () => {
    const release = releaseServer();
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1 });
    const runner = startRunner(
      fake,
      join(FAULT_FIXTURES, "outcome"),
      ["--health-addr", "127.0.0.1:0", "--max-concurrent-runs", "1"],
      { FAULT_RELEASE_URL: release.url },
    );
    await runner.waitFor(/Health and metrics at http:\/\/127\.0\.0\.1:\d+ /);
    const url = /Health and metrics at (\S+)/.exec(runner.output())![1]!;
    const readyz = async () => {
      const response = await fetch(`${url}/readyz`);
      return { status: response.status, ...((await response.json()) as { state: string }) };
    };
    await fake.waitForRequest("GET", "/runner/runs");
    expect(await readyz()).toMatchObject({ status: 200, state: "ready" });

    fake.handRun(run("run_ok", "ses_ok"));
    await release.waiting("ses_ok");
    expect(await readyz()).toMatchObject({ status: 200, state: "ready", busy: true });
    const busy = parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
    expect(sampleValue(busy, "agent_runner_at_capacity")).toBe(1);
    release.release("ses_ok");
    await fake.waitForStatus("run_ok", ["completed"]);
    fake.handRun(run("run_bad", "ses_x_fail_x"));
    await release.waiting("ses_x_fail_x");
    release.release("ses_x_fail_x");
    await fake.waitForStatus("run_bad", ["failed"]);

    const metrics = parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
    const count = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(metrics, name, { profile: "fault", ...labels });
    expect(count("agent_runner_runs_started_total")).toBe(2);
    expect(count("agent_runner_runs_total", { outcome: "completed" })).toBe(1);
    expect(count("agent_runner_runs_total", { outcome: "failed" })).toBe(1);
    expect(count("agent_runner_runs_failed_total", { reason: "executor_exit" })).toBe(1);
    expect(sampleValue(metrics, "agent_runner_active_runs")).toBe(0);

    fake.handRun(run("run_last", "ses_last"));
    await release.waiting("ses_last");
    runner.process.kill("SIGTERM");
    await runner.waitFor(/SIGTERM: taking no new runs/);
    expect(await readyz()).toMatchObject({ status: 503, state: "draining" });
    release.release("ses_last");
    expect(await runner.process.exited).toBe(0);
  });
});

describe("/metrics of a real runner", () => {
  test("runs by outcome and reason, the queue wait, the executor's start, the coordinator's answers, the process; promtool finds nothing wrong", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1, heartbeatIntervalSeconds: 1 });
    const runner = startRunner(fake, join(FAULT_FIXTURES, "outcome"), ["--health-addr", "127.0.0.1:0"]);
    await runner.waitFor(/Health and metrics at http:\/\/127\.0\.0\.1:\d+ /);
    const url = /Health and metrics at (\S+)/.exec(runner.output())![1]!;
    await fake.waitForRequest("GET", "/runner/runs");
    // Created at the coordinator three seconds ago.
    fake.handRun({ ...run("run_ok", "ses_ok"), created_at: isoNow(-3) });
    await fake.waitForStatus("run_ok", ["completed"]);
    // Says "planned failure" on stderr: its first output.
    fake.handRun(run("run_bad", "ses_x_fail_x"));
    await fake.waitForStatus("run_bad", ["failed"]);
    // No session id: reported failed without an executor.
    fake.hand({ run: { run_id: "run_shapeless", type: "start_session", prompt: "p" } });
    await fake.waitFor((r) => r.path === "/runner/runs/run_shapeless/failed");
    // The fake has a request when it arrives, the runner its answer a moment later: scraped until
    // the five reports (started and completed, started and failed, failed) and a heartbeat (one a
    // second) have their answers.
    let text = "";
    let metrics = parsePrometheusText("\n");
    const value = (name: string, labels: Record<string, string> = {}) => sampleValue(metrics, name, labels);
    const answered = (call: string) => value("agent_runner_coordinator_request_duration_seconds_count", { call });
    const deadline = performance.now() + 10_000;
    do {
      text = await (await fetch(`${url}/metrics`)).text();
      metrics = parsePrometheusText(text);
      if (performance.now() > deadline) throw new Error(`the answers never all counted:\n${text}`);
    } while (answered("report") !== 5 || answered("heartbeat") === undefined);
    expect(value("agent_runner_runs_started_total", { profile: "fault" })).toBe(2);
    expect(value("agent_runner_runs_total", { profile: "fault", outcome: "completed" })).toBe(1);
    expect(value("agent_runner_runs_total", { profile: "fault", outcome: "failed" })).toBe(2);
    expect(value("agent_runner_runs_failed_total", { profile: "fault", reason: "executor_exit" })).toBe(1);
    expect(value("agent_runner_runs_failed_total", { profile: "fault", reason: "bad_run" })).toBe(1);
    expect(value("agent_runner_run_duration_seconds_count", { outcome: "completed" })).toBe(1);
    expect(value("agent_runner_run_duration_seconds_count", { outcome: "failed" })).toBe(1);
    // Only the run that said when it was created has a queue wait: three seconds and its start.
    expect(value("agent_runner_run_queue_wait_seconds_count")).toBe(1);
    expect(value("agent_runner_run_queue_wait_seconds_sum")).toBeGreaterThanOrEqual(3);
    expect(value("agent_runner_run_queue_wait_seconds_sum")).toBeLessThan(30);
    // Only the executor that wrote something showed a sign of life.
    expect(value("agent_runner_executor_start_seconds_count")).toBe(1);
    expect(answered("register")).toBe(1);
    expect(answered("protocol_probe")).toBe(1);
    expect(answered("poll")).toBeUndefined();
    const contact = value("agent_runner_last_contact_timestamp_seconds")!;
    expect(contact).toBeLessThanOrEqual(Date.now() / 1000);
    expect(contact).toBeGreaterThan(Date.now() / 1000 - 10);
    expect(value("agent_runner_build_info", { profile: "fault", runner_id: "lnch_test" })).toBe(1);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(value("process_open_fds")).toBeGreaterThan(0);

    const promtool = Bun.which("promtool");
    if (!promtool) {
      console.warn("promtool check metrics: skipped (no promtool on PATH; Debian's prometheus package has it)");
    } else {
      const check = Bun.spawnSync([promtool, "check", "metrics"], { stdin: new TextEncoder().encode(text) });
      expect({ exit: check.exitCode, output: `${check.stdout}${check.stderr}` }).toEqual({ exit: 0, output: "" });
    }
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });
});

describe("/readyz and the coordinator", () => {
  test("a coordinator down longer than the poll hold plus the heartbeat interval makes it 503 coordinator_unreachable; 200 again once it answers", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1, heartbeatIntervalSeconds: 1 });
    const runner = startRunner(fake, join(FAULT_FIXTURES, "outcome"), ["--health-addr", "127.0.0.1:0"]);
    await runner.waitFor(/Health and metrics at http:\/\/127\.0\.0\.1:\d+ /);
    const url = /Health and metrics at (\S+)/.exec(runner.output())![1]!;
    const samples: Array<{ status: number; state: string; since: number; max: number }> = [];
    const readyz = async () => {
      const response = await fetch(`${url}/readyz`);
      const body = (await response.json()) as Record<string, unknown>;
      const sample = {
        status: response.status,
        state: String(body.state),
        since: Number(body.seconds_since_coordinator_answer),
        max: Number(body.max_coordinator_silence_seconds),
      };
      samples.push(sample);
      return sample;
    };
    const waitForState = async (state: string) => {
      const deadline = performance.now() + 20_000;
      while ((await readyz()).state !== state) {
        if (performance.now() > deadline) throw new Error(`/readyz never said ${state}: ${JSON.stringify(samples)}`);
        await Bun.sleep(50);
      }
    };
    await fake.waitForRequest("GET", "/runner/runs");
    await waitForState("ready");
    // The bound is the poll's hold plus the heartbeat interval, both from the registration.
    expect(samples.at(-1)!.max).toBe(2);

    await fake.down();
    await waitForState("coordinator_unreachable");
    expect(samples.at(-1)).toMatchObject({ status: 503, state: "coordinator_unreachable" });
    // Every answer on the way agreed with the bound (shown to a tenth of a second): ready while the
    // coordinator's silence was within it, unreachable past it.
    for (const sample of samples) {
      if (sample.state === "ready") expect(sample.since).toBeLessThanOrEqual(sample.max);
      if (sample.state === "coordinator_unreachable") expect(sample.since).toBeGreaterThanOrEqual(sample.max);
    }
    expect(samples.filter((sample) => sample.state === "ready").length).toBeGreaterThan(0);

    fake.up();
    await waitForState("ready");
    expect(samples.at(-1)!.status).toBe(200);
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });
});

describe("--log-format json", () => {
  test("every line is one JSON object; run lines carry run_id and session_id, all carry runner_id once registered", async () => {
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, join(FIXTURES, "exit-silent"), ["--log-format", "json"]);
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun(run("run_json", "ses_json"));
    await fake.waitForStatus("run_json", ["failed"]);
    runner.process.kill("SIGTERM");
    await runner.process.exited;
    const lines = runner
      .output()
      .split("\n")
      .filter((line) => line !== "");
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const entry of entries) expect(Object.keys(entry).slice(0, 3)).toEqual(["time", "level", "msg"]);
    const runLines = entries.filter((entry) => String(entry.msg).startsWith("Run run_json"));
    expect(runLines.length).toBeGreaterThanOrEqual(2);
    for (const entry of runLines)
      expect(entry).toMatchObject({ run_id: "run_json", session_id: "ses_json", runner_id: "lnch_test" });
    // A failed run's line says the executor's exit code.
    expect(runLines.map((entry) => entry.msg)).toContain(
      "Run run_json failed (exit code 7): Process exited with code 7",
    );
  });
});
