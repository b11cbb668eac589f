/**
 * Claude Code started before the Agent SDK and the validator have loaded (they take 100-300 ms,
 * which Claude Code's own start then overlaps), with the command, arguments, directory and
 * environment the SDK will ask for on a plain start. The SDK gets this process through
 * `spawnClaudeCodeProcess` only if it asks for exactly that; otherwise this one is stopped and
 * what the SDK asked for is started. Node builtins and plain data only: this loads in a few ms.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { statSync } from "node:fs";
import type { SpawnedProcess, SpawnOptions } from "@anthropic-ai/claude-agent-sdk/core";
import sdkPackage from "@anthropic-ai/claude-agent-sdk/package.json" with { type: "json" };
import type { Env } from "../shared/env.ts";
import { findClaudeCode } from "./claude-code-binary.ts";
import {
  type ClaudeCodeConfig,
  type ClaudeCodeSettings,
  PERMISSION_MODES,
  SETTING_SOURCES,
  settingsOf,
} from "./claude-code-settings.ts";
import type { ExecutorLog } from "./kit/executor-log.ts";

/** A Claude Code process as the SDK describes the one it wants. */
export interface ClaudeCodeSpawn {
  command: string;
  args: string[];
  cwd: string;
  env: Env;
}

/** As the SDK: the stderr kept for an exit error's message, and how long its end may lag the exit. */
const STDERR_TAIL_CHARS = 2048;
const STDERR_AFTER_EXIT_MS = 200;
/** An early Claude Code nobody took gets this long to end on SIGTERM, then SIGKILL. */
const DISCARD_GRACE_MS = 2000;

type JsonFields = Record<string, unknown>;

const isFields = (value: unknown): value is JsonFields =>
  value !== null && typeof value === "object" && !Array.isArray(value);
const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value !== "";

const absent = (value: unknown) => value === undefined || value === null;
const isOneOf = (values: readonly unknown[], value: unknown) => values.includes(value);

/**
 * The settings `executor_config` asks for, when every key this executor reads holds a value the
 * validator accepts (claude-code-options.ts); undefined otherwise, and the validator will say why.
 */
function plainSettings(config: unknown): ClaudeCodeSettings | undefined {
  if (config === undefined) return settingsOf({});
  if (!isFields(config)) return undefined;
  const { permission_mode: mode, setting_sources: sources, model, max_budget_usd: budget, max_turns: turns } = config;
  const plain =
    (absent(mode) || isOneOf(PERMISSION_MODES, mode)) &&
    (absent(sources) || (Array.isArray(sources) && sources.every((source) => isOneOf(SETTING_SOURCES, source)))) &&
    (absent(model) || (typeof model === "string" && model.trim() !== "")) &&
    (absent(budget) || (typeof budget === "number" && budget > 0)) &&
    (absent(turns) || (typeof turns === "number" && Number.isInteger(turns) && turns >= 1));
  return plain ? settingsOf(config as ClaudeCodeConfig) : undefined;
}

/**
 * The arguments the SDK passes for these settings and output schema (its `ProcessTransport`,
 * options as claude-code-options.ts sets them). The same for a one-shot and a persistent session:
 * the SDK always streams its input.
 */
function sdkArguments(settings: ClaudeCodeSettings, outputSchema: JsonFields | undefined): string[] {
  const args = ["--output-format", "stream-json", "--verbose", "--input-format", "stream-json"];
  if (settings.maxTurns !== undefined) args.push(`--max-turns=${settings.maxTurns}`);
  if (settings.maxBudgetUsd !== undefined) args.push(`--max-budget-usd=${settings.maxBudgetUsd}`);
  if (settings.model) args.push(`--model=${settings.model}`);
  if (outputSchema) args.push(`--json-schema=${JSON.stringify(outputSchema)}`);
  args.push(`--setting-sources=${settings.settingSources.join(",")}`);
  args.push(`--permission-mode=${settings.permissionMode}`);
  if (settings.permissionMode === "bypassPermissions") args.push("--allow-dangerously-skip-permissions");
  return args;
}

const hasVariable = (env: Env, name: string) => Object.keys(env).some((key) => key.toUpperCase() === name);

