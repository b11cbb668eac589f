/**
 * The Claude Code executor: runs one agent turn through the official Claude Agent SDK and
 * reports it through the runner's gateway (bind on the SDK's `init` message, user/assistant
 * message events, post_tool events from the PostToolUse hooks, session_stop at the end). The SDK
 * comes from its `/core` entry: the same `query()`, a quarter of the code loaded up front, and
 * zod and the MCP SDK taken from our own dependencies rather than inlined a second time.
 */
import { existsSync, statSync } from "node:fs";
import { type HookCallback, query, type SDKMessage } from "@anthropic-ai/claude-agent-sdk/core";
import type { Invocation } from "../protocol/invocation.ts";
import { sessionEvents } from "../protocol/session-events.ts";
import { messageOf } from "../shared/errors.ts";
import type { EarlyClaudeCode } from "./claude-code-early.ts";
import {
  claudeCodeExecutable,
  explainSdkFailure,
  promptFor,
  type SessionTarget,
  sdkOptionsFor,
} from "./claude-code-options.ts";
import { CLAUDE_CODE_EXECUTOR_NAME, PERMISSION_MODES, SETTING_SOURCES } from "./claude-code-settings.ts";
import {
  type ExecutorContext,
  type ExecutorDefinition,
  ExecutorError,
  type ExecutorIO,
  readSessionForResume,
  runExecutor,
  standardIO,
} from "./kit/run-executor.ts";
import type { StopWatch } from "./kit/stop-watch.ts";

function checkDirectory(path: string, what: string): void {
  if (!existsSync(path)) throw new ExecutorError(`${what} ${path} does not exist`);
  if (!statSync(path).isDirectory()) throw new ExecutorError(`${what} ${path} is not a directory`);
}

async function sessionTarget(invocation: Invocation, context: ExecutorContext): Promise<SessionTarget> {
  if (invocation.mode === "start") {
    if (invocation.project_dir === undefined) return { cwd: process.cwd() };
    checkDirectory(invocation.project_dir, "project_dir");
    return { cwd: invocation.project_dir };
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
  if (message.subtype === "success")
    return message.is_error ? message.result || "the turn ended on an error" : undefined;
  const errors = "errors" in message && Array.isArray(message.errors) ? message.errors.join("; ") : "";
  return `${message.subtype}${errors ? `: ${errors}` : ""}`;
}

async function run(invocation: Invocation, context: ExecutorContext, early?: EarlyClaudeCode): Promise<string> {
  const { reporter, log, env } = context;
  const sessionId = invocation.session_id;
  const target = await sessionTarget(invocation, context);
  const options = sdkOptionsFor(invocation, target, env);
  const executable = claudeCodeExecutable(env);
  if (executable) options.pathToClaudeCodeExecutable = executable;
  const prompt = promptFor(invocation);

  const postTool: HookCallback = async (input) => {
    if (input.hook_event_name === "PostToolUse") {
      await reporter.event(
        sessionEvents.postTool(sessionId, {
          name: input.tool_name,
          input: input.tool_input,
          output: input.tool_response,
          error: null,
        }),
      );
    } else if (input.hook_event_name === "PostToolUseFailure") {
      await reporter.event(
        sessionEvents.postTool(sessionId, {
          name: input.tool_name,
          input: input.tool_input,
          output: null,
          error: input.error,
        }),
      );
    }
    return { continue: true };
  };
  options.hooks = { PostToolUse: [{ hooks: [postTool] }], PostToolUseFailure: [{ hooks: [postTool] }] };
  options.stderr = (data) => log.debug(`claude: ${data.trimEnd()}`);
  // Started before the SDK loaded (claude-code-early.ts): the SDK gets it if it asks for exactly it.
  if (early) options.spawnClaudeCodeProcess = early.spawner(options.stderr);
  // A stopped run (SIGTERM from the runner, or the runner gone) ends the Claude Code process too.
  const abortController = new AbortController();
  options.abortController = abortController;
  const abort = () => abortController.abort();
  if (context.signal.aborted) abort();
  context.signal.addEventListener("abort", abort, { once: true });

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
        log.debug(
          `Claude Code session ${executorSessionId} (model ${message.model}, permission mode ${message.permissionMode})`,
        );
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
    if (!context.signal.aborted) {
      const message = messageOf(error);
      throw new ExecutorError(explainSdkFailure(early ? await early.explain(message) : message));
    }
  } finally {
    context.signal.removeEventListener("abort", abort);
  }
  // Claude Code has been stopped; the kit says why and exits accordingly.
  context.signal.throwIfAborted();
  if (failure) throw new ExecutorError(`Claude Code ended the turn with an error: ${failure}`);
  if (result === undefined) throw new ExecutorError("Claude Code ended without a result message");
  await reporter.event(sessionEvents.sessionStop(sessionId, 0, "completed"));
  return result;
}

const claudeCodeExecutor = (early?: EarlyClaudeCode): ExecutorDefinition => ({
  name: CLAUDE_CODE_EXECUTOR_NAME,
  summary: "runs a Claude Code agent through the Claude Agent SDK",
  details: `executor_config (other keys are ignored):
  permission_mode   ${PERMISSION_MODES.join(" | ")} (default bypassPermissions)
  setting_sources   list of ${SETTING_SOURCES.join(", ")} (default ["user", "project", "local"])
  model             model name or alias (default: the SDK's default model)

Start: works in project_dir (else the current directory); the blueprint's system_prompt goes before the prompt
("<system_prompt>\\n\\n---\\n\\n<prompt>"); the blueprint's mcp_servers are passed with \${VAR}
placeholders in headers/env filled from the environment. Resume: continues the Claude Code session
recorded as executor_session_id (GET /sessions/{id}), without the system prompt.

Claude Code refuses bypassPermissions as root unless IS_SANDBOX=1 is set.
CLAUDE_CODE_EXECUTABLE   path of the Claude Code binary. Without it: the SDK's platform package
                         (@anthropic-ai/claude-agent-sdk-<platform>-<arch>) in a node_modules at or
                         above the runner's directory (beside the compiled executable), then
                         claude on PATH
Claude Code itself reads ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, CLAUDE_CONFIG_DIR, etc.`,
  run: (invocation, context) => run(invocation, context, early),
});

/** What claude-code-entry.ts has done before loading this module. */
export interface EntryStart {
  stop: StopWatch;
  /** The invocation, already read from stdin. */
  stdin: string;
  early?: EarlyClaudeCode;
}

/** Runs the executor; returns the exit code. */
export function main(argv: string[], io?: ExecutorIO, start?: EntryStart): Promise<number> {
  if (!start) return runExecutor(claudeCodeExecutor(), argv, io);
  const entryIO = { ...(io ?? standardIO()), readStdin: async () => start.stdin };
  return runExecutor(claudeCodeExecutor(start.early), argv, entryIO, start.stop);
}
