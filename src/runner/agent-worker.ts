/**
 * The worker loop: registers, long-polls for runs and hands each to a RunJob, heartbeats, and
 * shuts down in stages without leaving anything the coordinator handed out unanswered.
 */
import type { ExecutorProfile } from "../config/profiles.ts";
import {
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_POLL_TIMEOUT_SECONDS,
  MAX_HEARTBEAT_INTERVAL_SECONDS,
  MAX_POLL_TIMEOUT_SECONDS,
  type RunnerConfig,
} from "../config/runner-config.ts";
import type { CoordinatorClient, PollEvent } from "../coordinator/client.ts";
import type { RegistrationPayload } from "../coordinator/registration.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { retry, seconds, sleep } from "../shared/retry.ts";
import { ActiveRuns } from "./active-runs.ts";
import { Heartbeat } from "./heartbeat.ts";
import { type LeftoverReport, reapLeftovers } from "./leftover-runs.ts";
import { Registrar } from "./registrar.ts";
import { ReportOutbox } from "./report-outbox.ts";
import type { PreviousIncarnation, RunJournal } from "./run-journal.ts";
import type { RunTokens } from "./run-tokens.ts";

export { RunnerStartError } from "./registrar.ts";

/** How long shutdown waits for undelivered reports (they stay in the journal for the next start). */
const FLUSH_TIMEOUT_MS = 30_000;
/** A poll's HTTP timeout is this much above the time the coordinator holds it. */
const POLL_SLACK_MS = 5_000;
/** A poll that comes back empty sooner than this is followed by a pause, not at once. */
const MIN_EMPTY_POLL_MS = 1_000;
/** While the runner takes no runs, how often it asks whether a stop was requested for its active ones. */
const WATCH_INTERVAL_MS = 2_000;

export interface AgentWorkerOptions {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: CoordinatorClient;
  registration: RegistrationPayload;
  /** The executor's environment, before each run's own variables. */
  executorEnv: Record<string, string | undefined>;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  journal?: RunJournal;
  /** What a dead earlier runner process of this identity left behind. */
  previous?: PreviousIncarnation;
  /** The gateway's URL and the tokens that give each run's executor its own access to it. */
  gatewayUrl: string;
  tokens: RunTokens;
  /** How long shutdown waits for undelivered reports (default 30 s). */
  flushTimeoutMs?: number;
  /** First retry delay after a failed request to the coordinator (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
}

/** A duration the coordinator gave, kept within what the runner accepts from its own flags. */
function fromCoordinator(name: string, value: number | undefined, max: number): number | undefined {
  if (value === undefined || value <= max) return value;
  log.warn(`The coordinator's ${name} ${value} is over ${max} s; using ${max}`);
  return max;
}

export class AgentWorker {
  readonly outbox: ReportOutbox;
  private readonly runs: ActiveRuns;
  private readonly heartbeat: Heartbeat;
  private readonly registrar: Registrar;
  /** Aborted by the first shutdown signal: no new runs are asked for. */
  private readonly stopping = new AbortController();
  /** Aborted when the coordinator removed this runner from outside. */
  private readonly removed = new AbortController();
  /** Aborted when the worker is done: ends what still retries (registering again, reports). */
  private readonly finished = new AbortController();
  private shutdownStage = 0;
  private pollInFlight = false;
  private holdSeconds = DEFAULT_POLL_TIMEOUT_SECONDS;
  private heartbeatSeconds = DEFAULT_HEARTBEAT_INTERVAL_SECONDS;
  /** Resolves at the first shutdown signal. */
  private readonly stopRequested: Promise<void>;
  /** Reports owed for the runs of a dead earlier process, sent once registered. */
  private readonly leftovers: LeftoverReport[];

