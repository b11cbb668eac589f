/**
 * One run, from the moment the coordinator hands it out to its reported outcome: run type, tags,
 * blueprint, invocation, the executor (a new process, or the next turn of a persistent session's
 * live one), supervision, outcome. The worker loop owns many of these.
 */

import { type ExecutorProfile, sandboxOptions } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import type { CoordinatorClient, RunReport, RunRequest, SessionStatusAfterRun } from "../coordinator/client.ts";
import { ExecutorProcess, type ExitStatus } from "../process/executor-process.ts";
import { PersistentExecutor, type TurnEnd } from "../process/persistent-executor.ts";
import { buildInvocation, type InvocationMode } from "../protocol/invocation.ts";
import { LIFECYCLE_ENV } from "../protocol/lifecycle.ts";
import { type RunTokens, urlWithToken } from "../protocol/run-tokens.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
import { RunUsage, type SessionCosts } from "../protocol/usage.ts";
import type { Env } from "../shared/env.ts";
import { messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { isDebug, type LogFields, log, logEntry } from "../shared/log.ts";
import { seconds } from "../shared/retry.ts";
import { fillBlueprintPlaceholders, fillRunnerPlaceholders } from "./blueprint-placeholders.ts";
import type { LiveSession, LiveSessions } from "./live-sessions.ts";
import type { FailureReason, RunnerObserver, RunOutcome } from "./observer.ts";
import type { RunJournal } from "./run-journal.ts";

const RUN_MODES: Record<string, InvocationMode> = { start_session: "start", resume_session: "resume" };

/** What a run needs from the runner around it. */
export interface RunContext {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: Pick<CoordinatorClient, "getAgent" | "generation">;
  /** Queues a report for delivery (the outbox). */
  report(runId: string, sessionId: string, report: RunReport): void;
  /** Where the run's executor process group and its outcome are kept, should the runner die. */
  journal: Pick<RunJournal, "runStarted" | "runEnded">;
  /** The executors of persistent sessions, alive between turns. */
  sessions: LiveSessions;
  /** The executor's environment, before the run's own variables. */
  executorEnv: Env;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  /** The gateway's URL. This run's executor gets it, and `mcpUrl`, with the run's own token. */
  gatewayUrl: string;
  tokens: RunTokens;
  /** Each session's running cost, for each turn's own share: a new executor of a start begins it at 0. */
  costs: Pick<SessionCosts, "sessionStarted">;
  /** Counts runs, their outcomes and timings (for /metrics). */
  observer: Pick<RunnerObserver, "runStarted" | "runEnded" | "executorResponded">;
}

/** What supervising a run needs of its executor, a process of its own or a persistent session's turn. */
interface Execution {
  /** The executor's process (a persistent session's serves this run's turn): its pid, cgroup and mark. */
  executor: Pick<ExecutorProcess, "pid" | "cgroup" | "mark">;
  /** The run's work is over: the turn completed (the executor lives on), or the executor exited. */
  ended: Promise<TurnEnd>;
  stop(graceMs: number): Promise<StopSignal | undefined>;
  stderrTail(): string;
  /** A persistent session's executor: it outlives the run when the turn completes. */
  session?: LiveSession;
  /** This run started the session's executor (its first turn): the journal must learn of it. */
  newSession?: boolean;
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
  readonly sessionId: string;
  private execution?: Execution;
  private stopRequested = false;
  private stopping?: Promise<StopSignal | undefined>;
  private timedOut = false;
  private timeoutTimer?: ReturnType<typeof setTimeout>;
  private startedAt = 0;
  /** When this run spawned an executor of its own, until its first sign of life. */
  private spawnedAt?: number;
  private token = "";
  /** What its agent used, from the usage events its executor sent (the worker adds them). */
  readonly usage = new RunUsage();
  /** Set once the outcome is queued: nothing is reported twice. */
  private ended = false;
  /** Fields of this run's log lines (in JSON logs). */
  private readonly fields: LogFields;

  constructor(
    readonly run: RunRequest,
    private readonly context: RunContext,
  ) {
    this.runId = run.run_id;
    this.sessionId = run.session_id;
    this.fields = { run_id: run.run_id, session_id: run.session_id };
  }

  /**
   * Runs the whole lifecycle; resolves once the outcome is queued for delivery. Never rejects: a
   * failure of the runner itself still ends the run, its executor stopped, reported failed.
   */
  async execute(): Promise<void> {
    // A sandboxed executor binds the directory the runner gave it, whatever it says: a later resume
    // makes that directory writable.
    const projectDir = this.context.profile.sandbox ? this.projectDir : undefined;
    this.token = this.context.tokens.issue(this.run.session_id, { projectDir });
    try {
      await this.lifecycle();
    } catch (error) {
      await this.failedByRunner(error);
    } finally {
      clearTimeout(this.timeoutTimer);
      // A persistent session's executor this run started keeps the token: the session revokes it.
      if (!this.execution?.newSession) this.context.tokens.revoke(this.token);
    }
  }

  /** Its executor (or its turn of a persistent session's) is under way: started, outcome not yet queued. */
  get underWay(): boolean {
    return this.execution !== undefined && !this.ended;
  }

  /** A stop command: SIGTERM, then SIGKILL after the grace period; before the spawn, no spawn. */
  stop(): void {
    if (!this.execution && !this.stopRequested)
      this.say("info", `Stop for run ${this.runId} before its executor started: it will not start`);
    this.stopRequested = true;
    this.stopExecutor(`Stopping run ${this.runId}`);
  }

  /** The one way a running executor is stopped, by a stop command or the run timeout: once. */
  private stopExecutor(reason: string, level: "info" | "warn" = "info"): void {
    if (!this.execution || this.stopping) return;
    const { stopGraceSeconds } = this.context.config;
    this.say(level, `${reason} (SIGTERM, SIGKILL after ${stopGraceSeconds} s)`);
    this.stopping = this.execution.stop(stopGraceSeconds * 1000);
  }

  /** The run's project directory: its own, else the runner's. */
  private get projectDir(): string {
    return this.run.project_dir || this.context.config.projectDir;
  }

  /** Persistent sessions need protocol 2.2: under 2.1 a session is never idle between runs. */
  private get persistent(): boolean {
    return this.context.profile.lifecycle === "persistent" && this.context.client.generation === "2.2";
  }

  private async lifecycle(): Promise<void> {
    const { run } = this;
    const mode = RUN_MODES[run.type];
    if (!mode) return this.fail(`Unknown run type '${run.type}' (expected start_session or resume_session)`, "bad_run");
    const refusal = tagRefusal(run, this.context.config);
    if (refusal) return this.fail(refusal, "tag_mismatch");

    let blueprint: JsonObject | undefined;
    try {
      blueprint = await this.blueprint();
    } catch (error) {
      return this.fail(messageOf(error), "blueprint_error");
    }
    if (this.stopRequested) return this.stoppedBeforeStart();
    const execution = await this.startExecution(mode, blueprint);
    if (!execution) return;
    this.execution = execution;
    this.startedAt = performance.now();
    // Journalled once it is this run's execution: should the journal throw, it is stopped (failedByRunner).
    if (execution.session && execution.newSession) this.context.sessions.journalStarted(execution.session);
    this.context.journal.runStarted(run.run_id, run.session_id, execution.executor);
    this.context.report(run.run_id, run.session_id, { kind: "started" });
    this.context.observer.runStarted(secondsSince(run.created_at));
    this.say(
      "info",
      `Run ${run.run_id} started: ${run.type}, session ${run.session_id}${run.agent_name ? `, agent ${run.agent_name}` : ""}, pid ${execution.executor.pid}${execution.session ? " (persistent session)" : ""}`,
    );
    this.armTimeout();
    // A stop that came while the executor was being started.
    if (this.stopRequested) this.stopExecutor(`Stopping run ${this.runId}`);
    await this.supervise(execution);
  }

  /**
   * The agent's blueprint: under 2.2 the one the coordinator resolved (only the runner's MCP URL
   * to fill); under 2.1 fetched by name and its placeholders filled. Throws with the reason.
   */
  private async blueprint(): Promise<JsonObject | undefined> {
    const { run } = this;
    const mcpUrl = urlWithToken(this.context.mcpUrl, this.token);
    if (this.context.client.generation === "2.2") {
      return run.resolved_agent_blueprint ? fillRunnerPlaceholders(run.resolved_agent_blueprint, mcpUrl) : undefined;
    }
    if (!run.agent_name) return undefined;
    let blueprint: JsonObject | undefined;
    try {
      blueprint = await this.context.client.getAgent(run.agent_name);
    } catch (error) {
      throw new Error(`Could not fetch agent blueprint '${run.agent_name}': ${messageOf(error)}`);
    }
    if (!blueprint) throw new Error(`Agent blueprint '${run.agent_name}' not found`);
    return fillBlueprintPlaceholders(blueprint, { sessionId: run.session_id, mcpUrl });
  }

  /**
   * The executor for this run: the next turn of the session's live executor when it has one
   * waiting, else a new process (persistent or one-shot, as the profile says). A resume whose
   * session has no live executor (ended, evicted, the runner restarted) starts one that resumes
   * the session. Undefined when the run already failed.
   */
  private async startExecution(
    mode: InvocationMode,
    blueprint: JsonObject | undefined,
  ): Promise<Execution | undefined> {
    const { sessions } = this.context;
    if (this.persistent && mode === "resume") {
      let live = sessions.get(this.sessionId);
      // Once an ending executor is gone, look again: another run may have started one meanwhile.
      while (live?.ending) {
        await live.ending;
        live = sessions.get(this.sessionId);
      }
      // A stop that came meanwhile: no executor takes the turn.
      if (this.stopRequested) {
        this.stoppedBeforeStart();
        return undefined;
      }
      if (live?.runId !== undefined) {
        this.fail(
          `Session ${this.sessionId} is busy with run ${live.runId}; run ${this.runId} cannot take a turn now`,
          "busy",
        );
        return undefined;
      }
      if (live) {
        sessions.resume(live, this.runId);
        if (live.executor.startTurn(this.run.parameters)) return this.turnOf(live, false);
        // It no longer reads its input: gone, or killed by startTurn. A new one resumes the session.
        sessions.forget(live);
        this.say(
          "warn",
          `Session ${this.sessionId}: its executor (pid ${live.executor.pid}) no longer reads its input; it is ended and a new one resumes the session`,
        );
      }
    } else if (this.persistent && sessions.get(this.sessionId)) {
      this.fail(
        `Session ${this.sessionId} already has a live executor on this runner; it cannot be started again`,
        "busy",
      );
      return undefined;
    }
    return this.spawn(mode, blueprint);
  }

  private stoppedBeforeStart(): void {
    this.end(
      { kind: "stopped", signal: "SIGTERM" },
      "stopped",
      "info",
      `Run ${this.runId} stopped before its executor started`,
    );
  }

  private spawn(mode: InvocationMode, blueprint: JsonObject | undefined): Execution | undefined {
    const { run } = this;
    const { config, profile, client } = this.context;
    const invocation = buildInvocation({
      schemaVersion: client.generation,
      mode,
      sessionId: run.session_id,
      parameters: run.parameters,
      projectDir: this.projectDir,
      agentName: run.agent_name ?? undefined,
      agentBlueprint: blueprint,
      executorConfig: profile.config,
      metadata: run.metadata ?? undefined,
    });
    const env = {
      ...this.context.executorEnv,
      AGENT_ORCHESTRATOR_API_URL: urlWithToken(this.context.gatewayUrl, this.token),
      AGENT_SESSION_ID: run.session_id,
      [LIFECYCLE_ENV]: this.persistent ? "persistent" : "one_shot",
    };
    const options = {
      argv: profile.argv,
      input: JSON.stringify(invocation),
      // Also what a sandbox makes writable, on a resume too: the run's word or the runner's,
      // never the project_dir an executor bound (an agent can write that through the gateway).
      cwd: this.projectDir,
      // The run journal is hidden: an agent must not forge what the next runner process kills.
      sandbox: sandboxOptions(profile, [config.stateDir], env),
      env,
      // A verbose runner shows what its executors say.
      onOutput: isDebug()
        ? (stream: string, line: string) => this.say("debug", `[${run.run_id} ${stream}] ${line}`)
        : undefined,
      onFirstOutput: () => this.executorResponded(),
    };
    this.spawnedAt = performance.now();
    if (mode === "start") this.context.costs.sessionStarted(run.session_id);
    try {
      if (this.persistent) {
        const executor = new PersistentExecutor(options);
        return this.turnOf(this.context.sessions.add(run.session_id, executor, run.run_id, this.token), true);
      }
      const executor = new ExecutorProcess({ ...options, stdout: isDebug() ? "lines" : "ignore" });
      return {
        executor,
        ended: executor.exited.then((status) => ({ kind: "exited", status })),
        stop: (graceMs) => executor.stop(graceMs),
        stderrTail: () => executor.stderrTail(),
      };
    } catch (error) {
      this.spawnedAt = undefined;
      this.fail(`Executor ${profile.argv.join(" ")} could not be started: ${messageOf(error)}`, "spawn_error");
      return undefined;
    }
  }

  /**
   * The executor showed a sign of life: its first output, or a gateway request of this run's
   * session. The first one after this run spawned it is its start latency.
   */
  executorResponded(): void {
    if (this.spawnedAt === undefined) return;
    this.context.observer.executorResponded((performance.now() - this.spawnedAt) / 1000);
    this.spawnedAt = undefined;
  }

  /** This run's turn on a persistent session's executor; stopping it ends the whole session. */
  private turnOf(session: LiveSession, newSession: boolean): Execution {
    const { executor } = session;
    return {
      executor: executor.process,
      ended: executor.turnEnded(),
      stop: (graceMs) => executor.process.stop(graceMs),
      stderrTail: () => executor.process.stderrTail(),
      session,
      newSession,
    };
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

  private async supervise(execution: Execution): Promise<void> {
    const end = await execution.ended;
    const signal = this.stopping && (await this.stopping);
    clearTimeout(this.timeoutTimer);
    const took = seconds(performance.now() - this.startedAt);
    const spent = this.usage.describe();
    const tookAndSpent = spent ? `${took}, ${spent}` : took;
    let sessionStatus: SessionStatusAfterRun = "finished";
    if (execution.session) {
      if (end.kind === "completed" && !signal) {
        // Kept idle only while the coordinator has idle sessions (it may have come back as 2.1).
        sessionStatus = this.context.sessions.turnCompleted(execution.session, this.persistent);
      } else this.context.sessions.forget(execution.session);
    }
    if (this.timedOut) {
      this.fail(
        `run exceeded the run timeout of ${this.context.config.runTimeoutSeconds} s (stopped by ${signal ?? "its own exit"})`,
        "timeout",
      );
    } else if (signal) {
      this.end(
        { kind: "stopped", signal },
        "stopped",
        "info",
        `Run ${this.runId} stopped by ${signal} after ${tookAndSpent}`,
      );
    } else if (end.kind === "completed" || end.status.code === 0) {
      const idle = sessionStatus === "idle" ? "; its session waits for the next turn" : "";
      this.end(
        { kind: "completed", sessionStatus },
        "completed",
        "info",
        `Run ${this.runId} completed in ${tookAndSpent}${idle}`,
      );
    } else {
      this.fail(
        execution.stderrTail().trim() || exitDescription(end.status),
        this.limitReached() ?? "executor_exit",
        end.status.code ?? undefined,
      );
    }
  }

  /**
   * Whether the executor's exit came from a limit of the profile's config, as its last usage
   * event shows: the session's running cost at `max_budget_usd`, or a turn past `max_turns` round
   * trips (Claude Code's SDK checks both after each round trip, and stops the turn one past the
   * turn limit).
   */
  private limitReached(): "budget" | "turn_limit" | undefined {
    const last = this.usage.last;
    const config = this.context.profile.config;
    if (!last || !config) return undefined;
    const { max_budget_usd: budget, max_turns: turns } = config;
    if (typeof budget === "number" && last.total_cost_usd >= budget) return "budget";
    if (typeof turns === "number" && last.num_turns > turns) return "turn_limit";
    return undefined;
  }

  /**
   * A failure of the runner itself (a bug, or local I/O it could not do without): the run must
   * still end, its executor stopped, and be reported, never left running unanswered.
   */
  private async failedByRunner(error: unknown): Promise<void> {
    this.say("error", `Run ${this.runId}: the runner failed handling it: ${messageOf(error)}`);
    const execution = this.execution;
    if (execution) {
      // A stop already under way is waited for: the outcome is queued only once it is all gone.
      const { stopGraceSeconds } = this.context.config;
      await (this.stopping ?? execution.stop(stopGraceSeconds * 1000)).catch(() => undefined);
      if (execution.session) this.context.sessions.forget(execution.session);
    }
    this.fail(`the runner failed handling the run: ${messageOf(error)}`, "runner_error");
  }

  /** Reported failed, saying why; `timeout` runs count as `timed_out`. */
  private fail(error: string, reason: FailureReason, exitCode?: number): void {
    const report =
      exitCode === undefined ? { kind: "failed" as const, error } : { kind: "failed" as const, error, exitCode };
    const details = [exitCode === undefined ? "" : `exit code ${exitCode}`, this.usage.describe()].filter(Boolean);
    const how = details.length ? ` (${details.join("; ")})` : "";
    this.end(
      report,
      reason === "timeout" ? "timed_out" : "failed",
      "error",
      `Run ${this.runId} failed${how}: ${error}`,
      reason,
    );
  }

  /**
   * The outcome: journalled before anything else (a log line included), so that whoever sees the
   * run end knows it survives the runner dying before delivery. Once.
   */
  private end(
    outcome: Exclude<RunReport, { kind: "started" }>,
    counted: RunOutcome,
    level: "info" | "error",
    message: string,
    reason?: FailureReason,
  ): void {
    if (this.ended) return;
    this.ended = true;
    const usage = this.usage.reportFields();
    const report = usage && outcome.kind !== "stopped" ? { ...outcome, usage } : outcome;
    this.context.journal.runEnded(this.runId, this.sessionId, report);
    const durationSeconds = this.execution ? (performance.now() - this.startedAt) / 1000 : undefined;
    log[level](
      logEntry(message, {
        ...this.fields,
        outcome: counted,
        ...(outcome.kind === "failed" && outcome.exitCode !== undefined ? { exit_code: outcome.exitCode } : {}),
        ...(durationSeconds === undefined ? {} : { duration_s: Math.round(durationSeconds * 1000) / 1000 }),
        // The report's usage fields are the log line's too.
        ...usage,
      }),
    );
    this.context.report(this.runId, this.sessionId, report);
    this.context.observer.runEnded({ outcome: counted, reason, durationSeconds });
  }

  private say(level: "debug" | "info" | "warn" | "error", message: string): void {
    log[level](logEntry(message, this.fields));
  }
}

/**
 * Seconds from a coordinator's timestamp (ISO-8601; one without a zone is UTC, as coordinators
 * write them) to now; undefined when there is none, it cannot be read, or it lies ahead (clocks
 * apart).
 */
function secondsSince(timestamp: string | null | undefined): number | undefined {
  if (!timestamp) return undefined;
  const zoned = /(Z|[+-]\d\d:?\d\d)$/i.test(timestamp) ? timestamp : `${timestamp}Z`;
  const elapsed = (Date.now() - Date.parse(zoned)) / 1000;
  return Number.isFinite(elapsed) && elapsed >= 0 ? elapsed : undefined;
}

function exitDescription(status: ExitStatus): string {
  return status.signal ? `Process killed by ${status.signal}` : `Process exited with code ${status.code}`;
}
