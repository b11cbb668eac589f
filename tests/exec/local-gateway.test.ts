import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { type GatewayRecord, LocalGateway, type LocalSession, resultOfRecords } from "../../src/exec/local-gateway.ts";

let gateway: LocalGateway;
let seen: GatewayRecord[];
let changes: LocalSession[];

beforeEach(() => {
  seen = [];
  changes = [];
  gateway = new LocalGateway({
    hostname: "box-1",
    executorProfile: "coding",
    onRecord: (record) => seen.push(record),
    onSessionChange: (session) => changes.push(session),
  }).start();
});
afterEach(async () => {
  await gateway.stop();
});

/** A request as the executor of the body's session (else of `ses_any`) sends it, through the URL it was given. */
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const sessionId = (body as { session_id?: unknown } | undefined)?.session_id;
  const response = await fetch(`${gateway.urlFor(typeof sessionId === "string" ? sessionId : "ses_any")}${path}`, {
    method,
    headers: body === undefined ? undefined : { "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

describe("LocalGateway", () => {
  test("serves on 127.0.0.1 only", () => {
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test("bind adds what the runner owns (hostname, executor_profile) and marks the session running", async () => {
    const reply = await call("POST", "/bind", { session_id: "ses_1", executor_session_id: "exe-1", project_dir: "/p" });
    expect(reply.status).toBe(200);
    expect(reply.body.session).toMatchObject({
      session_id: "ses_1",
      executor_session_id: "exe-1",
      project_dir: "/p",
      hostname: "box-1",
      executor_profile: "coding",
      status: "running",
    });
    // What the executor sent is recorded as sent, not as enriched.
    expect(gateway.records[0]).toMatchObject({
      kind: "bind",
      method: "POST",
      path: "/bind",
      status: 200,
      body: { session_id: "ses_1", executor_session_id: "exe-1", project_dir: "/p" },
    });
    expect(changes.at(-1)?.executor_session_id).toBe("exe-1");
  });

  test("events are recorded in order; the last assistant message is the result; session_stop finishes the session", async () => {
    await call("POST", "/bind", { session_id: "ses_2", executor_session_id: "exe-2" });
    await call("POST", "/events", {
      session_id: "ses_2",
      event_type: "message",
      role: "user",
      content: [{ type: "text", text: "q" }],
    });
    expect((await call("GET", "/sessions/ses_2/result")).status).toBe(400);
    await call("POST", "/events", {
      session_id: "ses_2",
      event_type: "message",
      role: "assistant",
      content: [
        { type: "text", text: "an" },
        { type: "text", text: "swer" },
      ],
    });
    await call("POST", "/events", {
      session_id: "ses_2",
      event_type: "session_stop",
      exit_code: 0,
      reason: "completed",
    });
    expect(seen.map((r) => r.kind)).toEqual(["bind", "event", "request", "event", "event"]);
    expect(await call("GET", "/sessions/ses_2/status")).toEqual({ status: 200, body: { status: "finished" } });
    expect(await call("GET", "/sessions/ses_2/result")).toEqual({ status: 200, body: { result: "answer" } });
  });

  test("a result event (2.2) is the session's result: its text, or its data as JSON; later assistant messages do not replace it", async () => {
    const message = (text: string) => ({
      session_id: "ses_r",
      event_type: "message",
      role: "assistant",
      content: [{ type: "text", text }],
    });
    const result = (fields: Record<string, unknown>) => ({ session_id: "ses_r", event_type: "result", ...fields });
    await call("POST", "/bind", { session_id: "ses_r", executor_session_id: "exe-r" });
    await call("POST", "/events", message("thinking out loud"));
    expect(gateway.session("ses_r")?.result).toBe("thinking out loud");
    await call("POST", "/events", result({ result_text: null, result_data: { verdict: "sound", score: 4 } }));
    expect(gateway.session("ses_r")).toMatchObject({
      result: '{"verdict":"sound","score":4}',
      result_text: null,
      result_data: { verdict: "sound", score: 4 },
    });
    await call("POST", "/events", message("a later aside"));
    expect(gateway.session("ses_r")?.result).toBe('{"verdict":"sound","score":4}');
    await call("POST", "/events", result({ result_text: "turn two", result_data: null }));
    await call("POST", "/events", { session_id: "ses_r", event_type: "session_stop", exit_code: 0, reason: "done" });
    expect(await call("GET", "/sessions/ses_r/result")).toEqual({
      status: 200,
      body: { result: "turn two", result_text: "turn two", result_data: null },
    });
    // What the session store keeps for a resume carries it too.
    expect(changes.at(-1)).toMatchObject({ result: "turn two", result_text: "turn two", result_data: null });
    // A result event of the wrong shape is refused, as the coordinator refuses it.
    const bad = await call("POST", "/events", result({ result_data: [1, 2] }));
    expect(bad.status).toBe(400);
    expect(bad.body.detail).toContain("result_data must be");
    expect(gateway.session("ses_r")?.result).toBe("turn two");
  });

  test("resultOfRecords: the result of some requests' events alone, by the same rule", async () => {
    await call("POST", "/bind", { session_id: "ses_q", executor_session_id: "exe-q" });
    const from = gateway.records.length;
    expect(resultOfRecords(gateway.records.slice(from))).toBeUndefined();
    await call("POST", "/events", {
      session_id: "ses_q",
      event_type: "message",
      role: "assistant",
      content: [{ type: "text", text: "plain" }],
    });
    expect(resultOfRecords(gateway.records.slice(from))).toEqual({ text: "plain" });
    await call("POST", "/events", { session_id: "ses_q", event_type: "result", result_data: { a: 1 } });
    expect(resultOfRecords(gateway.records.slice(from))).toEqual({ text: '{"a":1}', data: { a: 1 } });
  });

  test("metadata updates a known session; unknown sessions are 404 like the coordinator's", async () => {
    await call("POST", "/bind", { session_id: "ses_3", executor_session_id: "exe-3" });
    const updated = await call("PATCH", "/metadata", {
      session_id: "ses_3",
      last_resumed_at: "2025-05-05T00:00:00.000Z",
    });
    expect(updated.body.session.last_resumed_at).toBe("2025-05-05T00:00:00.000Z");
    expect((await call("PATCH", "/metadata", { session_id: "ses_nope" })).status).toBe(404);
    expect(await call("GET", "/sessions/ses_nope")).toEqual({ status: 404, body: { detail: "Session not found" } });
    expect(await call("GET", "/sessions/ses_nope/status")).toEqual({ status: 200, body: { status: "not_existent" } });
  });

  test("answers GET /sessions/{id} for sessions it was given", async () => {
    const given: LocalSession = {
      session_id: "ses_old",
      status: "finished",
      created_at: "2025-01-01T00:00:00.000Z",
      executor_session_id: "exe-old",
      project_dir: "/old",
    };
    const withSessions = new LocalGateway({ sessions: [given] }).start();
    try {
      const response = await fetch(`${withSessions.urlFor("ses_old")}/sessions/ses_old`);
      expect(await response.json()).toEqual({ session: given });
    } finally {
      await withSessions.stop();
    }
  });

  test("malformed requests are 400 with a detail that names what is missing", async () => {
    expect(await call("POST", "/bind", { session_id: "ses_4" })).toEqual({
      status: 400,
      body: { detail: "POST /bind: executor_session_id must be a string (was missing)" },
    });
    expect((await call("POST", "/events", { event_type: "message" })).body.detail).toBe(
      "POST /events: session_id must be a string (was missing)",
    );
    expect((await call("POST", "/events", "{oops")).body.detail).toBe("request body is not valid JSON");
    expect(gateway.records.map((r) => r.status)).toEqual([400, 400, 400]);
  });

  test("the orchestration routes need a coordinator: 501 with a detail saying so; other routes 404", async () => {
    const reply = await call("POST", "/runs", { agent_name: "x" });
    expect(reply.status).toBe(501);
    expect(reply.body.detail).toContain("agent-runner exec has no coordinator");
    expect(reply.body.detail).toContain("POST /runs");
    const unlisted = await call("DELETE", "/runners/x");
    expect(unlisted.status).toBe(404);
    expect(unlisted.body.detail).toContain("DELETE /runners/x");
  });

  test("waitFor resolves with a record still to come", async () => {
    const waiting = gateway.waitFor((r) => r.kind === "event" && (r.body as any).event_type === "session_stop", 5_000);
    await call("POST", "/events", {
      session_id: "ses_5",
      event_type: "session_stop",
      exit_code: 0,
      reason: "completed",
    });
    expect(((await waiting).body as any).session_id).toBe("ses_5");
  });
});

describe("LocalGateway serves its own executor only, as the runner's gateway does", () => {
  const event = (sessionId: string) => JSON.stringify({ session_id: sessionId, event_type: "message" });

  test("the URL it gives carries a run token; without a live one: 401 with a JSON detail", async () => {
    const url = gateway.urlFor("ses_t");
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/agrun_[A-Za-z0-9_-]{43}$/);
    const bare = await fetch(`${gateway.url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: event("ses_t"),
    });
    expect(bare.status).toBe(401);
    expect(((await bare.json()) as { detail: string }).detail).toContain("use the URL the runner gave");
    expect(gateway.session("ses_t")).toBeUndefined();
    // What is recorded never shows a token.
    await fetch(`${url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: event("ses_t"),
    });
    expect(gateway.records.at(-1)).toMatchObject({ path: "/events", status: 200 });
  });

  test("what is refused is not kept: no body recorded without a live token; a body over 10 MB is refused (413)", async () => {
    const post = (url: string, body: string) =>
      fetch(`${url}/events`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const bare = await post(gateway.url, event("ses_big"));
    expect(bare.status).toBe(401);
    expect(gateway.records.at(-1)).toMatchObject({ status: 401 });
    expect(gateway.records.at(-1)?.body).toBeUndefined();
    const big = JSON.stringify({ session_id: "ses_big", event_type: "message", pad: "x".repeat(11 * 1024 * 1024) });
    expect((await post(gateway.urlFor("ses_big"), big)).status).toBe(413);
    expect(gateway.records.filter((record) => record.body !== undefined)).toEqual([]);
    expect(gateway.session("ses_big")).toBeUndefined();
  });

  test("a foreign Host (403) and a body not declared JSON (415) are refused", async () => {
    const url = gateway.urlFor("ses_h");
    const rebound = await fetch(`${url}/events`, {
      method: "POST",
      headers: { host: "attacker.example", "content-type": "application/json" },
      body: event("ses_h"),
    });
    expect(rebound.status).toBe(403);
    const plain = await fetch(`${url}/events`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: event("ses_h"),
    });
    expect(plain.status).toBe(415);
    expect(gateway.session("ses_h")).toBeUndefined();
  });

  test("one executor cannot write another session (403)", async () => {
    const a = gateway.urlFor("ses_A");
    const forged = await fetch(`${a}/bind`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ session_id: "ses_B", executor_session_id: "x" }),
    });
    expect(forged.status).toBe(403);
    expect(gateway.session("ses_B")).toBeUndefined();
  });

  test("an error inside the gateway is a JSON 500, never an HTML page", async () => {
    const failing = new LocalGateway({
      onSessionChange: () => {
        throw new Error("EROFS: read-only file system");
      },
    }).start();
    try {
      const response = await fetch(`${failing.urlFor("ses_e")}/bind`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ session_id: "ses_e", executor_session_id: "x" }),
      });
      expect(response.status).toBe(500);
      expect(response.headers.get("content-type")).toContain("application/json");
      expect(((await response.json()) as { detail: string }).detail).toContain("EROFS: read-only file system");
    } finally {
      await failing.stop();
    }
  });
});
