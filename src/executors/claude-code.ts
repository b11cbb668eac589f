/**
 * The Claude Code executor: runs an agent session through the official Claude Agent SDK, one
 * Claude Code process for all its turns (one, or a persistent session's), and reports it through
 * the runner's gateway (bind on the SDK's `init` message, user/assistant message events, post_tool
 * events from the PostToolUse hooks, a usage event per turn, session_stop at the end). The SDK
 * comes from its `/core` entry: the same `query()`, a quarter of the code loaded up front, and
 * zod and the MCP SDK taken from our own dependencies rather than inlined a second time.
 */
import { existsSync, statSync } from "node:fs";
import {
  type HookCallback,
  type Options,
  type Query,
  query,
  type SDKMessage,
  type SDKUserMessage,
} from "@anthropic-ai/claude-agent-sdk/core";
import type { Invocation } from "../protocol/invocation.ts";
import { sessionEvents, type TurnUsage } from "../protocol/session-events.ts";
import { messageOf } from "../shared/errors.ts";
import { JsonObject } from "../shared/validation.ts";
import type { EarlyClaudeCode } from "./claude-code-early.ts";
import {
  claudeCodeExecutable,
  explainSdkFailure,
  promptFor,
  type SessionTarget,
  sdkOptionsFor,
} from "./claude-code-options.ts";
import { CLAUDE_CODE_EXECUTOR_NAME, PERMISSION_MODES, SETTING_SOURCES } from "./claude-code-settings.ts";
import { AsyncQueue } from "./kit/async-queue.ts";
import {
  type EntryStart,
  type ExecutorContext,
  type ExecutorDefinition,
  ExecutorError,
  type ExecutorIO,
  type ExecutorSession,
  readSessionForResume,
  runExecutor,
  standardIO,
  type TurnOutcome,
} from "./kit/run-executor.ts";
import type { StdinReader } from "./kit/stdin-reader.ts";

/** After a failed turn, how long Claude Code gets to end by itself before it is closed. */
const CLOSE_GRACE_MS = 5000;

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

type ResultMessage = Extract<SDKMessage, { type: "result" }>;

/** `$2.00`, or as written when it has more than cents (`$0.005`). */
const usd = (amount: number) => (Number.isInteger(amount * 100) ? `$${amount.toFixed(2)}` : `$${amount}`);

/** Why a turn's result is a failure, for the run's error; undefined for a success. */
function resultFailure(message: ResultMessage, options: Options): string | undefined {
  switch (message.subtype) {
    case "success":
      if (!message.is_error) return undefined;
      return `Claude Code ended the turn with an error: ${message.result || "the turn ended on an error"}`;
    case "error_max_budget_usd":
      return `Claude Code stopped the turn: budget of ${usd(options.maxBudgetUsd ?? 0)} reached after ${message.num_turns} turn${message.num_turns === 1 ? "" : "s"} (executor_config.max_budget_usd)`;
    case "error_max_turns":
      return `Claude Code stopped the turn: turn limit of ${options.maxTurns} reached (executor_config.max_turns)`;
    case "error_max_structured_output_retries":
      return "Claude Code ended the turn without output matching the blueprint's output_schema (it gave up retrying)";
    default: {
      const errors = Array.isArray(message.errors) ? message.errors.join("; ") : "";
      return `Claude Code ended the turn with an error: ${message.subtype}${errors ? `: ${errors}` : ""}`;
    }
  }
}

/** What the turn used, as the SDK's result reports it. */
function turnUsage(message: ResultMessage): TurnUsage {
  return {
    input_tokens: message.usage.input_tokens,
    output_tokens: message.usage.output_tokens,
    cache_read_input_tokens: message.usage.cache_read_input_tokens,
    cache_creation_input_tokens: message.usage.cache_creation_input_tokens,
    total_cost_usd: message.total_cost_usd,
    num_turns: message.num_turns,
    duration_ms: message.duration_ms,
    duration_api_ms: message.duration_api_ms,
  };
}

