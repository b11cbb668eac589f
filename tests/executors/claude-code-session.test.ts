/**
 * The Claude Code executor's sessions for real, against a fake Messages API: a persistent session
 * served by one Claude Code process, interrupts, stops mid-turn and while idle, usage per turn,
 * budgets and turn limits, structured output under invocation 2.2, and a persistent session in
 * the sandbox.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { claudeCodeSandboxNeeds } from "../../src/executors/sandbox-needs.ts";
import { closeSandboxFds, sandboxPrefix } from "../../src/process/sandbox.ts";
import { offlineClaudeEnv, recordingClaude } from "../support/claude-code.ts";
import { echoLastLine, type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.ts";
import { PersistentExecutor } from "../support/persistent-executor.ts";
import { CLAUDE_CODE_EXECUTOR, goneWithin, REPO_ROOT, runProcess, TempDirs, tempDir } from "../support/processes.ts";
import { homeWithSecrets, needBubblewrap } from "../support/sandbox.ts";

const TIMEOUT = 90_000;
const SESSION = "ses_cc_session";
const temp = new TempDirs();
let gateway: LocalGateway;

afterAll(() => temp.cleanup());

beforeEach(() => {
  gateway = new LocalGateway({ hostname: "test-host", executorProfile: "coding" }).start();
});
afterEach(async () => {
  await gateway.stop();
});

/** Only what Claude Code needs, pointed at the fakes; `claude` (a recording wrapper) as its binary when given. */
function claudeEnv(api: FakeAnthropic, claude?: string, home = tempDir("ar-ccs-home-")) {
  return {
    PATH: process.env.PATH,
    TMPDIR: process.env.TMPDIR,
    ...offlineClaudeEnv(home, api.url, join(home, ".claude")),
    ...(claude ? { CLAUDE_CODE_EXECUTABLE: claude } : {}),
    AGENT_ORCHESTRATOR_API_URL: gateway.urlFor(SESSION),
    AGENT_SESSION_ID: SESSION,
    AGENT_RUNNER_DEBUG: "1",
  };
}

const start22 = (prompt: string, fields: Record<string, unknown> = {}) => ({
  schema_version: "2.2",
  mode: "start",
  session_id: SESSION,
  parameters: { prompt },
  project_dir: tempDir("ar-ccs-project-"),
  ...fields,
});

const start21 = (prompt: string, fields: Record<string, unknown> = {}) => ({
  schema_version: "2.1",
  mode: "start",
  session_id: SESSION,
  prompt,
  project_dir: tempDir("ar-ccs-project-"),
  ...fields,
});

function runOneShot(invocation: Record<string, unknown>, env: Record<string, string | undefined>) {
  return runProcess([CLAUDE_CODE_EXECUTOR], { stdin: JSON.stringify(invocation), env, timeoutMs: TIMEOUT - 5_000 });
}

const events = (type: string) => gateway.records.map((r) => r.body as any).filter((body) => body?.event_type === type);

function sequence(): string[] {
  return gateway.records.map((r) => {
    const body = r.body as any;
    if (r.kind === "event") return `${body.event_type}${body.role ? `/${body.role}` : ""}`;
    return r.kind === "request" ? `${r.method} ${r.path}` : r.kind;
  });
}

async function allGone(pids: number[]): Promise<boolean> {
  for (const pid of pids) if (!(await goneWithin(pid, 5_000))) return false;
  return pids.length > 0;
}

/** A persistent session (invocation 2.2) opened with `prompt`: Claude Code recorded, `api` (or an echo) answering. */
function startSession(
  prompt: string,
  {
    api = startFakeAnthropic(echoLastLine),
    fields = {},
  }: { api?: FakeAnthropic; fields?: Record<string, unknown> } = {},
) {
  const claude = recordingClaude();
  const executor = new PersistentExecutor([CLAUDE_CODE_EXECUTOR], start22(prompt, fields), {
    env: claudeEnv(api, claude.path),
  });
  return { api, claude, executor };
}

