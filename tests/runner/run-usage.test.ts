/**
 * What runs cost, end to end through a real runner process: with a fixture executor that sends
 * the usage events its prompt scripts (the numbers in the report and the forwarded events, in
 * /metrics, in the JSON log line; budget and turn-limit stops; `--max-cost-usd`), and with the
 * Claude Code executor against the fake Messages API.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TurnUsage } from "../../src/protocol/session-events.ts";
import { CLAUDE_CODE_BINARY, offlineClaudeEnv } from "../support/claude-code.ts";
import { startFakeAnthropic } from "../support/fake-anthropic.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { type CliRunner, crashRunner, startCli } from "../support/fault-tools.ts";
import { persistentProfile } from "../support/generations.ts";
import { CLAUDE_CODE_EXECUTOR, tempDir } from "../support/processes.ts";
import { parsePrometheusText, sampleValue } from "../support/prometheus-text.ts";
import { FIXTURES, startRunnerHarness } from "../support/runner-harness.ts";

const turn = (fields: Partial<TurnUsage>): TurnUsage => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation_input_tokens: 0,
  total_cost_usd: 0,
  num_turns: 1,
  duration_ms: 100,
  duration_api_ms: 80,
  ...fields,
});

/** A run of the usage fixture: its prompt scripts the usage events, stderr and exit. */
const run = (id: string, script: { usage?: unknown[]; stderr?: string; exit?: number }) => ({
  run_id: id,
  type: "start_session",
  session_id: `ses_${id}`,
  prompt: JSON.stringify(script),
});

/**
 * A runner process for the profile `metered` (default: the usage fixture, with `config`), against
 * `fake`.
 */
function startRunner(
  fake: FakeCoordinator,
  args: string[],
  config: Record<string, unknown> = {},
  options: { command?: string; env?: Record<string, string> } = {},
): CliRunner {
  const dir = tempDir("ar-usage-");
  const command = options.command ?? join(FIXTURES, "usage");
  writeFileSync(join(dir, "metered.json"), JSON.stringify({ type: "claude-code", command, config }));
  return startCli(
    ["--profile", "metered", "--profiles-dir", dir, "-c", fake.url, "--stop-grace-seconds", "1", ...args],
    { AGENT_RUNNER_STATE_DIR: join(dir, "state"), ...options.env },
  );
}

async function metricsOf(runner: CliRunner) {
  const url = /Health and metrics at (\S+)/.exec(runner.output())![1]!;
  return parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
}

