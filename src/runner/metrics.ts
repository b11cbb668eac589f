/**
 * The runner's Prometheus metrics (prom-client): runs by outcome and failure reason, their
 * durations and waits, the coordinator's answers, tokens and cost, state, build info and the
 * process's own figures. Loaded only with `--health-addr`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import {
  type CoordinatorCall,
  FAILURE_REASONS,
  type FailedCall,
  type FailureReason,
  type IdleSessions,
  type RunEnd,
  type RunOutcome,
  type TurnShare,
} from "./observer.ts";

/** The states /readyz reports. */
const READINESS_STATES = ["starting", "ready", "coordinator_unreachable", "reregistering", "draining"] as const;
export type ReadinessState = (typeof READINESS_STATES)[number];

const RUN_OUTCOMES: readonly RunOutcome[] = ["completed", "failed", "stopped", "timed_out"];
/** The kinds of tokens a model call is billed for (the `kind` label). */
const TOKEN_KINDS = ["input", "output", "cache_read", "cache_creation"] as const;

/** Agent runs last seconds to hours. */
const RUN_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];
/** A run waits for a free runner from a moment to hours (a queue that backs up). */
const QUEUE_WAIT_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** An executor shows its first sign of life within milliseconds (a script) to seconds (Claude Code, a sandbox, a cold disk). */
const EXECUTOR_START_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];
/** A coordinator's answer: milliseconds on a LAN, seconds when it is overloaded. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Of prom-client's default metrics, those that mean nothing under Bun: V8's heap spaces (all 0
 * under JavaScriptCore), the active handles and resources (not implemented: always 0 or empty),
 * GC pauses (no `gc` performance entries: always empty) and the Node.js version Bun imitates.
 */
const MEANINGLESS_UNDER_BUN = [
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_gc_duration_seconds",
  "nodejs_version_info",
];
/**
 * The event loop's delay is sampled by a timer this often (ms). prom-client's 10 ms costs an idle
 * runner ~5 ms of CPU a second; once a second, ~0.5 ms, and a stall still shows in the maximum.
 */
const EVENT_LOOP_SAMPLE_MS = 1000;

const PREFIX = "agent_runner_";

export interface MetricsOptions {
  profile: string;
  version: string;
  maxConcurrentRuns?: number;
}

export class RunnerMetrics {
  readonly registry = new Registry();
  private readonly labels: { profile: string };
  private readonly version: string;
  private readonly runsStarted: Counter<"profile">;
  private readonly runs: Counter<"profile" | "outcome">;
  private readonly runsFailed: Counter<"profile" | "reason">;
  private readonly errors: Record<FailedCall, Counter>;
  private readonly activeRuns: Gauge;
  private readonly outboxPending: Gauge;
  private readonly duration: Histogram<"profile" | "outcome">;
  private readonly queueWait: Histogram<"profile">;
  private readonly executorStart: Histogram<"profile">;
  private readonly requestDuration: Histogram<"call">;
  private readonly tokens: Counter<"profile" | "kind">;
  private readonly cost: Counter<"profile">;
  private readonly state: Gauge<"state">;
  private readonly registered: Gauge;
  private readonly buildInfo: Gauge<"version" | "profile" | "runner_id">;
  private readonly journalWriteFailures: Counter;
  private readonly idleSessionCount: Gauge;
  private readonly idleSessionMemory: Gauge;
  private idleSessions: () => IdleSessions = () => ({ count: 0, memoryBytes: 0 });
  private lastContact: () => number | undefined = () => undefined;
  private readonly atCapacity: Gauge;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    this.labels = { profile: options.profile };
    this.version = options.version;
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    for (const name of MEANINGLESS_UNDER_BUN) this.registry.removeSingleMetric(name);

