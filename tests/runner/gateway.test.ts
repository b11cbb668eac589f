import { describe, expect, test } from "bun:test";
import type { TokenSource } from "../../src/coordinator/auth.ts";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { RunTokens, urlWithToken } from "../../src/protocol/run-tokens.ts";
import { type Gateway, startGateway } from "../../src/runner/gateway.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { runProcess } from "../support/processes.ts";
import { onTeardown } from "../support/teardown.ts";

let fake: FakeCoordinator;
let gateway: Gateway;
let tokens: RunTokens;

const staticToken: TokenSource = { authorization: async () => "Bearer tok-123", invalidate: () => {} };

function start(options: { maxBodyBytes?: number } = {}) {
  fake = startFakeCoordinator();
  tokens = new RunTokens();
  gateway = startGateway({
    http: new CoordinatorHttp(fake.url, staticToken),
    hostname: "box-1",
    executorProfile: "coding",
    tokens,
    ...options,
  });
  onTeardown(() => gateway.stop());
}

/** The URL an executor of `sessionId` is given, as the runner gives it. */
const executorUrl = (sessionId: string) => urlWithToken(gateway.url, tokens.issue(sessionId));

const send = (base: string, path: string, body: unknown, method = "POST") =>
  fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

const detailOf = async (response: Response) => ((await response.json()) as { detail: string }).detail;

test("binds on 127.0.0.1 only", () => {
  start();
  expect(gateway.url).toStartWith("http://127.0.0.1:");
});

test("/bind is forwarded with the runner's hostname and profile added", async () => {
  start();
  const response = await send(executorUrl("ses_1"), "/bind", {
    session_id: "ses_1",
    executor_session_id: "exec-9",
    project_dir: "/p",
    hostname: "spoofed",
  });
  expect(response.status).toBe(200);
  const [bind] = fake.find("POST", "/sessions/ses_1/bind");
  expect(bind!.body).toEqual({
    executor_session_id: "exec-9",
    project_dir: "/p",
    hostname: "box-1",
    executor_profile: "coding",
  });
  expect(bind!.headers.get("authorization")).toBe("Bearer tok-123");
});

test("the coordinator's own bind route (POST /sessions/{id}/bind, as other runners' executors call it) is the same bind, for the token's session only", async () => {
  start();
  const url = executorUrl("ses_1");
  const response = await send(url, "/sessions/ses_1/bind", { executor_session_id: "echo-ses_1" });
  expect(response.status).toBe(200);
  const [bind] = fake.find("POST", "/sessions/ses_1/bind");
  expect(bind!.body).toEqual({ executor_session_id: "echo-ses_1", hostname: "box-1", executor_profile: "coding" });
  const other = await send(url, "/sessions/ses_2/bind", { executor_session_id: "x" });
  expect(other.status).toBe(403);
  expect(fake.find("POST", "/sessions/ses_2/bind")).toHaveLength(0);
});

test("a sandboxed run's binds carry the directory the runner gave it, whatever the executor says", async () => {
  start();
  const url = urlWithToken(gateway.url, tokens.issue("ses_box", { projectDir: "/work/project" }));
  expect(
    (await send(url, "/bind", { session_id: "ses_box", executor_session_id: "e", project_dir: "/etc" })).status,
  ).toBe(200);
  expect((await send(url, "/sessions/ses_box/bind", { executor_session_id: "e" })).status).toBe(200);
  const binds = fake.find("POST", "/sessions/ses_box/bind").map((r) => r.body.project_dir);
  expect(binds).toEqual(["/work/project", "/work/project"]);
});

test("/events and /metadata go to the session's routes", async () => {
  start();
  const url = executorUrl("ses_2");
  const event = {
    session_id: "ses_2",
    event_type: "message",
    role: "assistant",
    content: [{ type: "text", text: "hi" }],
  };
  expect((await send(url, "/events", event)).status).toBe(200);
  expect(fake.find("POST", "/sessions/ses_2/events")[0]!.body).toEqual(event);
  expect(
    (await send(url, "/metadata", { session_id: "ses_2", last_resumed_at: "2026-01-01T00:00:00Z" }, "PATCH")).status,
  ).toBe(200);
  expect(fake.find("PATCH", "/sessions/ses_2/metadata")[0]!.body).toEqual({ last_resumed_at: "2026-01-01T00:00:00Z" });
});

