/**
 * Bad input the runner must answer with a clear error and then keep working: for coordinator
 * replies, the next good run still completes. Kinds already tested elsewhere are not repeated:
 *   profiles (unknown name, path names, invalid JSON, wrong/missing fields, unknown field, not an
 *     object, command missing / not executable / a directory) ........ tests/profiles.test.ts
 *   flags (removed, unknown, stray argument, missing value) ........... tests/cli/flags.test.ts,
 *     tests/cli/runner-command.test.ts
 *   settings (bad URL, POLL_TIMEOUT, HEARTBEAT_INTERVAL, --mcp-port, --stop-grace-seconds,
 *     missing project/profiles dir, half-set AUTH0_*, --require-matching-tags without tags) .. tests/config.test.ts
 *   poll replies: HTML, stop_runs not a list, a JSON array, HTTP 500; unknown run type, run
 *     without prompt, run without id, reply with no known key; missing executor; unknown agent;
 *     duplicate runner (409); refused credentials (401/403) ............. tests/runner.test.ts,
 *     tests/cli/runner-process.test.ts
 *   gateway: no session_id on /events, non-JSON /bind, array body, body over the limit .... tests/gateway.test.ts
 *   invocation 2.0, bad mode, start without project_dir (executor side) .... tests/invocation.test.ts
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RecordedRequest } from "../support/fake-coordinator.ts";
import { captureLog, faultProfile, startCli } from "../support/fault-tools.ts";
import { GENERATIONS, stopRun } from "../support/generations.ts";
import { tempDir } from "../support/processes.ts";
import { type RunnerHarness, startRunnerHarness } from "../support/runner-harness.ts";
import { onTeardown } from "../support/teardown.ts";

const outcome = (h: RunnerHarness, runId: string) =>
  h.fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"));

/** Answers the first `times` matching requests with `reply`, then lets the fake's default answer. */
function once(reply: (request: RecordedRequest) => Response, times = 1) {
  let left = times;
  return (request: RecordedRequest) => (left-- > 0 ? reply(request) : undefined);
}

interface CoordinatorCase {
  /** Routes to override before the runner registers (made anew for each test: `once` counts). */
  routes?: () => Array<[method: string, path: RegExp, handler: (request: RecordedRequest) => Response | undefined]>;
  /** Run fields to hand out as the bad input (when the bad input is a run). */
  run?: Record<string, unknown>;
  /** Raw poll item to hand out. */
  item?: Record<string, unknown>;
  /** The failed report's error must contain this (for bad runs with an id). */
  failedWith?: string;
  /** A log line must match this. */
  logged?: RegExp;
}

const run = (fields: Record<string, unknown>) => ({
  run_id: "run_bad",
  type: "start_session",
  session_id: "ses_bad",
  prompt: "p",
  ...fields,
});
const poll = /^\/runner\/runs$/;

