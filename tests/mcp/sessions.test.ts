import { describe, expect, test } from "bun:test";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { Orchestrator } from "../../src/mcp/orchestrator.ts";
import { ToolError } from "../../src/mcp/tool-rules.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { json, startHarness, textOf } from "../support/mcp-harness.ts";

/** POST /runs answers with this run; GET /runs/run_1 answers with whatever `run.status` is at the time. */
function serveRun(coordinator: FakeCoordinator, initial: { status: string; error?: string } = { status: "running" }) {
  const run = { ...initial };
  coordinator
    .on("POST", /^\/runs$/, (r) =>
      json({
        run_id: "run_1",
        session_id: (r.body as { session_id?: string }).session_id ?? "ses_new",
        status: "pending",
      }),
    )
    .on("GET", /^\/runs\/run_1$/, () =>
      json({ run_id: "run_1", type: "start_session", status: run.status, error: run.error ?? null }),
    );
  return run;
}

const runBody = (coordinator: FakeCoordinator) => coordinator.find("POST", "/runs")[0]?.body;

describe("start_agent_session", () => {
  test("async_poll posts a start_session run with the header context and returns at once", async () => {
    const h = await startHarness({
      headers: {
        "X-Agent-Session-Id": "ses_parent",
        "X-Additional-Demands": JSON.stringify({ project_dir: "/work/app", tags: ["python"] }),
      },
    });
    serveRun(h.coordinator);
    expect(
      await h.ok("start_agent_session", { agent_name: "coder", prompt: "Fix the bug", mode: "async_poll" }),
    ).toEqual({
      session_id: "ses_new",
      run_id: "run_1",
      status: "pending",
    });
    expect(runBody(h.coordinator)).toEqual({
      type: "start_session",
      agent_name: "coder",
      prompt: "Fix the bug",
      project_dir: "/work/app",
      parent_session_id: "ses_parent",
      execution_mode: "async_poll",
      additional_demands: { project_dir: "/work/app", tags: ["python"] },
    });
    expect(h.coordinator.find("GET", "/runs/run_1")).toHaveLength(0);
  });

  test("an explicit project_dir wins over the one in the demands header", async () => {
    const h = await startHarness({
      headers: { "X-Additional-Demands": '{"project_dir": "/work/app", "hostname": "box"}' },
    });
    serveRun(h.coordinator);
    await h.ok("start_agent_session", {
      agent_name: "coder",
      prompt: "hi",
      project_dir: "/elsewhere",
      mode: "async_poll",
    });
    expect(runBody(h.coordinator).project_dir).toBe("/elsewhere");
    expect(runBody(h.coordinator).additional_demands).toEqual({ project_dir: "/work/app", hostname: "box" });
  });

  test("without context headers the run carries no parent, project_dir or demands", async () => {
    const h = await startHarness();
    serveRun(h.coordinator);
    await h.ok("start_agent_session", { agent_name: "coder", prompt: "hi", mode: "async_poll" });
    expect(runBody(h.coordinator)).toEqual({
      type: "start_session",
      agent_name: "coder",
      prompt: "hi",
      execution_mode: "async_poll",
    });
  });

  test("async_callback needs a parent session", async () => {
    const h = await startHarness();
    serveRun(h.coordinator);
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi", mode: "async_callback" });
    expect(error).toContain('mode "async_callback" needs');
    expect(error).toContain("X-Agent-Session-Id");
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
  });

  test("async_callback with a parent session posts the run in that mode", async () => {
    const h = await startHarness({ headers: { "X-Agent-Session-Id": "ses_parent" } });
    serveRun(h.coordinator);
    expect(await h.ok("start_agent_session", { agent_name: "coder", prompt: "hi", mode: "async_callback" })).toEqual({
      session_id: "ses_new",
      run_id: "run_1",
      status: "pending",
    });
    expect(runBody(h.coordinator)).toMatchObject({ execution_mode: "async_callback", parent_session_id: "ses_parent" });
  });

  test("sync (the default) waits for the run the coordinator completes later, then returns the result", async () => {
    const h = await startHarness({ headers: { "X-Agent-Session-Id": "ses_parent" } });
    const run = serveRun(h.coordinator, { status: "pending" });
    h.coordinator.on("GET", /^\/sessions\/ses_new\/result$/, () => json({ result: "The bug is fixed." }));
    h.coordinator.on("GET", /^\/sessions$/, () => json({ sessions: [{ session_id: "ses_new", status: "running" }] }));

    const answer = h.call("start_agent_session", { agent_name: "coder", prompt: "Fix the bug" });
    await h.coordinator.waitForRequest("GET", "/runs/run_1");
    run.status = "running";

    // The wait holds nothing else up: another call, on another client, is answered meanwhile.
    const other = await h.connect();
    const listed = await other.callTool({ name: "list_agent_sessions", arguments: {} });
    expect(JSON.parse(textOf(listed as any))[0].session_id).toBe("ses_new");
    expect(h.coordinator.find("GET", "/sessions/ses_new/result")).toHaveLength(0);

    const polls = h.coordinator.find("GET", "/runs/run_1").length;
    run.status = "completed";
    const result = await answer;
    expect(result.isError ?? false).toBe(false);
    expect(JSON.parse(textOf(result as any))).toEqual({ session_id: "ses_new", result: "The bug is fixed." });
    expect(runBody(h.coordinator).execution_mode).toBe("sync");
    expect(h.coordinator.find("GET", "/runs/run_1").length).toBeGreaterThan(polls);
  });

  test("sync: a client that asks for progress gets a notification per poll", async () => {
    const h = await startHarness();
    const run = serveRun(h.coordinator, { status: "pending" });
    h.coordinator.on("GET", /^\/sessions\/ses_new\/result$/, () => json({ result: "ok" }));
    const messages: string[] = [];
    const answer = h.client.callTool(
      { name: "start_agent_session", arguments: { agent_name: "coder", prompt: "hi" } },
      undefined,
      {
        onprogress: (progress) => messages.push(progress.message ?? ""),
        resetTimeoutOnProgress: true,
      },
    );
    await h.coordinator.waitForRequest("GET", "/runs/run_1");
    run.status = "completed";
    expect(JSON.parse(textOf((await answer) as any))).toEqual({ session_id: "ses_new", result: "ok" });
    expect(messages[0]).toBe("run run_1 is pending");
  });

  test("sync: a failed run is a tool error with the run's error", async () => {
    const h = await startHarness();
    serveRun(h.coordinator, { status: "failed", error: "Process exited with code 1" });
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" });
    expect(error).toBe("Session ses_new failed: Process exited with code 1");
  });

  test("sync: a stopped run is a tool error", async () => {
    const h = await startHarness();
    serveRun(h.coordinator, { status: "stopped" });
    expect(await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" })).toBe(
      "Session ses_new was stopped before it finished (run run_1)",
    );
  });

  test("sync: a run that outlasts the time limit is a tool error saying how to follow it up", async () => {
    const h = await startHarness({ syncTimeoutMs: 60, pollIntervalMs: 10 });
    serveRun(h.coordinator, { status: "running" });
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" });
    expect(error).toContain("Session ses_new did not finish within 60 ms (run run_1 is running)");
    expect(error).toContain("get_agent_session_result");
    expect(h.coordinator.find("GET", "/runs/run_1").length).toBeGreaterThan(1);
  });

  test("sync: a passing coordinator hiccup (503) does not end the wait", async () => {
    const h = await startHarness();
    const run = serveRun(h.coordinator, { status: "completed" });
    let polls = 0;
    h.coordinator.on("GET", /^\/runs\/run_1$/, () =>
      ++polls === 1 ? json({ detail: "Service Unavailable" }, 503) : undefined,
    );
    h.coordinator.on("GET", /^\/sessions\/ses_new\/result$/, () => json({ result: "done" }));
    expect(await h.ok("start_agent_session", { agent_name: "coder", prompt: "hi" })).toEqual({
      session_id: "ses_new",
      result: "done",
    });
    expect(polls).toBe(2);
    expect(run.status).toBe("completed");
  });

  test("sync: a run the coordinator no longer knows is a tool error", async () => {
    const h = await startHarness();
    serveRun(h.coordinator);
    h.coordinator.on("GET", /^\/runs\/run_1$/, () => json({ detail: "Run not found" }, 404));
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" });
    expect(error).toContain("Lost track of run run_1 of session ses_new");
    expect(error).toContain("Run not found");
  });

  test("sync: a result over 50,000 characters is cut, with a note", async () => {
    const h = await startHarness();
    serveRun(h.coordinator, { status: "completed" });
    h.coordinator.on("GET", /^\/sessions\/ses_new\/result$/, () => json({ result: "y".repeat(50_001) }));
    const { result } = await h.ok("start_agent_session", { agent_name: "coder", prompt: "hi" });
    expect(result).toBe(`${"y".repeat(50_000)}\n\n[Result truncated: showing the first 50,000 of 50,001 characters]`);
  });

  test("a prompt over 100,000 characters is refused before anything is sent", async () => {
    const h = await startHarness();
    serveRun(h.coordinator);
    const error = await h.fails("start_agent_session", {
      agent_name: "coder",
      prompt: "p".repeat(100_001),
      mode: "async_poll",
    });
    expect(error).toContain("prompt is 100,001 characters; the limit is 100,000");
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
    // exactly at the limit is fine
    await h.ok("start_agent_session", { agent_name: "coder", prompt: "p".repeat(100_000), mode: "async_poll" });
    expect(runBody(h.coordinator).prompt).toHaveLength(100_000);
  });

  test("an empty prompt is refused", async () => {
    const h = await startHarness();
    expect(await h.fails("start_agent_session", { agent_name: "coder", prompt: "  ", mode: "async_poll" })).toContain(
      "prompt is empty",
    );
  });

  test("malformed X-Additional-Demands is a tool error, and the other tools still work", async () => {
    const h = await startHarness({ headers: { "X-Additional-Demands": "{project_dir: /work" } });
    serveRun(h.coordinator);
    h.coordinator.on("GET", /^\/sessions$/, () => json({ sessions: [] }));
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi", mode: "async_poll" });
    expect(error).toContain("X-Additional-Demands header is not valid JSON");
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
    expect(await h.ok("list_agent_sessions")).toEqual([]);
  });

  test("X-Additional-Demands that is JSON but not demands is a tool error", async () => {
    const h = await startHarness({ headers: { "X-Additional-Demands": '{"tags": "python"}' } });
    serveRun(h.coordinator);
    expect(await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" })).toContain(
      'tags must be an array or null (was "python")',
    );
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
  });

  test("the coordinator's refusal of the run is a tool error with its words", async () => {
    const h = await startHarness();
    h.coordinator.on("POST", /^\/runs$/, () =>
      json({ detail: [{ loc: ["body", "prompt"], msg: "Field required" }] }, 422),
    );
    const error = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi" });
    expect(error).toContain("Could not start the session");
    expect(error).toContain("HTTP 422");
    expect(error).toContain("Field required");
  });
});

