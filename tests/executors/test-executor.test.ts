import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { invocationJsonSchema } from "../../src/protocol/invocation.ts";
import { PersistentExecutor } from "../support/persistent-executor.ts";
import { cleanEnv, runProcess, TEST_EXECUTOR, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

let gateway: LocalGateway;
beforeEach(() => {
  gateway = new LocalGateway({ hostname: "test-host", executorProfile: "test" }).start();
});
afterEach(async () => {
  await gateway.stop();
});

function invocation(fields: Record<string, unknown>): string {
  return JSON.stringify({ schema_version: "2.1", session_id: "ses_test1", prompt: "hello there", ...fields });
}

function runTestExecutor(stdin: string | undefined, env: Record<string, string> = {}, args: string[] = []) {
  return runProcess([TEST_EXECUTOR, ...args], {
    stdin,
    env: cleanEnv({ AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_test1"), AGENT_SESSION_ID: "ses_test1", ...env }),
  });
}

/** `kind:event_type/role` of every request, in order. */
function sequence(g: LocalGateway): string[] {
  return g.records.map((r) => {
    if (r.kind === "event")
      return `event:${(r.body as any).event_type}${(r.body as any).role ? `/${(r.body as any).role}` : ""}`;
    if (r.kind === "request") return `${r.method} ${r.path}`;
    return r.kind;
  });
}

describe("test executor: start", () => {
  test("binds, reports user and assistant messages and session_stop, prints the answer", async () => {
    const projectDir = temp.make();
    const outcome = await runTestExecutor(invocation({ mode: "start", project_dir: projectDir }));
    expect(outcome.stderr).toBe("");
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hello there\n");
    expect(sequence(gateway)).toEqual(["bind", "event:message/user", "event:message/assistant", "event:session_stop"]);

    const [bind, user, assistant, stop] = gateway.records.map((r) => r.body as any);
    expect(bind.session_id).toBe("ses_test1");
    expect(bind.executor_session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(bind.project_dir).toBe(projectDir);
    // The executor sends only what it owns; hostname/profile are the gateway's to add.
    expect(Object.keys(bind).sort()).toEqual(["executor_session_id", "project_dir", "session_id"]);
    expect(user.content).toEqual([{ type: "text", text: "hello there" }]);
    expect(assistant.content).toEqual([{ type: "text", text: "[TEST-EXECUTOR] Received: hello there" }]);
    expect(stop).toMatchObject({ session_id: "ses_test1", exit_code: 0, reason: "completed" });
    for (const event of [user, assistant, stop]) expect(new Date(event.timestamp).toISOString()).toBe(event.timestamp);

    expect(gateway.session("ses_test1")).toMatchObject({
      status: "finished",
      hostname: "test-host",
      executor_profile: "test",
      result: "[TEST-EXECUTOR] Received: hello there",
    });
  });

  test("without project_dir: works in its current directory and binds it", async () => {
    const cwd = temp.make();
    const outcome = await runProcess([TEST_EXECUTOR], {
      stdin: invocation({ mode: "start" }),
      cwd,
      env: cleanEnv({ AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_test1"), AGENT_SESSION_ID: "ses_test1" }),
    });
    expect(outcome.stderr).toBe("");
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hello there\n");
    expect((gateway.records[0]!.body as any).project_dir).toBe(realpathSync(cwd));
  });

  test("a gateway that cannot be reached costs warnings, not the run", async () => {
    const closed = new LocalGateway().start();
    const url = closed.url;
    await closed.stop();
    const outcome = await runProcess([TEST_EXECUTOR], {
      stdin: invocation({ mode: "start", project_dir: temp.make() }),
      env: cleanEnv({ AGENT_ORCHESTRATOR_API_URL: url }),
    });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hello there\n");
    expect(outcome.stderr).toContain("ao-test-exec: warning: bind not delivered (continuing)");
    expect(outcome.stderr).toContain("cannot reach the gateway");
  });
});

describe("test executor: resume", () => {
  test("reads the session, binds it again, sends session_start, updates last_resumed_at, answers", async () => {
    const projectDir = temp.make();
    expect((await runTestExecutor(invocation({ mode: "start", project_dir: projectDir }))).exitCode).toBe(0);
    const bound = gateway.session("ses_test1")!.executor_session_id;
    gateway.records.length = 0;

    const outcome = await runTestExecutor(invocation({ mode: "resume", prompt: "again" }));
    expect(outcome.stderr).toBe("");
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: again\n");
    expect(sequence(gateway)).toEqual([
      "GET /sessions/ses_test1",
      "bind",
      "event:session_start",
      "metadata",
      "event:message/user",
      "event:message/assistant",
      "event:session_stop",
    ]);
    // The bind shows the resumed session running, under the executor session its start recorded.
    expect(gateway.records.find((r) => r.kind === "bind")!.body).toEqual({
      session_id: "ses_test1",
      executor_session_id: bound,
      project_dir: projectDir,
    });
    const metadata = gateway.records.find((r) => r.kind === "metadata")!.body as any;
    expect(metadata.session_id).toBe("ses_test1");
    expect(Date.now() - Date.parse(metadata.last_resumed_at)).toBeLessThan(60_000);
    expect(gateway.session("ses_test1")).toMatchObject({
      executor_session_id: bound,
      last_resumed_at: metadata.last_resumed_at,
    });
  });

  test("a session the coordinator does not know fails with exit 1 and says so", async () => {
    const outcome = await runTestExecutor(invocation({ mode: "resume", session_id: "ses_unknown" }));
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toContain(
      "Cannot resume session 'ses_unknown': no such session (GET /sessions/ses_unknown answered 404)",
    );
    expect(gateway.records.map((r) => r.kind)).toEqual(["request"]);
  });
});

describe("test executor: executor_config", () => {
  const config = { model: "opus", permission_mode: "plan", api_token: "tok-very-secret", future_key: { nested: 1 } };

  test("is echoed on stderr at debug level (AGENT_RUNNER_DEBUG=1), secrets hidden, unknown keys ignored", async () => {
    const outcome = await runTestExecutor(
      invocation({ mode: "start", project_dir: temp.make(), executor_config: config }),
      {
        AGENT_RUNNER_DEBUG: "1",
      },
    );
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hello there\n");
    expect(outcome.stderr).toContain(
      'ao-test-exec: debug: executor_config: {"model":"opus","permission_mode":"plan","api_token":"[redacted]","future_key":{"nested":1}}',
    );
    expect(outcome.stderr).not.toContain("tok-very-secret");
  });

  test("is not shown without debug", async () => {
    const outcome = await runTestExecutor(
      invocation({ mode: "start", project_dir: temp.make(), executor_config: config }),
    );
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stderr).toBe("");
  });
});

describe("test executor: command line and invalid input", () => {
  test("--help describes the executor", async () => {
    const outcome = await runTestExecutor(undefined, {}, ["--help"]);
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toContain("ao-test-exec");
    expect(outcome.stdout).toContain("--schema");
    expect(outcome.stdout).toContain("AGENT_RUNNER_DEBUG");
  });

  test("--schema prints the invocation's JSON Schema", async () => {
    const outcome = await runTestExecutor(undefined, {}, ["--schema"]);
    expect(outcome.exitCode).toBe(0);
    expect(JSON.parse(outcome.stdout)).toEqual(invocationJsonSchema());
  });

  test("an unexpected argument is refused", async () => {
    const outcome = await runTestExecutor(undefined, {}, ["--profile"]);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toContain("unexpected argument '--profile'");
  });

  const cases: Array<[string, string, string]> = [
    ["empty input", "", "stdin is empty"],
    ["bad JSON", "{not json", "stdin is not valid JSON"],
    [
      "schema 2.0",
      invocation({ schema_version: "2.0", mode: "start", project_dir: "/tmp" }),
      'schema_version must be "2.1" or "2.2" (was "2.0")',
    ],
    [
      "a missing field",
      JSON.stringify({ schema_version: "2.1", mode: "start", session_id: "s", project_dir: "/tmp" }),
      "prompt must be a string (was missing)",
    ],
    ["an empty project_dir", invocation({ mode: "start", project_dir: "" }), "project_dir must be non-empty"],
  ];
  for (const [name, stdin, message] of cases) {
    test(`${name}: message on stderr, exit 1, nothing sent`, async () => {
      const outcome = await runTestExecutor(stdin);
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toStartWith("ao-test-exec: Invalid invocation");
      expect(outcome.stderr).toContain(message);
      expect(gateway.records).toEqual([]);
    });
  }
});

describe("test executor: invocation 2.2", () => {
  const v22 = (fields: Record<string, unknown>) =>
    JSON.stringify({ schema_version: "2.2", session_id: "ses_test1", mode: "start", ...fields });

  test("the prompt comes from parameters; a result event carries the answer before session_stop", async () => {
    const outcome = await runTestExecutor(v22({ parameters: { prompt: "from parameters" }, project_dir: temp.make() }));
    expect(outcome.stderr).toBe("");
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: from parameters\n");
    expect(sequence(gateway)).toEqual([
      "bind",
      "event:message/user",
      "event:message/assistant",
      "event:result",
      "event:session_stop",
    ]);
    const result = gateway.records[3]!.body as any;
    expect(Object.keys(result).sort()).toEqual(["event_type", "result_data", "result_text", "session_id", "timestamp"]);
    expect(result).toMatchObject({
      session_id: "ses_test1",
      result_text: "[TEST-EXECUTOR] Received: from parameters",
      result_data: null,
    });
  });

  test("an agent with a parameters_schema gets every parameter as an <inputs> block", async () => {
    const outcome = await runTestExecutor(
      v22({
        parameters: { topic: "tides", depth: 2 },
        agent_blueprint: { name: "researcher", parameters_schema: { type: "object" } },
        project_dir: temp.make(),
      }),
    );
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: <inputs>\ntopic: tides\ndepth: 2\n</inputs>\n");
  });

  test("parameters without a prompt (and no parameters_schema): exit 1 saying so, after the bind", async () => {
    const outcome = await runTestExecutor(v22({ parameters: { topic: "tides" }, project_dir: temp.make() }));
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toBe(
      'ao-test-exec: The parameters carry no prompt: parameters.prompt must be a string (was missing; the parameters have topic). An agent takes {"prompt": "…"} unless its blueprint has a parameters_schema\n',
    );
    expect(sequence(gateway)).toEqual(["bind"]);
  });

  test("a 2.1 invocation sends no result event (what it always sent)", async () => {
    const outcome = await runTestExecutor(invocation({ mode: "start", project_dir: temp.make() }));
    expect(outcome.exitCode).toBe(0);
    expect(sequence(gateway)).not.toContain("event:result");
  });
});

describe("test executor: persistent session", () => {
  const env = () =>
    cleanEnv({ AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_test1"), AGENT_SESSION_ID: "ses_test1" });
  const start22 = (prompt: string) => ({
    schema_version: "2.2",
    mode: "start",
    session_id: "ses_test1",
    parameters: { prompt },
    project_dir: temp.make(),
  });

  test("a turn per line, each answered with turn_complete and a result event; shutdown ends it with exit 0", async () => {
    const executor = new PersistentExecutor([TEST_EXECUTOR], start22("one"), { env: env() });
    expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "[TEST-EXECUTOR] Received: one" });
    // The first turn's events are there before its turn_complete.
    expect(sequence(gateway)).toEqual(["bind", "event:message/user", "event:message/assistant", "event:result"]);
    executor.turn({ prompt: "two" });
    expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "[TEST-EXECUTOR] Received: two" });
    executor.turn({ prompt: "three" });
    expect((await executor.turnComplete()).result).toBe("[TEST-EXECUTOR] Received: three");
    executor.shutdown();
    expect(await executor.exited).toBe(0);
    expect(await executor.rest()).toEqual([]);
    expect(executor.stderr).toBe("");
    // One bind for the session, a result per turn, session_stop at its end.
    expect(sequence(gateway)).toEqual([
      "bind",
      ...["one", "two", "three"].flatMap(() => ["event:message/user", "event:message/assistant", "event:result"]),
      "event:session_stop",
    ]);
    const results = gateway.records.filter((r) => (r.body as any).event_type === "result").map((r) => r.body as any);
    expect(results.map((r) => r.result_text)).toEqual(
      ["one", "two", "three"].map((p) => `[TEST-EXECUTOR] Received: ${p}`),
    );
  });

  test("the end of stdin ends the session too, after the turns sent before it (exit 0)", async () => {
    const executor = new PersistentExecutor([TEST_EXECUTOR], start22("one"), { env: env() });
    executor.turn({ prompt: "two" });
    executor.turn({ prompt: "three" });
    executor.endInput();
    expect(await executor.exited).toBe(0);
    const lines = (await executor.rest()).map((line) => JSON.parse(line).result);
    expect(lines).toEqual(["one", "two", "three"].map((p) => `[TEST-EXECUTOR] Received: ${p}`));
    expect(sequence(gateway).at(-1)).toBe("event:session_stop");
  });

  test("lines that are not commands are logged and ignored; interrupt has nothing to cut short", async () => {
    const executor = new PersistentExecutor([TEST_EXECUTOR], start22("one"), { env: env() });
    expect((await executor.turnComplete()).result).toBe("[TEST-EXECUTOR] Received: one");
    executor.write('not json\n{"type":"dance"}\n{"type":"turn"}\n\n[1]\n');
    executor.interrupt();
    executor.turn({ prompt: "two" });
    expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "[TEST-EXECUTOR] Received: two" });
    executor.shutdown();
    expect(await executor.exited).toBe(0);
    expect(executor.stderr).toBe(
      [
        'ao-test-exec: warning: ignored a line on stdin: stdin line is not valid JSON (JSON Parse error: Unexpected identifier "not"): "not json"',
        'ao-test-exec: warning: ignored a line on stdin: stdin line: type must be "interrupt", "shutdown" or "turn" (was "dance")',
        "ao-test-exec: warning: ignored a line on stdin: stdin line: parameters must be an object (was missing)",
        'ao-test-exec: warning: ignored a line on stdin: stdin line: type must be "interrupt", "shutdown" or "turn" (was missing)',
        "",
      ].join("\n"),
    );
  });

  test("a turn that fails ends the session: the error on stderr, exit 1, no turn after it", async () => {
    const executor = new PersistentExecutor([TEST_EXECUTOR], start22("one"), { env: env() });
    expect((await executor.turnComplete()).result).toBe("[TEST-EXECUTOR] Received: one");
    executor.turn({ topic: "no prompt here" });
    executor.turn({ prompt: "never answered" });
    expect(await executor.exited).toBe(1);
    expect(await executor.rest()).toEqual([]);
    expect(executor.stderr).toContain("ao-test-exec: The parameters carry no prompt");
    expect(sequence(gateway)).not.toContain("event:session_stop");
    expect(JSON.stringify(gateway.records)).not.toContain("never answered");
  });

  test("invocation 2.1 on the first line works the same (turns carry {prompt}); no result events", async () => {
    const executor = new PersistentExecutor(
      [TEST_EXECUTOR],
      { schema_version: "2.1", mode: "start", session_id: "ses_test1", prompt: "one", project_dir: temp.make() },
      { env: env() },
    );
    expect((await executor.turnComplete()).result).toBe("[TEST-EXECUTOR] Received: one");
    executor.turn({ prompt: "two" });
    expect((await executor.turnComplete()).result).toBe("[TEST-EXECUTOR] Received: two");
    executor.shutdown();
    expect(await executor.exited).toBe(0);
    expect(sequence(gateway)).not.toContain("event:result");
  });

  test("a first line that is not an invocation: exit 1, as for a one-shot run", async () => {
    const executor = new PersistentExecutor([TEST_EXECUTOR], { schema_version: "2.2", mode: "start" }, { env: env() });
    expect(await executor.exited).toBe(1);
    expect(executor.stderr).toBe(
      "ao-test-exec: Invalid invocation (schema 2.2): parameters must be an object (was missing); session_id must be a string (was missing)\n",
    );
  });

  test("an unknown lifecycle is refused before anything is read or sent", async () => {
    const outcome = await runTestExecutor(invocation({ mode: "start" }), { AGENT_RUNNER_LIFECYCLE: "forever" });
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toBe(
      'ao-test-exec: AGENT_RUNNER_LIFECYCLE must be "one_shot" or "persistent" (was "forever")\n',
    );
    expect(gateway.records).toEqual([]);
  });
});
