import { afterEach, expect, test } from "bun:test";
import type { TokenSource } from "../../src/coordinator/auth.ts";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { type Gateway, startGateway } from "../../src/runner/gateway.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";

let fake: FakeCoordinator;
let gateway: Gateway;

const staticToken: TokenSource = { authorization: async () => "Bearer tok-123", invalidate: () => {} };

function start(options: { maxBodyBytes?: number } = {}) {
  fake = startFakeCoordinator();
  gateway = startGateway({
    http: new CoordinatorHttp(fake.url, staticToken),
    hostname: "box-1",
    executorProfile: "coding",
    ...options,
  });
}

afterEach(async () => {
  await gateway?.stop();
  await fake?.stop();
});

const post = (path: string, body: unknown, method = "POST") =>
  fetch(`${gateway.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("binds on 127.0.0.1 only", () => {
  start();
  expect(gateway.url).toStartWith("http://127.0.0.1:");
});

test("/bind is forwarded with the runner's hostname and profile added", async () => {
  start();
  const response = await post("/bind", {
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

test("/events and /metadata go to the session's routes", async () => {
  start();
  const event = {
    session_id: "ses_2",
    event_type: "message",
    role: "assistant",
    content: [{ type: "text", text: "hi" }],
  };
  expect((await post("/events", event)).status).toBe(200);
  expect(fake.find("POST", "/sessions/ses_2/events")[0]!.body).toEqual(event);
  expect(
    (await post("/metadata", { session_id: "ses_2", last_resumed_at: "2026-01-01T00:00:00Z" }, "PATCH")).status,
  ).toBe(200);
  expect(fake.find("PATCH", "/sessions/ses_2/metadata")[0]!.body).toEqual({ last_resumed_at: "2026-01-01T00:00:00Z" });
});

test("anything else passes through with method, query, body, status and auth", async () => {
  start();
  fake.on("GET", /^\/sessions\/ses_3$/, (r) =>
    Response.json({ session: { session_id: "ses_3", q: r.query.get("x") } }),
  );
  const response = await fetch(`${gateway.url}/sessions/ses_3?x=1`);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ session: { session_id: "ses_3", q: "1" } });
  expect(fake.find("GET", "/sessions/ses_3")[0]!.headers.get("authorization")).toBe("Bearer tok-123");
  const missing = await fetch(`${gateway.url}/nowhere`, { method: "DELETE" });
  expect(missing.status).toBe(404);
});

test("requests without a session_id, or not JSON, are refused with a reason", async () => {
  start();
  const noSession = await post("/events", { event_type: "message" });
  expect(noSession.status).toBe(400);
  expect(((await noSession.json()) as { detail: string }).detail).toContain("session_id");
  const notJson = await fetch(`${gateway.url}/bind`, { method: "POST", body: "{nope" });
  expect(notJson.status).toBe(400);
  expect((await post("/bind", [1, 2])).status).toBe(400);
  expect(fake.find("POST", /^\/sessions\//)).toHaveLength(0);
});

test("the coordinator being down gives a 502 with a JSON detail", async () => {
  start();
  await fake.down();
  const response = await post("/events", { session_id: "ses_4", event_type: "message" });
  expect(response.status).toBe(502);
  expect(((await response.json()) as { detail: string }).detail).toContain("Coordinator unreachable");
});

test("bodies over the limit are refused", async () => {
  start({ maxBodyBytes: 1024 });
  const response = await post("/events", { session_id: "ses_5", event_type: "message", blob: "x".repeat(5000) });
  expect(response.status).toBe(413);
  expect(fake.find("POST", /^\/sessions\//)).toHaveLength(0);
});
