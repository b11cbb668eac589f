import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { LocalGateway } from "../../../src/exec/local-gateway.ts";
import { ExecutorLog, isDebugEnabled, redactForLog } from "../../../src/executors/kit/executor-log.ts";
import { GatewayClient, GatewayError, SessionReporter } from "../../../src/executors/kit/gateway-client.ts";
import {
  type ExecutorContext,
  type ExecutorDefinition,
  ExecutorError,
  type ExecutorIO,
  readSessionForResume,
  runExecutor,
} from "../../../src/executors/kit/run-executor.ts";
import { StdinReader } from "../../../src/executors/kit/stdin-reader.ts";
import type { Invocation } from "../../../src/protocol/invocation.ts";
import { LIFELINE_ENV } from "../../../src/protocol/lifeline.ts";
import { sessionEvents } from "../../../src/protocol/session-events.ts";

let gateway: LocalGateway;
beforeEach(() => {
  gateway = new LocalGateway().start();
});
afterEach(async () => {
  await gateway.stop();
});

function memoryIO(stdin: string, env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: ExecutorIO = {
    stdin: new StdinReader(stdin),
    stdout: async (text) => out.push(text),
    stderr: (text) => err.push(text),
    env,
  };
  return { io, out, err };
}

describe("GatewayClient", () => {
  test("sends bind, events and metadata to the gateway routes", async () => {
    const client = new GatewayClient(`${gateway.urlFor("ses_a")}/`);
    await client.bind({ session_id: "ses_a", executor_session_id: "exe-1", project_dir: "/p" });
    await client.sendEvent(sessionEvents.message("ses_a", "user", "hi"));
    await client.updateMetadata({ session_id: "ses_a", last_resumed_at: "2025-01-01T00:00:00.000Z" });
    expect(gateway.records.map((r) => `${r.method} ${r.path}`)).toEqual([
      "POST /bind",
      "POST /events",
      "PATCH /metadata",
    ]);
    expect(gateway.records[0]!.body).toEqual({ session_id: "ses_a", executor_session_id: "exe-1", project_dir: "/p" });
  });

  test("getSession unwraps {session: …}, and is undefined for a 404", async () => {
    const client = new GatewayClient(gateway.urlFor("ses_b"));
    await client.bind({ session_id: "ses_b", executor_session_id: "exe-2" });
    expect(await client.getSession("ses_b")).toMatchObject({
      session_id: "ses_b",
      executor_session_id: "exe-2",
      status: "running",
    });
    expect(await client.getSession("ses_missing")).toBeUndefined();
  });

  test("other failures are GatewayErrors that name the request and the gateway's detail", async () => {
    const client = new GatewayClient(gateway.urlFor("ses_c"));
    const failure = (await client
      .bind({ session_id: "ses_c", executor_session_id: "" })
      .catch((e) => e)) as GatewayError;
    expect(failure).toBeInstanceOf(GatewayError);
    expect(failure.status).toBe(400);
    expect(failure.message).toBe("POST /bind: gateway answered 400: POST /bind: executor_session_id must be non-empty");
  });

  test("an unreachable gateway is a GatewayError naming its URL", async () => {
    const url = gateway.url;
    await gateway.stop();
    const failure = await new GatewayClient(url).getSession("ses_d").catch((e) => e);
    expect(failure).toBeInstanceOf(GatewayError);
    expect(failure.message).toContain(`GET /sessions/ses_d: cannot reach the gateway at ${url}`);
  });

  test("fromEnv reads AGENT_ORCHESTRATOR_API_URL, with a local default", () => {
    expect(GatewayClient.fromEnv({ AGENT_ORCHESTRATOR_API_URL: "http://127.0.0.1:5555/" }).baseUrl).toBe(
      "http://127.0.0.1:5555",
    );
    expect(GatewayClient.fromEnv({}).baseUrl).toBe("http://127.0.0.1:8765");
  });
});

describe("SessionReporter", () => {
  test("a failed delivery is a warning on stderr and does not throw", async () => {
    const url = gateway.url;
    await gateway.stop();
    const lines: string[] = [];
    const reporter = new SessionReporter(
      new GatewayClient(url),
      "ses_e",
      new ExecutorLog("x-exec", false, (l) => lines.push(l)),
    );
    await reporter.bind("exe");
    await reporter.message("user", "hi");
    await reporter.markResumed();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toStartWith(
      "x-exec: warning: bind not delivered (continuing): POST /bind: cannot reach the gateway",
    );
    expect(lines[1]).toStartWith("x-exec: warning: message event not delivered");
    expect(lines[2]).toStartWith("x-exec: warning: metadata update not delivered");
  });
});

describe("readSessionForResume", () => {
  test("missing session and unreachable gateway are ExecutorErrors", async () => {
    const client = new GatewayClient(gateway.urlFor("ses_nope"));
    await expect(readSessionForResume(client, "ses_nope")).rejects.toThrow(
      "Cannot resume session 'ses_nope': no such session (GET /sessions/ses_nope answered 404)",
    );
    const url = gateway.url;
    await gateway.stop();
    const failure = await readSessionForResume(new GatewayClient(url), "ses_x").catch((e) => e);
    expect(failure).toBeInstanceOf(ExecutorError);
    expect(failure.message).toContain("Cannot resume session 'ses_x': GET /sessions/ses_x: cannot reach the gateway");
  });
});