  constructor(private readonly options: AgentWorkerOptions) {
    const { client, journal } = options;
    this.stopRequested = new Promise((resolve) =>
      this.stopping.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    // At once, before registering: the dead process's executors must not run on meanwhile, and
    // what its runs are owed is journalled again under this process before anything can fail.
    this.leftovers = options.previous ? reapLeftovers(options.previous) : [];
    for (const { runId, sessionId, report } of this.leftovers) journal?.runEnded(runId, sessionId, report);
    const backOnline = client.http.backOnline;
    this.registrar = new Registrar({
      client,
      payload: options.registration,
      coordinatorUrl: options.config.coordinatorUrl,
      previous: options.previous,
      lifetime: this.finished.signal,
      wakeup: backOnline,
      retryInitialMs: options.retryInitialMs,
      onRegistered: (runnerId) => journal?.setRunnerId(runnerId),
    });
    this.outbox = new ReportOutbox(
      {
        deliver: (runId, report) => client.report(runId, report),
        reregister: () => this.registrar.reregister(this.removed.signal.aborted),
      },
      { wakeup: backOnline, retryInitialMs: options.retryInitialMs, onSettled: (runId) => journal?.settled(runId) },
    );
    const { config, profile, executorEnv, mcpUrl, gatewayUrl, tokens } = options;
    this.runs = new ActiveRuns({
      config,
      profile,
      client,
      executorEnv,
      mcpUrl,
      gatewayUrl,
      tokens,
      journal,
      report: (runId, report) => this.outbox.send(runId, report),
    });
    this.heartbeat = new Heartbeat(client, () => void this.registrar.reregister(this.removed.signal.aborted));
  }

  get activeRunCount(): number {
    return this.runs.size;
  }

  get runnerId(): string | undefined {
    return this.registrar.runnerId;
  }

  /**
   * Registers (retrying while the coordinator is unreachable) and queues the reports a dead
   * earlier process owed. Throws a RunnerStartError for a duplicate identity or refused
   * credentials; resolves false when shut down first.
   */
  async register(): Promise<boolean> {
    const { config, profile } = this.options;
    const registration = await this.registrar.register(this.stopping.signal);
    if (!registration) return false;
    this.holdSeconds =
      config.pollTimeoutSeconds ??
      fromCoordinator("poll_timeout_seconds", registration.poll_timeout_seconds, MAX_POLL_TIMEOUT_SECONDS) ??
      DEFAULT_POLL_TIMEOUT_SECONDS;
    this.heartbeatSeconds =
      config.heartbeatIntervalSeconds ??
      fromCoordinator(
        "heartbeat_interval_seconds",
        registration.heartbeat_interval_seconds,
        MAX_HEARTBEAT_INTERVAL_SECONDS,
      ) ??
      DEFAULT_HEARTBEAT_INTERVAL_SECONDS;
    const tags = config.tags.length ? `, tags ${config.tags.join(",")}` : "";
    log.info(
      `Registered with ${config.coordinatorUrl} as ${registration.runner_id} (profile '${profile.name}', project dir ${config.projectDir}${tags})`,
    );
    for (const { runId, report } of this.leftovers.splice(0)) this.outbox.send(runId, report);
    return true;
  }

  /** Takes and executes runs until shutdown, then waits for them, flushes reports and deregisters. */
  async run(): Promise<void> {
    // Beats go on while active runs drain after a shutdown signal: the coordinator must not take
    // a draining runner for dead.
    this.heartbeat.start(this.heartbeatSeconds);
    await this.workLoop();
    this.heartbeat.stop();
    const undelivered = await this.outbox.flush(this.options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS);
    for (const report of undelivered) log.error(`Undelivered report (kept for the next start): ${report}`);
    this.outbox.close();
    this.finished.abort();
    const { client } = this.options;
    if (client.runnerId && (!this.removed.signal.aborted || this.registrar.registeredAfterRemoval)) {
      try {
        await client.deregister();
        log.info(`Deregistered ${client.runnerId}`);
      } catch (error) {
        log.warn(`Could not deregister ${client.runnerId}: ${messageOf(error)}`);
      }
    }
    this.options.journal?.close();
  }

  /**
   * First call: take no new runs and let active ones finish. Second call: stop active runs.
   * Returns the stage reached.
   */
  shutdown(reason: string): number {
    this.shutdownStage++;
    if (this.shutdownStage === 1) {
      this.stopping.abort();
      const count = this.activeRunCount;
      log.info(
        count > 0
          ? `${reason}: taking no new runs; waiting for ${count} active run(s) to finish. Press Ctrl+C again (or send SIGTERM) to stop them now.`
          : `${reason}: shutting down`,
      );
      if (this.pollInFlight) {
        log.info(
          `The poll in flight may still bring a run (it returns within ${this.holdSeconds} s); it would run too`,
        );
      }
    } else if (this.shutdownStage === 2) {
      log.warn(`${reason} again: stopping ${this.activeRunCount} active run(s)`);
      this.runs.stopAll();
    }
    return this.shutdownStage;
  }

  /** Asks for runs while it takes them; otherwise watches the active ones until none is left. */
  private async workLoop(): Promise<void> {
    for (;;) {
      if (this.takesRuns()) await this.pollOnce();
      else if (this.runs.size > 0) await this.watchActiveRuns();
      else return;
    }
  }

  private takesRuns(): boolean {
    return !this.stopping.signal.aborted && !this.removed.signal.aborted;
  }

  /**
   * One poll, retried with backoff. The request itself is never cut short by a shutdown signal:
   * the coordinator may already have handed it a run, which would be lost.
   */
  private async pollOnce(): Promise<void> {
    const { client, retryInitialMs } = this.options;
    const startedAt = performance.now();
    const events = await retry(
      async () => {
        this.pollInFlight = true;
        try {
          return await client.poll(this.holdSeconds * 1000 + POLL_SLACK_MS);
        } catch (error) {
          // A poll held past our own timeout is an empty poll, not a failure.
          if ((error as Error).name === "TimeoutError") return [];
          throw error;
        } finally {
          this.pollInFlight = false;
        }
      },
      {
        signal: this.stopping.signal,
        wakeup: client.http.backOnline,
        initialMs: retryInitialMs,
        describeFailure: ({ message, attempt, delayMs }) =>
          `Poll failed (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`,
        onRecovered: (failures) => log.info(`Coordinator answers again after ${failures} failed poll(s)`),
      },
    );
    if (!events) return;
    for (const event of events) await this.handle(event);
    const elapsed = performance.now() - startedAt;
    if (events.length === 0 && elapsed < MIN_EMPTY_POLL_MS)
      await sleep(MIN_EMPTY_POLL_MS - elapsed, this.stopping.signal);
  }

  private async handle(event: PollEvent): Promise<void> {
    switch (event.kind) {
      case "run":
        // A run handed out after the second signal is stopped before its executor starts.
        this.runs.start(event.run, this.shutdownStage >= 2);
        return;
      case "bad_run":
        log.error(event.reason);
        if (event.runId) this.outbox.send(event.runId, { kind: "failed", error: event.reason });
        return;
      case "stop":
        for (const runId of event.runIds) this.runs.stop(runId);
        return;
      case "deregistered":
        log.warn("The coordinator deregistered this runner (removed from outside)");
        this.removed.abort();
        this.shutdown("Deregistered");
        return;
      case "not_registered": {
        log.warn("The coordinator does not know this runner any more (restarted?); registering again");
        // A shutdown signal ends the wait here: nothing would be polled for any more.
        await Promise.race([this.registrar.reregister(false), this.stopRequested]);
        return;
      }
    }
  }

  /** While no run is asked for, stop requests are looked up run by run, every few seconds. */
  private async watchActiveRuns(): Promise<void> {
    const wake = this.runs.ended.signal;
    await this.runs.stopThoseRequested(this.finished.signal);
    await sleep(WATCH_INTERVAL_MS, wake);
  }
}
