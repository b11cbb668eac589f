import { describe, expect, test } from "bun:test";
import type { ClaudeCodeBinary } from "../../src/executors/claude-code-binary.ts";
import {
  claudeCodeExecutable,
  claudeCodeSettings,
  explainSdkFailure,
  fillEnvPlaceholders,
  mcpServersFor,
  outputSchemaOf,
  promptFor,
  sdkOptionsFor,
} from "../../src/executors/claude-code-options.ts";
import { CLAUDE_CODE_DEFAULTS } from "../../src/executors/claude-code-settings.ts";
import { ExecutorError } from "../../src/executors/kit/run-executor.ts";
import { type Invocation, parseInvocation } from "../../src/protocol/invocation.ts";

function invocation(fields: Partial<Invocation> = {}): Invocation {
  return parseInvocation(
    JSON.stringify({
      schema_version: "2.1",
      mode: "start",
      session_id: "ses_1",
      prompt: "do it",
      project_dir: "/work/p",
      ...fields,
    }),
  );
}

/** A 2.2 start of session `s` with `fields` (its parameters, its blueprint). */
function start22(fields: Record<string, unknown>): Invocation {
  return parseInvocation(JSON.stringify({ schema_version: "2.2", mode: "start", session_id: "s", ...fields }));
}

describe("claudeCodeSettings", () => {
  test("defaults: bypassPermissions, all setting sources, the SDK's model", () => {
    expect(claudeCodeSettings(undefined)).toEqual({
      permissionMode: "bypassPermissions",
      settingSources: ["user", "project", "local"],
    });
    expect(claudeCodeSettings({})).toEqual(CLAUDE_CODE_DEFAULTS);
  });

  test("reads permission_mode, setting_sources and model; ignores unknown keys", () => {
    expect(
      claudeCodeSettings({
        permission_mode: "acceptEdits",
        setting_sources: ["project", "local"],
        model: "opus",
        later_feature: true,
      }),
    ).toEqual({ permissionMode: "acceptEdits", settingSources: ["project", "local"], model: "opus" });
    expect(claudeCodeSettings({ setting_sources: [] }).settingSources).toEqual([]);
  });

  test("a value of the wrong kind is an error naming the key and what is allowed", () => {
    expect(() => claudeCodeSettings({ permission_mode: "yolo" })).toThrow(
      'executor_config: permission_mode must be "acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan" or null (was "yolo")',
    );
    expect(() => claudeCodeSettings({ setting_sources: "project" })).toThrow(
      'executor_config: setting_sources must be an array or null (was "project")',
    );
    expect(() => claudeCodeSettings({ setting_sources: ["project", "global"] })).toThrow(
      'executor_config: setting_sources[1] must be "local", "project" or "user" (was "global")',
    );
    expect(() => claudeCodeSettings({ model: 7 })).toThrow("executor_config: model must be a string or null (was 7)");
    expect(() => claudeCodeSettings({ model: " " })).toThrow("executor_config: model must be a non-empty model name");
  });

  test("budgets: max_budget_usd a number > 0, max_turns an integer >= 1; null means none", () => {
    expect(claudeCodeSettings({ max_budget_usd: 2.5, max_turns: 12 })).toMatchObject({
      maxBudgetUsd: 2.5,
      maxTurns: 12,
    });
    expect(claudeCodeSettings({ max_budget_usd: null, max_turns: null })).toEqual(CLAUDE_CODE_DEFAULTS);
    for (const [config, message] of [
      [{ max_budget_usd: 0 }, "executor_config: max_budget_usd must be positive or null (was 0)"],
      [{ max_budget_usd: -1 }, "executor_config: max_budget_usd must be positive or null (was -1)"],
      [{ max_budget_usd: "2" }, 'executor_config: max_budget_usd must be a number or null (was "2")'],
      [{ max_turns: 0 }, "executor_config: max_turns must be at least 1 or null (was 0)"],
      [{ max_turns: 2.5 }, "executor_config: max_turns must be an integer or null (was 2.5)"],
    ] as const) {
      expect(() => claudeCodeSettings(config)).toThrow(new ExecutorError(message));
    }
  });
});

