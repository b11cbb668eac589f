/**
 * The Claude Code executor: runs one agent turn through the official Claude Agent SDK and
 * reports it through the runner's gateway (bind on the SDK's `init` message, user/assistant
 * message events, post_tool events from the PostToolUse hooks, session_stop at the end).
 */
import { existsSync, statSync } from "node:fs";
import {
  type HookCallback,
  type McpServerConfig,
  type Options,
  type PermissionMode,
  query,
  type SDKMessage,
  type SettingSource,
} from "@anthropic-ai/claude-agent-sdk";
import type { Invocation } from "../invocation.ts";
import { JsonObject } from "../json-object.ts";
import {
  type ExecutorContext,
  type ExecutorDefinition,
  ExecutorError,
  type ExecutorIO,
  readSessionForResume,
  runExecutor,
  sessionEvents,
} from "./executor-kit.ts";

const CLAUDE_CODE_EXECUTOR_NAME = "ao-claude-code-exec";

const PERMISSION_MODES = ["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto"] as const;
const SETTING_SOURCES = ["user", "project", "local"] as const;

/** What `executor_config` can set, with the defaults of design §10. */
export interface ClaudeCodeSettings {
  permissionMode: PermissionMode;
  settingSources: SettingSource[];
  /** Undefined: the SDK's default model. */
  model?: string;
}

export const CLAUDE_CODE_DEFAULTS: ClaudeCodeSettings = {
  permissionMode: "bypassPermissions",
  settingSources: ["user", "project", "local"],
};

type Env = Record<string, string | undefined>;

const quoteList = (values: readonly string[]) => values.map((v) => `"${v}"`).join(", ");

/** Reads the keys this executor knows from `executor_config`; other keys are ignored (forward compatibility). */
export function claudeCodeSettings(config: JsonObject | undefined): ClaudeCodeSettings {
  const settings: ClaudeCodeSettings = { ...CLAUDE_CODE_DEFAULTS, settingSources: [...CLAUDE_CODE_DEFAULTS.settingSources] };
  if (!config) return settings;
  const { permission_mode: mode, setting_sources: sources, model } = config;
  if (mode !== undefined && mode !== null) {
    if (typeof mode !== "string" || !(PERMISSION_MODES as readonly string[]).includes(mode)) {
      throw new ExecutorError(
        `executor_config.permission_mode must be one of ${quoteList(PERMISSION_MODES)}; got ${JSON.stringify(mode)}`,
      );
    }
    settings.permissionMode = mode as PermissionMode;
  }
  if (sources !== undefined && sources !== null) {
    if (!Array.isArray(sources) || sources.some((s) => !(SETTING_SOURCES as readonly unknown[]).includes(s))) {
      throw new ExecutorError(
        `executor_config.setting_sources must be a list of ${quoteList(SETTING_SOURCES)}; got ${JSON.stringify(sources)}`,
      );
    }
    settings.settingSources = [...new Set(sources as SettingSource[])];
  }
  if (model !== undefined && model !== null) {
    if (typeof model !== "string" || model.trim() === "") {
      throw new ExecutorError(`executor_config.model must be a non-empty model name; got ${JSON.stringify(model)}`);
    }
    settings.model = model;
  }
  return settings;
}

/** `${VAR}` → the variable's value; a variable that is not set leaves its placeholder as is. */
export function fillEnvPlaceholders(text: string, env: Env): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (placeholder, name: string) => env[name] ?? placeholder);
}

function fillValues(values: unknown, env: Env): unknown {
  if (!JsonObject.allows(values)) return values;
  return Object.fromEntries(
    Object.entries(values).map(([key, value]) => [key, typeof value === "string" ? fillEnvPlaceholders(value, env) : value]),
  );
}

/**
 * The blueprint's MCP servers for the SDK, with `${VAR}` placeholders in `headers` (http/sse) and
 * `env` (stdio) values filled from the executor's environment (e.g. `${AGENT_SESSION_ID}`).
 */
export function mcpServersFor(servers: unknown, env: Env): Record<string, McpServerConfig> {
  if (!JsonObject.allows(servers)) {
    throw new ExecutorError(`agent_blueprint.mcp_servers must be an object of server configs; got ${JSON.stringify(servers)}`);
  }
  const out: Record<string, McpServerConfig> = {};
  for (const [name, config] of Object.entries(servers)) {
    if (!JsonObject.allows(config)) {
      throw new ExecutorError(`agent_blueprint.mcp_servers.${name} must be an object; got ${JSON.stringify(config)}`);
    }
    const filled: Record<string, unknown> = { ...config };
    if ("headers" in filled) filled.headers = fillValues(filled.headers, env);
    if ("env" in filled) filled.env = fillValues(filled.env, env);
    out[name] = filled as McpServerConfig;
  }
  return out;
}