test("the session reads and orchestration routes pass through with method, query, body, status and auth", async () => {
  start();
  fake.on("GET", /^\/sessions\/ses_3$/, (r) =>
    Response.json({ session: { session_id: "ses_3", q: r.query.get("x") } }),
  );
  fake.on("POST", /^\/runs$/, (r) =>
    Response.json({ run_id: "run_9", session_id: "ses_new", echo: r.body }, { status: 201 }),
  );
  const url = executorUrl("ses_3");
  const response = await fetch(`${url}/sessions/ses_3?x=1`);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ session: { session_id: "ses_3", q: "1" } });
  const created = await send(url, "/runs", { type: "start_session", agent_name: "coder", prompt: "p" });
  expect(created.status).toBe(201);
  expect(((await created.json()) as { echo: unknown }).echo).toEqual({
    type: "start_session",
    agent_name: "coder",
    prompt: "p",
  });
  for (const [method, path] of [
    ["GET", "/sessions/other/status"],
    ["GET", "/sessions/other/result"],
    ["GET", "/sessions"],
    ["GET", "/agents?tags=a"],
    ["GET", "/agents/coder"],
    ["GET", "/runs/run_9"],
    ["DELETE", "/sessions/other"],
  ] as const) {
    const reply = await fetch(`${url}${path}`, { method });
    expect(reply.status === 404 ? await detailOf(reply) : "", `${method} ${path}`).not.toContain("not served");
    const recorded = fake.find(method, path.split("?")[0]!);
    expect(recorded, `${method} ${path} forwarded`).toHaveLength(1);
    expect(recorded[0]!.headers.get("authorization")).toBe("Bearer tok-123");
  }
  expect(fake.find("GET", "/agents")[0]!.query.get("tags")).toBe("a");
});