const jsonLines = (runner: CliRunner) =>
  runner
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("a run's usage", () => {
  test("summed over its turns: in the completed report, the events forwarded unchanged, /metrics, the JSON log line", async () => {
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, ["--health-addr", "127.0.0.1:0", "--log-format", "json"]);
    await fake.waitForRequest("GET", "/runner/runs");
    const turns = [
      turn({
        input_tokens: 1200,
        output_tokens: 340,
        cache_read_input_tokens: 5000,
        cache_creation_input_tokens: 700,
        total_cost_usd: 0.0412,
        num_turns: 3,
      }),
      turn({
        input_tokens: 800,
        output_tokens: 60,
        cache_read_input_tokens: 6100,
        cache_creation_input_tokens: 0,
        total_cost_usd: 0.0537,
        num_turns: 2,
      }),
    ];
    fake.handRun(run("run_two_turns", { usage: turns }));
    const completed = await fake.waitFor((r) => r.path === "/runner/runs/run_two_turns/completed");
    expect(completed.body).toEqual({
      runner_id: "lnch_test",
      status: "success",
      usage: {
        input_tokens: 2000,
        output_tokens: 400,
        cache_read_input_tokens: 11_100,
        cache_creation_input_tokens: 700,
        cost_usd: 0.0537,
        num_turns: 5,
      },
    });
    // The events themselves reach the coordinator as the executor sent them.
    const events = fake.find("POST", "/sessions/ses_run_two_turns/events").map((r) => r.body);
    expect(events.map((event) => event.usage)).toEqual(turns);
    expect(events.map((event) => event.event_type)).toEqual(["usage", "usage"]);

    const metrics = await metricsOf(runner);
    const tokens = (kind: string) => sampleValue(metrics, "agent_runner_tokens_total", { profile: "metered", kind });
    expect([tokens("input"), tokens("output"), tokens("cache_read"), tokens("cache_creation")]).toEqual([
      2000, 400, 11_100, 700,
    ]);
    expect(sampleValue(metrics, "agent_runner_cost_usd_total", { profile: "metered" })).toBeCloseTo(0.0537, 10);

    const end = jsonLines(runner).find((line) => line.run_id === "run_two_turns" && line.outcome)!;
    expect(end).toMatchObject({
      level: "info",
      outcome: "completed",
      cost_usd: 0.0537,
      input_tokens: 2000,
      output_tokens: 400,
      cache_read_input_tokens: 11_100,
      cache_creation_input_tokens: 700,
      num_turns: 5,
    });
    expect(end.duration_s).toBeGreaterThan(0);
    expect(end.msg).toMatch(/^Run run_two_turns completed in \S+ s, 5 turns, 14,200 tokens, \$0\.05$/);
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });

  test("a failed run reports its usage too; a run without usage events has none; bad figures are not counted and break nothing", async () => {
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, ["--log-format", "json", "--log-level", "debug"]);
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun(run("run_failed", { usage: [turn({ input_tokens: 10, total_cost_usd: 0.02 })], exit: 2 }));
    const failed = await fake.waitFor((r) => r.path === "/runner/runs/run_failed/failed");
    expect(failed.body).toMatchObject({ exit_code: 2, usage: { input_tokens: 10, cost_usd: 0.02, num_turns: 1 } });

    fake.handRun(run("run_silent", {}));
    const silent = await fake.waitFor((r) => r.path === "/runner/runs/run_silent/completed");
    expect(silent.body).toEqual({ runner_id: "lnch_test", status: "success" });

    fake.handRun(
      run("run_bad_figures", {
        usage: [
          { ...turn({}), input_tokens: -5 },
          { ...turn({}), num_turns: "x" },
        ],
      }),
    );
    const bad = await fake.waitFor((r) => r.path === "/runner/runs/run_bad_figures/completed");
    expect(bad.body.usage).toBeUndefined();
    // Still forwarded: the coordinator judges its own events.
    expect(fake.find("POST", "/sessions/ses_run_bad_figures/events")).toHaveLength(2);
    await runner.waitFor(/Usage event of session ses_run_bad_figures not counted: usage.input_tokens must be/);

    const lines = jsonLines(runner);
    const end = (runId: string) => lines.find((line) => line.run_id === runId && line.outcome)!;
    expect(end("run_failed")).toMatchObject({ outcome: "failed", exit_code: 2, cost_usd: 0.02, input_tokens: 10 });
    expect(end("run_failed").msg).toBe(
      "Run run_failed failed (exit code 2; 1 turn, 10 tokens, $0.02): Process exited with code 2",
    );
    expect(end("run_silent")).toMatchObject({ outcome: "completed" });
    expect(end("run_silent").cost_usd).toBeUndefined();
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });
});

describe("absurd figures", () => {
  test("token counts whose sum passes 2^53 are capped there: the outcome, kept in the journal over a crash, is delivered by the next start", async () => {
    const fake = startFakeCoordinator();
    const env = { AGENT_RUNNER_STATE_DIR: tempDir("ar-usage-state-") };
    // The first runner's report is never answered: the outcome stays in its journal.
    let answer = false;
    fake.on("POST", /\/completed$/, () => (answer ? undefined : new Promise<Response>(() => {})));
    const first = startRunner(fake, [], {}, { env });
    await fake.waitForRequest("GET", "/runner/runs");
    // Each figure is a safe integer; their sum is not.
    const huge = turn({ input_tokens: Number.MAX_SAFE_INTEGER, total_cost_usd: 0.01 });
    fake.handRun(run("run_huge", { usage: [huge, huge] }));
    await fake.waitForRequest("POST", "/runner/runs/run_huge/completed");
    await crashRunner(fake, first);
    answer = true;
    const restartedAt = performance.now();
    const second = startRunner(fake, [], {}, { env });
    const report = await fake.waitFor((r) => r.path === "/runner/runs/run_huge/completed" && r.at > restartedAt);
    expect(report.body.usage).toMatchObject({ input_tokens: Number.MAX_SAFE_INTEGER, num_turns: 2 });
    expect(second.output()).not.toContain("cannot be used");
  });
});

