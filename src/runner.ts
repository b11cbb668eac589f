import { LogLevels } from "consola";
import { AuthError } from "./auth.ts";
import { Backoff, sleep } from "./backoff.ts";
import { resolveBlueprint } from "./blueprint.ts";
import { DEFAULT_HEARTBEAT_INTERVAL_SECONDS, DEFAULT_POLL_TIMEOUT_SECONDS, type RunnerConfig } from "./config.ts";
import {
  AuthenticationError,
  DuplicateRunnerError,
  type CoordinatorClient,
  type Registration,
  type RunReport,
  type RunRequest,
} from "./coordinator-client.ts";
import { ExecutorProcess, executorEnvironment, type StopSignal } from "./executor-process.ts";
import { buildInvocation, type InvocationMode } from "./invocation.ts";
import type { JsonObject } from "./json-object.ts";
import { log } from "./log.ts";
import type { ExecutorProfile } from "./profiles.ts";
import type { RegistrationPayload } from "./registration.ts";
import { ReportOutbox } from "./report-outbox.ts";

const RUN_MODES: Record<string, InvocationMode> = { start_session: "start", resume_session: "resume" };
/** How long shutdown waits for undelivered reports before giving up on them. */
const FLUSH_TIMEOUT_MS = 30_000;
/** A poll's HTTP timeout is this much above the time the coordinator holds it. */
const POLL_SLACK_MS = 5_000;