/** The environment the SDK gives Claude Code when `options.env` is not set: this process's, adjusted. */
export function sdkEnvironment(env: Env): Env {
  const out: Env = { ...env };
  // The SDK sets these two in process.env (on load, and on each query) before copying it.
  out.NoDefaultCurrentDirectoryInExePath = "1";
  out.CLAUDE_AGENT_SDK_VERSION = sdkPackage.version;
  if (!out.CLAUDE_CODE_ENTRYPOINT) out.CLAUDE_CODE_ENTRYPOINT = "sdk-ts";
  if (!hasVariable(out, "CLAUDE_CODE_SDK_READS_SESSION_STATE")) out.CLAUDE_CODE_SDK_READS_SESSION_STATE = "1";
  const dropped = [
    "CLAUDE_CODE_QUESTION_EXTENDED",
    "CLAUDE_CODE_QUESTION_OPTIONAL_DESCRIPTIONS",
    "CLAUDE_CODE_AGENT_PROGRESS_SUMMARIES",
  ];
  for (const key of Object.keys(out)) if (dropped.includes(key.toUpperCase())) delete out[key];
  delete out.NODE_OPTIONS;
  delete out.DEBUG;
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}

/** The input fields of a 2.1 (a string prompt) or 2.2 (an object of parameters, maybe an agent name) invocation. */
function plainInput(invocation: JsonFields): boolean {
  if (invocation.schema_version === "2.1") return typeof invocation.prompt === "string";
  if (invocation.schema_version !== "2.2" || !isFields(invocation.parameters)) return false;
  return invocation.agent_name === undefined || typeof invocation.agent_name === "string";
}

/** 2.2's output schema (2.1 has none); null when the blueprint's is not an object (the validator will say why). */
function plainOutputSchema(invocation: JsonFields): JsonFields | undefined | null {
  const schema = (invocation.agent_blueprint as JsonFields | undefined)?.output_schema;
  if (invocation.schema_version !== "2.2" || schema === undefined || schema === null) return undefined;
  return isFields(schema) ? schema : null;
}

/**
 * The Claude Code process the SDK will ask for on this invocation, when it is a plain start: mode
 * `start`, no MCP servers in the blueprint, settings the validator accepts, its directory there.
 * Anything else (resume, MCP servers, SDK debug logs, input that will not validate) gets none,
 * and the SDK starts Claude Code itself. A guess to save time, not a check: the invocation is
 * validated afterwards, and the SDK's request must match this exactly. One-shot and persistent
 * sessions get the same process.
 */
export function plannedSpawn(invocationText: string, env: Env, cwd = process.cwd()): ClaudeCodeSpawn | undefined {
  // With its debug logs on, the SDK passes Claude Code a --debug-file only when it spawns it itself.
  if (env.DEBUG_CLAUDE_AGENT_SDK) return undefined;
  let invocation: unknown;
  try {
    invocation = JSON.parse(invocationText);
  } catch {
    return undefined;
  }
  if (!isFields(invocation) || invocation.mode !== "start" || !plainInput(invocation)) return undefined;
  const { session_id, project_dir, agent_blueprint, executor_config, metadata } = invocation;
  if (!isNonEmptyString(session_id)) return undefined;
  if (project_dir !== undefined && !isNonEmptyString(project_dir)) return undefined;
  if (![agent_blueprint, executor_config, metadata].every((field) => field === undefined || isFields(field))) {
    return undefined;
  }
  const mcpServers = (agent_blueprint as JsonFields | undefined)?.mcp_servers;
  if (mcpServers !== undefined && mcpServers !== null) return undefined;
  const settings = plainSettings(executor_config);
  const outputSchema = plainOutputSchema(invocation);
  const lookup = findClaudeCode(env);
  if (!settings || outputSchema === null || !("found" in lookup)) return undefined;
  const dir = project_dir ?? cwd;
  try {
    if (!statSync(dir).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  return {
    command: lookup.found.path,
    args: sdkArguments(settings, outputSchema),
    cwd: dir,
    env: sdkEnvironment(env),
  };
}

/** What differs between two spawns, by name only (values may hold secrets). */
function differences(planned: ClaudeCodeSpawn, request: SpawnOptions): string[] {
  const found: string[] = [];
  if (request.command !== planned.command) found.push("command");
  if (request.cwd !== planned.cwd) found.push("directory");
  if (request.args.join("\0") !== planned.args.join("\0")) {
    const flags = (args: string[]) => args.map((arg) => arg.split("=")[0]).join(" ");
    found.push(`arguments (the SDK's: ${flags(request.args)})`);
  }
  const names = new Set([...Object.keys(request.env), ...Object.keys(planned.env)]);
  const variables = [...names].filter((name) => request.env[name] !== planned.env[name]);
  if (variables.length > 0) found.push(`environment (${variables.sort().join(", ")})`);
  return found;
}

/** A Claude Code process, its stderr drained: kept as a tail and handed on, as the SDK does for its own. */
class Followed {
  readonly exited: Promise<void>;
  private tail = "";
  private pending: string[] = [];
  private onStderr?: (text: string) => void;
  private readonly stderrClosed: Promise<void>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    this.exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      // Never started (the binary went away): there will be no exit.
      child.on("error", () => {
        if (child.pid === undefined) resolve();
      });
    });
    this.stderrClosed = new Promise((resolve) => child.stderr.once("close", () => resolve()));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text: string) => {
      this.tail = (this.tail + text).slice(-2 * STDERR_TAIL_CHARS);
      if (this.onStderr) this.onStderr(text);
      else this.pending.push(text);
    });
  }

  get running(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** From now on stderr goes to `onStderr`, starting with what came before. */
  handOver(onStderr: (text: string) => void): void {
    this.onStderr = onStderr;
    for (const text of this.pending.splice(0)) onStderr(text);
  }

  /** The end of its stderr, once it has been read to the end (or a moment after the exit). */
  async stderrTail(): Promise<string> {
    await Promise.race([this.stderrClosed, new Promise((resolve) => setTimeout(resolve, STDERR_AFTER_EXIT_MS))]);
    return this.tail.slice(-STDERR_TAIL_CHARS).trim();
  }
}