describe("resume_agent_session", () => {
  test("checks the session, then posts a resume_session run (async)", async () => {
    const h = await startHarness({
      headers: { "X-Agent-Session-Id": "ses_parent", "X-Additional-Demands": '{"executor_profile": "coding"}' },
    });
    h.coordinator.on("GET", /^\/sessions\/ses_old$/, () =>
      json({ session: { session_id: "ses_old", status: "finished" } }),
    );
    serveRun(h.coordinator);
    expect(
      await h.ok("resume_agent_session", { session_id: "ses_old", prompt: "Now add tests", mode: "async_poll" }),
    ).toEqual({
      session_id: "ses_old",
      run_id: "run_1",
      status: "pending",
    });
    expect(h.coordinator.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /sessions/ses_old", "POST /runs"]);
    expect(runBody(h.coordinator)).toEqual({
      type: "resume_session",
      session_id: "ses_old",
      prompt: "Now add tests",
      parent_session_id: "ses_parent",
      execution_mode: "async_poll",
      additional_demands: { executor_profile: "coding" },
    });
  });

  test("sync waits for the run and returns the session's new result", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_old$/, () => json({ session: { session_id: "ses_old" } }));
    const run = serveRun(h.coordinator, { status: "claimed" });
    h.coordinator.on("GET", /^\/sessions\/ses_old\/result$/, () => json({ result: "Tests added." }));
    const answer = h.call("resume_agent_session", { session_id: "ses_old", prompt: "Now add tests" });
    await h.coordinator.waitForRequest("GET", "/runs/run_1");
    run.status = "completed";
    expect(JSON.parse(textOf((await answer) as any))).toEqual({ session_id: "ses_old", result: "Tests added." });
  });

  test("an unknown session is a tool error and no run is posted", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_gone$/, () => json({ detail: "Session not found" }, 404));
    serveRun(h.coordinator);
    expect(await h.fails("resume_agent_session", { session_id: "ses_gone", prompt: "hi" })).toContain(
      "Session ses_gone does not exist",
    );
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
  });

  test("async_callback without a parent session is refused before anything is sent", async () => {
    const h = await startHarness();
    expect(
      await h.fails("resume_agent_session", { session_id: "ses_old", prompt: "hi", mode: "async_callback" }),
    ).toContain("X-Agent-Session-Id");
    expect(h.coordinator.requests).toHaveLength(0);
  });

  test("a prompt over 100,000 characters is refused", async () => {
    const h = await startHarness();
    expect(await h.fails("resume_agent_session", { session_id: "ses_old", prompt: "p".repeat(100_001) })).toContain(
      "the limit is 100,000",
    );
    expect(h.coordinator.requests).toHaveLength(0);
  });
});

