import { describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import { completedBody, GENERATIONS, invocationFor, stopRun } from "../support/generations.ts";
import {
  fixtureProfile,
  type RunnerHarness,
  startHeldRunsHarness,
  startRunnerHarness,
} from "../support/runner-harness.ts";

const captured = async (h: RunnerHarness, sessionId: string) =>
  (await h.fake.waitFor((r) => r.path === `/sessions/${sessionId}/events` && r.body?.event_type === "captured")).body;

const outcome = (h: RunnerHarness, runId: string) =>
  h.fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"));

describe.each(GENERATIONS)("registration (protocol %s)", (protocol) => {
  test("sends the exact payload for a profile", async () => {
    const harness = await startRunnerHarness({
      fake: { protocol },
      profile: fixtureProfile("capture", { model: "opus" }),
      flags: { "project-dir": "/tmp", tags: "python,gpu" },
    });
    const [register] = harness.fake.find("POST", "/runner/register");
    const command = fixtureProfile("capture").command;
    expect(register!.body).toEqual({
      hostname: "test-host",
      project_dir: realpathSync("/tmp"),
      executor_profile: "test",
      // 2.2 routes runs by executor type: the protocol's, not the profile's own name for it.
      executor:
        protocol === "2.1"
          ? { type: "test-executor", command, config: { model: "opus" } }
          : { type: "autonomous", command, config: { model: "opus" }, lifecycle: "one_shot" },
      tags: ["python", "gpu"],
      require_matching_tags: false,
    });
    expect(harness.worker.runnerId).toBe("lnch_test");
  });

  test("keeps retrying while the coordinator is down, then registers", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, manual: true });
    await harness.fake.down();
    const registered = harness.worker.register();
    // The first attempt fails at once; the retry comes after about a second.
    harness.fake.up();
    expect(await registered).toBe(true);
    expect(harness.fake.find("POST", "/runner/register")).toHaveLength(1);
  });

  test("a duplicate identity is a start error naming the existing runner", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, manual: true });
    harness.fake.on("POST", /^\/runner\/register$/, () =>
      Response.json(
        {
          detail: {
            error: "duplicate_runner",
            message: "Runner already online",
            runner_id: "lnch_other",
            hostname: "box-7",
            project_dir: "/srv/app",
            executor_profile: "coding",
          },
        },
        { status: 409 },
      ),
    );
    const error = await harness.worker.register().catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    for (const part of ["lnch_other", "box-7", "/srv/app", "coding", "Stop the other runner"])
      expect(message).toContain(part);
  });

  test("refused credentials are a start error about authentication", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, manual: true });
    harness.fake.on("POST", /^\/runner\/register$/, () =>
      Response.json({ detail: "Not authenticated" }, { status: 401 }),
    );
    const error = (await harness.worker.register().catch((e: Error) => e)) as Error;
    expect(error.message).toContain("requires authentication");
    expect(error.message).toContain("AUTH0_RUNNER_CLIENT_SECRET");
  });
});