    this.runsStarted = new Counter({
      name: `${PREFIX}runs_started_total`,
      help: "Runs whose executor was started (or whose turn a persistent session's executor took).",
      labelNames: ["profile"],
      registers,
    });
    // Every series present from the start at 0, so rate() and alerts see it.
    this.runsStarted.inc(this.labels, 0);
    this.runs = new Counter({
      name: `${PREFIX}runs_total`,
      help: "Runs that ended, by outcome (completed, failed, stopped, timed_out); each run counts once.",
      labelNames: ["profile", "outcome"],
      registers,
    });
    for (const outcome of RUN_OUTCOMES) this.runs.inc({ ...this.labels, outcome }, 0);
    this.runsFailed = new Counter({
      name: `${PREFIX}runs_failed_total`,
      help: "Runs reported failed (timed-out ones included), by reason.",
      labelNames: ["profile", "reason"],
      registers,
    });
    for (const reason of FAILURE_REASONS) this.runsFailed.inc({ ...this.labels, reason }, 0);
    const errorCounter = (call: FailedCall, help: string) =>
      new Counter({ name: `${PREFIX}${call}_errors_total`, help, registers });
    this.errors = {
      poll: errorCounter("poll", "Polls of the coordinator that failed (retried)."),
      report: errorCounter("report", "Run reports the coordinator did not take (retried)."),
      register: errorCounter("register", "Registration attempts that failed (retried)."),
      heartbeat: errorCounter("heartbeat", "Heartbeats that failed (the next one goes at its time)."),
    };
    this.activeRuns = new Gauge({ name: `${PREFIX}active_runs`, help: "Runs active on this runner.", registers });
    this.outboxPending = new Gauge({
      name: `${PREFIX}outbox_pending_reports`,
      help: "Run reports waiting to be delivered to the coordinator.",
      registers,
    });
    this.duration = new Histogram({
      name: `${PREFIX}run_duration_seconds`,
      help: "Time from a run's executor start to its outcome, by outcome.",
      labelNames: ["profile", "outcome"],
      buckets: RUN_DURATION_BUCKETS,
      registers,
    });
    for (const outcome of RUN_OUTCOMES) this.duration.zero({ ...this.labels, outcome });
    this.queueWait = new Histogram({
      name: `${PREFIX}run_queue_wait_seconds`,
      help: "Time from a run's creation at the coordinator to its executor's start (runs that say when they were created).",
      labelNames: ["profile"],
      buckets: QUEUE_WAIT_BUCKETS,
      registers,
    });
    this.queueWait.zero(this.labels);
    this.executorStart = new Histogram({
      name: `${PREFIX}executor_start_seconds`,
      help: "Time from an executor's spawn to its first sign of life: its first output, or its first gateway request.",
      labelNames: ["profile"],
      buckets: EXECUTOR_START_BUCKETS,
      registers,
    });
    this.executorStart.zero(this.labels);
    this.requestDuration = new Histogram({
      name: `${PREFIX}coordinator_request_duration_seconds`,
      help: "Time the coordinator took to answer a request, by call (polls left out: the coordinator holds them).",
      labelNames: ["call"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: `${PREFIX}tokens_total`,
      help: "Tokens the runs' agents used, by kind (input, output, cache_read, cache_creation), as their executors report them.",
      labelNames: ["profile", "kind"],
      registers,
    });
    for (const kind of TOKEN_KINDS) this.tokens.inc({ ...this.labels, kind }, 0);
    this.cost = new Counter({
      name: `${PREFIX}cost_usd_total`,
      help: "What the runs' agents cost in USD, as their executors estimate it (list prices), each turn counted once.",
      labelNames: ["profile"],
      registers,
    });
    this.cost.inc(this.labels, 0);
    this.state = new Gauge({
      name: `${PREFIX}state`,
      help: "The runner's state as /readyz reports it: 1 for the current state, 0 for the others.",
      labelNames: ["state"],
      registers,
    });
    this.registered = new Gauge({
      name: `${PREFIX}registered`,
      help: "1 while registered with the coordinator, else 0.",
      registers,
    });
    this.atCapacity = new Gauge({
      name: `${PREFIX}at_capacity`,
      help: "1 while --max-concurrent-runs runs are active (the runner asks for no run until one ends), else 0.",
      registers,
    });
    this.atCapacity.set(0);
    this.setState("starting");
    this.journalWriteFailures = new Counter({
      name: `${PREFIX}journal_write_failures_total`,
      help: "Run journal writes that failed (runs go on; a crash meanwhile could not be cleaned up after).",
      registers,
    });
    this.idleSessionCount = new Gauge({
      name: `${PREFIX}idle_sessions`,
      help: "Persistent sessions whose executors wait for their next turn.",
      registers,
    });
    this.idleSessionMemory = new Gauge({
      name: `${PREFIX}idle_session_memory_bytes`,
      help: "Resident memory of the idle persistent sessions' processes.",
      registers,
    });
    const lastContact = () => this.lastContact();
    new Gauge({
      name: `${PREFIX}last_contact_timestamp_seconds`,
      help: "When the coordinator last answered (Unix time); 0 until it has since registration.",
      registers,
      collect() {
        this.set(lastContact() ?? 0);
      },
    });
    this.buildInfo = new Gauge({
      name: `${PREFIX}build_info`,
      help: "Always 1; the labels say which runner this is (runner_id once registered).",
      labelNames: ["version", "profile", "runner_id"],
      registers,
    });
    this.setRunnerId("");
    if (options.maxConcurrentRuns !== undefined) {
      new Gauge({
        name: `${PREFIX}max_concurrent_runs`,
        help: "The --max-concurrent-runs limit.",
        registers,
      }).set(options.maxConcurrentRuns);
    }
  }

