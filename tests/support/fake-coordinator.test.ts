/** The fake coordinator against what the reference coordinator does, on the wire. */
// The checks under "wire" use plain HTTP only, so they also run against a running reference
// coordinator: set REFERENCE_COORDINATOR_22 (or _21) to its URL to check the fake still matches it.
import { describe, expect, test } from "bun:test";
import { type FakeCoordinator, type Protocol, startFakeCoordinator } from "./fake-coordinator.ts";
import { onTeardown } from "./teardown.ts";

const REFERENCE: Record<Protocol, string | undefined> = {
  "2.1": process.env.REFERENCE_COORDINATOR_21,
  "2.2": process.env.REFERENCE_COORDINATOR_22,
};

/** What the reference writes as a timestamp: Python's isoformat of an aware UTC datetime. */
const PYTHON_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/;

/** The fields of a run the reference hands out at 2.2. */
const RUN_FIELDS_22 = [
  "agent_name",
  "claimed_at",
  "completed_at",
  "created_at",
  "demands",
  "error",
  "execution_mode",
  "parameters",
  "parent_session_id",
  "project_dir",
  "resolved_agent_blueprint",
  "run_id",
  "runner_id",
  "scope",
  "session_id",
  "started_at",
  "status",
  "timeout_at",
  "type",
];

/** A hostname of its own: runs demanding it go to this check's runner only. */
const freshHostname = () => `host-${crypto.randomUUID().slice(0, 8)}`;

interface Reply {
  status: number;
  body: any;
}

/** Plain HTTP to a coordinator. */
class Wire {
  constructor(readonly url: string) {}

  async send(method: string, path: string, body?: unknown): Promise<Reply> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  post = (path: string, body?: unknown) => this.send("POST", path, body);
  get = (path: string) => this.send("GET", path);

  /** Registers a runner on `hostname` (deregistered after the test); returns the reply. */
  async registerOn(hostname: string, executorProfile: string, executor: Record<string, unknown>): Promise<Reply> {
    const registered = await this.post("/runner/register", {
      hostname,
      project_dir: "/work",
      executor_profile: executorProfile,
      executor,
    });
    const runnerId = registered.body?.runner_id;
    if (typeof runnerId === "string") onTeardown(() => this.send("DELETE", `/runners/${runnerId}?self=true`));
    return registered;
  }

  /** Registers a runner of a fresh identity (deregistered after the test); returns its id and hostname. */
  async register(executorType: string): Promise<{ runnerId: string; hostname: string }> {
    const hostname = freshHostname();
    const registered = await this.registerOn(hostname, "coding", {
      type: executorType,
      command: "executors/x",
      config: {},
    });
    expect(registered.status).toBe(200);
    return { runnerId: registered.body.runner_id as string, hostname };
  }

  poll = (runnerId: string) => this.get(`/runner/runs?runner_id=${runnerId}`);
  report = (runId: string, kind: string, body: Record<string, unknown>) =>
    this.post(`/runner/runs/${runId}/${kind}`, body);
  sessionStatus = async (sessionId: string) => (await this.get(`/sessions/${sessionId}/status`)).body.status;
  runStatus = async (runId: string) => (await this.get(`/runs/${runId}`)).body.status;

  /**
   * A start run (2.2 body) for this runner only (demanding its hostname, so that runs other checks
   * leave behind at a real reference do not get in the way), claimed by its poll.
   */
  async startRun(runner: { runnerId: string; hostname: string }, prompt = "hello"): Promise<any> {
    const created = await this.post("/runs", {
      type: "start_session",
      parameters: { prompt },
      additional_demands: { hostname: runner.hostname },
    });
    expect(created.status).toBe(201);
    const polled = await this.poll(runner.runnerId);
    expect(polled.body?.run?.run_id).toBe(created.body.run_id);
    return polled.body.run;
  }

  /** A run that has started and whose executor bound the session, as a running turn is. */
  async runningRun(runner: { runnerId: string; hostname: string }): Promise<any> {
    const run = await this.startRun(runner);
    expect((await this.report(run.run_id, "started", { runner_id: runner.runnerId })).status).toBe(200);
    const bound = await this.post(`/sessions/${run.session_id}/bind`, {
      executor_session_id: "exec-1",
      hostname: runner.hostname,
      executor_profile: "coding",
      project_dir: "/work/app",
    });
    expect(bound.status).toBe(200);
    return run;
  }

