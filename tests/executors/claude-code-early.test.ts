/**
 * Claude Code started before the Agent SDK loads: the SDK takes that process when it asks for
 * exactly it, anything else falls back to one process started as the SDK asks, and nothing is left
 * running. Real processes: the executor, the bundled Claude Code binary (behind a wrapper that
 * records every start) and a fake Anthropic API on 127.0.0.1.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { EarlyClaudeCode, plannedSpawn, sdkEnvironment } from "../../src/executors/claude-code-early.ts";
import { ExecutorLog } from "../../src/executors/kit/executor-log.ts";
import { CLAUDE_CODE_BINARY, offlineClaudeEnv, recordingClaude } from "../support/claude-code.ts";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.ts";
import { CLAUDE_CODE_EXECUTOR, goneWithin, isAlive, REPO_ROOT, runProcess, tempDir } from "../support/processes.ts";
import { killAfterTest } from "../support/teardown.ts";

const TIMEOUT = 90_000;
let api: FakeAnthropic;
let gateway: LocalGateway;

beforeAll(() => {
  api = startFakeAnthropic((request) => ({ text: `fake answer (model ${request.body.model})` }));
});
beforeEach(() => {
  gateway = new LocalGateway({ hostname: "test-host", executorProfile: "coding" }).start();
});
afterEach(async () => {
  await gateway.stop();
});

function claudeEnv(claudeExecutable: string, home = tempDir("ar-early-home-")): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    TMPDIR: process.env.TMPDIR,
    ...offlineClaudeEnv(home, api.url, join(home, ".claude")),
    CLAUDE_CODE_EXECUTABLE: claudeExecutable,
    AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_early"),
    AGENT_SESSION_ID: "ses_early",
    AGENT_RUNNER_DEBUG: "1",
  };
}

function runExecutor(invocation: Record<string, unknown>, env: Record<string, string | undefined>) {
  const stdin = JSON.stringify({ schema_version: "2.1", session_id: "ses_early", ...invocation });
  return runProcess([CLAUDE_CODE_EXECUTOR], { stdin, env, timeoutMs: TIMEOUT - 5_000 });
}

const profileConfig = (name: string) =>
  (JSON.parse(readFileSync(join(REPO_ROOT, "profiles", `${name}.json`), "utf8")) as { config: unknown }).config;

async function allGone(pids: number[]): Promise<boolean> {
  for (const pid of pids) if (!(await goneWithin(pid, 5_000))) return false;
  return true;
}

describe("Claude Code started early", () => {
  for (const profile of ["coding", "research", "supervised"]) {
    test(
      `a start with the ${profile} profile: the Agent SDK takes the early process, no second Claude Code`,
      async () => {
        const claude = recordingClaude();
        const outcome = await runExecutor(
          {
            mode: "start",
            prompt: "hi",
            project_dir: tempDir("ar-early-project-"),
            executor_config: profileConfig(profile),
          },
          claudeEnv(claude.path),
        );
        expect(outcome.exitCode, outcome.stderr).toBe(0);
        expect(outcome.stdout).toStartWith("fake answer");
        const starts = claude.starts();
        expect(starts).toHaveLength(1);
        expect(outcome.stderr).toContain(`Claude Code started early (pid ${starts[0]}) handed to the Agent SDK`);
        expect(gateway.records.map((r) => r.kind)).toEqual(["bind", "event", "event", "event", "event"]);
        expect(await allGone(starts)).toBe(true);
      },
      TIMEOUT,
    );
  }

  test(
    "invocation 2.2 with budgets: the SDK takes the early process (the plan has its --max-turns and --max-budget-usd)",
    async () => {
      const claude = recordingClaude();
      const outcome = await runProcess([CLAUDE_CODE_EXECUTOR], {
        stdin: JSON.stringify({
          schema_version: "2.2",
          mode: "start",
          session_id: "ses_early",
          parameters: { prompt: "hi" },
          agent_name: "budgeted",
          project_dir: tempDir("ar-early-project-"),
          executor_config: { model: "opus", max_turns: 5, max_budget_usd: 1.25 },
        }),
        env: claudeEnv(claude.path),
        timeoutMs: TIMEOUT - 5_000,
      });
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      const starts = claude.starts();
      expect(starts).toHaveLength(1);
      expect(outcome.stderr).toContain(`Claude Code started early (pid ${starts[0]}) handed to the Agent SDK`);
      expect(await allGone(starts)).toBe(true);
    },
    TIMEOUT,
  );

  test(
    "MCP servers in the blueprint, then a resume: not started early; the SDK starts exactly one Claude Code each time",
    async () => {
      const mcpServer = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch: () => new Response("not an MCP server", { status: 404 }),
      });
      const home = tempDir("ar-early-home-");
      try {
        const withMcp = recordingClaude();
        const started = await runExecutor(
          {
            mode: "start",
            prompt: "hi",
            project_dir: tempDir("ar-early-project-"),
            agent_blueprint: {
              name: "with-mcp",
              mcp_servers: { other: { type: "http", url: `http://127.0.0.1:${mcpServer.port}/mcp` } },
            },
          },
          claudeEnv(withMcp.path, home),
        );
        expect(started.exitCode, started.stderr).toBe(0);
        expect(started.stderr).not.toContain("started early");
        expect(withMcp.starts()).toHaveLength(1);
        expect(await allGone(withMcp.starts())).toBe(true);
      } finally {
        await mcpServer.stop(true);
      }

      const resumed = recordingClaude();
      const resume = await runExecutor({ mode: "resume", prompt: "again" }, claudeEnv(resumed.path, home));
      expect(resume.exitCode, resume.stderr).toBe(0);
      expect(resume.stdout).toStartWith("fake answer");
      expect(resume.stderr).not.toContain("started early");
      expect(resumed.starts()).toHaveLength(1);
      expect(await allGone(resumed.starts())).toBe(true);
    },
    TIMEOUT,
  );

  test(
    "SIGTERM the moment Claude Code starts, before the SDK has loaded: exit 143, Claude Code gone",
    async () => {
      // Claude Code's own start sends the executor its stop: the SDK is still loading then.
      const claude = recordingClaude("kill -TERM $PPID");
      const outcome = await runExecutor(
        {
          mode: "start",
          prompt: "hi",
          project_dir: tempDir("ar-early-project-"),
          executor_config: profileConfig("coding"),
        },
        claudeEnv(claude.path),
      );
      expect(outcome.exitCode).toBe(143);
      expect(outcome.stderr).toContain("Stopped by SIGTERM before the agent finished");
      expect(claude.starts()).toHaveLength(1);
      expect(outcome.stderr).toContain(
        `Claude Code started early (pid ${claude.starts()[0]}) stopped: the run ended first`,
      );
      expect(await allGone(claude.starts())).toBe(true);
    },
    TIMEOUT,
  );
});

describe("EarlyClaudeCode against a request it did not plan", () => {
  test("another request: the early process is stopped and the requested one started; names, never values, logged", async () => {
    const dir = tempDir("ar-early-unit-");
    const lines: string[] = [];
    const log = new ExecutorLog("test-exec", true, (line) => lines.push(line));
    const plan = {
      command: "/bin/sh",
      args: ["-c", "exec sleep 30"],
      cwd: dir,
      env: { PATH: process.env.PATH, A: "1" },
    };
    const early = EarlyClaudeCode.start(plan, log);
    const earlyPid = early.pid!;
    killAfterTest(earlyPid);
    expect(isAlive(earlyPid)).toBe(true);
    let said = () => {};
    const saidRequested = new Promise<void>((resolve) => {
      said = resolve;
    });
    const spawnFor = early.spawner((text) => {
      if (text.includes("requested")) said();
    });
    const abort = new AbortController();
    const given = spawnFor({
      command: "/bin/sh",
      args: ["-c", "echo requested >&2; exec sleep 31"],
      cwd: dir,
      env: { PATH: process.env.PATH, A: "secret-value" },
      signal: abort.signal,
    });
    // As the SDK does: a spawn's errors (here the abort's) go to a listener.
    given.on("error", () => {});
    try {
      // Its stderr is drained and handed on.
      await saidRequested;
      expect(given.killed).toBe(false);
      await early.discard();
      expect(isAlive(earlyPid)).toBe(false);
      expect(lines.join("")).toContain("Claude Code started early not used: the Agent SDK asked for another arguments");
      expect(lines.join("")).toContain("environment (A)");
      expect(lines.join("")).not.toContain("secret-value");
      expect(given.exitCode).toBeNull();
    } finally {
      // The SDK's signal ends what it asked for, as it does for its own processes.
      abort.abort();
    }
    const exit = await new Promise<unknown[]>((resolve) => given.once("exit", (...status) => resolve(status)));
    expect(exit[1]).toBe("SIGTERM");
  });

  test("never asked for: discard() stops it and resolves once it is gone", async () => {
    const log = new ExecutorLog("test-exec", false, () => {});
    const early = EarlyClaudeCode.start(
      {
        command: "/bin/sh",
        args: ["-c", "exec sleep 30"],
        cwd: tempDir("ar-early-unit-"),
        env: { PATH: process.env.PATH },
      },
      log,
    );
    const pid = early.pid!;
    killAfterTest(pid);
    expect(isAlive(pid)).toBe(true);
    await early.discard();
    expect(isAlive(pid)).toBe(false);
  });
});

describe("plannedSpawn", () => {
  const project = tempDir("ar-early-plan-");
  const start = (fields: Record<string, unknown> = {}) =>
    JSON.stringify({
      schema_version: "2.1",
      mode: "start",
      session_id: "s",
      prompt: "p",
      project_dir: project,
      ...fields,
    });
  const env = { PATH: "/usr/bin", CLAUDE_CODE_EXECUTABLE: CLAUDE_CODE_BINARY };

  test("the coding profile: the SDK's arguments for its settings, in the project directory", () => {
    expect(plannedSpawn(start({ executor_config: profileConfig("coding") }), env)).toEqual({
      command: CLAUDE_CODE_BINARY,
      args: [
        "--output-format",
        "stream-json",
        "--verbose",
        "--input-format",
        "stream-json",
        "--model=opus",
        "--setting-sources=project,local",
        "--permission-mode=bypassPermissions",
        "--allow-dangerously-skip-permissions",
      ],
      cwd: project,
      env: sdkEnvironment(env),
    });
  });

  test("invocation 2.2, budgets and an output schema: the SDK's arguments, in its order", () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } } };
    const v22 = JSON.stringify({
      schema_version: "2.2",
      mode: "start",
      session_id: "s",
      parameters: { anything: 1 },
      project_dir: project,
      agent_blueprint: { name: "a", output_schema: schema },
      executor_config: { model: "sonnet", max_turns: 7, max_budget_usd: 0.5, permission_mode: "plan" },
    });
    expect(plannedSpawn(v22, env)?.args).toEqual([
      "--output-format",
      "stream-json",
      "--verbose",
      "--input-format",
      "stream-json",
      "--max-turns=7",
      "--max-budget-usd=0.5",
      "--model=sonnet",
      `--json-schema=${JSON.stringify(schema)}`,
      "--setting-sources=user,project,local",
      "--permission-mode=plan",
    ]);
    // 2.1 has no output schema.
    expect(plannedSpawn(start({ agent_blueprint: { output_schema: schema } }), env)?.args).not.toContain(
      `--json-schema=${JSON.stringify(schema)}`,
    );
  });

  test("none for a resume, MCP servers, settings the validator refuses, a missing directory, SDK debug logs", () => {
    expect(plannedSpawn(start(), env)).toBeDefined();
    for (const text of [
      start({ mode: "resume" }),
      start({ agent_blueprint: { mcp_servers: {} } }),
      start({ executor_config: { permission_mode: "yolo" } }),
      start({ executor_config: { setting_sources: ["user", "nope"] } }),
      start({ executor_config: { model: " " } }),
      start({ executor_config: { max_turns: 0 } }),
      start({ executor_config: { max_turns: 1.5 } }),
      start({ executor_config: { max_budget_usd: 0 } }),
      start({ executor_config: { max_budget_usd: "1" } }),
      start({ schema_version: "2.2" }),
      start({ schema_version: "2.2", parameters: "p" }),
      start({ schema_version: "2.2", parameters: {}, agent_blueprint: { output_schema: "json" } }),
      start({ schema_version: "2.0" }),
      start({ metadata: [] }),
      start({ project_dir: join(project, "missing") }),
      "not json",
    ]) {
      expect(plannedSpawn(text, env)).toBeUndefined();
    }
    expect(plannedSpawn(start(), { ...env, DEBUG_CLAUDE_AGENT_SDK: "1" })).toBeUndefined();
    expect(
      plannedSpawn(start(), { PATH: "/usr/bin", CLAUDE_CODE_EXECUTABLE: join(project, "no-claude") }),
    ).toBeUndefined();
  });

  test("the environment as the SDK passes it", () => {
    const adjusted = sdkEnvironment({
      PATH: "/bin",
      NODE_OPTIONS: "--inspect",
      DEBUG: "1",
      claude_code_question_extended: "1",
      CLAUDE_CODE_ENTRYPOINT: "",
    });
    expect(adjusted).toEqual({
      PATH: "/bin",
      NoDefaultCurrentDirectoryInExePath: "1",
      CLAUDE_AGENT_SDK_VERSION: expect.any(String),
      CLAUDE_CODE_ENTRYPOINT: "sdk-ts",
      CLAUDE_CODE_SDK_READS_SESSION_STATE: "1",
    });
  });
});