/** The text blocks of an agent's own message (not a subagent's), joined; undefined when it has none. */
function assistantText(message: SDKMessage): string | undefined {
  if (message.type !== "assistant" || message.parent_tool_use_id !== null) return undefined;
  const text = message.message.content.flatMap((block) => (block.type === "text" ? [block.text] : [])).join("");
  return text === "" ? undefined : text;
}

/** A prompt as the Agent SDK's streaming input takes it: a persistent session gets one per turn. */
const userMessage = (prompt: string): SDKUserMessage => ({
  type: "user",
  message: { role: "user", content: prompt },
  parent_tool_use_id: null,
});

/**
 * One Claude Code session through the Agent SDK: one Claude Code process for all its turns. A
 * one-shot session hands the SDK its one prompt; a persistent one streams a user message per turn
 * (the SDK starts the same process either way).
 */
class ClaudeCodeSession implements ExecutorSession {
  private query?: Query;
  private messages?: AsyncIterator<SDKMessage, void>;
  /** A persistent session's prompts; ending it closes Claude Code's input, and Claude Code exits. */
  private prompts?: AsyncQueue<SDKUserMessage>;
  private turns = 0;
  private executorSessionId?: string;
  private interruptRequested = false;
  /** The last turn was cut short by an interrupt. */
  private lastInterrupted = false;
  private ended = false;
  private readonly onStop: () => void;

  constructor(
    private readonly invocation: Invocation,
    private readonly context: ExecutorContext,
    private readonly target: SessionTarget,
    private readonly options: Options,
    private readonly early: EarlyClaudeCode | undefined,
  ) {
    // A stopped run (SIGTERM from the runner, or the runner gone) ends the Claude Code process too.
    const abortController = new AbortController();
    options.abortController = abortController;
    this.onStop = () => abortController.abort();
    if (context.signal.aborted) this.onStop();
    context.signal.addEventListener("abort", this.onStop, { once: true });
  }

  async turn(parameters: JsonObject): Promise<TurnOutcome> {
    const { reporter } = this.context;
    const firstTurn = this.turns++ === 0;
    const prompt = promptFor(this.invocation, parameters, firstTurn);
    this.interruptRequested = false;
    if (firstTurn) this.open(prompt);
    else {
      this.prompts?.push(userMessage(prompt));
      await reporter.message("user", prompt);
    }
    let lastText: string | undefined;
    for (;;) {
      const message = await this.nextMessage();
      if (message === undefined) throw new ExecutorError("Claude Code ended without a result message");
      lastText = assistantText(message) ?? lastText;
      if (message.type === "system" && message.subtype === "init" && this.executorSessionId === undefined) {
        await this.bound(message.session_id, message.model, message.permissionMode, prompt);
      } else if (message.type === "result") {
        return this.outcome(message, lastText);
      }
    }
  }

  interrupt(): void {
    if (!this.query || !this.prompts) return;
    this.interruptRequested = true;
    this.query.interrupt().catch((error) => this.context.log.warn(`interrupt not delivered: ${messageOf(error)}`));
  }

  async finish(): Promise<void> {
    const { reporter, log } = this.context;
    this.prompts?.end();
    try {
      while ((await this.nextMessage()) !== undefined) {}
    } catch (error) {
      // Every turn has been answered; how Claude Code closes does not change what they gave.
      if (!this.prompts || this.context.signal.aborted) throw error;
      // After an interrupted turn, Claude Code's exit reports that turn's error result: expected.
      const say = this.lastInterrupted ? log.debug.bind(log) : log.warn.bind(log);
      say(`Claude Code ended with an error after the session's last turn: ${messageOf(error)}`);
    }
    this.ended = true;
    await reporter.event(sessionEvents.sessionStop(this.invocation.session_id, 0, "completed"));
  }