describe("sync wait cancellation", () => {
  test("aborting the signal ends the wait with a tool error and no further polls", async () => {
    const coordinator = startFakeCoordinator();
    serveRun(coordinator, { status: "running" });
    const orchestrator = new Orchestrator(new CoordinatorHttp(coordinator.url), { pollIntervalMs: 60_000 });
    const abort = new AbortController();
    const waiting = orchestrator
      .startSession({}, { agent_name: "coder", prompt: "hi", mode: "sync" }, { signal: abort.signal })
      .catch((e) => e);
    await coordinator.waitForRequest("GET", "/runs/run_1");
    abort.abort();
    const error = await waiting;
    expect(error).toBeInstanceOf(ToolError);
    expect(error.message).toContain("Stopped waiting for session ses_new");
    expect(coordinator.find("GET", "/runs/run_1")).toHaveLength(1);
  });

  test("progress is reported after each poll", async () => {
    const coordinator = startFakeCoordinator();
    const run = serveRun(coordinator, { status: "pending" });
    coordinator.on("GET", /^\/sessions\/ses_new\/result$/, () => json({ result: "ok" }));
    const orchestrator = new Orchestrator(new CoordinatorHttp(coordinator.url), { pollIntervalMs: 5 });
    const seen: string[] = [];
    const result = await orchestrator.startSession(
      {},
      { agent_name: "coder", prompt: "hi", mode: "sync" },
      {
        signal: new AbortController().signal,
        onPoll: ({ runStatus }) => {
          seen.push(runStatus);
          if (runStatus === "pending") run.status = "completed";
        },
      },
    );
    expect(result).toEqual({ session_id: "ses_new", result: "ok" });
    expect(seen).toEqual(["pending", "completed"]);
  });
});