const EXIT_ERROR = /Claude Code process (exited with code|terminated by signal)/;

/** Claude Code started early for one run: handed to the SDK, or stopped. */
export class EarlyClaudeCode {
  private state: "waiting" | "adopted" | "discarded" = "waiting";
  private readonly early: Followed;
  /** The process the SDK got from `spawner()`: the early one, or one started on its request. */
  private given?: Followed;

  private constructor(
    readonly plan: ClaudeCodeSpawn,
    private readonly log: ExecutorLog,
  ) {
    const child = spawn(plan.command, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      stdio: ["pipe", "pipe", "pipe"],
      windowsHide: true,
    });
    this.early = new Followed(child);
    log.debug(`Claude Code started early (pid ${child.pid}) while the Agent SDK loads`);
  }

  static start(plan: ClaudeCodeSpawn, log: ExecutorLog): EarlyClaudeCode {
    return new EarlyClaudeCode(plan, log);
  }

  get pid(): number | undefined {
    return this.early.child.pid;
  }

  /**
   * The SDK's `spawnClaudeCodeProcess`: the early process when the SDK asks for exactly it and it
   * is still running; otherwise that one is stopped and the SDK's request is started as the SDK
   * itself would. Claude Code's stderr goes to `onStderr`.
   */
  spawner(onStderr: (text: string) => void): (request: SpawnOptions) => SpawnedProcess {
    return (request) => {
      if (this.state === "waiting" && this.early.running) {
        const differ = differences(this.plan, request);
        if (differ.length === 0) {
          this.state = "adopted";
          this.given = this.early;
          this.early.handOver(onStderr);
          // What the SDK's signal does to the processes it spawns itself.
          request.signal.addEventListener("abort", () => this.early.child.kill("SIGTERM"), { once: true });
          this.log.debug(`Claude Code started early (pid ${this.pid}) handed to the Agent SDK`);
          return this.early.child;
        }
        this.log.debug(`Claude Code started early not used: the Agent SDK asked for another ${differ.join(", ")}`);
      } else if (this.state === "waiting") {
        this.log.debug("Claude Code started early had ended before the Agent SDK asked for it; starting another");
      }
      this.stop();
      const child = spawn(request.command, request.args, {
        cwd: request.cwd,
        env: request.env,
        stdio: ["pipe", "pipe", "pipe"],
        signal: request.signal,
        windowsHide: true,
      });
      this.given = new Followed(child);
      this.given.handOver(onStderr);
      return child;
    };
  }

  /**
   * The SDK's message for a Claude Code exit: the SDK adds the process's stderr only for processes
   * it spawned itself, so it is added here for the one it got from `spawner()`.
   */
  async explain(message: string): Promise<string> {
    if (!this.given || !EXIT_ERROR.test(message) || message.includes(". stderr: ")) return message;
    const tail = await this.given.stderrTail();
    return tail ? `${message}. stderr: ${tail}` : message;
  }

  /** Stops the early process unless the SDK has it (SIGTERM; SIGKILL after a grace) and waits until it is gone. */
  async discard(): Promise<void> {
    if (this.state === "adopted") return;
    if (this.state === "waiting")
      this.log.debug(`Claude Code started early (pid ${this.pid}) stopped: the run ended first`);
    this.stop();
    const escalate = setTimeout(() => this.early.child.kill("SIGKILL"), DISCARD_GRACE_MS);
    await this.early.exited;
    clearTimeout(escalate);
  }

  private stop(): void {
    if (this.state !== "waiting") return;
    this.state = "discarded";
    if (this.early.running) this.early.child.kill("SIGTERM");
  }
}