describe.each(GENERATIONS)("executing runs (protocol %s)", (protocol) => {
  test("reports started then completed, with the invocation and environment the executor got", async () => {
    const harness = await startRunnerHarness({
      fake: { protocol },
      flags: { "project-dir": "/tmp" },
      env: { AUTH0_RUNNER_CLIENT_SECRET: "s3cr3t-value" },
    });
    const runId = harness.handRun({ session_id: "ses_a", prompt: "do it" });
    const body = await captured(harness, "ses_a");
    expect(body.invocation).toEqual(
      invocationFor(protocol, "do it", { mode: "start", session_id: "ses_a", project_dir: realpathSync("/tmp") }),
    );
    expect(body.env.AGENT_SESSION_ID).toBe("ses_a");
    // The gateway URL with the run's own token, revoked once the run is over.
    expect(body.env.AGENT_ORCHESTRATOR_API_URL).toMatch(new RegExp(`^${harness.gateway.url}/agrun_[\\w-]{43}$`));
    expect(body.env.AUTH0_RUNNER_CLIENT_SECRET).toBeNull();
    await outcome(harness, runId);
    expect(harness.tokens.size).toBe(0);
    expect(harness.fake.reportsFor(runId)).toEqual([
      { kind: "started", body: { runner_id: "lnch_test" } },
      { kind: "completed", body: completedBody(protocol) },
    ]);
  });

  test("executor_config reaches the executor only when the profile has config", async () => {
    const harness = await startRunnerHarness({
      fake: { protocol },
      profile: fixtureProfile("capture", { model: "opus", permission_mode: "default" }),
    });
    harness.handRun({ session_id: "ses_cfg", type: "resume_session" });
    const body = await captured(harness, "ses_cfg");
    expect(body.invocation.executor_config).toEqual({ model: "opus", permission_mode: "default" });
    expect(body.invocation.mode).toBe("resume");
    expect(body.invocation.project_dir).toBeUndefined();
    await harness.close();

    const withoutConfig = await startRunnerHarness({ fake: { protocol }, profile: fixtureProfile("capture", {}) });
    withoutConfig.handRun({ session_id: "ses_nocfg" });
    expect("executor_config" in (await captured(withoutConfig, "ses_nocfg")).invocation).toBe(false);
  });

  test("a failing executor is reported failed with the tail of its stderr", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, fixture: "fail" });
    const runId = harness.handRun();
    const report = await outcome(harness, runId);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("boom: the agent crashed");
    expect(report.body.exit_code).toBe(3);
  });

  test("a silent non-zero exit is reported with its exit code, in the text and as exit_code", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, fixture: "exit-silent" });
    const report = await outcome(harness, harness.handRun());
    expect(report.body).toEqual({ runner_id: "lnch_test", error: "Process exited with code 7", exit_code: 7 });
  });

  test("a missing executor, an unknown run type and a malformed run are reported failed; polling goes on", async () => {
    const harness = await startRunnerHarness({
      fake: { protocol },
      profile: { ...fixtureProfile("capture"), argv: ["/nonexistent/executor"] },
    });
    const missing = await outcome(harness, harness.handRun());
    expect(missing.body.error).toContain("/nonexistent/executor");
    expect(missing.body.error).toContain("could not be started");

    const unknown = await outcome(harness, harness.handRun({ type: "fork_session" }));
    expect(unknown.body.error).toBe("Unknown run type 'fork_session' (expected start_session or resume_session)");

    // Queued as is: a run without the input its generation carries (2.1 prompt, 2.2 parameters).
    harness.fake.hand({ run: { run_id: "run_bad", type: "start_session", session_id: "ses_bad" } });
    const malformed = await outcome(harness, "run_bad");
    expect(malformed.body.error).toContain(
      protocol === "2.1" ? "prompt must be a string (was missing)" : "parameters must be an object (was missing)",
    );

    // No run id at all: nothing to report to, the runner logs it and keeps polling.
    harness.fake.hand({ run: protocol === "2.1" ? { prompt: "orphan" } : { parameters: { prompt: "orphan" } } });
    harness.fake.hand({ something: "else" });
    const before = harness.fake.find("GET", "/runner/runs").length;
    await harness.fake.waitFor(() => harness!.fake.find("GET", "/runner/runs").length >= before + 2);
    expect(harness.fake.find("POST", /failed$/)).toHaveLength(3);
  });

  test("runs execute concurrently", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { protocol },
    });
    const first = harness.handRun({ session_id: "ses_c1" });
    const second = harness.handRun({ session_id: "ses_c2" });
    await Promise.all([release.waiting("ses_c1"), release.waiting("ses_c2")]);
    expect(harness.worker.activeRunCount).toBe(2);
    release.release("ses_c2");
    expect((await outcome(harness, second)).path).toEndWith("/completed");
    expect(harness.fake.reportsFor(first)).toEqual([{ kind: "started", body: { runner_id: "lnch_test" } }]);
    release.release("ses_c1");
    expect((await outcome(harness, first)).path).toEndWith("/completed");
  });
});