/** The prompt sent to the agent: on start the blueprint's system prompt goes first (design §10). */
export function promptFor(invocation: Invocation): string {
  const systemPrompt = invocation.agent_blueprint?.system_prompt;
  if (invocation.mode === "start" && typeof systemPrompt === "string" && systemPrompt.trim() !== "") {
    return `${systemPrompt}\n\n---\n\n${invocation.prompt}`;
  }
  return invocation.prompt;
}

/** Where the agent works and which SDK session it continues. */
export interface SessionTarget {
  cwd: string;
  /** The SDK session to resume (the coordinator's `executor_session_id`). */
  resume?: string;
}

/**
 * The Claude Agent SDK options for an invocation: pure data, from `executor_config` (with defaults),
 * the blueprint and the environment. Hooks and process plumbing are added by the caller.
 */
export function sdkOptionsFor(invocation: Invocation, target: SessionTarget, env: Env = process.env): Options {
  const settings = claudeCodeSettings(invocation.executor_config);
  const options: Options = {
    cwd: target.cwd,
    permissionMode: settings.permissionMode,
    settingSources: settings.settingSources,
    // The agent is a Claude Code agent: keep Claude Code's own system prompt and tools. The
    // blueprint's system prompt travels in the prompt (design §10).
    systemPrompt: { type: "preset", preset: "claude_code" },
  };
  // The SDK refuses bypassPermissions without this explicit acknowledgement.
  if (settings.permissionMode === "bypassPermissions") options.allowDangerouslySkipPermissions = true;
  if (settings.model) options.model = settings.model;
  if (target.resume) options.resume = target.resume;
  const mcpServers = invocation.agent_blueprint?.mcp_servers;
  if (mcpServers !== undefined && mcpServers !== null) options.mcpServers = mcpServersFor(mcpServers, env);
  const executable = env.CLAUDE_CODE_EXECUTABLE;
  if (executable) options.pathToClaudeCodeExecutable = executable;
  return options;
}

const ROOT_REFUSAL = /cannot be used with root\/sudo privileges/;
const BINARY_NOT_FOUND = /Native CLI binary for .* not found/;

/** Turns what the SDK threw into a message that says what to do. */
export function explainSdkFailure(message: string): string {
  if (ROOT_REFUSAL.test(message)) {
    return (
      "Claude Code refuses permission_mode 'bypassPermissions' when running as root unless IS_SANDBOX=1 is set. " +
      "Run the runner as a non-root user, set IS_SANDBOX=1 in its environment if this machine is a disposable " +
      `sandbox (container, VM), or use a profile with another permission_mode. (Claude Code said: ${message.trim()})`
    );
  }
  if (BINARY_NOT_FOUND.test(message)) {
    return (
      "The Claude Code binary that the Agent SDK runs was not found (it ships in the optional package " +
      `@anthropic-ai/claude-agent-sdk-${process.platform}-${process.arch}, which a compiled runner does not carry). ` +
      `Set CLAUDE_CODE_EXECUTABLE to the path of a Claude Code executable. (SDK: ${message.trim()})`
    );
  }
  return `Claude Agent SDK failed: ${message.trim()}`;
}

function checkDirectory(path: string, what: string): void {
  if (!existsSync(path)) throw new ExecutorError(`${what} ${path} does not exist`);
  if (!statSync(path).isDirectory()) throw new ExecutorError(`${what} ${path} is not a directory`);
}

async function sessionTarget(invocation: Invocation, context: ExecutorContext): Promise<SessionTarget> {
  if (invocation.mode === "start") {
    checkDirectory(invocation.project_dir!, "project_dir");
    return { cwd: invocation.project_dir! };
  }
  const session = await readSessionForResume(context.gateway, invocation.session_id);
  if (!session.executor_session_id) {
    throw new ExecutorError(
      `Cannot resume session '${invocation.session_id}': it has no executor_session_id (its start never bound a Claude Code session)`,
    );
  }
  const cwd = session.project_dir || invocation.project_dir || process.cwd();
  checkDirectory(cwd, `Project directory of session '${invocation.session_id}'`);
  return { cwd, resume: session.executor_session_id };
}

function resultFailure(message: Extract<SDKMessage, { type: "result" }>): string | undefined {
  if (message.subtype === "success") return message.is_error ? message.result || "the turn ended on an error" : undefined;
  const errors = "errors" in message && Array.isArray(message.errors) ? message.errors.join("; ") : "";
  return `${message.subtype}${errors ? `: ${errors}` : ""}`;
}