describe("persistent Claude Code session", () => {
  test(
    "two turns served by one Claude Code process; the second carries the first's history; shutdown exits 0",
    async () => {
      const { api, claude, executor } = startSession("FIRST_TURN_MARKER");
      expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "You said: FIRST_TURN_MARKER" });
      const afterFirst = api.agentRequests().length;
      executor.turn({ prompt: "SECOND_TURN_MARKER" });
      expect(await executor.turnComplete()).toEqual({
        type: "turn_complete",
        result: "You said: SECOND_TURN_MARKER",
      });
      executor.shutdown();
      expect(await executor.exited).toBe(0);
      expect(await executor.rest()).toEqual([]);

      // One Claude Code for both turns: the one started early, handed to the SDK.
      const starts = claude.starts();
      expect(starts).toHaveLength(1);
      expect(executor.stderr).toContain(`Claude Code started early (pid ${starts[0]}) handed to the Agent SDK`);
      expect(await allGone(starts)).toBe(true);
      // The second turn's request holds the first turn and its answer: the same conversation, not a resume.
      const second = api.conversationSince(afterFirst);
      expect(second).toContain("FIRST_TURN_MARKER");
      expect(second).toContain("You said: FIRST_TURN_MARKER");
      expect(second).toContain("SECOND_TURN_MARKER");

      expect(sequence()).toEqual([
        "bind",
        ...[1, 2].flatMap(() => ["message/user", "message/assistant", "usage", "result"]),
        "session_stop",
      ]);
      expect(gateway.records.filter((r) => r.kind === "bind")).toHaveLength(1);
      expect(events("result").map((e) => [e.result_text, e.result_data])).toEqual([
        ["You said: FIRST_TURN_MARKER", null],
        ["You said: SECOND_TURN_MARKER", null],
      ]);
    },
    TIMEOUT,
  );

  test(
    "interrupt mid-turn: the turn ends early with interrupted: true, the session goes on",
    async () => {
      const { api, claude, executor } = startSession("hello");
      expect((await executor.turnComplete()).result).toBe("You said: hello");
      // The model "thinks" until released: the turn is under way when the interrupt comes.
      await api.holdTurn("TAKE_YOUR_TIME", () => executor.turn({ prompt: "TAKE_YOUR_TIME" }));
      executor.interrupt();
      expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "", interrupted: true });
      api.releaseHeld();
      executor.turn({ prompt: "AFTER_THE_INTERRUPT" });
      expect(await executor.turnComplete()).toEqual({
        type: "turn_complete",
        result: "You said: AFTER_THE_INTERRUPT",
      });
      executor.shutdown();
      expect(await executor.exited).toBe(0);
      expect(claude.starts()).toHaveLength(1);
      expect(await allGone(claude.starts())).toBe(true);
      // The interrupted turn still reports what it used, and its (empty) result.
      expect(events("usage")).toHaveLength(3);
      expect(events("result").map((e) => e.result_text)).toEqual([
        "You said: hello",
        "",
        "You said: AFTER_THE_INTERRUPT",
      ]);
    },
    TIMEOUT,
  );

  test(
    "interrupt then shutdown (a runner ending a running turn cleanly): exit 0, Claude Code gone",
    async () => {
      const { api, claude, executor } = startSession("TAKE_YOUR_TIME", {
        api: startFakeAnthropic(echoLastLine).holdMessages(),
      });
      await api.waitFor((r) => JSON.stringify(r.body).includes("TAKE_YOUR_TIME"));
      executor.interrupt();
      executor.shutdown();
      expect(await executor.turnComplete()).toEqual({ type: "turn_complete", result: "", interrupted: true });
      expect(await executor.exited).toBe(0);
      expect(executor.stderr).not.toContain("warning");
      expect(await allGone(claude.starts())).toBe(true);
      expect(sequence().at(-1)).toBe("session_stop");
    },
    TIMEOUT,
  );

  test(
    "SIGTERM mid-turn: exit 143, Claude Code gone",
    async () => {
      const { api, claude, executor } = startSession("hello");
      expect((await executor.turnComplete()).result).toBe("You said: hello");
      await api.holdTurn("TAKE_YOUR_TIME", () => executor.turn({ prompt: "TAKE_YOUR_TIME" }));
      executor.process.kill("SIGTERM");
      expect(await executor.exited).toBe(143);
      expect(executor.stderr).toContain("ao-claude-code-exec: Stopped by SIGTERM");
      expect(await executor.rest()).toEqual([]);
      expect(await allGone(claude.starts())).toBe(true);
      expect(sequence()).not.toContain("session_stop");
    },
    TIMEOUT,
  );

  test(
    "SIGTERM while idle between turns: exit 143, Claude Code gone",
    async () => {
      const { claude, executor } = startSession("hello");
      expect((await executor.turnComplete()).result).toBe("You said: hello");
      expect(claude.starts()).toHaveLength(1);
      const from = performance.now();
      executor.process.kill("SIGTERM");
      expect(await executor.exited).toBe(143);
      const took = Math.round(performance.now() - from);
      console.log(`SIGTERM while idle: executor exited after ${took} ms`);
      expect(executor.stderr).toContain("ao-claude-code-exec: Stopped by SIGTERM");
      expect(await allGone(claude.starts())).toBe(true);
    },
    TIMEOUT,
  );

  test(
    "a turn that fails ends the session: max_budget_usd spans the session's turns (exit 1, the budget named)",
    async () => {
      // Each reply costs $0.01134 at claude-sonnet-4-5's list prices: the second turn passes $0.015.
      const api = startFakeAnthropic((request) => ({
        ...echoLastLine(request),
        usage: {
          input_tokens: 1000,
          output_tokens: 500,
          cache_read_input_tokens: 300,
          cache_creation_input_tokens: 200,
        },
      }));
      const { claude, executor } = startSession("one", {
        api,
        fields: { executor_config: { model: "claude-sonnet-4-5", max_budget_usd: 0.015 } },
      });
      expect((await executor.turnComplete()).result).toBe("You said: one");
      executor.turn({ prompt: "two" });
      expect(await executor.exited).toBe(1);
      expect(await executor.rest()).toEqual([]);
      expect(executor.stderr).toContain(
        "ao-claude-code-exec: Claude Code stopped the turn: budget of $0.015 reached after 1 turn (executor_config.max_budget_usd)\n",
      );
      expect(await allGone(claude.starts())).toBe(true);
      // What the failed turn used is reported too; it has no result, and the session no session_stop.
      expect(events("usage").map((e) => e.usage.total_cost_usd)).toEqual([0.01134, 0.02268]);
      expect(events("result")).toHaveLength(1);
      expect(sequence()).not.toContain("session_stop");
    },
    TIMEOUT,
  );
});

