/**
 * Liveness and readiness of a runner, from what the worker reports through RunnerObserver; the
 * metrics are kept in step. Read by the health server's /healthz and /readyz.
 */
import type { ReadinessState, RunnerMetrics } from "./metrics.ts";
import type {
  CoordinatorCall,
  FailedCall,
  IdleSessions,
  LoopWatch,
  RunEnd,
  RunnerObserver,
  RunnerState,
  TurnShare,
} from "./observer.ts";

/** What a probe answers: the HTTP status and a JSON body saying why. */
export interface ProbeAnswer {
  status: 200 | 503;
  body: Record<string, unknown>;
}

/**
 * How often the idle sessions' figures are read at most: their memory is a look at every process
 * on the machine (/proc), which a local process asking /readyz or /metrics in a loop must not be
 * able to make the runner repeat per request.
 */
const IDLE_SESSIONS_READ_MS = 1000;

interface WatchedLoop {
  lastBeat: number;
  maxSilenceMs: number;
}

interface WatchedCoordinator {
  lastAnswerAt: () => number | undefined;
  maxSilenceMs: number;
}

export interface HealthMonitorOptions {
  metrics: RunnerMetrics;
  maxConcurrentRuns?: number;
  /** Milliseconds, monotonic (tests pass their own clock). */
  now?: () => number;
}

export class HealthMonitor implements RunnerObserver {
  private state: RunnerState = "starting";
  private activeRuns = 0;
  private readonly loops = new Map<string, WatchedLoop>();
  private coordinator?: WatchedCoordinator;
  private readonly metrics: RunnerMetrics;
  private readonly maxConcurrentRuns?: number;
  private readonly now: () => number;
  private idleSessions: () => IdleSessions = () => ({ count: 0, memoryBytes: 0 });

  constructor(options: HealthMonitorOptions) {
    this.metrics = options.metrics;
    this.maxConcurrentRuns = options.maxConcurrentRuns;
    this.now = options.now ?? (() => performance.now());
  }

  setState(state: RunnerState): void {
    this.state = state;
    this.syncMetrics();
  }

  setActiveRuns(count: number): void {
    this.activeRuns = count;
    this.metrics.setActiveRuns(count);
    this.syncMetrics();
  }

  watchCoordinator(lastAnswerAt: () => number | undefined, maxSilenceMs: number): void {
    this.coordinator = { lastAnswerAt, maxSilenceMs };
    // The same moment as Unix time: the monotonic clock's distance to it, back from the wall clock.
    this.metrics.trackLastContact(() => {
      const at = lastAnswerAt();
      return at === undefined ? undefined : (Date.now() - (this.now() - at)) / 1000;
    });
  }

  /** The state and busy gauges as /readyz would answer now (the coordinator's silence is a matter of time). */
  syncMetrics(): void {
    this.metrics.setState(this.readinessState());
    this.metrics.setAtCapacity(this.busy());
  }

  setOutboxPending(count: number): void {
    this.metrics.setOutboxPending(count);
  }

  runStarted(queueWaitSeconds?: number): void {
    this.metrics.runStarted(queueWaitSeconds);
  }

  executorResponded(seconds: number): void {
    this.metrics.executorResponded(seconds);
  }

  runEnded(end: RunEnd): void {
    this.metrics.runEnded(end);
  }

  requestFailed(call: FailedCall): void {
    this.metrics.requestFailed(call);
  }

  coordinatorAnswered(call: CoordinatorCall, seconds: number): void {
    // A poll's answer comes when the coordinator has a run or its hold ends: a wait, not a latency.
    if (call !== "poll") this.metrics.coordinatorAnswered(call, seconds);
  }

  registered(runnerId: string): void {
    this.metrics.setRunnerId(runnerId);
  }

  usage(share: TurnShare): void {
    this.metrics.usage(share);
  }

  journalWriteFailed(): void {
    this.metrics.journalWriteFailed();
  }

  trackIdleSessions(read: () => IdleSessions): void {
    let last: { at: number; figures: IdleSessions } | undefined;
    const recent = () => {
      const now = this.now();
      if (!last || now - last.at >= IDLE_SESSIONS_READ_MS) last = { at: now, figures: read() };
      return last.figures;
    };
    this.idleSessions = recent;
    this.metrics.trackIdleSessions(recent);
  }

  watchLoop(name: string, maxSilenceMs: number): LoopWatch {
    const loop: WatchedLoop = { lastBeat: this.now(), maxSilenceMs };
    this.loops.set(name, loop);
    return {
      beat: () => {
        loop.lastBeat = this.now();
      },
      done: () => {
        if (this.loops.get(name) === loop) this.loops.delete(name);
      },
    };
  }

  /** `--max-concurrent-runs` runs are active: the runner asks for no run until one ends. */
  private busy(): boolean {
    return this.maxConcurrentRuns !== undefined && this.activeRuns >= this.maxConcurrentRuns;
  }

  /** Milliseconds since the coordinator last answered, once watched. */
  private coordinatorSilenceMs(): number | undefined {
    const at = this.coordinator?.lastAnswerAt();
    return at === undefined ? undefined : this.now() - at;
  }

  /** `ready` while registered and the coordinator answers; busy or not. */
  readinessState(): ReadinessState {
    if (this.state !== "ready") return this.state;
    const silence = this.coordinatorSilenceMs();
    if (this.coordinator && (silence === undefined || silence > this.coordinator.maxSilenceMs)) {
      return "coordinator_unreachable";
    }
    return "ready";
  }

  /**
   * /readyz: 200 while registered and the coordinator answered within its bound, busy or not;
   * else 503 saying which state holds it back.
   */
  readiness(): ProbeAnswer {
    const state = this.readinessState();
    const idle = this.idleSessions();
    const body: Record<string, unknown> = {
      ready: state === "ready",
      state,
      busy: this.busy(),
      active_runs: this.activeRuns,
      idle_sessions: idle.count,
      idle_session_memory_bytes: idle.memoryBytes,
    };
    if (this.maxConcurrentRuns !== undefined) body.max_concurrent_runs = this.maxConcurrentRuns;
    const silence = this.coordinatorSilenceMs();
    if (this.coordinator && silence !== undefined) {
      body.seconds_since_coordinator_answer = Math.round(silence / 100) / 10;
      body.max_coordinator_silence_seconds = this.coordinator.maxSilenceMs / 1000;
    }
    return { status: state === "ready" ? 200 : 503, body };
  }

  /** /healthz: 200 unless a watched loop has been silent longer than its bound. */
  liveness(): ProbeAnswer {
    const now = this.now();
    const loops: Record<string, { seconds_since_beat: number; max_silence_seconds: number }> = {};
    const stalled: string[] = [];
    for (const [name, loop] of this.loops) {
      const silentMs = now - loop.lastBeat;
      if (silentMs > loop.maxSilenceMs) stalled.push(name);
      loops[name] = {
        seconds_since_beat: Math.round(silentMs / 100) / 10,
        max_silence_seconds: loop.maxSilenceMs / 1000,
      };
    }
    const alive = stalled.length === 0;
    return { status: alive ? 200 : 503, body: alive ? { alive, loops } : { alive, stalled, loops } };
  }
}
