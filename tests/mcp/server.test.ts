import { describe, expect, test } from "bun:test";
import type { TokenSource } from "../../src/coordinator/auth.ts";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { startMcpServer } from "../../src/mcp/server.ts";
import { RunTokens, urlWithToken } from "../../src/protocol/run-tokens.ts";
import { ConfigError } from "../../src/shared/errors.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { connectClient, json, startHarness } from "../support/mcp-harness.ts";
import { onTeardown } from "../support/teardown.ts";

describe("embedded MCP server", () => {
  test("listens on 127.0.0.1 with the /mcp path in its URL", async () => {
    const h = await startHarness();
    expect(h.mcp.url).toBe(`http://127.0.0.1:${h.mcp.port}/mcp`);
    expect(h.mcp.port).toBeGreaterThan(0);
  });

  test("lists all seven tools with descriptions and input schemas", async () => {
    const h = await startHarness();
    const { tools } = await h.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([
      "delete_all_agent_sessions",
      "get_agent_session_result",
      "get_agent_session_status",
      "list_agent_blueprints",
      "list_agent_sessions",
      "resume_agent_session",
      "start_agent_session",
    ]);
    for (const tool of tools) {
      expect(tool.description?.length ?? 0).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe("object");
    }
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool.inputSchema as any]));

    const start = byName.start_agent_session;
    expect(start.required.sort()).toEqual(["agent_name", "prompt"]);
    expect(Object.keys(start.properties).sort()).toEqual(["agent_name", "mode", "project_dir", "prompt"]);
    expect(start.properties.mode.enum).toEqual(["sync", "async_poll", "async_callback"]);
    expect(start.properties.mode.default).toBe("sync");
    expect(start.properties.prompt.description).toContain("100,000");

    const resume = byName.resume_agent_session;
    expect(resume.required.sort()).toEqual(["prompt", "session_id"]);
    expect(resume.properties.mode.enum).toEqual(["sync", "async_poll", "async_callback"]);

    for (const name of ["get_agent_session_status", "get_agent_session_result"]) {
      expect(byName[name].required).toEqual(["session_id"]);
    }
    for (const name of ["list_agent_blueprints", "list_agent_sessions", "delete_all_agent_sessions"]) {
      expect(byName[name].required ?? []).toEqual([]);
      expect(Object.keys(byName[name].properties ?? {})).toEqual([]);
    }
  });

  test("arguments that do not fit the schema are a tool error, not a crash", async () => {
    const h = await startHarness();
    const missingPrompt = await h.fails("start_agent_session", { agent_name: "coder" });
    expect(missingPrompt).toContain("prompt");
    const badMode = await h.fails("start_agent_session", { agent_name: "coder", prompt: "hi", mode: "eventually" });
    expect(badMode).toContain("mode");
    expect(h.coordinator.find("POST", "/runs")).toHaveLength(0);
  });

  test("a taken --mcp-port is a ConfigError naming the port", async () => {
    const squatter = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("taken") });
    onTeardown(() => squatter.stop(true));
    const error = await startMcpServer({
      coordinator: new CoordinatorHttp("http://127.0.0.1:9"),
      tokens: new RunTokens(),
      port: squatter.port,
    }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`--mcp-port ${squatter.port} is already in use`);
  });

  test("serves a fixed --mcp-port when it is free", async () => {
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = probe.port!;
    await probe.stop(true);
    const mcp = await startMcpServer({
      coordinator: new CoordinatorHttp("http://127.0.0.1:9"),
      tokens: new RunTokens(),
      port,
    });
    onTeardown(() => mcp.stop());
    expect(mcp.port).toBe(port);
    expect(mcp.url).toBe(`http://127.0.0.1:${port}/mcp`);
  });

  test("answers only POST on /mcp, and only to its own Host", async () => {
    const h = await startHarness();
    const base = h.url.replace(/\/mcp$/, "");
    const json = { "content-type": "application/json" };
    expect((await fetch(`${base}/elsewhere`, { method: "POST", headers: json, body: "{}" })).status).toBe(404);
    const get = await fetch(`${base}/mcp`, { headers: { accept: "text/event-stream" } });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect((await fetch(`${base}/mcp`, { method: "DELETE" })).status).toBe(405);

    const listTools = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} });
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const rebound = await fetch(`${base}/mcp`, {
      method: "POST",
      body: listTools,
      headers: { ...headers, host: "attacker.example" },
    });
    expect(rebound.status).toBe(403);
    // Connected to 127.0.0.1 but named localhost (localhost may resolve to ::1 first, where nothing listens).
    const viaLocalhost = await fetch(`${base}/mcp`, {
      method: "POST",
      body: listTools,
      headers: { ...headers, host: `localhost:${h.mcp.port}` },
    });
    expect(viaLocalhost.status).toBe(200);
    const plain = await fetch(`${base}/mcp`, {
      method: "POST",
      body: listTools,
      headers: { ...headers, "content-type": "text/plain" },
    });
    expect(plain.status).toBe(415);
  });

  test("acts for live runs only: a request without a live run token is refused (401)", async () => {
    const h = await startHarness();
    h.coordinator.on("DELETE", /^\/sessions\/.+$/, () => json({}));
    const base = `http://127.0.0.1:${h.mcp.port}`;
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const deleteAll = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "delete_all_agent_sessions", arguments: {} },
    });
    const bare = await fetch(`${base}/mcp`, { method: "POST", body: deleteAll, headers });
    expect(bare.status).toBe(401);
    expect(((await bare.json()) as { error: { message: string } }).error.message).toContain(
      "use the URL the runner gave",
    );
    const guessed = await fetch(`${base}/agrun_${"A".repeat(43)}/mcp`, { method: "POST", body: deleteAll, headers });
    expect(guessed.status).toBe(401);
    const token = h.tokens.issue("ses_r");
    h.tokens.revoke(token);
    const revoked = await fetch(urlWithToken(h.mcp.url, token), { method: "POST", body: deleteAll, headers });
    expect(revoked.status).toBe(401);
    expect(h.coordinator.requests).toHaveLength(0);
    // The run's own URL is served.
    const live = await fetch(h.url, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }),
      headers,
    });
    expect(live.status).toBe(200);
  });

  test("coordinator requests carry the shared Authorization: Bearer token", async () => {
    let asked = 0;
    const tokens: TokenSource = {
      authorization: async () => {
        asked += 1;
        return "Bearer test-token-xyz";
      },
      invalidate: () => {},
    };
    const h = await startHarness({ auth: tokens, headers: { "X-Agent-Session-Id": "ses_parent" } });
    h.coordinator
      .on("GET", /^\/agents$/, () => json([]))
      .on("GET", /^\/sessions$/, () => json({ sessions: [] }))
      .on("POST", /^\/runs$/, () => json({ run_id: "run_1", session_id: "ses_1", status: "pending" }))
      .on("GET", /^\/runs\/run_1$/, () => json({ run_id: "run_1", status: "completed" }))
      .on("GET", /^\/sessions\/ses_1\/result$/, () => json({ result: "ok" }));

    await h.ok("list_agent_blueprints");
    await h.ok("list_agent_sessions");
    await h.ok("start_agent_session", { agent_name: "coder", prompt: "hi" });

    const seen = h.coordinator.requests.map((r) => `${r.method} ${r.path}`);
    expect(seen).toEqual([
      "GET /agents",
      "GET /sessions",
      "POST /runs",
      "GET /runs/run_1",
      "GET /sessions/ses_1/result",
    ]);
    for (const request of h.coordinator.requests)
      expect(request.headers.get("authorization")).toBe("Bearer test-token-xyz");
    expect(asked).toBe(h.coordinator.requests.length);
  });

  test("without a token source, coordinator requests carry no Authorization header", async () => {
    const h = await startHarness();
    h.coordinator.on("GET", /^\/sessions$/, () => json({ sessions: [] }));
    await h.ok("list_agent_sessions");
    expect(h.coordinator.find("GET", "/sessions")[0]!.headers.get("authorization")).toBeNull();
  });

  test("stop() ends a sync wait in progress and closes the port", async () => {
    const h = await startHarness();
    h.coordinator
      .on("POST", /^\/runs$/, () => json({ run_id: "run_1", session_id: "ses_1", status: "pending" }))
      .on("GET", /^\/runs\/run_1$/, () => json({ run_id: "run_1", status: "running" }));
    const pending = h.call("start_agent_session", { agent_name: "coder", prompt: "hi" }).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    await h.coordinator.waitForRequest("GET", "/runs/run_1");
    await h.mcp.stop();
    const outcome = await pending;
    // The call must not come back as a success: either the connection dropped or the wait was cut off.
    if ("result" in outcome) expect(outcome.result.isError).toBe(true);
    else expect(outcome.error).toBeInstanceOf(Error);
    expect(
      await fetch(h.url, { method: "POST" }).then(
        () => "answered",
        () => "refused",
      ),
    ).toBe("refused");
    await h.mcp.stop(); // a second stop is harmless
  });

  test("stop() also cancels the coordinator request a sync wait has in flight", async () => {
    const { coordinator, mcp, call } = await startSyncWait();
    await coordinator.pollArrived;
    await mcp.stop();
    await coordinator.pollAbandoned;
    await call;
  }, 5_000);

  test("a client that hangs up mid-wait ends the wait and its coordinator request", async () => {
    const { coordinator, url, client, call } = await startSyncWait();
    await coordinator.pollArrived;
    await client.close();
    await coordinator.pollAbandoned;
    await call;
    // the server itself is still up for other clients
    const other = await connectClient(url);
    expect((await other.listTools()).tools).toHaveLength(7);
  }, 5_000);

  test("200 concurrent tool calls, 100 of them sync waits, are all answered", async () => {
    const h = await startHarness({ pollIntervalMs: 20 });
    const status = new Map<string, string>();
    h.coordinator
      .on("POST", /^\/runs$/, () => {
        const runId = `run_${status.size + 1}`;
        status.set(runId, "running");
        setTimeout(() => status.set(runId, "completed"), 200 + Math.random() * 500);
        return json({ run_id: runId, session_id: `ses_${runId}`, status: "pending" });
      })
      .on("GET", /^\/runs\/run_\d+$/, (r) => json({ run_id: r.path.slice(6), status: status.get(r.path.slice(6)) }))
      .on("GET", /^\/sessions\/ses_run_\d+\/result$/, (r) => json({ result: r.path.split("/")[2] }))
      .on("GET", /^\/agents$/, () => json([{ name: "coder", description: "codes", tags: [] }]));
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        i % 2 === 0
          ? h.ok("start_agent_session", { agent_name: "coder", prompt: `p${i}` })
          : h.ok("list_agent_blueprints"),
      ),
    );
    const results = answers.filter((_, i) => i % 2 === 0).map((answer) => answer.result);
    expect(new Set(results).size).toBe(100);
    expect(answers[1]).toEqual([{ name: "coder", description: "codes", tags: [] }]);
  });
});