describe("usage per turn", () => {
  const chosen = {
    input_tokens: 1234,
    output_tokens: 567,
    cache_read_input_tokens: 89,
    cache_creation_input_tokens: 10,
  };

  test(
    "one-shot (invocation 2.1): the fake API's token counts arrive at the gateway unchanged, with cost and durations",
    async () => {
      const api = startFakeAnthropic((request) => ({ ...echoLastLine(request), usage: chosen }));
      const outcome = await runOneShot(
        start21("count me", { executor_config: { model: "claude-sonnet-4-5" } }),
        claudeEnv(api),
      );
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(sequence()).toEqual(["bind", "message/user", "message/assistant", "usage", "session_stop"]);
      const [usage] = events("usage");
      expect(Object.keys(usage).sort()).toEqual(["event_type", "session_id", "timestamp", "usage"]);
      expect(usage.session_id).toBe(SESSION);
      expect(usage.usage).toEqual({
        ...chosen,
        // claude-sonnet-4-5's list prices: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million.
        total_cost_usd: expect.closeTo((1234 * 3 + 567 * 15 + 89 * 0.3 + 10 * 3.75) / 1e6, 9),
        num_turns: 1,
        duration_ms: expect.any(Number),
        duration_api_ms: expect.any(Number),
      });
      expect(usage.usage.duration_ms).toBeGreaterThan(0);
    },
    TIMEOUT,
  );

  test(
    "persistent (invocation 2.2): each turn's tokens, and the SDK's running total of the cost",
    async () => {
      let reply = 0;
      const api = startFakeAnthropic((request) => {
        if (!request.offersTools) return echoLastLine(request);
        reply += 1;
        return { ...echoLastLine(request), usage: { ...chosen, output_tokens: 100 * reply } };
      });
      const executor = new PersistentExecutor(
        [CLAUDE_CODE_EXECUTOR],
        start22("one", { executor_config: { model: "claude-sonnet-4-5" } }),
        { env: claudeEnv(api) },
      );
      await executor.turnComplete();
      executor.turn({ prompt: "two" });
      await executor.turnComplete();
      executor.shutdown();
      expect(await executor.exited).toBe(0);
      const usages = events("usage").map((e) => e.usage);
      expect(usages.map((u) => u.output_tokens)).toEqual([100, 200]);
      expect(usages.map((u) => u.input_tokens)).toEqual([1234, 1234]);
      const turnCost = (output: number) => (1234 * 3 + output * 15 + 89 * 0.3 + 10 * 3.75) / 1e6;
      expect(usages[0].total_cost_usd).toBeCloseTo(turnCost(100), 9);
      expect(usages[1].total_cost_usd).toBeCloseTo(turnCost(100) + turnCost(200), 9);
    },
    TIMEOUT,
  );
});

