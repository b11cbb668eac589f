/**
 * The Claude Code executor for real: the official Agent SDK runs the bundled Claude Code binary,
 * which talks to a fake Anthropic Messages API on 127.0.0.1 (no network, dummy key, isolated HOME).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { offlineClaudeEnv } from "../support/claude-code.ts";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.ts";
import { CLAUDE_CODE_EXECUTOR, goneWithin, runProcess, TempDirs } from "../support/processes.ts";

const TIMEOUT = 90_000;
const temp = new TempDirs();
let api: FakeAnthropic;
let gateway: LocalGateway;

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  return Array.isArray(content)
    ? content
        .map((b: any) =>
          typeof b?.text === "string" ? b.text : typeof b?.content === "string" ? b.content : textOf(b?.content),
        )
        .join("\n")
    : "";
}

beforeAll(() => {
  api = startFakeAnthropic((request) => ({ text: `Hello from the fake API (model ${request.body.model})` }));
  // The agent loop: "READ_FILE_PLEASE <path>" asks for the Read tool, a tool result is answered with its content.
  api.respond((request) => {
    if (!request.offersTools) return undefined;
    if (request.toolResults.length > 0) return { text: `Tool said: ${textOf(request.toolResults[0]!.content)}` };
    const wanted = /READ_FILE_PLEASE (\S+)/.exec(request.userText);
    return wanted ? { toolUse: { name: "Read", input: { file_path: wanted[1]! } } } : undefined;
  });
});
afterAll(async () => {
  await api.stop();
  temp.cleanup();
});
beforeEach(() => {
  gateway = new LocalGateway({ hostname: "test-host", executorProfile: "coding" }).start();
});
afterEach(async () => {
  await gateway.stop();
});

/** Only what Claude Code needs, pointed at the fakes: no real credentials or settings can leak in. */
function claudeEnv(apiUrl: string, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const home = temp.make("ar-cc-home-");
  return {
    PATH: process.env.PATH,
    TMPDIR: process.env.TMPDIR,
    ...offlineClaudeEnv(home, apiUrl, join(home, ".claude")),
    AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_cc1"),
    AGENT_SESSION_ID: "ses_cc1",
    AGENT_RUNNER_DEBUG: "1",
    ...extra,
  };
}

function runClaudeExecutor(invocation: Record<string, unknown>, env: Record<string, string | undefined>) {
  const stdin = JSON.stringify({ schema_version: "2.1", session_id: "ses_cc1", ...invocation });
  return runProcess([CLAUDE_CODE_EXECUTOR], { stdin, env, timeoutMs: TIMEOUT - 5_000 });
}

/** The text blocks of the user turns (Claude Code adds its own context turns around the prompt). */
function userTexts(request: any): string[] {
  return request.messages
    .filter((m: any) => m.role === "user")
    .flatMap((m: any) =>
      typeof m.content === "string"
        ? [m.content]
        : m.content.filter((b: any) => b.type === "text").map((b: any) => b.text),
    );
}

function toolResults(request: any): any[] {
  return request.messages.flatMap((m: any) =>
    Array.isArray(m.content) ? m.content.filter((b: any) => b.type === "tool_result") : [],
  );
}

function sequence(g: LocalGateway): string[] {
  return g.records.map((r) => {
    if (r.kind === "event")
      return `event:${(r.body as any).event_type}${(r.body as any).role ? `/${(r.body as any).role}` : ""}`;
    if (r.kind === "request") return `${r.method} ${r.path}`;
    return r.kind;
  });
}

/** The Messages requests of the agent loop sent since `from` (an index into api.requests). */
function agentRequestsSince(from: number): any[] {
  return api.requests
    .slice(from)
    .filter(
      (r) =>
        r.method === "POST" &&
        r.path === "/v1/messages" &&
        Array.isArray(r.body?.tools) &&
        (r.body as any).tools.length > 0,
    )
    .map((r) => r.body as any);
}