  /** A session whose first turn completed with the session left idle. */
  async idleSession(runner: { runnerId: string; hostname: string }): Promise<any> {
    const run = await this.runningRun(runner);
    const completed = await this.report(run.run_id, "completed", {
      runner_id: runner.runnerId,
      status: "success",
      session_status: "idle",
    });
    expect(completed.status).toBe(200);
    return run;
  }
}

/** The reference of the generation if one is named, else a fake as strict as the reference. */
const wireTo = (protocol: Protocol) =>
  new Wire(
    REFERENCE[protocol] ??
      startFakeCoordinator({ protocol, pollTimeoutSeconds: 1, strictSessions: true, strictReports: true }).url,
  );

const event = (sessionId: string, fields: Record<string, unknown>) => ({
  session_id: sessionId,
  timestamp: "2001-01-01T00:00:00+00:00",
  ...fields,
});

describe("wire, 2.2", () => {
  test("the generation probe: POST /runner/sessions/{id}/status exists (422 on an empty body) and changes nothing", async () => {
    const wire = wireTo("2.2");
    const probe = await wire.post("/runner/sessions/probe/status", {});
    expect(probe.status).toBe(422);
    expect(probe.body.detail.map((item: { loc: string[] }) => item.loc)).toEqual([
      ["body", "runner_id"],
      ["body", "status"],
    ]);
    expect((await wire.get("/runner/sessions/probe/status")).status).toBe(405);
  });

  test("a run demands executor_type autonomous: a runner registered as claude-code never gets it", async () => {
    const wire = wireTo("2.2");
    const hostname = freshHostname();
    const created = await wire.post("/runs", {
      type: "start_session",
      parameters: { prompt: "hello" },
      additional_demands: { hostname },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ run_id: expect.any(String), session_id: expect.any(String), status: "pending" });
    const wrong = (await wire.registerOn(hostname, "cc", { type: "claude-code" })).body.runner_id;
    expect((await wire.poll(wrong)).status).toBe(204);
    expect(await wire.runStatus(created.body.run_id)).toBe("pending");

    const right = (await wire.registerOn(hostname, "auto", { type: "autonomous" })).body.runner_id;
    const polled = await wire.poll(right);
    const run = polled.body.run;
    expect(Object.keys(run).sort()).toEqual(RUN_FIELDS_22);
    expect(run).toMatchObject({
      run_id: created.body.run_id,
      type: "start_session",
      session_id: created.body.session_id,
      agent_name: null,
      parameters: { prompt: "hello" },
      execution_mode: "sync",
      demands: { hostname, executor_type: "autonomous", tags: [] },
      status: "claimed",
      runner_id: right,
      resolved_agent_blueprint: null,
    });
    expect(run.created_at).toMatch(PYTHON_UTC);
    expect(run.claimed_at).toMatch(PYTHON_UTC);
    expect(await wire.sessionStatus(run.session_id)).toBe("pending");
  });

  test("POST /runs takes parameters, exactly {prompt} without an agent and on resume", async () => {
    const wire = wireTo("2.2");
    const promptOnly = await wire.post("/runs", { type: "start_session", prompt: "hello" });
    expect(promptOnly.status).toBe(422);
    expect(promptOnly.body.detail.map((item: { loc: string[] }) => item.loc)).toEqual([["body", "parameters"]]);
    const extra = await wire.post("/runs", { type: "start_session", parameters: { prompt: "hi", x: 1 } });
    expect(extra.status).toBe(400);
    expect(extra.body.detail).toMatchObject({
      error: "parameter_validation_failed",
      agent_name: "(no agent)",
      validation_errors: [{ path: "$", schema_path: "additionalProperties" }],
    });
    const empty = await wire.post("/runs", { type: "start_session", parameters: { prompt: "" } });
    expect(empty.body.detail.validation_errors).toMatchObject([
      { path: "$.prompt", schema_path: "properties/prompt/minLength" },
    ]);
    expect((await wire.post("/runs", { type: "resume_session", parameters: { prompt: "hi" } })).body).toEqual({
      detail: "session_id is required for resume_session",
    });
    expect(
      await wire.post("/runs", { type: "resume_session", session_id: "ses_nope", parameters: { prompt: "hi" } }),
    ).toEqual({
      status: 404,
      body: { detail: "Session 'ses_nope' not found" },
    });
    const hostname = freshHostname();
    const created = await wire.post("/runs", {
      type: "start_session",
      parameters: { prompt: "hello" },
      additional_demands: { hostname },
    });
    const pending = await wire.get("/runs?status=pending");
    expect(Object.keys(pending.body)).toEqual(["runs"]);
    const listed = pending.body.runs.find((run: { run_id: string }) => run.run_id === created.body.run_id);
    expect(listed).toMatchObject({ status: "pending", parameters: { prompt: "hello" } });
    expect("resolved_agent_blueprint" in listed).toBe(false);
    // Not left for a later check at a real reference to trip over.
    await wire.post(`/runs/${created.body.run_id}/stop`);
  });

  test("a session's life: pending until bound, idle between turns, a resume goes to its runner, finished at the end", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const run = await wire.startRun(runner);
    await wire.report(run.run_id, "started", { runner_id: runner.runnerId });
    expect(await wire.sessionStatus(run.session_id)).toBe("pending");
    expect(await wire.runStatus(run.run_id)).toBe("running");
    const bound = await wire.post(`/sessions/${run.session_id}/bind`, {
      executor_session_id: "exec-1",
      hostname: runner.hostname,
      executor_profile: "coding",
      project_dir: "/work/app",
    });
    expect(bound.body).toMatchObject({ ok: true, session: { session_id: run.session_id, status: "running" } });
    const completed = await wire.report(run.run_id, "completed", {
      runner_id: runner.runnerId,
      status: "success",
      session_status: "idle",
      usage: { input_tokens: 3 },
    });
    expect(completed).toEqual({ status: 200, body: { ok: true } });
    expect(await wire.sessionStatus(run.session_id)).toBe("idle");
    expect(await wire.runStatus(run.run_id)).toBe("completed");

    const resume = await wire.post("/runs", {
      type: "resume_session",
      session_id: run.session_id,
      parameters: { prompt: "again" },
    });
    expect(resume.status).toBe(201);
    const handed = (await wire.poll(runner.runnerId)).body.run;
    expect(handed).toMatchObject({
      run_id: resume.body.run_id,
      type: "resume_session",
      parameters: { prompt: "again" },
      project_dir: "/work/app",
      demands: { hostname: runner.hostname, executor_profile: "coding", executor_type: "autonomous", tags: [] },
    });
    expect(await wire.sessionStatus(run.session_id)).toBe("idle");
    await wire.report(handed.run_id, "started", { runner_id: runner.runnerId });
    expect(await wire.sessionStatus(run.session_id)).toBe("running");
    await wire.report(handed.run_id, "completed", { runner_id: runner.runnerId, status: "success", exit_code: 0 });
    expect(await wire.sessionStatus(run.session_id)).toBe("finished");
  });

  test("failed and stopped reports end the session so (extra fields are ignored)", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const failing = await wire.runningRun(runner);
    const failed = await wire.report(failing.run_id, "failed", {
      runner_id: runner.runnerId,
      error: "boom",
      exit_code: 3,
    });
    expect(failed).toEqual({ status: 200, body: { ok: true } });
    expect(await wire.sessionStatus(failing.session_id)).toBe("failed");
    expect((await wire.get(`/runs/${failing.run_id}`)).body).toMatchObject({ status: "failed", error: "boom" });
    expect((await wire.report(failing.run_id, "failed", { runner_id: runner.runnerId })).status).toBe(422);

    const stopping = await wire.runningRun(runner);
    await wire.report(stopping.run_id, "stopped", { runner_id: runner.runnerId, signal: "SIGKILL" });
    expect(await wire.sessionStatus(stopping.session_id)).toBe("stopped");
    expect(await wire.report("run_unknown", "started", { runner_id: runner.runnerId })).toEqual({
      status: 404,
      body: { detail: "Run not found" },
    });
  });

  test("stopping a running session: stopping, the runner is told by session once, then the stopped report ends it", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const run = await wire.runningRun(runner);
    const stop = await wire.post(`/sessions/${run.session_id}/stop`);
    expect(stop.body).toEqual({ ok: true, run_id: run.run_id, session_id: run.session_id, status: "stopping" });
    expect(await wire.sessionStatus(run.session_id)).toBe("stopping");
    expect(await wire.runStatus(run.run_id)).toBe("stopping");
    expect((await wire.post(`/sessions/${run.session_id}/stop`)).body.message).toBe("Session is already being stopped");
    expect((await wire.poll(runner.runnerId)).body).toEqual({ stop_sessions: [run.session_id] });
    expect((await wire.poll(runner.runnerId)).status).toBe(204);
    await wire.report(run.run_id, "stopped", { runner_id: runner.runnerId, signal: "SIGTERM" });
    expect(await wire.sessionStatus(run.session_id)).toBe("stopped");
  });

  test("stopping a pending run cancels it: stopped at once, never handed out", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const created = await wire.post("/runs", {
      type: "start_session",
      parameters: { prompt: "hello" },
      additional_demands: { hostname: runner.hostname },
    });
    const stop = await wire.post(`/runs/${created.body.run_id}/stop`);
    expect(stop.body).toMatchObject({ status: "stopped", message: "Run cancelled before execution" });
    expect(await wire.sessionStatus(created.body.session_id)).toBe("stopped");
    expect((await wire.poll(runner.runnerId)).status).toBe(204);
  });

  test("stopping an idle session: stopping, the runner is told, and its session status report ends it", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const run = await wire.idleSession(runner);
    const stop = await wire.post(`/sessions/${run.session_id}/stop`);
    expect(stop.body).toEqual({
      ok: true,
      session_id: run.session_id,
      status: "stopping",
      message: "Stop command queued for idle session",
    });
    expect((await wire.poll(runner.runnerId)).body).toEqual({ stop_sessions: [run.session_id] });
    const report = (status: string, runnerId = runner.runnerId, sessionId = run.session_id) =>
      wire.post(`/runner/sessions/${sessionId}/status`, { runner_id: runnerId, status });
    expect(await report("idle")).toEqual({
      status: 400,
      body: { detail: "Status must be 'finished', 'failed', or 'stopped'" },
    });
    expect((await report("finished", runner.runnerId, "ses_unknown")).status).toBe(404);
    expect(await report("finished")).toEqual({ status: 200, body: { ok: true } });
    expect(await wire.sessionStatus(run.session_id)).toBe("finished");
    expect((await wire.post(`/sessions/${run.session_id}/stop`)).body.message).toBe("Session already finished");
  });

  test("self-deregistration finishes the runner's idle sessions and fails its running ones", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const idle = await wire.idleSession(runner);
    const running = await wire.runningRun(runner);
    const gone = await wire.send("DELETE", `/runners/${runner.runnerId}?self=true`);
    expect(gone.body).toEqual({ ok: true, message: "Runner deregistered", initiated_by: "self" });
    expect(await wire.sessionStatus(idle.session_id)).toBe("finished");
    expect(await wire.sessionStatus(running.session_id)).toBe("failed");
    expect(await wire.poll(runner.runnerId)).toEqual({ status: 401, body: { detail: "Runner not registered" } });
    expect((await wire.send("DELETE", `/runners/${runner.runnerId}?self=true`)).status).toBe(404);
    const late = await wire.post(`/runner/sessions/${idle.session_id}/status`, {
      runner_id: runner.runnerId,
      status: "finished",
    });
    expect(late).toEqual({ status: 401, body: { detail: "Runner not registered" } });
  });

  test("deregistration from outside: the next poll says so, the runner is gone, idle sessions stay idle", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const idle = await wire.idleSession(runner);
    const marked = await wire.send("DELETE", `/runners/${runner.runnerId}`);
    expect(marked.body).toEqual({ ok: true, message: "Runner marked for deregistration", initiated_by: "external" });
    expect((await wire.poll(runner.runnerId)).body).toEqual({ deregistered: true });
    expect((await wire.poll(runner.runnerId)).status).toBe(401);
    expect(await wire.sessionStatus(idle.session_id)).toBe("idle");
  });

  test("events: result events make the result, unknown event types and fields are taken, bad ones refused", async () => {
    const wire = wireTo("2.2");
    const runner = await wire.register("autonomous");
    const run = await wire.idleSession(runner);
    const sessionId = run.session_id;
    const post = (body: unknown, id = sessionId) => wire.post(`/sessions/${id}/events`, body);
    expect(await wire.get(`/sessions/${sessionId}/result`)).toEqual({
      status: 404,
      body: { detail: "No result found" },
    });
    const assistant = { event_type: "message", role: "assistant", content: [{ type: "text", text: "hi" }] };
    expect(await post(event(sessionId, assistant))).toEqual({ status: 201, body: { ok: true } });
    expect((await wire.get(`/sessions/${sessionId}/result`)).status).toBe(404);
    const result = { event_type: "result", result_text: "turn 1", result_data: null };
    expect((await post(event(sessionId, { ...result, timestamp: "2001-01-01T00:00:02+00:00" }))).status).toBe(201);
    const older = { ...result, result_text: "older", timestamp: "2001-01-01T00:00:01+00:00" };
    expect((await post(event(sessionId, older))).status).toBe(201);
    expect((await wire.get(`/sessions/${sessionId}/result`)).body).toEqual({
      result_text: "turn 1",
      result_data: null,
    });
    expect(
      (await post(event(sessionId, { event_type: "usage", input_tokens: 5, timestamp: "2001-01-01T00:00:03+00:00" })))
        .status,
    ).toBe(201);
    expect((await post({ event_type: "message", session_id: sessionId })).status).toBe(422);
    expect((await post(event(sessionId, { event_type: "result", result_data: [1] }))).status).toBe(422);
    expect(await post(event("ses_other", { event_type: "message" }))).toEqual({
      status: 400,
      body: { detail: "Event session_id must match URL session_id" },
    });
    expect((await post(event("ses_unknown", { event_type: "message" }), "ses_unknown")).status).toBe(404);

    const events = (await wire.get(`/sessions/${sessionId}/events`)).body.events;
    const mine = events.filter((e: { timestamp: string }) => e.timestamp.startsWith("2001-01-01"));
    expect(mine.map((e: any) => e.result_text ?? e.event_type)).toEqual(["message", "older", "turn 1", "usage"]);
    const usage = mine.at(-1);
    expect("input_tokens" in usage).toBe(false);
    expect(usage).toMatchObject({ id: expect.any(Number), session_id: sessionId, result_text: null, tool_name: null });
    await wire.report(run.run_id, "failed", { runner_id: runner.runnerId, error: "x" });
    expect(await wire.get(`/sessions/${sessionId}/result`)).toEqual({
      status: 400,
      body: { detail: "Session not finished or idle" },
    });
    expect(await wire.get("/sessions/ses_unknown/status")).toEqual({ status: 200, body: { status: "not_existent" } });
  });
});

