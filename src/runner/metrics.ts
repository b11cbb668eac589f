/**
 * The runner's Prometheus metrics (prom-client): runs by outcome, active runs, the outbox,
 * coordinator errors, run durations, state and build info. Loaded only with `--health-addr`.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CoordinatorCall, IdleSessions, RunOutcome } from "./observer.ts";

/** The states /readyz reports. */
const READINESS_STATES = ["starting", "ready", "coordinator_unreachable", "reregistering", "draining"] as const;
export type ReadinessState = (typeof READINESS_STATES)[number];

/** Agent runs last seconds to hours. */
const RUN_DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

const PREFIX = "agent_runner_";

export interface MetricsOptions {
  profile: string;
  version: string;
  maxConcurrentRuns?: number;
}

export class RunnerMetrics {
  readonly registry = new Registry();
  private readonly labels: { profile: string };
  private readonly runs: Record<"started" | RunOutcome, Counter<"profile">>;
  private readonly errors: Record<CoordinatorCall, Counter>;
  private readonly activeRuns: Gauge;
  private readonly outboxPending: Gauge;
  private readonly duration: Histogram<"profile">;
  private readonly state: Gauge<"state">;
  private readonly registered: Gauge;
  private readonly journalWriteFailures: Counter;
  private idleSessions: () => IdleSessions = () => ({ count: 0, memoryBytes: 0 });
  private readonly atCapacity: Gauge;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    this.labels = { profile: options.profile };
    const runCounter = (name: string, help: string) => {
      const counter = new Counter({ name: `${PREFIX}${name}`, help, labelNames: ["profile"], registers });
      // Present from the start at 0, so rate() and alerts see every series.
      counter.inc(this.labels, 0);
      return counter;
    };
    this.runs = {
      started: runCounter("runs_started_total", "Runs whose executor was started."),
      completed: runCounter("runs_completed_total", "Runs reported completed."),
      failed: runCounter("runs_failed_total", "Runs reported failed (timed-out runs included)."),
      stopped: runCounter("runs_stopped_total", "Runs reported stopped (by a stop command or the runner's shutdown)."),
      timed_out: runCounter("runs_timed_out_total", "Runs stopped by the run timeout (also counted as failed)."),
    };
    const errorCounter = (call: CoordinatorCall, help: string) =>
      new Counter({ name: `${PREFIX}${call}_errors_total`, help, registers });
    this.errors = {
      poll: errorCounter("poll", "Polls of the coordinator that failed (retried)."),
      report: errorCounter("report", "Run reports the coordinator did not take (retried)."),
      register: errorCounter("register", "Registration attempts that failed (retried)."),
    };
    this.activeRuns = new Gauge({ name: `${PREFIX}active_runs`, help: "Runs active on this runner.", registers });
    this.outboxPending = new Gauge({
      name: `${PREFIX}outbox_pending_reports`,
      help: "Run reports waiting to be delivered to the coordinator.",
      registers,
    });
    this.duration = new Histogram({
      name: `${PREFIX}run_duration_seconds`,
      help: "Time from a run's executor start to its outcome.",
      labelNames: ["profile"],
      buckets: RUN_DURATION_BUCKETS,
      registers,
    });
    this.duration.zero(this.labels);
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
    const idle = () => this.idleSessions();
    new Gauge({
      name: `${PREFIX}idle_sessions`,
      help: "Persistent sessions whose executors wait for their next turn.",
      registers,
      collect() {
        this.set(idle().count);
      },
    });
    new Gauge({
      name: `${PREFIX}idle_session_memory_bytes`,
      help: "Resident memory of the idle persistent sessions' processes.",
      registers,
      collect() {
        this.set(idle().memoryBytes);
      },
    });
    new Gauge({
      name: `${PREFIX}build_info`,
      help: "Always 1; the labels say which runner this is.",
      labelNames: ["version", "profile"],
      registers,
    }).set({ version: options.version, profile: options.profile }, 1);
    if (options.maxConcurrentRuns !== undefined) {
      new Gauge({
        name: `${PREFIX}max_concurrent_runs`,
        help: "The --max-concurrent-runs limit.",
        registers,
      }).set(options.maxConcurrentRuns);
    }
  }

  runStarted(): void {
    this.runs.started.inc(this.labels);
  }

  runEnded(outcome: RunOutcome, durationSeconds?: number): void {
    this.runs[outcome].inc(this.labels);
    if (outcome === "timed_out") this.runs.failed.inc(this.labels);
    if (durationSeconds !== undefined) this.duration.observe(this.labels, durationSeconds);
  }

  requestFailed(call: CoordinatorCall): void {
    this.errors[call].inc();
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
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