describe("sessionEvents", () => {
  test("have the documented fields", () => {
    const tool = sessionEvents.postTool("s", { name: "Read", input: { file_path: "/a" }, output: "text", error: null });
    expect(tool).toMatchObject({
      session_id: "s",
      event_type: "post_tool",
      tool_name: "Read",
      tool_input: { file_path: "/a" },
      tool_output: "text",
      error: null,
    });
    expect(sessionEvents.sessionStop("s", 0, "completed")).toMatchObject({
      event_type: "session_stop",
      exit_code: 0,
      reason: "completed",
    });
    expect(sessionEvents.sessionStart("s").event_type).toBe("session_start");
    expect(Date.parse(sessionEvents.sessionStart("s").timestamp)).not.toBeNaN();
  });
});

describe("helpers", () => {
  test("redactForLog hides values under secret-looking keys, at any depth", () => {
    expect(
      redactForLog({
        model: "opus",
        apiKey: "k",
        nested: { client_secret: "s", list: [{ password: "p", ok: 1 }] },
        token_budget: { total: 5 },
      }),
    ).toEqual({
      model: "opus",
      apiKey: "[redacted]",
      nested: { client_secret: "[redacted]", list: [{ password: "[redacted]", ok: 1 }] },
      token_budget: { total: 5 },
    });
  });

  test("isDebugEnabled reads AGENT_RUNNER_DEBUG", () => {
    expect(isDebugEnabled({ AGENT_RUNNER_DEBUG: "1" })).toBe(true);
    expect(isDebugEnabled({ AGENT_RUNNER_DEBUG: "true" })).toBe(true);
    expect(isDebugEnabled({ AGENT_RUNNER_DEBUG: "0" })).toBe(false);
    expect(isDebugEnabled({})).toBe(false);
  });
});

/** An executor definition whose one turn does `turn` with the invocation. */
function oneTurn(turn: (invocation: Invocation, context: ExecutorContext) => Promise<string>): ExecutorDefinition {
  return {
    name: "demo-exec",
    summary: "demo",
    details: "Details here.",
    startSession: async (invocation, context) => ({
      turn: async () => ({ result: await turn(invocation, context) }),
      finish: async () => {},
    }),
  };
}

describe("runExecutor", () => {
  const definition = oneTurn(async (invocation) => {
    const prompt = invocation.schema_version === "2.1" ? invocation.prompt : "";
    if (prompt === "fail") throw new ExecutorError("it failed, as asked");
    if (prompt === "crash") throw new TypeError("boom");
    return `did ${invocation.mode}: ${prompt}`;
  });
  const start = (prompt: string) =>
    JSON.stringify({ schema_version: "2.1", mode: "start", session_id: "s1", prompt, project_dir: "/tmp" });

  test("prints the result with a newline and returns 0", async () => {
    const { io, out, err } = memoryIO(start("go"));
    expect(await runExecutor(definition, [], io)).toBe(0);
    expect(out).toEqual(["did start: go\n"]);
    expect(err).toEqual([]);
  });

  test("an ExecutorError is its message on stderr and exit 1; anything else says it is unexpected", async () => {
    const failed = memoryIO(start("fail"));
    expect(await runExecutor(definition, [], failed.io)).toBe(1);
    expect(failed.err).toEqual(["demo-exec: it failed, as asked\n"]);
    expect(failed.out).toEqual([]);
    const crashed = memoryIO(start("crash"));
    expect(await runExecutor(definition, [], crashed.io)).toBe(1);
    expect(crashed.err[0]).toStartWith("demo-exec: unexpected failure: TypeError: boom");
  });

  test("SIGTERM mid-run: the run's signal aborts, the stop is the message, exit 143", async () => {
    const { io, out, err } = memoryIO(start("wait"));
    const waiting = oneTurn(
      (_, { signal }) =>
        new Promise<string>((_, reject) => {
          signal.addEventListener("abort", () => reject(new Error("aborted, cleaning up")));
          process.kill(process.pid, "SIGTERM");
        }),
    );
    expect(await runExecutor(waiting, [], io)).toBe(143);
    expect(err).toEqual(["demo-exec: Stopped by SIGTERM before the agent finished\n"]);
    expect(out).toEqual([]);
    // The handler is gone with the run.
    expect(process.listenerCount("SIGTERM")).toBe(0);
  });

  test(`a ${LIFELINE_ENV} that is no pipe: a warning, the parent process is watched instead; children never see it`, async () => {
    const { io, err } = memoryIO(start("go"), { [LIFELINE_ENV]: "0" });
    expect(await runExecutor(definition, [], io)).toBe(0);
    expect(err).toEqual([
      `demo-exec: warning: ${LIFELINE_ENV}=0 is not an open pipe or socket; watching the parent process instead\n`,
    ]);
    expect(LIFELINE_ENV in io.env).toBe(false);
  });

  test("--help includes the executor's details", async () => {
    const { io, out } = memoryIO("");
    expect(await runExecutor(definition, ["--help"], io)).toBe(0);
    expect(out.join("")).toContain("demo-exec — demo");
    expect(out.join("")).toContain("Details here.");
  });
});