describe("Claude Code executor against a fake Anthropic API", () => {
  test(
    "start: config model in the request, system prompt first, a Read tool turn, events in order, result printed",
    async () => {
      const project = temp.make("ar-cc-project-");
      writeFileSync(join(project, "notes.txt"), "the secret word is pelican\n");
      const from = api.requests.length;
      const outcome = await runClaudeExecutor(
        {
          mode: "start",
          prompt: `READ_FILE_PLEASE ${join(project, "notes.txt")}`,
          project_dir: project,
          agent_blueprint: { name: "reader", system_prompt: "You are the reading agent." },
          executor_config: {
            model: "claude-e2e-model-1",
            permission_mode: "bypassPermissions",
            setting_sources: ["project"],
            unknown_key: 1,
          },
        },
        claudeEnv(api.url),
      );
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(outcome.stdout).toContain("Tool said:");
      expect(outcome.stdout).toContain("the secret word is pelican");

      const requests = agentRequestsSince(from);
      expect(requests.length).toBe(2);
      for (const request of requests) expect(request.model).toBe("claude-e2e-model-1");
      expect(requests[0].stream).toBe(true);
      expect(userTexts(requests[0])).toContain(
        `You are the reading agent.\n\n---\n\nREAD_FILE_PLEASE ${join(project, "notes.txt")}`,
      );
      // The tool really ran: its result went back to the model.
      expect(toolResults(requests[0])).toEqual([]);
      const [toolResult] = toolResults(requests[1]);
      expect(textOf(toolResult.content)).toContain("the secret word is pelican");

      expect(sequence(gateway)).toEqual([
        "bind",
        "event:message/user",
        "event:post_tool",
        "event:message/assistant",
        "event:usage",
        "event:session_stop",
      ]);
      const [bind, user, postTool, assistant, usage, stop] = gateway.records.map((r) => r.body as any);
      expect(bind.executor_session_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(bind.project_dir).toBe(project);
      expect(user.content[0].text).toBe(
        `You are the reading agent.\n\n---\n\nREAD_FILE_PLEASE ${join(project, "notes.txt")}`,
      );
      expect(postTool).toMatchObject({
        session_id: "ses_cc1",
        tool_name: "Read",
        tool_input: { file_path: join(project, "notes.txt") },
        error: null,
      });
      expect(JSON.stringify(postTool.tool_output)).toContain("the secret word is pelican");
      expect(`${assistant.content[0].text}\n`).toBe(outcome.stdout);
      // Two model round trips, each 42 tokens in and 17 out (the fake API's defaults).
      expect(usage.usage).toMatchObject({ input_tokens: 84, output_tokens: 34, num_turns: 2 });
      expect(stop).toMatchObject({ exit_code: 0, reason: "completed" });
      // Claude Code's own init message reports the mode it runs in.
      expect(outcome.stderr).toContain(
        `Claude Code session ${bind.executor_session_id} (model claude-e2e-model-1, permission mode bypassPermissions)`,
      );
      expect(outcome.stderr).not.toContain("sk-ant-test-dummy-key");
    },
    TIMEOUT,
  );

  test(
    "permission_mode and setting_sources reach Claude Code: project settings apply only with 'project'",
    async () => {
      const project = temp.make("ar-cc-project-");
      mkdirSync(join(project, ".claude"));
      writeFileSync(
        join(project, ".claude", "settings.json"),
        JSON.stringify({ model: "claude-from-project-settings" }),
      );

      let from = api.requests.length;
      const withProject = await runClaudeExecutor(
        {
          mode: "start",
          prompt: "hi",
          project_dir: project,
          executor_config: { permission_mode: "plan", setting_sources: ["project"] },
        },
        claudeEnv(api.url),
      );
      expect(withProject.exitCode, withProject.stderr).toBe(0);
      expect(agentRequestsSince(from).map((r) => r.model)).toEqual(["claude-from-project-settings"]);
      expect(withProject.stdout).toBe("Hello from the fake API (model claude-from-project-settings)\n");
      expect(withProject.stderr).toContain("(model claude-from-project-settings, permission mode plan)");

      from = api.requests.length;
      const userOnly = await runClaudeExecutor(
        {
          mode: "start",
          prompt: "hi",
          project_dir: project,
          executor_config: { permission_mode: "acceptEdits", setting_sources: ["user"] },
        },
        claudeEnv(api.url),
      );
      expect(userOnly.exitCode, userOnly.stderr).toBe(0);
      const models = agentRequestsSince(from).map((r) => r.model);
      expect(models).toHaveLength(1);
      expect(models[0]).not.toBe("claude-from-project-settings");
      expect(userOnly.stderr).toContain("permission mode acceptEdits)");
    },
    TIMEOUT,
  );

  test(
    "start without project_dir: works in its current directory",
    async () => {
      const cwd = temp.make("ar-cc-cwd-");
      const outcome = await runProcess([CLAUDE_CODE_EXECUTOR], {
        stdin: JSON.stringify({ schema_version: "2.1", mode: "start", session_id: "ses_cc1", prompt: "hi" }),
        cwd,
        env: claudeEnv(api.url),
        timeoutMs: TIMEOUT - 5_000,
      });
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(outcome.stdout).toStartWith("Hello from the fake API");
      const bind = gateway.records.find((r) => r.kind === "bind")!.body as any;
      expect(bind.project_dir).toBe(realpathSync(cwd));
    },
    TIMEOUT,
  );

  test(
    "resume: continues the recorded Claude Code session without the system prompt",
    async () => {
      const project = temp.make("ar-cc-project-");
      const blueprint = { name: "a", system_prompt: "SYSTEM PROMPT TEXT" };
      const env = claudeEnv(api.url);
      const started = await runClaudeExecutor(
        { mode: "start", prompt: "FIRST_TURN_MARKER", project_dir: project, agent_blueprint: blueprint },
        env,
      );
      expect(started.exitCode, started.stderr).toBe(0);
      const executorSessionId = gateway.session("ses_cc1")!.executor_session_id;
      gateway.records.length = 0;

      const from = api.requests.length;
      const resumed = await runClaudeExecutor(
        { mode: "resume", prompt: "SECOND_TURN_MARKER", agent_blueprint: blueprint },
        env,
      );
      expect(resumed.exitCode, resumed.stderr).toBe(0);
      expect(resumed.stdout).toStartWith("Hello from the fake API");

      expect(sequence(gateway)).toEqual([
        "GET /sessions/ses_cc1",
        "bind",
        "event:session_start",
        "metadata",
        "event:message/user",
        "event:message/assistant",
        "event:usage",
        "event:session_stop",
      ]);
      expect((gateway.records[1]!.body as any).executor_session_id).toBe(executorSessionId);
      expect((gateway.records[4]!.body as any).content[0].text).toBe("SECOND_TURN_MARKER");
      expect(gateway.session("ses_cc1")!.last_resumed_at).toBe((gateway.records[3]!.body as any).last_resumed_at);

      const [request] = agentRequestsSince(from);
      const texts = userTexts(request);
      // The history of the start (with its system prompt), then the new prompt on its own.
      expect(texts).toContain("SYSTEM PROMPT TEXT\n\n---\n\nFIRST_TURN_MARKER");
      expect(texts).toContain("SECOND_TURN_MARKER");
      expect(texts.indexOf("SECOND_TURN_MARKER")).toBeGreaterThan(
        texts.indexOf("SYSTEM PROMPT TEXT\n\n---\n\nFIRST_TURN_MARKER"),
      );
      expect(
        request.messages.some(
          (m: any) => m.role === "assistant" && JSON.stringify(m.content).includes("Hello from the fake API"),
        ),
      ).toBe(true);
    },
    TIMEOUT,
  );

  test(
    "resume of a session the coordinator does not know: exit 1, nothing sent to the API",
    async () => {
      const from = api.requests.length;
      const outcome = await runClaudeExecutor(
        { mode: "resume", prompt: "x", session_id: "ses_missing" },
        claudeEnv(api.url),
      );
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toContain("Cannot resume session 'ses_missing': no such session");
      expect(api.requests.length).toBe(from);
    },
    TIMEOUT,
  );

  test(
    "blueprint MCP servers get ${VAR} placeholders in headers filled from the environment",
    async () => {
      const seen: Headers[] = [];
      const mcp = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch(request) {
          seen.push(request.headers);
          return new Response("not an MCP server", { status: 404 });
        },
      });
      try {
        const outcome = await runClaudeExecutor(
          {
            mode: "start",
            prompt: "hi",
            project_dir: temp.make("ar-cc-project-"),
            agent_blueprint: {
              name: "with-mcp",
              mcp_servers: {
                orchestrator: {
                  type: "http",
                  url: `http://127.0.0.1:${mcp.port}/mcp`,
                  headers: { "X-Agent-Session-Id": "${AGENT_SESSION_ID}", "X-Unset": "${AR_TEST_UNSET_VARIABLE}" },
                },
              },
            },
          },
          claudeEnv(api.url),
        );
        expect(outcome.exitCode, outcome.stderr).toBe(0);
        expect(seen.length).toBeGreaterThan(0);
        expect(seen[0]!.get("x-agent-session-id")).toBe("ses_cc1");
        expect(seen[0]!.get("x-unset")).toBe("${AR_TEST_UNSET_VARIABLE}");
      } finally {
        await mcp.stop(true);
      }
    },
    TIMEOUT,
  );

  test(
    "a gateway that cannot be reached does not stop the agent",
    async () => {
      const closed = new LocalGateway().start();
      const url = closed.url;
      await closed.stop();
      const outcome = await runClaudeExecutor(
        { mode: "start", prompt: "hi", project_dir: temp.make("ar-cc-project-") },
        claudeEnv(api.url, { AGENT_ORCHESTRATOR_API_URL: url }),
      );
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(outcome.stdout).toStartWith("Hello from the fake API");
      expect(outcome.stderr).toContain("ao-claude-code-exec: warning: bind not delivered (continuing)");
      expect(outcome.stderr).toContain("ao-claude-code-exec: warning: session_stop event not delivered (continuing)");
    },
    TIMEOUT,
  );

  test(
    "an API error ends the run with exit 1 and the API's message, without session_stop",
    async () => {
      const failing = startFakeAnthropic().failMessages(400, "invalid_request_error", "fake API refuses this request");
      try {
        const outcome = await runClaudeExecutor(
          { mode: "start", prompt: "hi", project_dir: temp.make("ar-cc-project-") },
          claudeEnv(failing.url),
        );
        expect(outcome.exitCode).toBe(1);
        expect(outcome.stdout).toBe("");
        expect(outcome.stderr).toContain("fake API refuses this request");
        expect(failing.messageRequests().length).toBeGreaterThan(0);
        expect(sequence(gateway)).not.toContain("event:session_stop");
        expect(sequence(gateway)).not.toContain("event:message/assistant");
      } finally {
        await failing.stop();
      }
    },
    TIMEOUT,
  );

  test.skipIf(process.getuid?.() !== 0)(
    "as root without IS_SANDBOX=1, bypassPermissions fails with a message saying what to do",
    async () => {
      const from = api.requests.length;
      const outcome = await runClaudeExecutor(
        { mode: "start", prompt: "hi", project_dir: temp.make("ar-cc-project-") },
        claudeEnv(api.url, { IS_SANDBOX: undefined }),
      );
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toContain(
        "ao-claude-code-exec: Claude Code refuses permission_mode 'bypassPermissions' when running as root unless IS_SANDBOX=1 is set.",
      );
      expect(outcome.stderr).toContain("cannot be used with root/sudo privileges");
      expect(api.requests.length).toBe(from);
    },
    TIMEOUT,
  );

  test(
    "invalid executor_config fails before Claude Code starts",
    async () => {
      const from = api.requests.length;
      const outcome = await runClaudeExecutor(
        {
          mode: "start",
          prompt: "hi",
          project_dir: temp.make("ar-cc-project-"),
          executor_config: { permission_mode: "yolo" },
        },
        claudeEnv(api.url),
      );
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stderr).toContain('executor_config: permission_mode must be "acceptEdits"');
      expect(gateway.records).toEqual([]);
      expect(api.requests.length).toBe(from);
    },
    TIMEOUT,
  );
});