  runStarted(queueWaitSeconds?: number): void {
    this.runsStarted.inc(this.labels);
    if (queueWaitSeconds !== undefined) this.queueWait.observe(this.labels, queueWaitSeconds);
  }

  executorResponded(seconds: number): void {
    this.executorStart.observe(this.labels, seconds);
  }

  runEnded({ outcome, reason, durationSeconds }: RunEnd): void {
    this.runs.inc({ ...this.labels, outcome });
    const failed: FailureReason | undefined =
      outcome === "timed_out" ? "timeout" : outcome === "failed" ? (reason ?? "executor_exit") : undefined;
    if (failed) this.runsFailed.inc({ ...this.labels, reason: failed });
    if (durationSeconds !== undefined) this.duration.observe({ ...this.labels, outcome }, durationSeconds);
  }

  requestFailed(call: FailedCall): void {
    this.errors[call].inc();
  }

  coordinatorAnswered(call: CoordinatorCall, seconds: number): void {
    this.requestDuration.observe({ call }, seconds);
  }

  /** When the coordinator last answered, as Unix seconds, read at each scrape. */
  trackLastContact(read: () => number | undefined): void {
    this.lastContact = read;
  }

  setRunnerId(runnerId: string): void {
    this.buildInfo.reset();
    this.buildInfo.set({ version: this.version, profile: this.labels.profile, runner_id: runnerId }, 1);
  }

  usage(share: TurnShare): void {
    const { labels } = this;
    this.tokens.inc({ ...labels, kind: "input" }, share.inputTokens);
    this.tokens.inc({ ...labels, kind: "output" }, share.outputTokens);
    this.tokens.inc({ ...labels, kind: "cache_read" }, share.cacheReadInputTokens);
    this.tokens.inc({ ...labels, kind: "cache_creation" }, share.cacheCreationInputTokens);
    this.cost.inc(labels, share.costUsd);
  }

  journalWriteFailed(): void {
    this.journalWriteFailures.inc();
  }

  trackIdleSessions(read: () => IdleSessions): void {
    this.idleSessions = read;
  }

  setActiveRuns(count: number): void {
    this.activeRuns.set(count);
  }

  setOutboxPending(count: number): void {
    this.outboxPending.set(count);
  }

  setAtCapacity(busy: boolean): void {
    this.atCapacity.set(busy ? 1 : 0);
  }

  setState(state: ReadinessState): void {
    for (const known of READINESS_STATES) this.state.set({ state: known }, known === state ? 1 : 0);
    this.registered.set(state === "starting" || state === "reregistering" ? 0 : 1);
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    // Read once for both gauges: the memory is a look at every process in /proc.
    const idle = this.idleSessions();
    this.idleSessionCount.set(idle.count);
    this.idleSessionMemory.set(idle.memoryBytes);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