describe("protocol 2.2", () => {
  /** Plays the runner's part for the run the tool created: a result event, the session's status, the run completed. */
  async function complete(
    coordinator: FakeCoordinator,
    result: { text?: string; data?: object },
    session = "finished",
  ) {
    await coordinator.waitForRequest("POST", "/runs");
    const [runId, run] = [...coordinator.runs.entries()].at(-1)!;
    const sessionId = String(run.session_id);
    const posted = await fetch(`${coordinator.url}/sessions/${sessionId}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        session_id: sessionId,
        event_type: "result",
        timestamp: new Date().toISOString(),
        result_text: result.text ?? null,
        result_data: result.data ?? null,
      }),
    });
    expect(posted.status).toBe(201);
    const runner = await fetch(`${coordinator.url}/runner/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        hostname: "h",
        project_dir: "/p",
        executor_profile: "p",
        executor: { type: "autonomous" },
      }),
    }).then((response) => response.json() as Promise<{ runner_id: string }>);
    const completed = await fetch(`${coordinator.url}/runner/runs/${runId}/completed`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ runner_id: runner.runner_id, status: "success", session_status: session }),
    });
    expect(completed.status).toBe(200);
    return { runId, sessionId };
  }

  test("start_agent_session sends parameters, never a prompt; the sync answer is the session's result event", async () => {
    const h = await startHarness({ protocol: "2.2" });
    const answer = h.call("start_agent_session", { agent_name: "coder", prompt: "Fix the bug" });
    const { sessionId } = await complete(h.coordinator, { text: "The bug is fixed." });
    expect(JSON.parse(textOf((await answer) as any))).toEqual({ session_id: sessionId, result: "The bug is fixed." });
    const body = runBody(h.coordinator);
    expect(body.parameters).toEqual({ prompt: "Fix the bug" });
    expect("prompt" in body).toBe(false);
  });

  test("structured output comes back as result_data, and as JSON text in result", async () => {
    const h = await startHarness({ protocol: "2.2" });
    const answer = h.call("start_agent_session", { agent_name: "coder", prompt: "Count" });
    const { sessionId } = await complete(h.coordinator, { text: "ignored", data: { count: 3 } });
    expect(JSON.parse(textOf((await answer) as any))).toEqual({
      session_id: sessionId,
      result: '{"count":3}',
      result_data: { count: 3 },
    });
  });

  test("resume_agent_session posts parameters; get_agent_session_result reads an idle session's result", async () => {
    const h = await startHarness({ protocol: "2.2" });
    const started = await h.ok("start_agent_session", { agent_name: "coder", prompt: "one", mode: "async_poll" });
    await complete(h.coordinator, { text: "turn one" }, "idle");
    expect(await h.ok("get_agent_session_result", { session_id: started.session_id })).toEqual({
      session_id: started.session_id,
      result: "turn one",
    });
    const resumed = await h.ok("resume_agent_session", {
      session_id: started.session_id,
      prompt: "two",
      mode: "async_poll",
    });
    expect(resumed.session_id).toBe(started.session_id);
    const resume = h.coordinator.find("POST", "/runs").at(-1)!.body;
    expect(resume).toMatchObject({ type: "resume_session", parameters: { prompt: "two" } });
    expect("prompt" in resume).toBe(false);
  });
});