describe("Claude Code executor: command line", () => {
  test("--schema, --help and invalid stdin", async () => {
    const schema = await runProcess([CLAUDE_CODE_EXECUTOR, "--schema"]);
    expect(schema.exitCode).toBe(0);
    expect(JSON.parse(schema.stdout).title).toBe("Executor invocation 2.1 or 2.2");
    const help = await runProcess([CLAUDE_CODE_EXECUTOR, "--help"]);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("permission_mode");
    expect(help.stdout).toContain("CLAUDE_CODE_EXECUTABLE");
    for (const [stdin, message] of [
      ["", "stdin is empty"],
      ["[1,", "not valid JSON"],
      [
        JSON.stringify({ schema_version: "2.0", mode: "start", session_id: "s", prompt: "p", project_dir: "/" }),
        'must be "2.1"',
      ],
      [
        JSON.stringify({ schema_version: "2.1", mode: "start", prompt: "p", project_dir: "/" }),
        "session_id must be a string (was missing)",
      ],
    ]) {
      const outcome = await runProcess([CLAUDE_CODE_EXECUTOR], { stdin, env: { PATH: process.env.PATH } });
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stderr).toStartWith("ao-claude-code-exec: Invalid invocation");
      expect(outcome.stderr).toContain(message!);
    }
  });

  test("a start whose project_dir does not exist fails with a message naming it", async () => {
    const outcome = await runProcess([CLAUDE_CODE_EXECUTOR], {
      stdin: JSON.stringify({
        schema_version: "2.1",
        mode: "start",
        session_id: "s",
        prompt: "p",
        project_dir: "/nonexistent/dir/x",
      }),
      env: { PATH: process.env.PATH, AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("s") },
    });
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toBe("ao-claude-code-exec: project_dir /nonexistent/dir/x does not exist\n");
  });
});