describe("blueprints", () => {
  test("2.1: the blueprint is fetched by name and its placeholders resolved", async () => {
    const harness = await startRunnerHarness({
      fake: {
        agents: {
          helper: {
            agent: {
              name: "helper",
              system_prompt: "Be brief.",
              mcp_servers: {
                orchestrator: {
                  type: "http",
                  url: "${AGENT_ORCHESTRATOR_MCP_URL}",
                  headers: { "X-Agent-Session-Id": "${AGENT_SESSION_ID}" },
                },
                tool: {
                  type: "stdio",
                  command: "tool",
                  args: ["--session", "${AGENT_SESSION_ID}"],
                  env: { S: "${AGENT_SESSION_ID}" },
                },
                other: { type: "sse", url: "${AGENT_SESSION_ID}" },
              },
            },
          },
        },
      },
    });
    harness.handRun({ session_id: "ses_bp", agent_name: "helper" });
    const { invocation } = await captured(harness, "ses_bp");
    expect(invocation.agent_blueprint).toEqual({
      name: "helper",
      system_prompt: "Be brief.",
      mcp_servers: {
        orchestrator: {
          type: "http",
          // The MCP URL with the run's token, the same its gateway URL carries.
          url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:9\/agrun_[\w-]{43}\/mcp$/),
          headers: { "X-Agent-Session-Id": "ses_bp" },
        },
        tool: { type: "stdio", command: "tool", args: ["--session", "ses_bp"], env: { S: "ses_bp" } },
        other: { type: "sse", url: "${AGENT_SESSION_ID}" },
      },
    });
  });

  test("2.1: an unknown agent is reported failed", async () => {
    const harness = await startRunnerHarness();
    const report = await outcome(harness, harness.handRun({ agent_name: "ghost" }));
    expect(report.body.error).toBe("Agent blueprint 'ghost' not found");
  });

  test("2.2: the run's resolved blueprint reaches the executor with ${runner.orchestrator_mcp_url} filled (the run's token); no GET /agents", async () => {
    const harness = await startRunnerHarness({
      fake: {
        protocol: "2.2",
        agents: {
          worker: {
            name: "worker",
            type: "autonomous",
            system_prompt: "You work.",
            mcp_servers: {
              orch: {
                url: "${runner.orchestrator_mcp_url}",
                config: { "X-Agent-Session-Id": "${runtime.session_id}", "X-Other": "${runner.unknown}" },
              },
            },
            notes: ["at ${runner.orchestrator_mcp_url}", "${AGENT_SESSION_ID}"],
          },
        },
      },
    });
    const created = harness.fake.createRun({
      type: "start_session",
      agent_name: "worker",
      parameters: { prompt: "go" },
    });
    expect(created.status).toBe(201);
    const { session_id: sessionId, run_id: runId } = created.body;
    const body = await captured(harness, sessionId);
    // The same token the run's gateway URL carries.
    const token = /\/(agrun_[\w-]{43})$/.exec(body.env.AGENT_ORCHESTRATOR_API_URL)![1];
    const mcpUrl = `http://127.0.0.1:9/${token}/mcp`;
    expect(body.invocation).toEqual({
      schema_version: "2.2",
      mode: "start",
      session_id: sessionId,
      project_dir: harness.config.projectDir,
      agent_blueprint: {
        name: "worker",
        type: "autonomous",
        system_prompt: "You work.",
        mcp_servers: {
          orch: { url: mcpUrl, config: { "X-Agent-Session-Id": sessionId, "X-Other": "${runner.unknown}" } },
        },
        notes: [`at ${mcpUrl}`, "${AGENT_SESSION_ID}"],
      },
      parameters: { prompt: "go" },
      agent_name: "worker",
    });
    expect((await outcome(harness, runId)).body).toEqual(completedBody("2.2"));
    expect(harness.fake.find("GET", /^\/agents/)).toEqual([]);
  });
});