describe("sdkOptionsFor", () => {
  test("maps executor_config onto the SDK options, cwd = project dir", () => {
    const options = sdkOptionsFor(
      invocation({ executor_config: { permission_mode: "plan", setting_sources: ["project"], model: "sonnet" } }),
      { cwd: "/work/p" },
      {},
    );
    expect(options).toEqual({
      cwd: "/work/p",
      permissionMode: "plan",
      settingSources: ["project"],
      model: "sonnet",
      systemPrompt: { type: "preset", preset: "claude_code" },
    });
  });

  test("without config: the defaults, with the acknowledgement bypassPermissions requires; no model", () => {
    const options = sdkOptionsFor(invocation(), { cwd: "/work/p" }, {});
    expect(options.permissionMode).toBe("bypassPermissions");
    expect(options.allowDangerouslySkipPermissions).toBe(true);
    expect(options.settingSources).toEqual(["user", "project", "local"]);
    expect("model" in options).toBe(false);
    expect("resume" in options).toBe(false);
  });

  test("budgets go to the SDK as maxBudgetUsd and maxTurns", () => {
    const options = sdkOptionsFor(
      invocation({ executor_config: { max_budget_usd: 0.75, max_turns: 4 } }),
      { cwd: "/work/p" },
      {},
    );
    expect(options).toMatchObject({ maxBudgetUsd: 0.75, maxTurns: 4 });
    const none = sdkOptionsFor(invocation(), { cwd: "/work/p" }, {});
    expect("maxBudgetUsd" in none || "maxTurns" in none).toBe(false);
  });

  test("a 2.2 blueprint's output_schema becomes the SDK's JSON Schema output format; 2.1's is not read", () => {
    const outputSchema = { type: "object", properties: { ok: { type: "boolean" } } };
    const v22 = start22({ parameters: { prompt: "p" }, agent_blueprint: { name: "a", output_schema: outputSchema } });
    expect(sdkOptionsFor(v22, { cwd: "/x" }, {}).outputFormat).toEqual({ type: "json_schema", schema: outputSchema });
    expect(outputSchemaOf(v22)).toEqual(outputSchema);
    const v21 = invocation({ agent_blueprint: { name: "a", output_schema: outputSchema } });
    expect("outputFormat" in sdkOptionsFor(v21, { cwd: "/x" }, {})).toBe(false);
    const notAnObject = parseInvocation(JSON.stringify({ ...v22, agent_blueprint: { output_schema: "json please" } }));
    expect(() => outputSchemaOf(notAnObject)).toThrow(
      new ExecutorError('agent_blueprint.output_schema must be a JSON Schema object; got "json please"'),
    );
  });

  test("resume", () => {
    const options = sdkOptionsFor(invocation({ mode: "resume" }), { cwd: "/x", resume: "3f1c-uuid" }, {});
    expect(options.resume).toBe("3f1c-uuid");
  });

  test("blueprint MCP servers are passed with ${VAR} filled in headers and env only", () => {
    const options = sdkOptionsFor(
      invocation({
        agent_blueprint: {
          name: "a",
          mcp_servers: {
            orchestrator: {
              type: "http",
              url: "http://127.0.0.1:9/mcp?s=${AGENT_SESSION_ID}",
              headers: { "X-Agent-Session-Id": "${AGENT_SESSION_ID}", "X-Missing": "${NOT_SET_ANYWHERE}" },
            },
            tool: {
              type: "stdio",
              command: "${TOOL_BIN}",
              args: ["${AGENT_SESSION_ID}"],
              env: { SESSION: "id=${AGENT_SESSION_ID}" },
            },
          },
        },
      }),
      { cwd: "/x" },
      { AGENT_SESSION_ID: "ses_42", TOOL_BIN: "/bin/tool" },
    );
    expect(options.mcpServers).toEqual({
      orchestrator: {
        type: "http",
        url: "http://127.0.0.1:9/mcp?s=${AGENT_SESSION_ID}",
        headers: { "X-Agent-Session-Id": "ses_42", "X-Missing": "${NOT_SET_ANYWHERE}" },
      },
      tool: { type: "stdio", command: "${TOOL_BIN}", args: ["${AGENT_SESSION_ID}"], env: { SESSION: "id=ses_42" } },
    });
  });

  test("invalid executor_config or mcp_servers are errors", () => {
    expect(() => sdkOptionsFor(invocation({ executor_config: { permission_mode: 1 } }), { cwd: "/x" }, {})).toThrow(
      "permission_mode",
    );
    expect(() => mcpServersFor(["a"], {})).toThrow("agent_blueprint.mcp_servers must be an object");
    expect(() => mcpServersFor({ bad: "x" }, {})).toThrow("agent_blueprint.mcp_servers.bad must be an object");
  });
});