async function run(invocation: Invocation, context: ExecutorContext): Promise<string> {
  const { reporter, log, env } = context;
  const sessionId = invocation.session_id;
  const target = await sessionTarget(invocation, context);
  const options = sdkOptionsFor(invocation, target, env);
  const prompt = promptFor(invocation);

  const postTool: HookCallback = async (input) => {
    if (input.hook_event_name === "PostToolUse") {
      await reporter.event(
        sessionEvents.postTool(sessionId, { name: input.tool_name, input: input.tool_input, output: input.tool_response, error: null }),
      );
    } else if (input.hook_event_name === "PostToolUseFailure") {
      await reporter.event(
        sessionEvents.postTool(sessionId, { name: input.tool_name, input: input.tool_input, output: null, error: input.error }),
      );
    }
    return { continue: true };
  };
  options.hooks = { PostToolUse: [{ hooks: [postTool] }], PostToolUseFailure: [{ hooks: [postTool] }] };
  options.stderr = (data) => log.debug(`claude: ${data.trimEnd()}`);
  // A stopped run (SIGTERM from the runner) ends the Claude Code process too.
  const abortController = new AbortController();
  options.abortController = abortController;
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy = signal;
    abortController.abort();
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);

  log.debug(
    () =>
      `SDK options: cwd=${options.cwd} permissionMode=${options.permissionMode} settingSources=${JSON.stringify(options.settingSources)} model=${options.model ?? "(SDK default)"} resume=${options.resume ?? "-"} mcpServers=${Object.keys(options.mcpServers ?? {}).join(",") || "-"}`,
  );

  let executorSessionId: string | undefined;
  let result: string | undefined;
  let failure: string | undefined;
  try {
    for await (const message of query({ prompt, options })) {
      if (message.type === "system" && message.subtype === "init" && executorSessionId === undefined) {
        executorSessionId = message.session_id;
        log.debug(`Claude Code session ${executorSessionId} (model ${message.model}, permission mode ${message.permissionMode})`);
        await reporter.bind(executorSessionId, target.cwd);
        if (invocation.mode === "resume") {
          await reporter.event(sessionEvents.sessionStart(sessionId));
          await reporter.markResumed();
        }
        await reporter.message("user", prompt);
      } else if (message.type === "result") {
        failure = resultFailure(message);
        if (!failure && message.subtype === "success") {
          result = message.result;
          await reporter.message("assistant", result);
        }
      }
    }
  } catch (error) {
    if (!stoppedBy) throw new ExecutorError(explainSdkFailure((error as Error)?.message ?? String(error)));
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
  if (stoppedBy) {
    // Exit as a process that signal ended would (128 + signal number), Claude Code stopped first.
    throw new ExecutorError(`Stopped by ${stoppedBy} before the agent finished`, stoppedBy === "SIGINT" ? 130 : 143);
  }
  if (failure) throw new ExecutorError(`Claude Code ended the turn with an error: ${failure}`);
  if (result === undefined) throw new ExecutorError("Claude Code ended without a result message");
  await reporter.event(sessionEvents.sessionStop(sessionId, 0, "completed"));
  return result;
}

const claudeCodeExecutor: ExecutorDefinition = {
  name: CLAUDE_CODE_EXECUTOR_NAME,
  summary: "runs a Claude Code agent through the Claude Agent SDK",
  details: `executor_config (other keys are ignored):
  permission_mode   ${PERMISSION_MODES.join(" | ")} (default bypassPermissions)
  setting_sources   list of ${SETTING_SOURCES.join(", ")} (default ["user", "project", "local"])
  model             model name or alias (default: the SDK's default model)

Start: works in project_dir; the blueprint's system_prompt goes before the prompt
("<system_prompt>\\n\\n---\\n\\n<prompt>"); the blueprint's mcp_servers are passed with \${VAR}
placeholders in headers/env filled from the environment. Resume: continues the Claude Code session
recorded as executor_session_id (GET /sessions/{id}), without the system prompt.

Claude Code refuses bypassPermissions as root unless IS_SANDBOX=1 is set.
CLAUDE_CODE_EXECUTABLE   path of the Claude Code binary (needed by the compiled runner, which does
                         not carry @anthropic-ai/claude-agent-sdk-<platform>)
Claude Code itself reads ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, CLAUDE_CONFIG_DIR, etc.`,
  run,
};

/** Entry point: returns the exit code. */
export function main(argv: string[], io?: ExecutorIO): Promise<number> {
  return runExecutor(claudeCodeExecutor, argv, io);
}