describe("Claude Code executor: stopped by the runner", () => {
  test(
    "SIGTERM mid-turn stops Claude Code too and exits 143",
    async () => {
      const thinking = startFakeAnthropic().holdMessages();
      try {
        const stdin = JSON.stringify({
          schema_version: "2.1",
          mode: "start",
          session_id: "ses_stop",
          prompt: "take your time",
          project_dir: temp.make("ar-cc-project-"),
        });
        const executor = Bun.spawn([CLAUDE_CODE_EXECUTOR], {
          stdin: new Blob([stdin]),
          stdout: "pipe",
          stderr: "pipe",
          env: claudeEnv(thinking.url),
          timeout: TIMEOUT - 5_000,
        });
        const stderr = new Response(executor.stderr).text();
        // Claude Code is waiting for the model: the turn is under way.
        await thinking.waitFor((r) => r.path === "/v1/messages");
        const children = Bun.spawnSync(["pgrep", "-P", String(executor.pid)])
          .stdout.toString()
          .trim()
          .split("\n")
          .filter(Boolean)
          .map(Number);
        expect(children.length).toBeGreaterThan(0);
        executor.kill("SIGTERM");
        expect(await executor.exited).toBe(143);
        expect(await stderr).toContain("ao-claude-code-exec: Stopped by SIGTERM before the agent finished");
        expect(sequence(gateway)).not.toContain("event:session_stop");
        // Claude Code was told to stop before the executor exited, but nothing announces the
        // moment an orphaned process is gone: look until it is, within a bound.
        for (const pid of children) expect(await goneWithin(pid, 5_000)).toBe(true);
      } finally {
        await thinking.stop();
      }
    },
    TIMEOUT,
  );
});