describe("claudeCodeExecutable", () => {
  const found = (source: ClaudeCodeBinary["source"]) => ({ found: { path: "/opt/claude", source, from: source } });

  test("a binary from CLAUDE_CODE_EXECUTABLE or PATH is handed to the SDK", () => {
    expect(claudeCodeExecutable({}, found("CLAUDE_CODE_EXECUTABLE"))).toBe("/opt/claude");
    expect(claudeCodeExecutable({}, found("PATH"))).toBe("/opt/claude");
  });

  test("from source, the SDK finds its own platform package: nothing to hand it", () => {
    expect(claudeCodeExecutable({}, found("platform package"))).toBeUndefined();
  });

  test("none found: an executor error listing what was tried", () => {
    expect(() =>
      claudeCodeExecutable({}, { tried: ["CLAUDE_CODE_EXECUTABLE (not set)", "claude on PATH (/bin)"] }),
    ).toThrow(
      new ExecutorError(
        "No Claude Code binary found. Tried: CLAUDE_CODE_EXECUTABLE (not set); claude on PATH (/bin). Set CLAUDE_CODE_EXECUTABLE to the path of a Claude Code executable, install the Agent SDK's platform package beside the runner, or put claude on PATH.",
      ),
    );
  });

  test("looks up CLAUDE_CODE_EXECUTABLE by default", () => {
    expect(claudeCodeExecutable({ CLAUDE_CODE_EXECUTABLE: "/bin/sh" })).toBe("/bin/sh");
    expect(() => claudeCodeExecutable({ CLAUDE_CODE_EXECUTABLE: "/nonexistent/claude" })).toThrow(
      "Tried: CLAUDE_CODE_EXECUTABLE=/nonexistent/claude: /nonexistent/claude does not exist.",
    );
  });
});

describe("prompt and placeholders", () => {
  test("start puts the blueprint's system prompt before the prompt; resume does not", () => {
    const blueprint = { name: "a", system_prompt: "You are careful." };
    expect(promptFor(invocation({ agent_blueprint: blueprint }))).toBe("You are careful.\n\n---\n\ndo it");
    expect(promptFor(invocation({ mode: "resume", agent_blueprint: blueprint }))).toBe("do it");
    expect(promptFor(invocation({ agent_blueprint: { name: "no prompt" } }))).toBe("do it");
  });

  test("later turns of a start get their prompt alone; 2.2 prompts come from the turn's parameters", () => {
    const blueprint = { name: "a", system_prompt: "You are careful." };
    expect(promptFor(invocation({ agent_blueprint: blueprint }), { prompt: "next" }, false)).toBe("next");
    const v22 = start22({
      parameters: { topic: "tides" },
      agent_blueprint: { ...blueprint, parameters_schema: { type: "object" } },
    });
    expect(promptFor(v22)).toBe("You are careful.\n\n---\n\n<inputs>\ntopic: tides\n</inputs>");
  });

  test("fillEnvPlaceholders leaves unknown variables alone", () => {
    expect(fillEnvPlaceholders("${A}-${B}-$C-${A}", { A: "1" })).toBe("1-${B}-$C-1");
  });
});

describe("explainSdkFailure", () => {
  test("the root refusal says to set IS_SANDBOX=1 (or run as non-root / another mode)", () => {
    const message = explainSdkFailure(
      "Claude Code process exited with code 1. stderr: --dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
    );
    expect(message).toContain(
      "refuses permission_mode 'bypassPermissions' when running as root unless IS_SANDBOX=1 is set",
    );
    expect(message).toContain("non-root user");
  });

  test("a missing Claude Code binary points at CLAUDE_CODE_EXECUTABLE", () => {
    expect(explainSdkFailure("Native CLI binary for linux-x64 not found. Reinstall …")).toContain(
      "Set CLAUDE_CODE_EXECUTABLE",
    );
  });

  test("anything else is passed on", () => {
    expect(explainSdkFailure("socket hang up")).toBe("Claude Agent SDK failed: socket hang up");
  });
});