describe("budgets", () => {
  test(
    "max_budget_usd: the turn that reaches it fails, and says so",
    async () => {
      const api = startFakeAnthropic((request) => ({ ...echoLastLine(request), usage: { output_tokens: 100_000 } }));
      const outcome = await runOneShot(
        start21("spend", { executor_config: { model: "claude-sonnet-4-5", max_budget_usd: 0.5 } }),
        claudeEnv(api),
      );
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toContain(
        "ao-claude-code-exec: Claude Code stopped the turn: budget of $0.50 reached after 1 turn (executor_config.max_budget_usd)\n",
      );
      expect(sequence()).toEqual(["bind", "message/user", "usage"]);
    },
    TIMEOUT,
  );

  test(
    "max_turns: a turn whose tool loop reaches it fails, and says so",
    async () => {
      const project = tempDir("ar-ccs-project-");
      writeFileSync(join(project, "notes.txt"), "read me again\n");
      // The model asks for the file again and again.
      const api = startFakeAnthropic(echoLastLine).respond((request) =>
        request.offersTools
          ? { toolUse: { name: "Read", input: { file_path: join(project, "notes.txt") } } }
          : undefined,
      );
      const outcome = await runOneShot(
        start21("loop", { project_dir: project, executor_config: { max_turns: 3 } }),
        claudeEnv(api),
      );
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stderr).toContain(
        "ao-claude-code-exec: Claude Code stopped the turn: turn limit of 3 reached (executor_config.max_turns)\n",
      );
      expect(api.agentRequests()).toHaveLength(3);
      expect(events("post_tool").length).toBeGreaterThanOrEqual(2);
    },
    TIMEOUT,
  );
});