  async dispose(): Promise<void> {
    const { signal } = this.context;
    if (!this.ended && this.query && !signal.aborted) {
      // A turn failed: Claude Code ends by itself once its input is closed, its transcript whole
      // for a later resume. It gets a while for that (a stop ends the wait), then goes.
      this.prompts?.end();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onStop = () => {};
      await Promise.race([
        (async () => {
          while ((await this.nextMessage()) !== undefined) {}
        })().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, CLOSE_GRACE_MS);
          onStop = () => resolve(undefined);
          signal.addEventListener("abort", onStop, { once: true });
        }),
      ]);
      clearTimeout(timer);
      signal.removeEventListener("abort", onStop);
    }
    signal.removeEventListener("abort", this.onStop);
    // Claude Code must not outlive the executor.
    if (!this.ended) this.query?.close();
  }

  private open(prompt: string): void {
    const { log } = this.context;
    const { options } = this;
    log.debug(
      () =>
        `SDK options: cwd=${options.cwd} permissionMode=${options.permissionMode} settingSources=${JSON.stringify(options.settingSources)} model=${options.model ?? "(SDK default)"} resume=${options.resume ?? "-"} mcpServers=${Object.keys(options.mcpServers ?? {}).join(",") || "-"} maxTurns=${options.maxTurns ?? "-"} maxBudgetUsd=${options.maxBudgetUsd ?? "-"} outputFormat=${options.outputFormat ? "json_schema" : "-"} input=${this.context.lifecycle === "persistent" ? "streamed" : "one prompt"}`,
    );
    if (this.context.lifecycle === "persistent") {
      this.prompts = new AsyncQueue<SDKUserMessage>();
      this.prompts.push(userMessage(prompt));
      this.query = query({ prompt: this.prompts, options });
    } else this.query = query({ prompt, options });
    this.messages = this.query[Symbol.asyncIterator]();
  }

  /** The SDK's next message, undefined once Claude Code has ended; SDK failures explained. */
  private async nextMessage(): Promise<SDKMessage | undefined> {
    if (!this.messages) return undefined;
    try {
      const next = await this.messages.next();
      return next.done ? undefined : next.value;
    } catch (error) {
      // Claude Code has been stopped; the kit says why and exits accordingly.
      this.context.signal.throwIfAborted();
      const message = messageOf(error);
      throw new ExecutorError(explainSdkFailure(this.early ? await this.early.explain(message) : message));
    }
  }

  /** Claude Code's session has its id: bound, and on resume announced, then the first prompt reported. */
  private async bound(executorSessionId: string, model: string, permissionMode: string, prompt: string) {
    const { reporter, log } = this.context;
    this.executorSessionId = executorSessionId;
    log.debug(`Claude Code session ${executorSessionId} (model ${model}, permission mode ${permissionMode})`);
    await reporter.bind(executorSessionId, this.target.cwd);
    if (this.invocation.mode === "resume") {
      await reporter.event(sessionEvents.sessionStart(this.invocation.session_id));
      await reporter.markResumed();
    }
    await reporter.message("user", prompt);
  }

  /** The turn's result: its answer reported, then what it used; or the failure that ends the run. */
  private async outcome(message: ResultMessage, lastText: string | undefined): Promise<TurnOutcome> {
    const outcome = this.read(message, lastText);
    this.lastInterrupted = "interrupted" in outcome && outcome.interrupted === true;
    const answer = "result" in outcome && !outcome.data ? outcome.result : "";
    if (answer !== "") await this.context.reporter.message("assistant", answer);
    await this.context.reporter.event(sessionEvents.usage(this.invocation.session_id, turnUsage(message)));
    if ("failure" in outcome) throw new ExecutorError(outcome.failure);
    return outcome;
  }

  /** What a result message says about the turn. */
  private read(message: ResultMessage, lastText: string | undefined): TurnOutcome | { failure: string } {
    const success = message.subtype === "success" && !message.is_error;
    if (this.interruptRequested && !(success && message.terminal_reason === "completed")) {
      // Cut short: what the agent had said by then, if anything.
      return { result: message.subtype === "success" ? message.result : (lastText ?? ""), interrupted: true };
    }
    const failure = resultFailure(message, this.options);
    if (failure || message.subtype !== "success") return { failure: failure ?? message.subtype };
    if (!this.options.outputFormat) return { result: message.result };
    // Structured output: the result event carries it (the kit sends it), no assistant message.
    const data = message.structured_output;
    if (!JsonObject.allows(data)) {
      return {
        failure: `Claude Code ended the turn without structured output matching the blueprint's output_schema (got ${data === undefined ? "none" : JSON.stringify(data)})`,
      };
    }
    return { result: JSON.stringify(data), data };
  }
}