describe.each([
  ["2.1", "stop_runs"],
  ["2.2", "stop_sessions"],
] as const)("stopping runs (protocol %s: %s)", (protocol, _stop) => {
  test("SIGTERM ends a run and it is reported stopped by SIGTERM", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, fixture: "hang" });
    const runId = harness.handRun({ session_id: "ses_term" });
    await harness.fake.waitFor((r) => r.path === "/sessions/ses_term/events");
    if (protocol === "2.1") harness.fake.handStop([runId, "run_not_here"]);
    else harness.fake.handStopSessions(["ses_term", "ses_not_here"]);
    const report = await outcome(harness, runId);
    expect(report.path).toEndWith("/stopped");
    expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGTERM" });
  });

  test("an executor that ignores SIGTERM is killed after the grace period", async () => {
    const harness = await startRunnerHarness({
      fake: { protocol },
      fixture: "hang",
      env: { FIXTURE_IGNORE_SIGTERM: "1" },
    });
    const runId = harness.handRun({ session_id: "ses_kill" });
    await harness.fake.waitFor((r) => r.path === "/sessions/ses_kill/events");
    stopRun(harness.fake, runId);
    const report = await outcome(harness, runId);
    expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGKILL" });
  });

  test("a stop for an unknown run is ignored and polling goes on", async () => {
    const harness = await startRunnerHarness({ fake: { protocol } });
    if (protocol === "2.1") harness.fake.handStop(["run_unknown"]);
    else harness.fake.handStopSessions(["ses_unknown"]);
    const runId = harness.handRun();
    expect((await outcome(harness, runId)).path).toEndWith("/completed");
    expect(harness.fake.reportsFor("run_unknown")).toEqual([]);
    expect(harness.fake.find("POST", "/runner/sessions/ses_unknown/status")).toEqual([]);
  });
});

describe.each(GENERATIONS)("coordinator trouble (protocol %s)", (protocol) => {
  test("a completed report survives the coordinator being down and arrives when it returns", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { protocol },
    });
    const runId = harness.handRun({ session_id: "ses_down" });
    await release.waiting("ses_down");
    await harness.fake.waitForRequest("POST", `/runner/runs/${runId}/started`);
    await harness.fake.down();
    release.release("ses_down");
    // Nothing can arrive while it is down; bring it back and the report must follow.
    harness.fake.up();
    const report = await outcome(harness, runId);
    expect(report.path).toEndWith("/completed");
    expect(harness.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "completed"]);
  });

  test("a report refused with 401 (token expired or revoked) is retried, not dropped", async () => {
    const harness = await startRunnerHarness({ fake: { protocol } });
    let refusals = 0;
    harness.fake.on("POST", /\/completed$/, () =>
      refusals++ < 2 ? Response.json({ detail: "Invalid token" }, { status: 401 }) : undefined,
    );
    const runId = harness.handRun();
    await harness.fake.waitFor(() => harness!.fake.find("POST", `/runner/runs/${runId}/completed`).length === 3);
    expect(refusals).toBe(3);
  });

  test("a 401 'not registered' on poll makes the runner register again and carry on", async () => {
    const harness = await startRunnerHarness({ fake: { protocol } });
    harness.fake.forgetRunner();
    await harness.fake.waitFor(() => harness!.fake.find("POST", "/runner/register").length === 2);
    const runId = harness.handRun();
    expect((await outcome(harness, runId)).path).toEndWith("/completed");
  });

  test("a 401 on heartbeat makes the runner register again", async () => {
    const harness = await startRunnerHarness({ fake: { protocol, heartbeatIntervalSeconds: 0.05 } });
    await harness.fake.waitForRequest("POST", "/runner/heartbeat");
    harness.fake.on("GET", /^\/runner\/runs$/, () => new Response(null, { status: 204 }));
    harness.fake.registered = false;
    await harness.fake.waitFor(() => harness!.fake.find("POST", "/runner/register").length === 2);
    const beats = harness.fake.find("POST", "/runner/heartbeat");
    expect(beats.at(-1)!.body).toEqual({ runner_id: "lnch_test" });
  });

  test("replies that break the protocol are logged, not fatal", async () => {
    const harness = await startRunnerHarness({ fake: { protocol } });
    let bad = 0;
    harness.fake.on("GET", /^\/runner\/runs$/, () => {
      bad++;
      if (bad === 1) return new Response("<html>proxy error</html>", { status: 200 });
      if (bad === 2) return Response.json(protocol === "2.1" ? { stop_runs: "run_1" } : { stop_sessions: "ses_1" });
      if (bad === 3) return Response.json([1, 2]);
      if (bad === 4) return new Response("oops", { status: 500 });
      return undefined;
    });
    const runId = harness.handRun();
    expect((await outcome(harness, runId)).path).toEndWith("/completed");
    expect(bad).toBeGreaterThanOrEqual(5);
  });
});

