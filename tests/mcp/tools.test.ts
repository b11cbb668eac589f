import { describe, expect, test } from "bun:test";
import { json, startHarness } from "../support/mcp-harness.ts";

const agents = [
  {
    name: "coder",
    description: "Writes code",
    tags: ["python", "backend"],
    status: "active",
    system_prompt: "You write code.",
    mcp_servers: { x: { type: "http", url: "http://x" } },
    created_at: "2025-01-01T00:00:00Z",
    modified_at: "2025-01-01T00:00:00Z",
  },
  { name: "retired", description: "Old", tags: ["python"], status: "inactive", created_at: "", modified_at: "" },
  { name: "bare", description: "No tags given", status: "active", created_at: "", modified_at: "" },
];

describe("list_agent_blueprints", () => {
  test("lists active blueprints as {name, description, tags}", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/agents$/, () => json(agents));
    expect(await h.ok("list_agent_blueprints")).toEqual([
      { name: "coder", description: "Writes code", tags: ["python", "backend"] },
      { name: "bare", description: "No tags given", tags: [] },
    ]);
    expect(h.coordinator.find("GET", "/agents")[0]!.query.has("tags")).toBe(false);
  });

  test("passes X-Agent-Tags to the coordinator as the tags filter", async () => {
    const h = await startHarness({ headers: { "X-Agent-Tags": "python,backend" } });
    h.coordinator.on("GET", /^\/agents$/, () => json([agents[0]]));
    expect(await h.ok("list_agent_blueprints")).toEqual([
      { name: "coder", description: "Writes code", tags: ["python", "backend"] },
    ]);
    expect(h.coordinator.find("GET", "/agents")[0]!.query.get("tags")).toBe("python,backend");
  });

  test("a reply that is not a list is a tool error", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/agents$/, () => json({ agents: agents }));
    expect(await h.fails("list_agent_blueprints")).toBe(
      "Could not list agent blueprints: Coordinator reply to GET /agents: must be an array (was object)",
    );
  });

  test("a coordinator error is a tool error with the coordinator's words", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/agents$/, () => json({ detail: "Invalid API key" }, 403));
    const error = await h.fails("list_agent_blueprints");
    expect(error).toContain("Could not list agent blueprints");
    expect(error).toContain("HTTP 403");
    expect(error).toContain("Invalid API key");
  });
});

describe("list_agent_sessions", () => {
  test("lists sessions with id, status, agent, created and last resumed", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions$/, () =>
      json({
        sessions: [
          {
            session_id: "ses_a",
            status: "finished",
            agent_name: "coder",
            created_at: "2025-01-01T10:00:00Z",
            last_resumed_at: "2025-01-01T11:00:00Z",
            project_dir: "/work",
            executor_session_id: "sdk-1",
            parent_session_id: null,
          },
          { session_id: "ses_b", status: "pending", agent_name: null, created_at: "2025-01-02T10:00:00Z" },
        ],
      }),
    );
    expect(await h.ok("list_agent_sessions")).toEqual([
      {
        session_id: "ses_a",
        status: "finished",
        agent_name: "coder",
        created_at: "2025-01-01T10:00:00Z",
        last_resumed_at: "2025-01-01T11:00:00Z",
      },
      {
        session_id: "ses_b",
        status: "pending",
        agent_name: null,
        created_at: "2025-01-02T10:00:00Z",
        last_resumed_at: null,
      },
    ]);
  });

  test("a reply without a sessions list is a tool error", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions$/, () => json({ nope: true }));
    expect(await h.fails("list_agent_sessions")).toContain("sessions must be an array (was missing)");
  });
});

describe("get_agent_session_status", () => {
  test("answers {session_id, status}", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "running" }));
    expect(await h.ok("get_agent_session_status", { session_id: "ses_1" })).toEqual({
      session_id: "ses_1",
      status: "running",
    });
  });

  test("an unknown session is not_existent, whether the coordinator says so or answers 404", async () => {
    const h = await startHarness();
    h.coordinator
      .on("GET", /^\/sessions\/ses_said\/status$/, () => json({ status: "not_existent" }))
      .on("GET", /^\/sessions\/ses_404\/status$/, () => json({ detail: "Session not found" }, 404));
    expect(await h.ok("get_agent_session_status", { session_id: "ses_said" })).toEqual({
      session_id: "ses_said",
      status: "not_existent",
    });
    expect(await h.ok("get_agent_session_status", { session_id: "ses_404" })).toEqual({
      session_id: "ses_404",
      status: "not_existent",
    });
  });

  test("session ids are escaped in the coordinator path", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/[^/]+\/status$/, () => json({ status: "finished" }));
    await h.ok("get_agent_session_status", { session_id: "a/b?c" });
    expect(h.coordinator.requests.map((r) => r.path)).toEqual(["/sessions/a%2Fb%3Fc/status"]);
  });

  test("a server error is a tool error", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_1\/status$/, () => json({ detail: "database is locked" }, 500));
    const error = await h.fails("get_agent_session_status", { session_id: "ses_1" });
    expect(error).toContain("Could not get the status of session ses_1");
    expect(error).toContain("database is locked");
  });
});