describe("structured output (invocation 2.2)", () => {
  const outputSchema = {
    type: "object",
    properties: { verdict: { type: "string" }, score: { type: "number" } },
    required: ["verdict", "score"],
  };

  /** The model answers through the StructuredOutput tool Claude Code offers when an output format is set. */
  function structuredApi() {
    return startFakeAnthropic(echoLastLine).respond((request) => {
      const tools: any[] = Array.isArray(request.body.tools) ? request.body.tools : [];
      const tool = tools.find((t) => t.name === "StructuredOutput");
      if (!tool || request.toolResults.length > 0) return undefined;
      return { toolUse: { name: tool.name, input: { verdict: "sound", score: 4 } } };
    });
  }

  test(
    "a blueprint with an output_schema: the result event carries result_data; the result is its JSON",
    async () => {
      const api = structuredApi();
      const claude = recordingClaude();
      const outcome = await runOneShot(
        start22("judge this", { agent_blueprint: { name: "judge", output_schema: outputSchema } }),
        claudeEnv(api, claude.path),
      );
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(JSON.parse(outcome.stdout)).toEqual({ verdict: "sound", score: 4 });
      // The schema went to Claude Code as its StructuredOutput tool's input schema.
      const tool = api.agentRequests()[0].tools.find((t: any) => t.name === "StructuredOutput");
      expect(tool.input_schema).toMatchObject(outputSchema);
      // No assistant message: the result event is the answer.
      expect(sequence()).toEqual(["bind", "message/user", "post_tool", "usage", "result", "session_stop"]);
      const [result] = events("result");
      expect(result).toMatchObject({ result_text: null, result_data: { verdict: "sound", score: 4 } });
      // Started early all the same: the SDK asked for the process planned with the schema.
      expect(claude.starts()).toHaveLength(1);
      expect(outcome.stderr).toContain("handed to the Agent SDK");
    },
    TIMEOUT,
  );

  test(
    "under invocation 2.1 an output_schema in the blueprint is not used (2.1 blueprints have none)",
    async () => {
      const api = structuredApi();
      const outcome = await runOneShot(
        start21("judge this", { agent_blueprint: { name: "judge", output_schema: outputSchema } }),
        claudeEnv(api),
      );
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(outcome.stdout).toBe("You said: judge this\n");
      expect(api.agentRequests()[0].tools.some((t: any) => t.name === "StructuredOutput")).toBe(false);
    },
    TIMEOUT,
  );
});

describe("persistent session in the sandbox", () => {
  test(
    "two turns in one Claude Code under bubblewrap; shutdown ends the sandbox",
    async () => {
      needBubblewrap();
      const api = startFakeAnthropic(echoLastLine);
      const world = homeWithSecrets(temp);
      const env = {
        PATH: process.env.PATH,
        ...offlineClaudeEnv(world.home, api.url),
        AGENT_ORCHESTRATOR_API_URL: gateway.urlFor(SESSION),
        AGENT_SESSION_ID: SESSION,
      };
      const prefix = sandboxPrefix({
        settings: { extraWritable: [], extraHidden: [] },
        stateDirs: [],
        runnerDir: REPO_ROOT,
        needs: claudeCodeSandboxNeeds(env),
        projectDir: world.project,
        env,
      });
      let executor: PersistentExecutor;
      try {
        executor = new PersistentExecutor(
          [...prefix.argv, CLAUDE_CODE_EXECUTOR],
          start22("IN_THE_SANDBOX", { project_dir: world.project }),
          { env, cwd: world.project, fds: prefix.fds },
        );
      } finally {
        closeSandboxFds(prefix);
      }
      expect((await executor.turnComplete()).result).toBe("You said: IN_THE_SANDBOX");
      const from = api.agentRequests().length;
      executor.turn({ prompt: "STILL_IN_THE_SANDBOX" });
      expect((await executor.turnComplete()).result).toBe("You said: STILL_IN_THE_SANDBOX");
      expect(api.conversationSince(from)).toContain("IN_THE_SANDBOX");
      executor.shutdown();
      expect(await executor.exited).toBe(0);
      expect(events("result")).toHaveLength(2);
    },
    TIMEOUT,
  );
});