describe("wire, 2.1", () => {
  test("the generation probe: POST /runner/sessions/{id}/status is Not Found", async () => {
    const wire = wireTo("2.1");
    expect(await wire.post("/runner/sessions/probe/status", {})).toEqual({
      status: 404,
      body: { detail: "Not Found" },
    });
  });

  test("POST /runs takes a prompt; the result is the last assistant message once a session_stop finished it", async () => {
    const wire = wireTo("2.1");
    expect((await wire.post("/runs", { type: "start_session", parameters: { prompt: "hi" } })).status).toBe(422);
    const hostname = freshHostname();
    const created = await wire.post("/runs", {
      type: "start_session",
      prompt: "hello",
      additional_demands: { hostname },
    });
    expect(created.status).toBe(200);
    const runnerId = (await wire.registerOn(hostname, "cc", { type: "claude-code" })).body.runner_id;
    const run = (await wire.poll(runnerId)).body.run;
    expect(run).toMatchObject({ run_id: created.body.run_id, prompt: "hello", demands: { hostname, tags: [] } });
    expect("parameters" in run).toBe(false);
    const sessionId = run.session_id;
    await wire.report(run.run_id, "started", { runner_id: runnerId });
    await wire.post(`/sessions/${sessionId}/bind`, {
      executor_session_id: "e",
      hostname,
      executor_profile: "cc",
    });
    const post = (fields: Record<string, unknown>) =>
      wire.post(`/sessions/${sessionId}/events`, event(sessionId, fields));
    expect(
      await post({ event_type: "message", role: "assistant", content: [{ type: "text", text: "the answer" }] }),
    ).toEqual({ status: 200, body: { ok: true } });
    await post({ event_type: "result", result_text: "ignored", timestamp: "2001-01-01T00:00:01+00:00" });
    await wire.report(run.run_id, "completed", { runner_id: runnerId, status: "success", session_status: "idle" });
    expect(await wire.sessionStatus(sessionId)).toBe("running");
    expect(await wire.get(`/sessions/${sessionId}/result`)).toEqual({
      status: 400,
      body: { detail: "Session not finished" },
    });
    await post({
      event_type: "session_stop",
      exit_code: 0,
      reason: "completed",
      timestamp: "2001-01-01T00:00:02+00:00",
    });
    expect(await wire.sessionStatus(sessionId)).toBe("finished");
    expect((await wire.get(`/sessions/${sessionId}/result`)).body).toEqual({ result: "the answer" });
    const stored = (await wire.get(`/sessions/${sessionId}/events`)).body.events.find(
      (e: { event_type: string }) => e.event_type === "result",
    );
    expect("result_text" in stored).toBe(false);
  });

  test("a stop names the run (stop_runs)", async () => {
    const wire = wireTo("2.1");
    const hostname = freshHostname();
    const created = await wire.post("/runs", {
      type: "start_session",
      prompt: "hello",
      additional_demands: { hostname },
    });
    const runnerId = (await wire.registerOn(hostname, "cc", { type: "claude-code" })).body.runner_id;
    await wire.poll(runnerId);
    await wire.report(created.body.run_id, "started", { runner_id: runnerId });
    const stop = await wire.post(`/sessions/${created.body.session_id}/stop`);
    expect(stop.body).toMatchObject({ run_id: created.body.run_id, status: "stopping" });
    expect((await wire.poll(runnerId)).body).toEqual({ stop_runs: [created.body.run_id] });
    await wire.report(created.body.run_id, "stopped", { runner_id: runnerId, signal: "SIGTERM" });
    expect(await wire.sessionStatus(created.body.session_id)).toBe("stopped");
  });
});

