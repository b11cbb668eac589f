/**
 * What the Claude Code executor hands the Agent SDK: settings from `executor_config` (with
 * defaults), the blueprint's MCP servers and prompt, and SDK failures explained. Pure data, no SDK
 * code: only its types.
 */
import type { McpServerConfig, Options } from "@anthropic-ai/claude-agent-sdk/core";
import type { RootSchema } from "@ark/schema";
import { isCompiled } from "../config/install-dir.ts";
import { type Invocation, invocationParameters, turnPrompt } from "../protocol/invocation.ts";
import type { Env } from "../shared/env.ts";
import { JsonObject, schemaValidator, validate } from "../shared/validation.ts";
import { type ClaudeCodeLookup, claudeCodeNotFound, findClaudeCode } from "./claude-code-binary.ts";
import {
  type ClaudeCodeConfig,
  type ClaudeCodeSettings,
  PERMISSION_MODES,
  SETTING_SOURCES,
  settingsOf,
} from "./claude-code-settings.ts";
import { ExecutorError } from "./kit/run-executor.ts";

const units = (values: readonly string[]) => values.map((unit) => ({ unit }));
/** The keys this executor reads from `executor_config`; other keys are ignored. */
const ClaudeCodeConfigSchema = schemaValidator<ClaudeCodeConfig>({
  domain: "object",
  optional: [
    { key: "permission_mode", value: [...units(PERMISSION_MODES), { unit: null }] },
    {
      key: "setting_sources",
      value: [{ proto: "Array", sequence: { variadic: units(SETTING_SOURCES) } }, { unit: null }],
    },
    {
      key: "model",
      value: [
        {
          domain: "string",
          predicate: [(model: string, ctx) => model.trim() !== "" || ctx.mustBe("a non-empty model name")],
        },
        { unit: null },
      ],
    },
    { key: "max_budget_usd", value: [{ domain: "number", min: { rule: 0, exclusive: true } }, { unit: null }] },
    { key: "max_turns", value: [{ domain: "number", divisor: 1, min: 1 }, { unit: null }] },
  ],
} satisfies RootSchema);

/** Reads the keys this executor knows from `executor_config`; other keys are ignored (forward compatibility). */
export function claudeCodeSettings(config: JsonObject | undefined): ClaudeCodeSettings {
  return settingsOf(config ? validate(config, ClaudeCodeConfigSchema, "executor_config", ExecutorError) : {});
}

/** `${VAR}` → the variable's value; a variable that is not set leaves its placeholder as is. */
export function fillEnvPlaceholders(text: string, env: Env): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (placeholder, name: string) => env[name] ?? placeholder);
}

function fillValues(values: unknown, env: Env): unknown {
  if (!JsonObject.allows(values)) return values;
  return Object.fromEntries(
    Object.entries(values).map(([key, value]) => [
      key,
      typeof value === "string" ? fillEnvPlaceholders(value, env) : value,
    ]),
  );
}

/**
 * The blueprint's MCP servers for the SDK, with `${VAR}` placeholders in `headers` (http/sse) and
 * `env` (stdio) values filled from the executor's environment (e.g. `${AGENT_SESSION_ID}`).
 */
export function mcpServersFor(servers: unknown, env: Env): Record<string, McpServerConfig> {
  if (!JsonObject.allows(servers)) {
    throw new ExecutorError(
      `agent_blueprint.mcp_servers must be an object of server configs; got ${JSON.stringify(servers)}`,
    );
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

/**
 * The prompt sent to the agent for a turn's parameters (turnPrompt: 2.2's inputs block for an
 * agent with a parameters_schema): on the first turn of a start the blueprint's system prompt goes first.
 */
export function promptFor(
  invocation: Invocation,
  parameters: JsonObject = invocationParameters(invocation),
  firstTurn = true,
): string {
  const prompt = turnPrompt(invocation, parameters);
  const systemPrompt = invocation.agent_blueprint?.system_prompt;
  if (firstTurn && invocation.mode === "start" && typeof systemPrompt === "string" && systemPrompt.trim() !== "") {
    return `${systemPrompt}\n\n---\n\n${prompt}`;
  }
  return prompt;
}

/**
 * The JSON Schema of the structured output the blueprint asks for (invocation 2.2 only: 2.1's
 * blueprints have none), or undefined. One that is not an object is an ExecutorError.
 */
export function outputSchemaOf(invocation: Invocation): JsonObject | undefined {
  if (invocation.schema_version !== "2.2") return undefined;
  const schema = invocation.agent_blueprint?.output_schema;
  if (schema === undefined || schema === null) return undefined;
  if (!JsonObject.allows(schema)) {
    throw new ExecutorError(
      `agent_blueprint.output_schema must be a JSON Schema object; got ${JSON.stringify(schema)}`,
    );
  }
  return schema;
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
    // blueprint's system prompt travels in the prompt.
    systemPrompt: { type: "preset", preset: "claude_code" },
  };
  // The SDK refuses bypassPermissions without this explicit acknowledgement.
  if (settings.permissionMode === "bypassPermissions") options.allowDangerouslySkipPermissions = true;
  if (settings.model) options.model = settings.model;
  if (settings.maxTurns !== undefined) options.maxTurns = settings.maxTurns;
  if (settings.maxBudgetUsd !== undefined) options.maxBudgetUsd = settings.maxBudgetUsd;
  const outputSchema = outputSchemaOf(invocation);
  if (outputSchema) options.outputFormat = { type: "json_schema", schema: outputSchema };
  if (target.resume) options.resume = target.resume;
  const mcpServers = invocation.agent_blueprint?.mcp_servers;
  if (mcpServers !== undefined && mcpServers !== null) options.mcpServers = mcpServersFor(mcpServers, env);
  return options;
}

/**
 * The Claude Code binary to hand the SDK (`pathToClaudeCodeExecutable`), or undefined when the SDK
 * finds the same one itself: its platform package, run from source. (Naming a binary also makes
 * the SDK warn about how it passes MCP servers.) None found is an ExecutorError listing what was tried.
 */
export function claudeCodeExecutable(env: Env, lookup: ClaudeCodeLookup = findClaudeCode(env)): string | undefined {
  if ("tried" in lookup) throw new ExecutorError(claudeCodeNotFound(lookup.tried));
  const { path, source } = lookup.found;
  return source === "platform package" && !isCompiled ? undefined : path;
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
