/**
 * The worker loop: registers, long-polls for runs and hands each to a RunJob, heartbeats, and
 * shuts down in stages without losing a run's outcome.
 */

import type { ExecutorProfile } from "../config/profiles.ts";
import {
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_POLL_TIMEOUT_SECONDS,
  type RunnerConfig,
} from "../config/runner-config.ts";
import { AuthError } from "../coordinator/auth.ts";
import {
  AuthenticationError,
  type CoordinatorClient,
  DuplicateRunnerError,
  type Registration,
  type RunRequest,
} from "../coordinator/client.ts";
import type { RegistrationPayload } from "../coordinator/registration.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { retry, seconds, Wakeup } from "../shared/retry.ts";
import { ReportOutbox } from "./report-outbox.ts";
import { RunJob } from "./run-job.ts";
import type { RunTokens } from "./run-tokens.ts";

/** How long shutdown waits for undelivered reports before giving up on them. */
const FLUSH_TIMEOUT_MS = 30_000;
/** A poll's HTTP timeout is this much above the time the coordinator holds it. */
const POLL_SLACK_MS = 5_000;

export interface AgentWorkerOptions {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: CoordinatorClient;
  registration: RegistrationPayload;
  /** The executor's environment, before each run's own variables. */
  executorEnv: Record<string, string | undefined>;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  /** The gateway's URL and the tokens that give each run's executor its own access to it. */
  gatewayUrl: string;
  tokens: RunTokens;
  /** How long shutdown waits for undelivered reports (default 30 s). */
  flushTimeoutMs?: number;
  /** First retry delay after a failed request to the coordinator (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
}

/** A fatal start-up problem: the runner cannot go on and exits 1 with this message. */
export class RunnerStartError extends Error {
  override name = "RunnerStartError";
}

export class AgentWorker {
  readonly outbox: ReportOutbox;
  private readonly jobs = new Map<string, RunJob>();
  /** Aborted by the first shutdown signal: no new runs, no more waiting to register. */
  private readonly stopped = new AbortController();
  /** Cuts retry waits short when the coordinator answers again. */
  private readonly wakeup = new Wakeup();
  /** Aborted when the coordinator removed this runner from outside. */
  private readonly removed = new AbortController();
  private shutdownStage = 0;
  private registering?: Promise<boolean>;
  private registration?: Registration;
  private idleWaiters: Array<() => void> = [];
  private heartbeatTimer?: ReturnType<typeof setTimeout>;

  constructor(private readonly options: AgentWorkerOptions) {
    const { client } = options;
    this.outbox = new ReportOutbox(
      { deliver: (runId, report) => client.report(runId, report), reregister: () => this.reregister() },
      { wakeup: this.wakeup, retryInitialMs: options.retryInitialMs },
    );
  }

  get activeRunCount(): number {
    return this.jobs.size;
  }

  get runnerId(): string | undefined {
    return this.options.client.runnerId;
  }