describe("the fake's own controls", () => {
  const start22 = (options = {}) => startFakeCoordinator({ protocol: "2.2", pollTimeoutSeconds: 1, ...options });
  const registerAs = (fake: FakeCoordinator, type: string) =>
    new Wire(fake.url).post("/runner/register", {
      hostname: "h",
      project_dir: "/work",
      executor_profile: "coding",
      executor: { type },
    });

  test("handRun at 2.2 shapes the run as the reference hands it out, with the fake's agent as its blueprint", async () => {
    const worker = {
      name: "worker",
      type: "autonomous",
      system_prompt: "You work.",
      mcp_servers: { orch: { url: "${runner.orchestrator_mcp_url}", config: { "X-Agent-Session-Id": "ses_a" } } },
    };
    const fake = start22({ agents: { worker } });
    const queued = fake.handRun({ run_id: "run_a", session_id: "ses_a", prompt: "hello", agent_name: "worker" });
    expect(Object.keys(queued).sort()).toEqual(RUN_FIELDS_22);
    expect(fake.runStatus.get("run_a")).toBe("pending");
    expect(fake.sessionStatus.get("ses_a")).toBe("pending");
    await registerAs(fake, "autonomous");
    const run = (await new Wire(fake.url).poll(fake.runnerId)).body.run;
    expect(run).toMatchObject({
      run_id: "run_a",
      session_id: "ses_a",
      parameters: { prompt: "hello" },
      demands: { executor_type: "autonomous", tags: [] },
      status: "claimed",
      runner_id: fake.runnerId,
      resolved_agent_blueprint: worker,
    });
    expect("prompt" in run).toBe(false);
    expect(run.created_at).toMatch(PYTHON_UTC);
    expect(fake.runStatus.get("run_a")).toBe("claimed");
  });

  test("handRun at 2.1 hands the run out as given", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 1 });
    fake.handRun({ run_id: "run_b", type: "start_session", session_id: "ses_b", prompt: "hello" });
    await registerAs(fake, "claude-code");
    expect((await new Wire(fake.url).poll(fake.runnerId)).body).toEqual({
      run: { run_id: "run_b", type: "start_session", session_id: "ses_b", prompt: "hello" },
    });
  });

  test("POST /runs resolves the agent's runtime, params and scope placeholders and leaves the runner's", async () => {
    const agent = {
      name: "worker",
      type: "autonomous",
      mcp_servers: {
        orch: {
          url: "${runner.orchestrator_mcp_url}",
          config: { session: "${runtime.session_id}", ctx: "${scope.k}" },
        },
      },
    };
    const fake = start22({ agents: { worker: agent } });
    const created = fake.createRun({
      type: "start_session",
      agent_name: "worker",
      parameters: { prompt: "do it" },
      scope: { k: "v" },
    });
    expect(created.status).toBe(201);
    const run = fake.runs.get(created.body.run_id)!;
    expect(run.resolved_agent_blueprint.mcp_servers.orch).toEqual({
      url: "${runner.orchestrator_mcp_url}",
      config: { session: created.body.session_id, ctx: "v" },
    });
    expect(fake.session(created.body.session_id)).toMatchObject({ status: "pending", agent_name: "worker" });
  });

  test("a runner of the wrong type never gets the run: nextPoll sees the poll answered empty", async () => {
    const fake = start22();
    await registerAs(fake, "claude-code");
    expect(fake.executorType).toBe("claude-code");
    const run = fake.handRun({ prompt: "hello" });
    const polled = new Wire(fake.url).poll(fake.runnerId);
    await fake.nextPoll();
    expect((await polled).status).toBe(204);
    expect(fake.runStatus.get(run.run_id)).toBe("pending");
  });

  test("at 2.2 stop commands go before runs, every queued session in one reply", async () => {
    const fake = start22();
    await registerAs(fake, "autonomous");
    const run = fake.handRun({ prompt: "hello" });
    fake.handStopSessions(["ses_1"]);
    fake.handStopSessions(["ses_2", "ses_1"]);
    const wire = new Wire(fake.url);
    expect((await wire.poll(fake.runnerId)).body).toEqual({ stop_sessions: ["ses_1", "ses_2"] });
    expect((await wire.poll(fake.runnerId)).body.run.run_id).toBe(run.run_id);
  });

  test("requestStop and requestSessionStop follow the reference; waitForSessionStatus sees the outcome", async () => {
    const fake = start22();
    await registerAs(fake, "autonomous");
    const wire = new Wire(fake.url);
    const pending = fake.handRun({ prompt: "one" });
    expect(fake.requestStop(pending.run_id).body).toMatchObject({ status: "stopped" });
    await fake.waitForSessionStatus(pending.session_id, ["stopped"]);

    const idle = fake.handRun({ prompt: "two" });
    await wire.poll(fake.runnerId);
    await wire.report(idle.run_id, "completed", { runner_id: fake.runnerId, session_status: "idle" });
    await fake.waitForSessionStatus(idle.session_id, ["idle"]);
    expect(fake.requestSessionStop(idle.session_id).body).toMatchObject({ status: "stopping" });
    expect((await wire.poll(fake.runnerId)).body).toEqual({ stop_sessions: [idle.session_id] });
    expect(fake.requestSessionStop("ses_unknown")).toEqual({ status: 404, body: { detail: "Session not found" } });
  });

  test("at 2.1 bind, events and metadata are taken for any session, as the fake always took them", async () => {
    const fake = startFakeCoordinator();
    const wire = new Wire(fake.url);
    expect(await wire.post("/sessions/ses_x/events", { session_id: "ses_x", event_type: "message" })).toEqual({
      status: 200,
      body: { ok: true, session_id: "ses_x" },
    });
    expect(fake.eventsOf("ses_x").map((e) => e.event_type)).toEqual(["message"]);
  });
});