describe("a persistent session's turns (2.2)", () => {
  test("each turn is a run with its own share of the session's running cost, also when a new executor resumes it", async () => {
    const h = await startRunnerHarness({
      profile: persistentProfile(),
      fake: { protocol: "2.2" },
      // One idle session at most: a second session's turn ends the first one's executor.
      flags: { "max-idle-sessions": "1" },
    });
    const usageOf = async (runId: string) =>
      (await h.fake.waitFor((r) => r.path === `/runner/runs/${runId}/completed`)).body.usage;
    const first = h.handRun({ session_id: "ses_turns", prompt: "cost=0.3" });
    expect(await usageOf(first)).toEqual({
      input_tokens: 100,
      output_tokens: 10,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      cost_usd: 0.3,
      num_turns: 1,
    });
    const second = h.handRun({ session_id: "ses_turns", type: "resume_session", prompt: "cost=0.45" });
    expect((await usageOf(second)).cost_usd).toBe(0.15);
    // Another session takes the only idle place: ses_turns's executor is ended.
    const other = h.handRun({ session_id: "ses_other", prompt: "cost=0.05" });
    expect((await usageOf(other)).cost_usd).toBe(0.05);
    await h.fake.waitForSessionStatus("ses_turns", ["finished"]);
    // A new executor resumes it; its running total goes on from 0.45 (as Claude Code's does).
    const third = h.handRun({ session_id: "ses_turns", type: "resume_session", prompt: "cost=0.5" });
    expect(await usageOf(third)).toMatchObject({ cost_usd: 0.05, input_tokens: 100 });
    expect((await usageOf(third)).cost_includes_earlier_turns).toBeUndefined();
  });
});

describe("limits of the profile's config", () => {
  const BUDGET_STOP =
    "Claude Code stopped the turn: budget of $0.50 reached after 3 turns (executor_config.max_budget_usd)";

  test("max_budget_usd: the run fails with the executor's reason, counted as a budget stop", async () => {
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, ["--health-addr", "127.0.0.1:0"], { max_budget_usd: 0.5, max_turns: 10 });
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun(
      run("run_budget", { usage: [turn({ total_cost_usd: 0.52, num_turns: 3 })], stderr: BUDGET_STOP, exit: 1 }),
    );
    const failed = await fake.waitFor((r) => r.path === "/runner/runs/run_budget/failed");
    expect(failed.body).toMatchObject({ error: BUDGET_STOP, exit_code: 1, usage: { cost_usd: 0.52 } });
    // An ordinary failure below the budget is the executor's exit.
    fake.handRun(run("run_crash", { usage: [turn({ total_cost_usd: 0.1, num_turns: 3 })], exit: 1 }));
    await fake.waitFor((r) => r.path === "/runner/runs/run_crash/failed");
    const metrics = await metricsOf(runner);
    const reason = (name: string) => sampleValue(metrics, "agent_runner_runs_failed_total", { reason: name });
    expect([reason("budget"), reason("turn_limit"), reason("executor_exit")]).toEqual([1, 0, 1]);
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });

  test("max_turns: a turn one round trip past it is counted as a turn-limit stop", async () => {
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, ["--health-addr", "127.0.0.1:0"], { max_turns: 2 });
    await fake.waitForRequest("GET", "/runner/runs");
    const stop = "Claude Code stopped the turn: turn limit of 2 reached (executor_config.max_turns)";
    fake.handRun(run("run_turns", { usage: [turn({ total_cost_usd: 0.01, num_turns: 3 })], stderr: stop, exit: 1 }));
    const failed = await fake.waitFor((r) => r.path === "/runner/runs/run_turns/failed");
    expect(failed.body.error).toBe(stop);
    const metrics = await metricsOf(runner);
    expect(sampleValue(metrics, "agent_runner_runs_failed_total", { reason: "turn_limit" })).toBe(1);
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });
});

describe("--max-cost-usd", () => {
  test("the run that crosses it is the last: no run after it, deregistered, exit 0, saying why", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1 });
    const runner = startRunner(fake, ["--max-cost-usd", "1", "--max-concurrent-runs", "1"]);
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun(run("run_first", { usage: [turn({ total_cost_usd: 0.6 })] }));
    await fake.waitForStatus("run_first", ["completed"]);
    fake.handRun(run("run_crossing", { usage: [turn({ total_cost_usd: 0.25 }), turn({ total_cost_usd: 0.45 })] }));
    fake.handRun(run("run_never", { usage: [] }));
    expect(await runner.process.exited).toBe(0);
    expect(fake.runStatus.get("run_crossing")).toBe("completed");
    expect(fake.runStatus.get("run_never")).toBeUndefined();
    expect(fake.find("DELETE", /^\/runners\//)).toHaveLength(1);
    expect(runner.output()).toContain(
      "Runs cost $1.05 so far, reaching --max-cost-usd 1: taking no more runs; deregistering and exiting once the 1 active run(s) ended",
    );
  });
});