describe("get_agent_session_result", () => {
  test("answers {session_id, result} for a finished session", async () => {
    const h = await startHarness();
    h.coordinator
      .on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "finished" }))
      .on("GET", /^\/sessions\/ses_1\/result$/, () => json({ result: "All tests pass." }));
    expect(await h.ok("get_agent_session_result", { session_id: "ses_1" })).toEqual({
      session_id: "ses_1",
      result: "All tests pass.",
    });
  });

  test("a session that is not finished is a tool error naming its status", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "running" }));
    const error = await h.fails("get_agent_session_result", { session_id: "ses_1" });
    expect(error).toContain("ses_1 is not finished (status: running)");
    expect(h.coordinator.find("GET", "/sessions/ses_1/result")).toHaveLength(0);
  });

  test("a missing session is a tool error", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions\/ses_x\/status$/, () => json({ status: "not_existent" }));
    expect(await h.fails("get_agent_session_result", { session_id: "ses_x" })).toContain(
      "Session ses_x does not exist",
    );
  });

  test("the coordinator's refusal to give a result is passed on", async () => {
    const h = await startHarness();
    h.coordinator
      .on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "finished" }))
      .on("GET", /^\/sessions\/ses_1\/result$/, () => json({ detail: "No result found" }, 404));
    const error = await h.fails("get_agent_session_result", { session_id: "ses_1" });
    expect(error).toContain("Could not get the result of session ses_1");
    expect(error).toContain("No result found");
  });

  test("a result over 50,000 characters is cut, with a note", async () => {
    const h = await startHarness();
    const long = "abcdefghij".repeat(6_000); // 60,000 characters
    h.coordinator
      .on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "finished" }))
      .on("GET", /^\/sessions\/ses_1\/result$/, () => json({ result: long }));
    const { result } = await h.ok("get_agent_session_result", { session_id: "ses_1" });
    expect(result.startsWith(long.slice(0, 50_000))).toBe(true);
    expect(result.slice(50_000)).toBe("\n\n[Result truncated: showing the first 50,000 of 60,000 characters]");
  });

  test("a result of exactly 50,000 characters is left whole", async () => {
    const h = await startHarness();
    const exact = "x".repeat(50_000);
    h.coordinator
      .on("GET", /^\/sessions\/ses_1\/status$/, () => json({ status: "finished" }))
      .on("GET", /^\/sessions\/ses_1\/result$/, () => json({ result: exact }));
    expect((await h.ok("get_agent_session_result", { session_id: "ses_1" })).result).toBe(exact);
  });
});

describe("delete_all_agent_sessions", () => {
  test("deletes every session and counts the ones deleted", async () => {
    const h = await startHarness();
    h.coordinator
      .on("GET", /^\/sessions$/, () =>
        json({ sessions: [{ session_id: "ses_a" }, { session_id: "ses_b" }, { session_id: "ses_c" }] }),
      )
      .on("DELETE", /^\/sessions\/[^/]+$/, (r) => json({ ok: true, session_id: r.path.split("/")[2] }))
      // (added last, so tried first) ses_b vanished between the listing and the delete: not counted, not an error
      .on("DELETE", /^\/sessions\/ses_b$/, () => json({ detail: "Session not found" }, 404));
    expect(await h.ok("delete_all_agent_sessions")).toEqual({ deleted_count: 2 });
    expect(h.coordinator.requests.filter((r) => r.method === "DELETE").map((r) => r.path)).toEqual([
      "/sessions/ses_a",
      "/sessions/ses_b",
      "/sessions/ses_c",
    ]);
  });

  test("no sessions: nothing deleted", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions$/, () => json({ sessions: [] }));
    expect(await h.ok("delete_all_agent_sessions")).toEqual({ deleted_count: 0 });
  });

  test("a failed delete stops and says how far it got", async () => {
    const h = await startHarness();
    h.coordinator
      .on("GET", /^\/sessions$/, () =>
        json({ sessions: [{ session_id: "ses_a" }, { session_id: "ses_b" }, { session_id: "ses_c" }] }),
      )
      .on("DELETE", /^\/sessions\/[^/]+$/, () => json({ ok: true }))
      .on("DELETE", /^\/sessions\/ses_b$/, () => json({ detail: "database is locked" }, 500));
    const error = await h.fails("delete_all_agent_sessions");
    expect(error).toContain("Deleted 1 of 3 sessions, then could not delete session ses_b");
    expect(error).toContain("database is locked");
    expect(h.coordinator.find("DELETE", "/sessions/ses_c")).toHaveLength(0);
  });
});