test("requests without a session_id, or not JSON, are refused with a reason", async () => {
  start();
  const url = executorUrl("ses_x");
  const noSession = await send(url, "/events", { event_type: "message" });
  expect(noSession.status).toBe(400);
  expect(await detailOf(noSession)).toContain("session_id");
  const notJson = await fetch(`${url}/bind`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{nope",
  });
  expect(notJson.status).toBe(400);
  expect((await send(url, "/bind", [1, 2])).status).toBe(400);
  expect(fake.find("POST", /^\/sessions\//)).toHaveLength(0);
});

test("the coordinator being down gives a 502 with a JSON detail", async () => {
  start();
  const url = executorUrl("ses_4");
  await fake.down();
  const response = await send(url, "/events", { session_id: "ses_4", event_type: "message" });
  expect(response.status).toBe(502);
  expect(await detailOf(response)).toContain("Coordinator unreachable");
});

test("bodies over the limit are refused", async () => {
  start({ maxBodyBytes: 1024 });
  const response = await send(executorUrl("ses_5"), "/events", {
    session_id: "ses_5",
    event_type: "message",
    blob: "x".repeat(5000),
  });
  expect(response.status).toBe(413);
  expect(fake.find("POST", /^\/sessions\//)).toHaveLength(0);
});

describe("the gateway lends the runner's credentials to its own executors only", () => {
  test("a request without a live run token is refused (401, JSON detail) and not forwarded", async () => {
    start();
    const event = { session_id: "ses_a", event_type: "message" };
    const bare = await send(gateway.url, "/events", event);
    expect(bare.status).toBe(401);
    expect(await detailOf(bare)).toContain("use the URL the runner gave");
    const guessed = await send(urlWithToken(gateway.url, `agrun_${"A".repeat(43)}`), "/events", event);
    expect(guessed.status).toBe(401);
    const deregister = await fetch(`${gateway.url}/runners/lnch_test`, { method: "DELETE" });
    expect(deregister.status).toBe(401);
    const revoked = tokens.issue("ses_a");
    tokens.revoke(revoked);
    expect((await send(urlWithToken(gateway.url, revoked), "/events", event)).status).toBe(401);
    expect(fake.requests).toHaveLength(0);
  });

  test("another process (curl) is refused without the token and served with it", async () => {
    start();
    const body = JSON.stringify({ session_id: "ses_c", event_type: "message" });
    const curl = (url: string) =>
      runProcess([
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        body,
        `${url}/events`,
      ]);
    expect((await curl(gateway.url)).stdout).toBe("401");
    expect(fake.requests).toHaveLength(0);
    expect((await curl(executorUrl("ses_c"))).stdout).toBe("200");
    expect(fake.find("POST", "/sessions/ses_c/events")).toHaveLength(1);
  });

  test("a Host that does not name the gateway is refused (DNS rebinding)", async () => {
    start();
    const url = executorUrl("ses_h");
    const event = { session_id: "ses_h", event_type: "message" };
    const rebound = await fetch(`${url}/events`, {
      method: "POST",
      headers: { host: `attacker.example:${gateway.port}`, "content-type": "application/json" },
      body: JSON.stringify(event),
    });
    expect(rebound.status).toBe(403);
    expect(await detailOf(rebound)).toContain("Host");
    expect(fake.requests).toHaveLength(0);
    // Connected to 127.0.0.1 but named localhost (localhost may resolve to ::1 first, where nothing listens).
    const viaLocalhost = await fetch(`${url}/events`, {
      method: "POST",
      headers: { host: `localhost:${gateway.port}`, "content-type": "application/json" },
      body: JSON.stringify(event),
    });
    expect(viaLocalhost.status).toBe(200);
  });

  test("a body not declared as JSON is refused (415): a web page's text/plain simple POST", async () => {
    start();
    const url = executorUrl("ses_t");
    const body = JSON.stringify({ session_id: "ses_t", event_type: "message" });
    const plain = await fetch(`${url}/events`, { method: "POST", headers: { "content-type": "text/plain" }, body });
    expect(plain.status).toBe(415);
    expect(await detailOf(plain)).toContain("application/json");
    const untyped = await fetch(`${url}/runs`, { method: "POST", body: new Blob([body]) });
    expect(untyped.status).toBe(415);
    expect(fake.requests).toHaveLength(0);
  });

  test("routes executors do not need are 404 with a JSON detail, never forwarded", async () => {
    start();
    const url = executorUrl("ses_r");
    for (const [method, path] of [
      ["DELETE", "/runners/lnch_test"],
      ["POST", "/runner/register"],
      ["GET", "/runner/poll"],
      ["POST", "/runner/runs/run_1/completed"],
      ["POST", "/agents"],
      ["PUT", "/agents/coder"],
      ["GET", "/"],
    ] as const) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { "content-type": "application/json" },
        body: method === "GET" || method === "DELETE" ? undefined : "{}",
      });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(await detailOf(response)).toContain(`${method} ${path}`);
    }
    expect(fake.requests).toHaveLength(0);
  });

  test("one executor cannot write another session's bind, events or metadata (403)", async () => {
    start();
    const a = executorUrl("ses_A");
    executorUrl("ses_B");
    const forged = [
      ["POST", "/bind", { session_id: "ses_B", executor_session_id: "x" }],
      ["POST", "/events", { session_id: "ses_B", event_type: "message", role: "assistant", content: "forged" }],
      ["PATCH", "/metadata", { session_id: "ses_B", last_resumed_at: "now" }],
    ] as const;
    for (const [method, path, body] of forged) {
      const response = await send(a, path, body, method);
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(await detailOf(response)).toContain("ses_A");
    }
    expect(fake.requests).toHaveLength(0);
    expect((await send(a, "/events", { session_id: "ses_A", event_type: "message" })).status).toBe(200);
  });
});