const coordinatorCases: Array<[string, CoordinatorCase]> = [
  [
    "poll reply is JSON null",
    {
      routes: () => [["GET", poll, once(() => new Response("null"))]],
      logged: /Coordinator reply to poll: must be an object \(was null\)/,
    },
  ],
  [
    "poll reply is a JSON string",
    {
      routes: () => [["GET", poll, once(() => Response.json("run"))]],
      logged: /Coordinator reply to poll: must be an object \(was (a )?string\)/,
    },
  ],
  ["poll reply {run: null}", { item: { run: null }, logged: /Malformed run payload/ }],
  [
    "run with session_id a number",
    { run: run({ session_id: 42 }), failedWith: "session_id must be a string (was a number)" },
  ],
  [
    "run with prompt an object",
    { run: run({ prompt: { text: "p" } }), failedWith: "prompt must be a string (was an object)" },
  ],
  ["run with demands a string", { run: run({ demands: "gpu" }), failedWith: "demands must be" }],
  ["run with metadata an array", { run: run({ metadata: [1] }), failedWith: "metadata must be" }],
  ["run with an empty run_id", { run: run({ run_id: "" }), logged: /Malformed run payload: run_id must be non-empty/ }],
  [
    'poll reply {deregistered: "yes"} (not true: no shutdown)',
    { item: { deregistered: "yes" }, logged: /Coordinator reply to poll: deregistered must be boolean \(was "yes"\)/ },
  ],
  [
    "stop_runs with numbers",
    {
      item: { stop_runs: [1, 2] },
      logged: /Coordinator reply to poll: stop_runs\[0\] must be a string \(was (a )?number\)/,
    },
  ],
  [
    "poll reply of 5 MB that is not JSON",
    {
      routes: () => [["GET", poll, once(() => new Response("x".repeat(5_000_000)))]],
      logged: /Coordinator reply to poll is not valid JSON \(.*\): "x{200}…"; retrying/,
    },
  ],
  [
    "poll answered 404 with an HTML page (wrong URL behind a proxy)",
    {
      routes: () => [["GET", poll, once(() => new Response("<html>Not Found</html>", { status: 404 }))]],
      logged: /Coordinator answered HTTP 404 to \/runner\/runs/,
    },
  ],
  [
    "register reply not JSON, then good",
    {
      routes: () => [["POST", /^\/runner\/register$/, once(() => new Response("<html>starting up</html>"))]],
      logged: /Coordinator reply to register is not valid JSON/,
    },
  ],
  [
    "register reply without runner_id, then good",
    {
      routes: () => [["POST", /^\/runner\/register$/, once(() => Response.json({ poll_endpoint: "/runner/runs" }))]],
      logged: /register: runner_id must be a string \(was missing\)/,
    },
  ],
  [
    "report answered 503, then accepted",
    {
      routes: () => [["POST", /\/started$/, once(() => new Response("overloaded", { status: 503 }))]],
      run: run({}),
      logged: /run run_bad started not delivered \(Coordinator answered HTTP 503/,
    },
  ],
  [
    "report refused with 422",
    {
      routes: () => [["POST", /\/started$/, once(() => Response.json({ detail: "bad runner_id" }, { status: 422 }))]],
      run: run({}),
      logged: /rejected report run run_bad started \(HTTP 422: bad runner_id\); dropped/,
    },
  ],
  [
    "agent blueprint reply not JSON",
    {
      routes: () => [["GET", /^\/agents\/weird$/, () => new Response("<b>agent</b>")]],
      run: run({ agent_name: "weird" }),
      failedWith: "Could not fetch agent blueprint 'weird': Coordinator reply to GET /agents/weird is not valid JSON",
    },
  ],
  [
    "agent blueprint a JSON array",
    {
      routes: () => [["GET", /^\/agents\/list$/, () => Response.json([1])]],
      run: run({ agent_name: "list" }),
      failedWith: "Could not fetch agent blueprint 'list'",
    },
  ],
  [
    "agent endpoint answers 500",
    {
      routes: () => [["GET", /^\/agents\/down$/, () => new Response("db down", { status: 500 })]],
      run: run({ agent_name: "down" }),
      failedWith: "Could not fetch agent blueprint 'down': Coordinator answered HTTP 500",
    },
  ],
];

/** A run as a 2.2 coordinator hands it out (parameters instead of a prompt), with `fields` over it. */
const run22 = (fields: Record<string, unknown>) => ({
  run_id: "run_bad",
  type: "start_session",
  session_id: "ses_bad",
  parameters: { prompt: "p" },
  ...fields,
});

/** The cases that read the same in both generations, and 2.2's own: its runs' fields, its stop command. */
const sameIn22 = new Set([
  "poll reply is JSON null",
  "poll reply is a JSON string",
  "poll reply {run: null}",
  'poll reply {deregistered: "yes"} (not true: no shutdown)',
  "poll reply of 5 MB that is not JSON",
  "poll answered 404 with an HTML page (wrong URL behind a proxy)",
  "register reply not JSON, then good",
  "register reply without runner_id, then good",
]);
const coordinatorCases22: Array<[string, CoordinatorCase]> = [
  ...coordinatorCases.filter(([name]) => sameIn22.has(name)),
  [
    "run with session_id a number",
    { run: run22({ session_id: 42 }), failedWith: "session_id must be a string (was a number)" },
  ],
  ["run with parameters a string", { run: run22({ parameters: "p" }), failedWith: "parameters must be an object" }],
  ["run with parameters an array", { run: run22({ parameters: ["p"] }), failedWith: "parameters must be an object" }],
  [
    "run with resolved_agent_blueprint an array",
    { run: run22({ resolved_agent_blueprint: [1] }), failedWith: "resolved_agent_blueprint must be" },
  ],
  ["run with demands a string", { run: run22({ demands: "gpu" }), failedWith: "demands must be" }],
  ["run with metadata an array", { run: run22({ metadata: [1] }), failedWith: "metadata must be" }],
  [
    "run with an empty run_id",
    { run: run22({ run_id: "" }), logged: /Malformed run payload: run_id must be non-empty/ },
  ],
  [
    "stop_sessions with numbers",
    {
      item: { stop_sessions: [1, 2] },
      logged: /Coordinator reply to poll: stop_sessions\[0\] must be a string \(was (a )?number\)/,
    },
  ],
  [
    "report answered 503, then accepted",
    {
      routes: () => [["POST", /\/started$/, once(() => new Response("overloaded", { status: 503 }))]],
      run: run22({}),
      logged: /run run_bad started not delivered \(Coordinator answered HTTP 503/,
    },
  ],
  [
    "report refused with 422",
    {
      routes: () => [["POST", /\/started$/, once(() => Response.json({ detail: "bad runner_id" }, { status: 422 }))]],
      run: run22({}),
      logged: /rejected report run run_bad started \(HTTP 422: bad runner_id\); dropped/,
    },
  ],
];

describe.each(GENERATIONS)(
  "coordinator replies (protocol %s): a clear error, then the next good run completes",
  (protocol) => {
    test.each(protocol === "2.1" ? coordinatorCases : coordinatorCases22)("%s", async (_, spec) => {
      const logs = captureLog();
      const h = await startRunnerHarness({
        profile: faultProfile("outcome"),
        manual: true,
        fake: { protocol, heartbeatIntervalSeconds: 60 },
      });
      for (const [method, path, handler] of spec.routes?.() ?? []) h.fake.on(method, path, handler);
      expect(await h.worker.register()).toBe(true);
      void h.run();
      // Queued as given, as a coordinator of the generation would hand it out.
      if (spec.run) h.fake.hand({ run: spec.run });
      if (spec.item) h.fake.hand(spec.item);
      if (spec.failedWith) {
        const report = await outcome(h, spec.run!.run_id as string);
        expect(report.path).toEndWith("/failed");
        expect(report.body.error).toContain(spec.failedWith);
      }
      if (spec.logged) {
        const line = await logs.waitFor(spec.logged);
        // Bounded, even when the reply was megabytes.
        expect(line.length).toBeLessThan(2000);
      }
      const good = h.handRun();
      expect((await outcome(h, good)).path).toEndWith("/completed");
    });
  },
);

describe("coordinator replies", () => {
  test.each(GENERATIONS)(
    "the same run handed out twice while it runs: ignored, one outcome (protocol %s)",
    async (protocol) => {
      const logs = captureLog();
      const h = await startRunnerHarness({ fake: { protocol }, profile: faultProfile("ignore-term") });
      h.fake.handRun(run({ run_id: "run_twice", session_id: "ses_twice" }));
      await h.fake.waitFor((r) => r.path === "/sessions/ses_twice/events");
      h.fake.handRun(run({ run_id: "run_twice", session_id: "ses_twice" }));
      await logs.waitFor(/Run run_twice handed out again while it is running; ignored/);
      stopRun(h.fake, "run_twice");
      await outcome(h, "run_twice");
      expect(h.fake.reportsFor("run_twice").map((r) => r.kind)).toEqual(["started", "stopped"]);
    },
  );

  test("heartbeat answered 500: logged, polling and runs go on", async () => {
    const logs = captureLog();
    const h = await startRunnerHarness({
      profile: faultProfile("outcome"),
      manual: true,
      fake: { heartbeatIntervalSeconds: 0.05 },
    });
    h.fake.on(
      "POST",
      /^\/runner\/heartbeat$/,
      once(() => new Response("boom", { status: 500 })),
    );
    await h.worker.register();
    void h.run();
    await logs.waitFor(/Heartbeat failed: Coordinator answered HTTP 500 to \/runner\/heartbeat: boom/);
    expect((await outcome(h, h.handRun())).path).toEndWith("/completed");
  });

  test.each(GENERATIONS)(
    "a run with an 8 MB prompt is handed to the executor whole and completes (protocol %s)",
    async (protocol) => {
      const harness = await startRunnerHarness({ fake: { protocol }, fixture: "capture" });
      const prompt = "p".repeat(8_000_000);
      const runId = harness.handRun({ session_id: "ses_big", prompt });
      const event = await harness.fake.waitFor((r) => r.path === "/sessions/ses_big/events");
      const { invocation } = event.body;
      expect((protocol === "2.1" ? invocation.prompt : invocation.parameters.prompt).length).toBe(prompt.length);
      expect((await outcome(harness, runId)).path).toEndWith("/completed");
    },
  );
});

describe("gateway requests: refused with a reason, the gateway keeps serving", () => {
  const cases: Array<[string, string, string, unknown, number, string]> = [
    ["PATCH /metadata without session_id", "PATCH", "/metadata", { last_resumed_at: "now" }, 400, "session_id"],
    [
      "/events with session_id a number",
      "POST",
      "/events",
      { session_id: 7, event_type: "message" },
      400,
      "session_id",
    ],
    [
      "/bind with an empty session_id",
      "POST",
      "/bind",
      { session_id: "", executor_session_id: "x" },
      400,
      "session_id",
    ],
    ["/bind with an empty body", "POST", "/bind", undefined, 400, "JSON object body"],
    ["/events with JSON null", "POST", "/events", null, 400, "JSON object body"],
  ];
  test.each(cases)("%s", async (_, method, path, body, status, detail) => {
    const harness = await startRunnerHarness();
    const response = await fetch(`${harness.executorUrl("ses_ok")}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    expect(response.status).toBe(status);
    expect(((await response.json()) as { detail: string }).detail).toContain(detail);
    const ok = await fetch(`${harness.executorUrl("ses_ok")}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ session_id: "ses_ok", event_type: "message" }),
    });
    expect(ok.status).toBe(200);
    expect(harness.fake.find("POST", /^\/sessions\//)).toHaveLength(1);
  });
});

describe("operator input to the real CLI: a clear message, exit 1 (or retrying, for what may recover)", () => {
  function tokenServer(reply: () => Response) {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: reply });
    onTeardown(() => server.stop(true));
    return `http://127.0.0.1:${server.port}`;
  }
  const auth = (domain: string) => ({
    AUTH0_DOMAIN: domain,
    AUTH0_RUNNER_CLIENT_ID: "client",
    AUTH0_RUNNER_CLIENT_SECRET: "secret-value-77aa",
    AUTH0_AUDIENCE: "aud",
  });
  const test_profile = ["--profile", "test", "-c", "http://127.0.0.1:9"];

  test("token endpoint refuses the client (401): exit 1 naming the refusal", async () => {
    const cli = startCli(
      test_profile,
      auth(tokenServer(() => Response.json({ error: "access_denied" }, { status: 401 }))),
    );
    expect(await cli.process.exited).toBe(1);
    await cli.closed;
    expect(cli.output()).toContain("was refused (HTTP 401)");
    expect(cli.output()).not.toContain("secret-value-77aa");
  });

  test.each([
    ["token endpoint answers non-JSON", () => new Response("<html>login</html>"), "is not valid JSON"],
    [
      "token reply without access_token",
      () => Response.json({ token_type: "Bearer" }),
      "access_token must be a string (was missing)",
    ],
    ["token endpoint overloaded (429)", () => new Response("slow down", { status: 429 }), "answered HTTP 429"],
  ] as Array<[string, () => Response, string]>)(
    "%s: retried with a warning naming the problem, not fatal",
    async (_, reply, message) => {
      const cli = startCli(test_profile, auth(tokenServer(reply)));
      await cli.waitFor(new RegExp(`Cannot register with .*${message.replace(/[()]/g, "\\$&")}`));
      cli.process.kill("SIGTERM");
      expect(await cli.process.exited).toBe(0);
      expect(cli.output()).not.toContain("secret-value-77aa");
    },
  );

  test("token endpoint unreachable: retried with a warning, not fatal", async () => {
    // Port 9 (discard) on 127.0.0.1: nothing listens; the runner must keep trying, not exit.
    const cli = startCli(test_profile, auth("http://127.0.0.1:9"));
    await cli.waitFor(/Cannot register with .* Token request to http:\/\/127\.0\.0\.1:9\/oauth\/token failed/);
    cli.process.kill("SIGTERM");
    expect(await cli.process.exited).toBe(0);
  });

  test.each([
    ["an empty profile file", "", "not valid JSON"],
    ["a profile file holding a JSON string", '"coding"', "Invalid profile file"],
  ])("%s", async (_, content, message) => {
    const dir = tempDir("ar-bad-profile-");
    writeFileSync(join(dir, "bad.json"), content);
    const cli = startCli(["--profile", "bad", "--profiles-dir", dir, "-c", "http://127.0.0.1:9"]);
    expect(await cli.process.exited).toBe(1);
    await cli.closed;
    expect(cli.output()).toContain(message);
    expect(cli.output()).not.toMatch(/^\s+at /m);
  });

  test("--profiles-dir pointing at a file", async () => {
    const dir = tempDir("ar-bad-profile-");
    writeFileSync(join(dir, "file"), "");
    const cli = startCli(["--profile", "test", "--profiles-dir", join(dir, "file")]);
    expect(await cli.process.exited).toBe(1);
    await cli.closed;
    expect(cli.output()).toContain("is not a directory");
  });
});