describe("tagged-only runners", () => {
  test("runs without a shared tag are refused even when handed out", async () => {
    const harness = await startRunnerHarness({ flags: { tags: "python,gpu", "require-matching-tags": true } });
    const none = await outcome(harness, harness.handRun());
    expect(none.body.error).toContain("demands no tags");
    const other = await outcome(harness, harness.handRun({ demands: { tags: ["rust"] } }));
    expect(other.body.error).toContain("Run demands tags rust, none of which this runner has");
    const shared = await outcome(harness, harness.handRun({ demands: { tags: ["gpu", "rust"] } }));
    expect(shared.path).toEndWith("/completed");
    expect(harness.fake.find("POST", "/runner/register")[0]!.body.require_matching_tags).toBe(true);
  });
});

describe.each(GENERATIONS)("shutdown (protocol %s)", (protocol) => {
  test("first signal waits for active runs, then deregisters", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { protocol },
    });
    const runId = harness.handRun({ session_id: "ses_wait" });
    await release.waiting("ses_wait");
    harness.worker.shutdown("SIGINT");
    let finished = false;
    void harness.done.then(() => (finished = true));
    // Still running: the runner must not have deregistered or reported yet.
    await Bun.sleep(0);
    expect(finished).toBe(false);
    expect(harness.fake.find("DELETE", /^\/runners\//)).toHaveLength(0);
    release.release("ses_wait");
    await harness.done;
    expect(harness.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "completed"]);
    const [deregister] = harness.fake.find("DELETE", "/runners/lnch_test");
    expect(deregister!.query.get("self")).toBe("true");
  });

  test("second signal stops active runs and reports them", async () => {
    const harness = await startRunnerHarness({ fake: { protocol }, fixture: "hang" });
    const runId = harness.handRun({ session_id: "ses_two" });
    await harness.fake.waitFor((r) => r.path === "/sessions/ses_two/events");
    harness.worker.shutdown("SIGINT");
    harness.worker.shutdown("SIGINT");
    await harness.done;
    expect(harness.fake.reportsFor(runId)).toEqual([
      { kind: "started", body: { runner_id: "lnch_test" } },
      { kind: "stopped", body: { runner_id: "lnch_test", signal: "SIGTERM" } },
    ]);
    expect(harness.fake.find("DELETE", "/runners/lnch_test")).toHaveLength(1);
  });

  test("deregistered from outside: shuts down without deregistering again", async () => {
    const harness = await startRunnerHarness({ fake: { protocol } });
    harness.fake.hand({ deregistered: true });
    await harness.done;
    expect(harness.fake.find("DELETE", /^\/runners\//)).toHaveLength(0);
  });
});

// The heartbeat is the same in both generations.
describe("shutdown", () => {
  test("heartbeats go on while active runs drain", async () => {
    const { harness, release } = await startHeldRunsHarness({
      fake: { heartbeatIntervalSeconds: 0.05 },
    });
    harness.handRun({ session_id: "ses_drain" });
    await release.waiting("ses_drain");
    harness.worker.shutdown("SIGTERM");
    const beatsBefore = harness.fake.find("POST", "/runner/heartbeat").length;
    await harness.fake.waitFor(() => harness!.fake.find("POST", "/runner/heartbeat").length >= beatsBefore + 2);
    release.release("ses_drain");
    await harness.done;
  });
});