export interface RunnerOptions {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: CoordinatorClient;
  registration: RegistrationPayload;
  /** Executors reach the coordinator through this URL (the local gateway). */
  gatewayUrl: string;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  env?: Record<string, string | undefined>;
  /** How long shutdown waits for undelivered reports (default 30 s). */
  flushTimeoutMs?: number;
  /** First retry delay after a failed request to the coordinator (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
}

interface ActiveRun {
  run: RunRequest;
  process: ExecutorProcess;
  startedAt: number;
  stopping?: Promise<StopSignal | undefined>;
}

/** A fatal start-up problem: the runner cannot go on and exits 1 with this message. */
export class RunnerStartError extends Error {
  override name = "RunnerStartError";
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s`;

/**
 * The worker loop: registers, long-polls for runs, executes each through an executor process,
 * reports every outcome, heartbeats, and shuts down without losing a run's outcome.
 */
export class Runner {
  readonly outbox: ReportOutbox;
  private readonly active = new Map<string, ActiveRun>();
  /** Runs accepted but not spawned yet (blueprint being fetched), with a stop that came early. */
  private readonly preparing = new Map<string, { stopRequested: boolean }>();
  private readonly executorEnv: Record<string, string | undefined>;
  private readonly stopped = new AbortController();
  private shutdownStage = 0;
  private deregistered = false;
  private registering?: Promise<boolean>;
  private registration?: Registration;
  private idleWaiters: Array<() => void> = [];
  private heartbeatTimer?: ReturnType<typeof setTimeout>;

  constructor(private readonly options: RunnerOptions) {
    const { client } = options;
    this.outbox = new ReportOutbox(
      {
        deliver: (runId, report) => client.report(runId, report),
        reregister: () => this.reregister(),
      },
      () => this.backoff(),
    );
    const env = executorEnvironment(options.env ?? process.env, { AGENT_ORCHESTRATOR_API_URL: options.gatewayUrl });
    // A verbose runner logs executors' stderr; ask them for their debug lines too.
    if (log.level >= LogLevels.debug) env.AGENT_RUNNER_DEBUG ??= "1";
    this.executorEnv = env;
  }

  private backoff(): Backoff {
    return new Backoff(this.options.retryInitialMs);
  }

  get activeRunCount(): number {
    return this.active.size + this.preparing.size;
  }

  get runnerId(): string | undefined {
    return this.options.client.runnerId;
  }

  /**
   * Registers, retrying while the coordinator is unreachable. A duplicate identity or refused
   * credentials are RunnerStartErrors. Resolves false when shut down before registering.
   */
  async register(): Promise<boolean> {
    const backoff = this.backoff();
    const { coordinatorUrl } = this.options.config;
    while (!this.stopped.signal.aborted) {
      try {
        this.registration = await this.options.client.register(this.options.registration);
        const { runner_id } = this.registration;
        log.info(
          `Registered with ${coordinatorUrl} as ${runner_id} (profile '${this.options.profile.name}', project dir ${this.options.config.projectDir}${this.options.config.tags.length ? `, tags ${this.options.config.tags.join(",")}` : ""})`,
        );
        return true;
      } catch (error) {
        if (error instanceof DuplicateRunnerError) throw new RunnerStartError(duplicateMessage(error));
        if (error instanceof AuthenticationError || error instanceof AuthError) throw new RunnerStartError(error.message);
        const delay = backoff.next();
        log.warn(
          `Cannot register with ${coordinatorUrl} (attempt ${backoff.attempts}): ${(error as Error).message}; retrying in ${seconds(delay)}`,
        );
        await sleep(delay, this.stopped.signal);
      }
    }
    return false;
  }

  /** Polls and executes runs until shutdown, then waits for runs, flushes reports and deregisters. */
  async run(): Promise<void> {
    this.scheduleHeartbeat();
    await this.pollLoop();
    await this.waitForIdle();
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    const undelivered = await this.outbox.flush(this.options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS);
    for (const report of undelivered) log.error(`Undelivered report (coordinator unreachable): ${report}`);
    if (!this.deregistered && this.runnerId) {
      try {
        await this.options.client.deregister();
        log.info(`Deregistered ${this.runnerId}`);
      } catch (error) {
        log.warn(`Could not deregister ${this.runnerId}: ${(error as Error).message}`);
      }
    }
  }

  /**
   * First call: take no new runs and let active ones finish. Second call: stop active runs.
   * Returns the stage reached.
   */
  shutdown(reason: string): number {
    this.shutdownStage++;
    if (this.shutdownStage === 1) {
      this.stopped.abort();
      const count = this.activeRunCount;
      log.info(
        count > 0
          ? `${reason}: taking no new runs; waiting for ${count} active run(s) to finish. Press Ctrl+C again (or send SIGTERM) to stop them now.`
          : `${reason}: shutting down`,
      );
    } else if (this.shutdownStage === 2) {
      log.warn(`${reason} again: stopping ${this.activeRunCount} active run(s)`);
      for (const entry of this.preparing.values()) entry.stopRequested = true;
      for (const runId of this.active.keys()) this.stopRun(runId);
    }
    return this.shutdownStage;
  }

  private async pollLoop(): Promise<void> {
    const backoff = this.backoff();
    const { config, client } = this.options;
    const holdSeconds = config.pollTimeoutSeconds ?? this.registration?.poll_timeout_seconds ?? DEFAULT_POLL_TIMEOUT_SECONDS;
    while (!this.stopped.signal.aborted) {
      let result;
      try {
        result = await client.poll(holdSeconds * 1000 + POLL_SLACK_MS, this.stopped.signal);
      } catch (error) {
        if (this.stopped.signal.aborted) break;
        // A poll held past our own timeout is an empty poll, not a failure.
        if ((error as Error).name === "TimeoutError") continue;
        const delay = backoff.next();
        const say = backoff.attempts === 1 || backoff.attempts % 5 === 0 ? log.warn : log.debug;
        say(`Poll failed (attempt ${backoff.attempts}): ${(error as Error).message}; retrying in ${seconds(delay)}`);
        await sleep(delay, this.stopped.signal);
        continue;
      }
      if (backoff.attempts > 0) {
        log.info(`Coordinator answers again after ${backoff.attempts} failed poll(s)`);
        backoff.reset();
        this.outbox.wake();
      }
      switch (result.kind) {
        case "idle":
          break;
        case "run":
          void this.startRun(result.run);
          break;
        case "bad_run":
          log.error(result.reason);
          if (result.runId) this.report(result.runId, { kind: "failed", error: result.reason });
          break;
        case "stop":
          for (const runId of result.runIds) this.stopRun(runId);
          break;
        case "deregistered":
          log.warn("The coordinator deregistered this runner (removed from outside)");
          this.deregistered = true;
          this.shutdown("Deregistered");
          break;
        case "not_registered":
          log.warn("The coordinator does not know this runner any more (restarted?); registering again");
          await this.reregister();
          break;
      }
    }
  }

  /** Registers again after the coordinator forgot us; one attempt in flight, shared by all callers. */
  private reregister(): Promise<boolean> {
    if (this.deregistered) return Promise.resolve(false);
    this.registering ??= (async () => {
      const backoff = this.backoff();
      while (!this.deregistered) {
        try {
          await this.options.client.register(this.options.registration);
          log.info(`Registered again as ${this.runnerId}; ${this.activeRunCount} run(s) carry on`);
          this.outbox.wake();
          return true;
        } catch (error) {
          if (error instanceof DuplicateRunnerError && error.existing.runner_id) {
            // Still online under our identity: that is us.
            this.options.client.runnerId = error.existing.runner_id;
            return true;
          }
          const delay = backoff.next();
          log.warn(`Registering again failed (attempt ${backoff.attempts}): ${(error as Error).message}; retrying in ${seconds(delay)}`);
          await sleep(delay);
        }
      }
      return false;
    })().finally(() => (this.registering = undefined));
    return this.registering;
  }

  private scheduleHeartbeat(): void {
    const intervalSeconds =
      this.options.config.heartbeatIntervalSeconds ??
      this.registration?.heartbeat_interval_seconds ??
      DEFAULT_HEARTBEAT_INTERVAL_SECONDS;
    this.heartbeatTimer = setTimeout(async () => {
      try {
        if (!(await this.options.client.heartbeat())) {
          log.warn("Heartbeat: the coordinator does not know this runner any more; registering again");
          await this.reregister();
        }
      } catch (error) {
        log.warn(`Heartbeat failed: ${(error as Error).message}`);
      }
      // Beats go on while active runs drain after a shutdown signal: the coordinator must not
      // take a draining runner for dead. run() ends them.
      if (this.heartbeatTimer) this.scheduleHeartbeat();
    }, intervalSeconds * 1000);
  }

  private report(runId: string, report: RunReport): void {
    this.outbox.send(runId, report);
  }

  private fail(runId: string, error: string): void {
    log.error(`Run ${runId} failed: ${error}`);
    this.report(runId, { kind: "failed", error });
  }

  /** Why this runner must not execute the run (tagged-only mode), or undefined. */
  private tagRefusal(run: RunRequest): string | undefined {
    const { config } = this.options;
    if (!config.requireMatchingTags) return undefined;
    const demanded = run.demands?.tags;
    const tags = Array.isArray(demanded) ? demanded.filter((tag): tag is string => typeof tag === "string") : [];
    if (tags.length === 0) {
      return `Run demands no tags, and this runner accepts only runs sharing a tag with it (--require-matching-tags, tags ${config.tags.join(",")})`;
    }
    if (!tags.some((tag) => config.tags.includes(tag))) {
      return `Run demands tags ${tags.join(",")}, none of which this runner has (tags ${config.tags.join(",")}, --require-matching-tags)`;
    }
    return undefined;
  }

  private async startRun(run: RunRequest): Promise<void> {
    const runId = run.run_id;
    if (this.active.has(runId) || this.preparing.has(runId)) {
      log.warn(`Run ${runId} handed out again while it is running; ignored`);
      return;
    }
    const mode = RUN_MODES[run.type];
    if (!mode) return this.fail(runId, `Unknown run type '${run.type}' (expected start_session or resume_session)`);
    const refusal = this.tagRefusal(run);
    if (refusal) return this.fail(runId, refusal);

    const preparation = { stopRequested: false };
    this.preparing.set(runId, preparation);
    try {
      let blueprint: JsonObject | undefined;
      if (run.agent_name) {
        try {
          blueprint = await this.options.client.getAgent(run.agent_name);
        } catch (error) {
          return this.fail(runId, `Could not fetch agent blueprint '${run.agent_name}': ${(error as Error).message}`);
        }
        if (!blueprint) return this.fail(runId, `Agent blueprint '${run.agent_name}' not found`);
        blueprint = resolveBlueprint(blueprint, { sessionId: run.session_id, mcpUrl: this.options.mcpUrl });
      }
      if (preparation.stopRequested) return this.fail(runId, "Run was stopped before its executor started");
      this.spawn(run, mode, blueprint);
    } finally {
      this.preparing.delete(runId);
      this.notifyIfIdle();
    }
  }

  private spawn(run: RunRequest, mode: InvocationMode, blueprint: JsonObject | undefined): void {
    const { config, profile } = this.options;
    const invocation = buildInvocation({
      mode,
      sessionId: run.session_id,
      prompt: run.prompt,
      projectDir: run.project_dir || config.projectDir,
      agentBlueprint: blueprint,
      executorConfig: profile.config,
      metadata: run.metadata ?? undefined,
    });
    let process: ExecutorProcess;
    try {
      process = new ExecutorProcess({
        argv: profile.argv,
        input: JSON.stringify(invocation),
        env: { ...this.executorEnv, AGENT_SESSION_ID: run.session_id },
        label: run.run_id,
        logOutput: log.level >= LogLevels.debug,
      });
    } catch (error) {
      return this.fail(run.run_id, `Executor ${profile.argv.join(" ")} could not be started: ${(error as Error).message}`);
    }
    const entry: ActiveRun = { run, process, startedAt: performance.now() };
    this.active.set(run.run_id, entry);
    this.report(run.run_id, { kind: "started" });
    log.info(
      `Run ${run.run_id} started: ${run.type}, session ${run.session_id}${run.agent_name ? `, agent ${run.agent_name}` : ""}, pid ${process.pid}`,
    );
    void this.supervise(entry);
  }

  private async supervise(entry: ActiveRun): Promise<void> {
    const { run, process } = entry;
    const status = await process.exited;
    const signal = entry.stopping && (await entry.stopping);
    this.active.delete(run.run_id);
    const took = seconds(performance.now() - entry.startedAt);
    if (signal) {
      log.info(`Run ${run.run_id} stopped by ${signal} after ${took}`);
      this.report(run.run_id, { kind: "stopped", signal });
    } else if (status.code === 0) {
      log.info(`Run ${run.run_id} completed in ${took}`);
      this.report(run.run_id, { kind: "completed" });
    } else {
      const tail = process.stderrTail().trim();
      const ending = status.signal ? `Process killed by ${status.signal}` : `Process exited with code ${status.code}`;
      this.fail(run.run_id, tail || ending);
    }
    this.notifyIfIdle();
  }

  private stopRun(runId: string): void {
    const preparing = this.preparing.get(runId);
    if (preparing) {
      preparing.stopRequested = true;
      return;
    }
    const entry = this.active.get(runId);
    if (!entry) {
      log.debug(`Stop for run ${runId}, which is not running here; ignored`);
      return;
    }
    if (entry.stopping) return;
    log.info(`Stopping run ${runId} (SIGTERM, SIGKILL after ${this.options.config.stopGraceSeconds} s)`);
    entry.stopping = entry.process.stop(this.options.config.stopGraceSeconds * 1000);
  }

  private waitForIdle(): Promise<void> {
    if (this.activeRunCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIfIdle(): void {
    if (this.activeRunCount > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function duplicateMessage(error: DuplicateRunnerError): string {
  const { existing } = error;
  return [
    "A runner with this identity is already online at the coordinator.",
    "",
    `  runner id:   ${existing.runner_id ?? "unknown"}`,
    `  hostname:    ${existing.hostname ?? "unknown"}`,
    `  project dir: ${existing.project_dir ?? "unknown"}`,
    `  profile:     ${existing.executor_profile ?? "unknown"}`,
    "",
    "A runner's identity is (hostname, project dir, profile). Stop the other runner, or start this",
    "one with another --project-dir or --profile. If the other runner died, wait for the",
    "coordinator to notice its missing heartbeats, then start again.",
    ...(error.message ? ["", `Coordinator: ${error.message}`] : []),
  ].join("\n");
}
