/**
 * One run, from the moment the coordinator hands it out to its reported outcome: tag check,
 * blueprint, invocation, spawn, supervision, outcome. The worker loop owns many of these.
 */

import { type ExecutorProfile, sandboxOptions } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import type { CoordinatorClient, RunReport, RunRequest } from "../coordinator/client.ts";
import { ExecutorProcess } from "../process/executor-process.ts";
import { buildInvocation, type InvocationMode } from "../protocol/invocation.ts";
import { type RunTokens, urlWithToken } from "../protocol/run-tokens.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
import type { Env } from "../shared/env.ts";
import { messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { isDebug, type LogFields, log, logEntry } from "../shared/log.ts";
import { seconds } from "../shared/retry.ts";
import { fillBlueprintPlaceholders } from "./blueprint-placeholders.ts";
import type { RunnerObserver, RunOutcome } from "./observer.ts";
import type { RunJournal } from "./run-journal.ts";

const RUN_MODES: Record<string, InvocationMode> = { start_session: "start", resume_session: "resume" };

/** What a run needs from the runner around it. */
export interface RunContext {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: Pick<CoordinatorClient, "getAgent">;
  /** Queues a report for delivery (the outbox). */
  report(runId: string, report: RunReport): void;
  /** Where the run's executor process group and its outcome are kept, should the runner die. */
  journal: Pick<RunJournal, "runStarted" | "runEnded">;
  /** The executor's environment, before the run's own variables. */
  executorEnv: Env;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  /** The gateway's URL. This run's executor gets it, and `mcpUrl`, with the run's own token. */
  gatewayUrl: string;
  tokens: RunTokens;
  /** Counts runs and their outcomes (for /metrics). */
  observer: Pick<RunnerObserver, "runStarted" | "runEnded">;
}

/** Why this runner must not execute the run (tagged-only mode), or undefined. */
function tagRefusal(run: RunRequest, config: Pick<RunnerConfig, "requireMatchingTags" | "tags">): string | undefined {
  if (!config.requireMatchingTags) return undefined;
  const demanded = run.demands?.tags;
  const tags = Array.isArray(demanded) ? demanded.filter((tag): tag is string => typeof tag === "string") : [];
  const own = config.tags.join(",");
  if (tags.length === 0) {
    return `Run demands no tags, and this runner accepts only runs sharing a tag with it (--require-matching-tags, tags ${own})`;
  }
  if (!tags.some((tag) => config.tags.includes(tag))) {
    return `Run demands tags ${tags.join(",")}, none of which this runner has (tags ${own}, --require-matching-tags)`;
  }
  return undefined;
}

export class RunJob {
  readonly runId: string;
  private executor?: ExecutorProcess;
  private stopRequested = false;
  private stopping?: Promise<StopSignal | undefined>;
  private timedOut = false;
  private timeoutTimer?: ReturnType<typeof setTimeout>;
  private startedAt = 0;
  private token = "";
  /** Fields of this run's log lines (in JSON logs). */
  private readonly fields: LogFields;

  constructor(
    readonly run: RunRequest,
    private readonly context: RunContext,
  ) {
    this.runId = run.run_id;
    this.fields = { run_id: run.run_id, session_id: run.session_id };
  }

  /** Runs the whole lifecycle; resolves once the outcome is queued for delivery. */
  async execute(): Promise<void> {
    this.token = this.context.tokens.issue(this.run.session_id);
    try {
      await this.lifecycle();
    } finally {
      clearTimeout(this.timeoutTimer);
      this.context.tokens.revoke(this.token);
    }
  }

  /** A stop command: SIGTERM, then SIGKILL after the grace period; before the spawn, no spawn. */
  stop(): void {
    if (!this.executor && !this.stopRequested)
      this.say("info", `Stop for run ${this.runId} before its executor started: it will not start`);
    this.stopRequested = true;
    this.stopExecutor(`Stopping run ${this.runId}`);
  }

  /** The one way a running executor is stopped, by a stop command or the run timeout: once. */
  private stopExecutor(reason: string, level: "info" | "warn" = "info"): void {
    if (!this.executor || this.stopping) return;
    const { stopGraceSeconds } = this.context.config;
    this.say(level, `${reason} (SIGTERM, SIGKILL after ${stopGraceSeconds} s)`);
    this.stopping = this.executor.stop(stopGraceSeconds * 1000);
  }

  private async lifecycle(): Promise<void> {
    const { run } = this;
    const mode = RUN_MODES[run.type];
    if (!mode) return this.fail(`Unknown run type '${run.type}' (expected start_session or resume_session)`);
    const refusal = tagRefusal(run, this.context.config);
    if (refusal) return this.fail(refusal);

    let blueprint: JsonObject | undefined;
    if (run.agent_name) {
      try {
        blueprint = await this.context.client.getAgent(run.agent_name);
      } catch (error) {
        return this.fail(`Could not fetch agent blueprint '${run.agent_name}': ${messageOf(error)}`);
      }
      if (!blueprint) return this.fail(`Agent blueprint '${run.agent_name}' not found`);
      const mcpUrl = urlWithToken(this.context.mcpUrl, this.token);
      blueprint = fillBlueprintPlaceholders(blueprint, { sessionId: run.session_id, mcpUrl });
    }
    if (this.stopRequested) {
      return this.end({ kind: "stopped", signal: "SIGTERM" }, "stopped", () =>
        this.say("info", `Run ${run.run_id} stopped before its executor started`),
      );
    }
    const executor = this.spawn(mode, blueprint);
    if (executor) await this.supervise(executor);
  }

  private spawn(mode: InvocationMode, blueprint: JsonObject | undefined): ExecutorProcess | undefined {
    const { run } = this;
    const { config, profile } = this.context;
    const invocation = buildInvocation({
      mode,
      sessionId: run.session_id,
      prompt: run.prompt,
      projectDir: run.project_dir || config.projectDir,
      agentBlueprint: blueprint,
      executorConfig: profile.config,
      metadata: run.metadata ?? undefined,
    });
    const env = {
      ...this.context.executorEnv,
      AGENT_ORCHESTRATOR_API_URL: urlWithToken(this.context.gatewayUrl, this.token),
      AGENT_SESSION_ID: run.session_id,
    };
    try {
      this.executor = new ExecutorProcess({
        argv: profile.argv,
        input: JSON.stringify(invocation),
        // Also what a sandbox makes writable, on a resume too: the run's word or the runner's,
        // never the project_dir an executor bound (an agent can write that through the gateway).
        cwd: run.project_dir || config.projectDir,
        // The run journal is hidden: an agent must not forge what the next runner process kills.
        sandbox: sandboxOptions(profile, [config.stateDir], env),
        env,
        stdout: isDebug() ? "lines" : "ignore",
        // A verbose runner shows what its executors say.
        onOutput: isDebug() ? (stream, line) => this.say("debug", `[${run.run_id} ${stream}] ${line}`) : undefined,
      });
    } catch (error) {
      this.fail(`Executor ${profile.argv.join(" ")} could not be started: ${messageOf(error)}`);
      return undefined;
    }
    this.startedAt = performance.now();
    this.context.journal.runStarted(run.run_id, run.session_id, this.executor.pid);
    this.context.report(run.run_id, { kind: "started" });
    this.context.observer.runStarted();
    this.say(
      "info",
      `Run ${run.run_id} started: ${run.type}, session ${run.session_id}${run.agent_name ? `, agent ${run.agent_name}` : ""}, pid ${this.executor.pid}`,
    );
    this.armTimeout();
    return this.executor;
  }

  /** `--run-timeout`: the runner's own limit; nothing a run or blueprint says can raise it. */
  private armTimeout(): void {
    const limit = this.context.config.runTimeoutSeconds;
    if (limit === undefined) return;
    this.timeoutTimer = setTimeout(() => {
      if (this.stopping) return;
      this.timedOut = true;
      this.stopExecutor(`Run ${this.runId} exceeded the run timeout of ${limit} s: stopping it`, "warn");
    }, limit * 1000);
  }

  private async supervise(executor: ExecutorProcess): Promise<void> {
    const status = await executor.exited;
    const signal = this.stopping && (await this.stopping);
    clearTimeout(this.timeoutTimer);
    const took = seconds(performance.now() - this.startedAt);
    if (this.timedOut) {
      this.fail(
        `run exceeded the run timeout of ${this.context.config.runTimeoutSeconds} s (stopped by ${signal ?? "its own exit"})`,
        "timed_out",
      );
    } else if (signal) {
      this.end({ kind: "stopped", signal }, "stopped", () =>
        this.say("info", `Run ${this.runId} stopped by ${signal} after ${took}`),
      );
    } else if (status.code === 0) {
      this.end({ kind: "completed" }, "completed", () => this.say("info", `Run ${this.runId} completed in ${took}`));
    } else {
      const tail = executor.stderrTail().trim();
      const ending = status.signal ? `Process killed by ${status.signal}` : `Process exited with code ${status.code}`;
      this.fail(tail || ending);
    }
  }

  private fail(error: string, outcome: "failed" | "timed_out" = "failed"): void {
    this.end({ kind: "failed", error }, outcome, () => this.say("error", `Run ${this.runId} failed: ${error}`));
  }

  /**
   * The outcome: journalled before anything else (a log line included), so that whoever sees the
   * run end knows it survives the runner dying before delivery.
   */
  private end(report: Exclude<RunReport, { kind: "started" }>, outcome: RunOutcome, say: () => void): void {
    this.context.journal.runEnded(this.runId, this.run.session_id, report);
    say();
    this.context.report(this.runId, report);
    const durationSeconds = this.executor ? (performance.now() - this.startedAt) / 1000 : undefined;
    this.context.observer.runEnded(outcome, durationSeconds);
  }

  private say(level: "debug" | "info" | "warn" | "error", message: string): void {
    log[level](logEntry(message, this.fields));
  }
}