describe("the Claude Code executor under a runner (fake Messages API)", () => {
  test("a run's usage reaches the coordinator, /metrics and the log as Claude Code counted it; a run past max_budget_usd fails as a budget stop", async () => {
    const api = startFakeAnthropic();
    api.respond((request) =>
      request.offersTools ? { text: "cheap answer", usage: { input_tokens: 900 } } : undefined,
    );
    // Expensive (consulted first): a tool call on 20,000 input tokens and 1,500 cached ones;
    // Claude Code checks the budget after that round trip.
    api.respond((request) =>
      request.offersTools && request.userText.includes("expensive")
        ? {
            toolUse: { name: "Bash", input: { command: "true" } },
            usage: { input_tokens: 20_000, output_tokens: 300, cache_read_input_tokens: 1500 },
          }
        : undefined,
    );
    // What a run's report says of its one turn: the usage event's figures, its cost as the run's.
    const reportedFor = (usage: TurnUsage) => ({
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      cache_creation_input_tokens: usage.cache_creation_input_tokens,
      cost_usd: usage.total_cost_usd,
      num_turns: 1,
    });
    const fake = startFakeCoordinator();
    const home = tempDir("ar-usage-home-");
    const runner = startRunner(
      fake,
      ["--health-addr", "127.0.0.1:0", "--log-format", "json"],
      { permission_mode: "bypassPermissions", setting_sources: [], model: "claude-sonnet-4-5", max_budget_usd: 0.01 },
      {
        command: CLAUDE_CODE_EXECUTOR,
        env: { ...offlineClaudeEnv(home, api.url), CLAUDE_CODE_EXECUTABLE: CLAUDE_CODE_BINARY },
      },
    );
    await fake.waitForRequest("GET", "/runner/runs");

    fake.handRun({ run_id: "run_cheap", type: "start_session", session_id: "ses_cheap", prompt: "hello" });
    const completed = await fake.waitFor((r) => r.path === "/runner/runs/run_cheap/completed", 30_000);
    const cheapEvents = fake.find("POST", "/sessions/ses_cheap/events").filter((r) => r.body.event_type === "usage");
    expect(cheapEvents).toHaveLength(1);
    const cheap = cheapEvents[0]!.body.usage;
    expect(cheap).toMatchObject({ input_tokens: 900, output_tokens: 17, num_turns: 1 });
    expect(cheap.total_cost_usd).toBeGreaterThan(0);
    expect(completed.body.usage).toEqual(reportedFor(cheap));

    fake.handRun({ run_id: "run_expensive", type: "start_session", session_id: "ses_exp", prompt: "expensive" });
    const failed = await fake.waitFor((r) => r.path === "/runner/runs/run_expensive/failed", 30_000);
    expect(failed.body.error).toContain(
      "Claude Code stopped the turn: budget of $0.01 reached after 1 turn (executor_config.max_budget_usd)",
    );
    const expensive = fake.find("POST", "/sessions/ses_exp/events").find((r) => r.body.event_type === "usage")!
      .body.usage;
    // (On a budget stop the SDK's result counts no tokens, only the cost: passed on as it is.)
    expect(expensive.total_cost_usd).toBeGreaterThanOrEqual(0.01);
    expect(failed.body.usage).toEqual(reportedFor(expensive));

    const metrics = await metricsOf(runner);
    const value = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(metrics, name, { profile: "metered", ...labels });
    expect(value("agent_runner_runs_failed_total", { reason: "budget" })).toBe(1);
    expect(value("agent_runner_runs_total", { outcome: "completed" })).toBe(1);
    expect(value("agent_runner_tokens_total", { kind: "input" })).toBe(cheap.input_tokens + expensive.input_tokens);
    expect(value("agent_runner_tokens_total", { kind: "cache_read" })).toBe(
      cheap.cache_read_input_tokens + expensive.cache_read_input_tokens,
    );
    expect(value("agent_runner_cost_usd_total")).toBeCloseTo(cheap.total_cost_usd + expensive.total_cost_usd, 12);

    const ends = jsonLines(runner).filter((line) => line.outcome);
    expect(ends.find((line) => line.run_id === "run_cheap")).toMatchObject({
      outcome: "completed",
      cost_usd: cheap.total_cost_usd,
      input_tokens: 900,
      num_turns: 1,
    });
    expect(ends.find((line) => line.run_id === "run_expensive")).toMatchObject({
      level: "error",
      outcome: "failed",
      exit_code: 1,
      cost_usd: expensive.total_cost_usd,
    });
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  }, 90_000);
});