  /**
   * Registers, retrying while the coordinator is unreachable. A duplicate identity or refused
   * credentials are RunnerStartErrors. Resolves false when shut down before registering.
   */
  async register(): Promise<boolean> {
    const { config, profile, client } = this.options;
    let registration: Registration | undefined;
    try {
      registration = await retry(() => client.register(this.options.registration), {
        signal: this.stopped.signal,
        initialMs: this.options.retryInitialMs,
        isFatal: (error) =>
          error instanceof DuplicateRunnerError || error instanceof AuthenticationError || error instanceof AuthError,
        describeFailure: ({ message, attempt, delayMs }) =>
          `Cannot register with ${config.coordinatorUrl} (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`,
      });
    } catch (error) {
      if (error instanceof DuplicateRunnerError) throw new RunnerStartError(duplicateMessage(error));
      throw new RunnerStartError(messageOf(error));
    }
    if (!registration) return false;
    this.registration = registration;
    const tags = config.tags.length ? `, tags ${config.tags.join(",")}` : "";
    log.info(
      `Registered with ${config.coordinatorUrl} as ${registration.runner_id} (profile '${profile.name}', project dir ${config.projectDir}${tags})`,
    );
    return true;
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
    if (!this.removed.signal.aborted && this.runnerId) {
      try {
        await this.options.client.deregister();
        log.info(`Deregistered ${this.runnerId}`);
      } catch (error) {
        log.warn(`Could not deregister ${this.runnerId}: ${messageOf(error)}`);
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
      for (const job of this.jobs.values()) job.stop();
    }
    return this.shutdownStage;
  }

  private async pollLoop(): Promise<void> {
    const { config, client } = this.options;
    const holdSeconds =
      config.pollTimeoutSeconds ?? this.registration?.poll_timeout_seconds ?? DEFAULT_POLL_TIMEOUT_SECONDS;
    while (!this.stopped.signal.aborted) {
      const result = await retry(
        async (signal) => {
          try {
            return await client.poll(holdSeconds * 1000 + POLL_SLACK_MS, signal);
          } catch (error) {
            // A poll held past our own timeout is an empty poll, not a failure.
            if ((error as Error).name === "TimeoutError") return { kind: "idle" } as const;
            throw error;
          }
        },
        {
          signal: this.stopped.signal,
          initialMs: this.options.retryInitialMs,
          describeFailure: ({ message, attempt, delayMs }) =>
            `Poll failed (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`,
          onRecovered: (failures) => {
            log.info(`Coordinator answers again after ${failures} failed poll(s)`);
            this.wakeup.wake();
          },
        },
      );
      switch (result?.kind) {
        case undefined:
        case "idle":
          break;
        case "run":
          this.startRun(result.run);
          break;
        case "bad_run":
          log.error(result.reason);
          if (result.runId) this.outbox.send(result.runId, { kind: "failed", error: result.reason });
          break;
        case "stop":
          for (const runId of result.runIds) this.stopRun(runId);
          break;
        case "deregistered":
          log.warn("The coordinator deregistered this runner (removed from outside)");
          this.removed.abort();
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
    if (this.removed.signal.aborted) return Promise.resolve(false);
    this.registering ??= (async () => {
      const { client } = this.options;
      // Not ended by a shutdown signal: registering again is what lets the outbox deliver outcomes.
      const registered = await retry(
        async () => {
          try {
            await client.register(this.options.registration);
          } catch (error) {
            if (!(error instanceof DuplicateRunnerError && error.existing.runner_id)) throw error;
            // Still online under our identity: that is us.
            client.runnerId = error.existing.runner_id;
          }
          return true;
        },
        {
          signal: this.removed.signal,
          initialMs: this.options.retryInitialMs,
          describeFailure: ({ message, attempt, delayMs }) =>
            `Registering again failed (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`,
        },
      );
      if (!registered) return false;
      log.info(`Registered again as ${this.runnerId}; ${this.activeRunCount} run(s) carry on`);
      this.wakeup.wake();
      return true;
    })().finally(() => {
      this.registering = undefined;
    });
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
        log.warn(`Heartbeat failed: ${messageOf(error)}`);
      }
      // Beats go on while active runs drain after a shutdown signal: the coordinator must not
      // take a draining runner for dead. run() ends them.
      if (this.heartbeatTimer) this.scheduleHeartbeat();
    }, intervalSeconds * 1000);
  }

  private startRun(run: RunRequest): void {
    if (this.jobs.has(run.run_id)) {
      log.warn(`Run ${run.run_id} handed out again while it is running; ignored`);
      return;
    }
    const { config, profile, client, executorEnv, mcpUrl, gatewayUrl, tokens } = this.options;
    const job = new RunJob(run, {
      config,
      profile,
      client,
      executorEnv,
      mcpUrl,
      gatewayUrl,
      tokens,
      report: (runId, report) => this.outbox.send(runId, report),
    });
    this.jobs.set(run.run_id, job);
    void job.execute().finally(() => {
      this.jobs.delete(run.run_id);
      this.notifyIfIdle();
    });
  }

  private stopRun(runId: string): void {
    const job = this.jobs.get(runId);
    if (!job) {
      log.debug(`Stop for run ${runId}, which is not running here; ignored`);
      return;
    }
    job.stop();
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