describe("fake coordinator unreachable", () => {
  test("a tool says the coordinator could not be reached", async () => {
    const gone = startFakeCoordinator();
    const url = gone.url;
    await gone.stop();
    const h = await startHarness({ coordinatorUrl: url });
    const error = await h.fails("list_agent_sessions");
    expect(error).toContain("Could not list sessions");
    expect(error).toContain(`coordinator at ${url} could not be reached`);
  });
});

/** A coordinator that creates run_1 and holds every GET /runs/run_1 open until the caller gives up on it. */
function startHoldingCoordinator() {
  let arrived!: () => void;
  let abandoned!: () => void;
  const pollArrived = new Promise<void>((resolve) => (arrived = resolve));
  const pollAbandoned = new Promise<void>((resolve) => (abandoned = resolve));
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0, // only the caller giving up may end a held poll
    fetch(request) {
      if (new URL(request.url).pathname === "/runs")
        return json({ run_id: "run_1", session_id: "ses_1", status: "pending" });
      arrived();
      return new Promise<Response>((resolve) =>
        request.signal.addEventListener("abort", () => {
          abandoned();
          resolve(json({}));
        }),
      );
    },
  });
  onTeardown(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}`, pollArrived, pollAbandoned };
}

/** The MCP server against a holding coordinator, and a client's sync start_agent_session call waiting on it. */
async function startSyncWait() {
  const coordinator = startHoldingCoordinator();
  const tokens = new RunTokens();
  const mcp = await startMcpServer({ coordinator: new CoordinatorHttp(coordinator.url), tokens });
  onTeardown(() => mcp.stop());
  const url = urlWithToken(mcp.url, tokens.issue("ses_caller"));
  const client = await connectClient(url);
  const call = client
    .callTool({ name: "start_agent_session", arguments: { agent_name: "coder", prompt: "hi" } })
    .catch(() => undefined);
  return { coordinator, mcp, url, client, call };
}