async function startSession(
  invocation: Invocation,
  context: ExecutorContext,
  early?: EarlyClaudeCode,
): Promise<ExecutorSession> {
  const { reporter, log, env } = context;
  const sessionId = invocation.session_id;
  const target = await sessionTarget(invocation, context);
  const options = sdkOptionsFor(invocation, target, env);
  const executable = claudeCodeExecutable(env);
  if (executable) options.pathToClaudeCodeExecutable = executable;

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
  return new ClaudeCodeSession(invocation, context, target, options, early);
}

const claudeCodeExecutor = (early?: EarlyClaudeCode): ExecutorDefinition => ({
  name: CLAUDE_CODE_EXECUTOR_NAME,
  summary: "runs a Claude Code agent through the Claude Agent SDK",
  details: `executor_config (other keys are ignored):
  permission_mode   ${PERMISSION_MODES.join(" | ")} (default bypassPermissions)
  setting_sources   list of ${SETTING_SOURCES.join(", ")} (default ["user", "project", "local"])
  model             model name or alias (default: the SDK's default model)
  max_budget_usd    number > 0: what one Claude Code process may spend, as the SDK estimates it (a
                    one-shot run, or all turns of a persistent session); the turn that reaches it fails
  max_turns         integer >= 1: model round trips per turn; the turn that reaches it fails

Start: works in project_dir (else the current directory); the blueprint's system_prompt goes before the first
prompt ("<system_prompt>\\n\\n---\\n\\n<prompt>"); the blueprint's mcp_servers are passed with \${VAR}
placeholders in headers/env filled from the environment. Resume: continues the Claude Code session
recorded as executor_session_id (GET /sessions/{id}), without the system prompt. Invocation 2.2: the
prompt is parameters.prompt, or every parameter as an <inputs> block for a blueprint with a
parameters_schema; a blueprint's output_schema asks Claude Code for structured output (the result).
Each turn sends a usage event (tokens, cost, duration); a persistent session keeps one Claude Code
process for all its turns, and an interrupt ends the running turn.

Claude Code refuses bypassPermissions as root unless IS_SANDBOX=1 is set.
CLAUDE_CODE_EXECUTABLE   path of the Claude Code binary. Without it: the SDK's platform package
                         (@anthropic-ai/claude-agent-sdk-<platform>-<arch>) in a node_modules at or
                         above the runner's directory (beside the compiled executable), then
                         claude on PATH
Claude Code itself reads ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, CLAUDE_CONFIG_DIR, etc.`,
  startSession: (invocation, context) => startSession(invocation, context, early),
});

/** What claude-code-entry.ts has done before loading this module: watching, reading, maybe an early start. */
export interface ClaudeCodeEntryStart extends EntryStart {
  stdin: StdinReader;
  early?: EarlyClaudeCode;
}

/** Runs the executor; returns the exit code. */
export function main(argv: string[], io?: ExecutorIO, start?: ClaudeCodeEntryStart): Promise<number> {
  if (!start) return runExecutor(claudeCodeExecutor(), argv, io);
  const entryIO = { ...(io ?? standardIO()), stdin: start.stdin };
  return runExecutor(claudeCodeExecutor(start.early), argv, entryIO, start);
}
