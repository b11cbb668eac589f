/**
 * The worker loop: registers, long-polls for runs and hands each to a RunJob, heartbeats, and
 * shuts down in stages without leaving anything the coordinator handed out unanswered.
 */

import { DEFAULT_HEARTBEAT_INTERVAL_SECONDS, DEFAULT_POLL_TIMEOUT_SECONDS } from "../config/defaults.ts";
import type { ExecutorProfile } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import type { CoordinatorClient, PollEvent, RunReport } from "../coordinator/client.ts";
import type { RegistrationInput } from "../coordinator/registration.ts";
import { REQUEST_TIMEOUT_MS } from "../coordinator/request-timeout.ts";
import type { RunTokens } from "../protocol/run-tokens.ts";
import { SessionCosts, UsageEvent } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import type { Env } from "../shared/env.ts";
import { messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { log, setLogContext } from "../shared/log.ts";
import { MAX_RETRY_DELAY_MS, sleep } from "../shared/retry.ts";
import { ActiveRuns } from "./active-runs.ts";
import type { ExecutorRequest } from "./gateway.ts";
import { Heartbeat } from "./heartbeat.ts";
import { type LeftoverReport, reapLeftovers } from "./leftover-runs.ts";
import { LiveSessions } from "./live-sessions.ts";
import { type LoopWatch, noObserver, type RunnerObserver } from "./observer.ts";
import { Poller } from "./poller.ts";
import { coordinatorTiming, Registrar } from "./registrar.ts";
import { ReportOutbox } from "./report-outbox.ts";
import type { RunJob } from "./run-job.ts";
import type { PreviousIncarnation, RunJournal } from "./run-journal.ts";
import { RunLimits } from "./run-limits.ts";

export { RunnerStartError } from "./registrar.ts";

/** How long shutdown waits for undelivered reports (they stay in the journal for the next start). */
const FLUSH_TIMEOUT_MS = 30_000;
/** While the runner takes no runs, how often it asks whether a stop was requested for its active ones. */
const WATCH_INTERVAL_MS = 2_000;

export interface AgentWorkerOptions {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: CoordinatorClient;
  /** Who this runner is: the register body is written from it in the coordinator's generation. */
  registration: RegistrationInput;
  /** The executor's environment, before each run's own variables. */
  executorEnv: Env;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
  /** Where the runner id, each run's and each live session's executor and each outcome not yet delivered are kept. */
  journal: Pick<
    RunJournal,
    | "setRunnerId"
    | "runStarted"
    | "runEnded"
    | "settled"
    | "sessionStarted"
    | "sessionEnded"
    | "sessionSettled"
    | "close"
  >;
  /** What a dead earlier runner process of this identity left behind. */
  previous?: PreviousIncarnation;
  /** The gateway's URL and the tokens that give each run's executor its own access to it. */
  gatewayUrl: string;
  tokens: RunTokens;
  /** Readiness, liveness and metrics (the `--health-addr` server); default: nobody listens. */
  observer?: RunnerObserver;
  /** How long shutdown waits for undelivered reports (default 30 s). */
  flushTimeoutMs?: number;
  /** First retry delay after a failed request to the coordinator (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
}

export class AgentWorker {
  readonly outbox: ReportOutbox;
  private readonly runs: ActiveRuns;
  private readonly sessions: LiveSessions;
  private readonly heartbeat: Heartbeat;
  private readonly registrar: Registrar;
  private readonly limits: RunLimits;
  /** Each session's running cost as its executor last reported it. */
  private readonly costs = new SessionCosts();
  private readonly observer: RunnerObserver;
  /** Set once --max-runs, --max-cost-usd or --exit-after-idle says the runner is done taking runs. */
  private exhausted = false;
  /** Aborted by the first shutdown signal: no new runs are asked for. */
  private readonly stopping = new AbortController();
  /** Aborted when the coordinator removed this runner from outside. */
  private readonly removed = new AbortController();
  /** Aborted when the worker is done: ends what still retries (registering again, reports). */
  private readonly finished = new AbortController();
  private shutdownStage = 0;
  /** Set once the work loop is over: reports are flushed, then the runner deregisters. */
  private leaving = false;
  /** /healthz watches the work loop through this. */
  private loopWatch?: LoopWatch;
  private readonly poller: Poller;
  private heartbeatSeconds = DEFAULT_HEARTBEAT_INTERVAL_SECONDS;
  /** Resolves at the first shutdown signal. */
  private readonly stopRequested: Promise<void>;
  /** Reports owed for the runs of a dead earlier process, sent once registered. */
  private readonly leftovers: LeftoverReport[];

  constructor(private readonly options: AgentWorkerOptions) {
    const { client, journal, config } = options;
    const observer = options.observer ?? noObserver;
    this.observer = observer;
    this.limits = new RunLimits(config);
    this.stopRequested = new Promise((resolve) =>
      this.stopping.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    // At once, before registering: the dead process's executors must not run on meanwhile, and
    // what its runs are owed is journalled again under this process before anything can fail.
    this.leftovers = options.previous ? reapLeftovers(options.previous) : [];
    for (const leftover of this.leftovers) {
      if ("report" in leftover) journal.runEnded(leftover.runId, leftover.sessionId, leftover.report);
      else journal.sessionEnded(leftover.sessionId, leftover.sessionEnd);
    }
    const backOnline = client.http.backOnline;
    this.registrar = new Registrar({
      client,
      registration: options.registration,
      protocol: config.coordinatorProtocol,
      coordinatorUrl: options.config.coordinatorUrl,
      previous: options.previous,
      lifetime: this.finished.signal,
      wakeup: backOnline,
      retryInitialMs: options.retryInitialMs,
      onRegistered: (runnerId) => {
        journal.setRunnerId(runnerId);
        setLogContext({ runner_id: runnerId });
        observer.registered(runnerId);
        // A coordinator back as 2.1 has no idle sessions.
        if (client.generation === "2.1") this.sessions.endIdleUnreported();
      },
      onFailure: () => {
        observer.requestFailed("register");
        this.loopWatch?.beat();
      },
      onReregistering: (active) => observer.setState(active ? "reregistering" : this.readiness()),
    });
    this.outbox = new ReportOutbox(
      {
        deliver: (target, report) =>
          (report.kind === "session_ended"
            ? client.reportSessionEnd(target, report.status)
            : client.report(target, report)
          ).catch((error) => {
            observer.requestFailed("report");
            throw error;
          }),
        reregister: () => this.registrar.reregister(this.removed.signal.aborted),
      },
      {
        wakeup: backOnline,
        retryInitialMs: options.retryInitialMs,
        onSettled: (target, report) =>
          report.kind === "session_ended" ? journal.sessionSettled(target) : journal.settled(target),
        onPendingChange: (count) => observer.setOutboxPending(count),
      },
    );
    this.sessions = new LiveSessions({
      maxIdle: config.maxIdleSessions,
      idleTimeoutMs: config.idleSessionTimeoutSeconds * 1000,
      stopGraceMs: config.stopGraceSeconds * 1000,
      journal,
      tokens: options.tokens,
      // A session's reports share its queue: its end reaches the coordinator after its last run's.
      report: (sessionId, status) => this.outbox.send(sessionId, { kind: "session_ended", status }, sessionId),
    });
    observer.trackIdleSessions(() => ({
      count: this.sessions.idleCount,
      memoryBytes: this.sessions.idleMemoryBytes(),
    }));
    this.runs = new ActiveRuns(
      {
        config,
        profile: options.profile,
        client,
        report: (runId, sessionId, report) => this.outbox.send(runId, report, sessionId),
        journal,
        sessions: this.sessions,
        executorEnv: options.executorEnv,
        mcpUrl: options.mcpUrl,
        gatewayUrl: options.gatewayUrl,
        tokens: options.tokens,
        costs: this.costs,
        observer,
      },
      (count) => {
        observer.setActiveRuns(count);
        this.limits.activeChanged(count);
      },
    );
    this.poller = new Poller(
      {
        client,
        signal: this.stopping.signal,
        retryInitialMs: options.retryInitialMs,
        onFailure: () => {
          observer.requestFailed("poll");
          this.loopWatch?.beat();
        },
      },
      DEFAULT_POLL_TIMEOUT_SECONDS,
    );
    this.heartbeat = new Heartbeat(
      client,
      () => void this.registrar.reregister(this.removed.signal.aborted),
      () => observer.requestFailed("heartbeat"),
    );
  }

  /**
   * A request of a run's executor reached the gateway: a sign of life of the run it serves, and
   * a usage event is what a turn of it used.
   */
  executorRequest(request: ExecutorRequest): void {
    const job = this.runs.serving(request.sessionId);
    job?.executorResponded();
    if (request.route === "event" && request.body?.event_type === "usage") {
      this.usageReported(request.sessionId, request.body, job);
    }
  }

  /**
   * A turn's usage: the run's sum, the metrics, the runner's spending (`--max-cost-usd`). One the
   * executor sent after its run ended still counts for the runner. Bad figures are left out.
   */
  private usageReported(sessionId: string, body: JsonObject, job: RunJob | undefined): void {
    const event = UsageEvent(body);
    if (event instanceof type.errors) {
      log.debug(`Usage event of session ${sessionId} not counted: ${event.summary.replaceAll("\n", "; ")}`);
      return;
    }
    const share = this.costs.turnShare(sessionId, event.usage);
    job?.usage.add(share, event.usage);
    this.observer.usage(share);
    this.limits.spent(share.costUsd);
    // --max-cost-usd says so at once, not after the poll in flight.
    if (!this.takesNoMoreRuns()) this.checkDone();
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
    const timing = coordinatorTiming(config, registration);
    this.poller.holdSeconds = timing.holdSeconds;
    this.heartbeatSeconds = timing.heartbeatSeconds;
    // A healthy coordinator answers a poll within its hold and a heartbeat each interval; silence
    // longer than both together is an outage (readiness fails), not a slow answer.
    this.observer.watchCoordinator(
      () => this.options.client.http.lastAnswerAt,
      (timing.holdSeconds + timing.heartbeatSeconds) * 1000,
    );
    const tags = config.tags.length ? `, tags ${config.tags.join(",")}` : "";
    const { generation } = this.options.client;
    log.info(
      `Registered with ${config.coordinatorUrl} as ${registration.runner_id} (protocol ${generation}, ${this.registrar.generationSource}; profile '${profile.name}', project dir ${config.projectDir}${tags})`,
    );
    if (profile.lifecycle === "persistent" && generation === "2.1") {
      log.warn(
        `Profile '${profile.name}' is persistent, but a coordinator of protocol 2.1 has no idle sessions: each run gets an executor of its own`,
      );
    }
    for (const leftover of this.leftovers.splice(0)) {
      if ("report" in leftover) this.outbox.send(leftover.runId, leftover.report, leftover.sessionId);
      else this.outbox.send(leftover.sessionId, { kind: "session_ended", status: leftover.sessionEnd });
    }
    this.observer.setState(this.readiness());
    return true;
  }

  /** What /readyz says while registered: ready, unless the runner is on its way out. */
  private readiness(): "ready" | "draining" {
    return this.takesNoMoreRuns() ? "draining" : "ready";
  }

  /** Takes and executes runs until shutdown, then waits for them, flushes reports and deregisters. */
  async run(): Promise<void> {
    // Beats go on while active runs drain after a shutdown signal: the coordinator must not take
    // a draining runner for dead.
    this.heartbeat.start(this.heartbeatSeconds);
    this.loopWatch = this.observer.watchLoop("work loop", this.maxLoopSilenceMs());
    await this.workLoop();
    this.loopWatch.done();
    this.leaving = true;
    await this.endIdleSessions();
    this.heartbeat.stop();
    const flushMs = this.options.flushTimeoutMs ?? FLUSH_TIMEOUT_MS;
    const pending = this.outbox.pendingCount;
    if (pending > 0) {
      log.info(
        `Delivering ${pending} report(s) (up to ${flushMs / 1000} s; another signal exits now and keeps them for the next start)`,
      );
    }
    const undelivered = await this.outbox.flush(flushMs);
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
    this.options.journal.close();
  }

  /**
   * The persistent sessions still waiting for a turn end with the runner, each reported finished
   * (what the coordinator would make of them when the runner deregisters). Bounded by twice the
   * stop grace; a signal meanwhile exits at once, and the next start cleans up after them.
   */
  private async endIdleSessions(): Promise<void> {
    const count = this.sessions.size;
    if (count === 0) return;
    log.info(
      `Ending ${count} persistent session(s) (shutdown, SIGTERM and SIGKILL after ${this.options.config.stopGraceSeconds} s each; another signal exits now)`,
    );
    await this.sessions.endAll();
  }

  /**
   * First call: take no new runs and let active ones finish. Second call: stop active runs.
   * Third call, or any call once the runs are over: returns 3, exit now. Returns the stage reached.
   */
  shutdown(reason: string): number {
    // Past the runs, only reports and deregistration are left: a further signal means exit now.
    this.shutdownStage = this.leaving ? 3 : this.shutdownStage + 1;
    if (this.shutdownStage === 1) {
      this.stopping.abort();
      this.observer.setState("draining");
      const count = this.activeRunCount;
      log.info(
        count > 0
          ? `${reason}: taking no new runs; waiting for ${count} active run(s) to finish. Press Ctrl+C again (or send SIGTERM) to stop them now.`
          : `${reason}: shutting down`,
      );
      this.notePollInFlight();
    } else if (this.shutdownStage === 2) {
      log.warn(`${reason} again: stopping ${this.activeRunCount} active run(s)`);
      this.runs.stopAll();
    }
    return this.shutdownStage;
  }

  /**
   * Silence longer than this means a stuck loop: each turn of it beats, and the longest a turn can
   * go without a beat is one poll, one attempt to register again (a token and a request) and the
   * retry wait after it, or one look at the active runs and the pause after it.
   */
  private maxLoopSilenceMs(): number {
    return Math.max(
      this.poller.maxSilenceMs,
      2 * REQUEST_TIMEOUT_MS + MAX_RETRY_DELAY_MS,
      REQUEST_TIMEOUT_MS + WATCH_INTERVAL_MS,
    );
  }

  /** Asks for runs while it takes them; otherwise watches the active ones until none is left. */
  private async workLoop(): Promise<void> {
    for (;;) {
      this.loopWatch?.beat();
      this.checkDone();
      if (this.takesRuns()) {
        for (const event of (await this.poller.poll()) ?? []) await this.handle(event);
      } else if (this.runs.size > 0) await this.watchActiveRuns();
      // Not taking runs with none active: done (a capacity below one is refused at start).
      else return;
    }
  }

  /** Once --max-runs, --max-cost-usd or --exit-after-idle says so, no more runs are taken. */
  private checkDone(): void {
    if (this.exhausted) return;
    const reason = this.limits.done(this.runs.size);
    if (!reason) return;
    this.exhausted = true;
    this.observer.setState("draining");
    log.info(
      this.runs.size > 0
        ? `${reason}: taking no more runs; deregistering and exiting once the ${this.runs.size} active run(s) ended`
        : `${reason}: deregistering and exiting`,
    );
    this.notePollInFlight();
  }

  /** For a run it cannot read: a pinned generation may be the wrong one (auto would have asked). */
  private pinHint(): string {
    if (this.registrar.generationSource === "detected") return "";
    const pinned = this.options.client.generation;
    const other = pinned === "2.1" ? "2.2" : "2.1";
    return ` (protocol ${pinned} is pinned by --coordinator-protocol: if the coordinator speaks ${other}, pin that or use auto)`;
  }

  /** Once the runner takes no more runs, a poll still held by the coordinator may bring one. */
  private notePollInFlight(): void {
    if (!this.poller.polling) return;
    log.info(
      `The poll in flight may still bring a run (it returns within ${this.poller.holdSeconds} s); it would run too`,
    );
  }

  private takesNoMoreRuns(): boolean {
    return this.stopping.signal.aborted || this.removed.signal.aborted || this.exhausted;
  }

  private takesRuns(): boolean {
    return !this.takesNoMoreRuns() && !this.limits.atCapacity(this.runs.size);
  }

  private async handle(event: PollEvent): Promise<void> {
    switch (event.kind) {
      case "run":
        this.limits.took();
        // A run handed out after the second signal is stopped before its executor starts.
        this.runs.start(event.run, this.shutdownStage >= 2);
        return;
      case "bad_run":
        log.error(`${event.reason}${this.pinHint()}`);
        if (event.runId) {
          // Its failure is journalled like any outcome, until the coordinator has it. Without a
          // session of its own, it queues on its own.
          const sessionId = event.sessionId ?? event.runId;
          const report: RunReport = { kind: "failed", error: event.reason };
          this.options.journal.runEnded(event.runId, sessionId, report);
          this.outbox.send(event.runId, report, sessionId);
          this.observer.runEnded({ outcome: "failed", reason: "bad_run" });
        }
        return;
      case "stop":
        for (const runId of event.runIds) this.runs.stop(runId);
        return;
      case "stop_sessions":
        for (const sessionId of event.sessionIds) {
          if (this.runs.stopSession(sessionId) || this.sessions.stopIdle(sessionId)) continue;
          log.debug(`Stop for session ${sessionId}, which has no run or executor here; ignored`);
        }
        return;
      case "deregistered":
        log.warn("The coordinator deregistered this runner (removed from outside)");
        this.removed.abort();
        this.observer.setState("draining");
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
