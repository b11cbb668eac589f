/**
 * What the worker tells the outside about itself: its state (for /readyz), that its loops are
 * alive (for /healthz), and its runs and failures (for /metrics). Dependency-free, so a runner
 * without `--health-addr` loads nothing more than this file and its no-op observer.
 */

/**
 * Where the worker is. `ready` means registered; /readyz also answers `coordinator_unreachable`
 * when the coordinator has not answered for longer than it should (see `watchCoordinator`).
 * Being busy (`--max-concurrent-runs` runs active) is not a state: a busy runner is ready.
 */
export type RunnerState = "starting" | "ready" | "reregistering" | "draining";

/** How a run ended; `timed_out` runs are reported `failed` and counted as both. */
export type RunOutcome = "completed" | "failed" | "stopped" | "timed_out";

/** The coordinator requests whose failures are counted. */
export type CoordinatorCall = "poll" | "report" | "register";

/** The persistent sessions waiting for their next turn, and the resident memory of their processes. */
export interface IdleSessions {
  count: number;
  memoryBytes: number;
}

/** One loop of the worker (poll, heartbeat, …) as /healthz watches it. */
export interface LoopWatch {
  /** The loop went round: call at least once per `maxSilenceMs`. */
  beat(): void;
  /** The loop ended on purpose (e.g. polling stops when draining): no longer watched. */
  done(): void;
}

/** Every method is cheap, synchronous and never throws: call them at the events they name. */
export interface RunnerObserver {
  setState(state: RunnerState): void;
  /** Runs the worker holds now (from the moment a run is taken until its outcome is queued). */
  setActiveRuns(count: number): void;
  /** Reports waiting in the outbox for delivery. */
  setOutboxPending(count: number): void;
  /** An executor was started for a run. */
  runStarted(): void;
  /** A run's outcome was queued; `durationSeconds` from its executor's start, if it had one. */
  runEnded(outcome: RunOutcome, durationSeconds?: number): void;
  /** A request to the coordinator failed (it will be retried). */
  requestFailed(call: CoordinatorCall): void;
  /** A run journal write failed (the runner goes on without the safety net for it). */
  journalWriteFailed(): void;
  /** How to read the persistent sessions waiting idle for their next turn, when asked (a scrape, a probe). */
  trackIdleSessions(read: () => IdleSessions): void;
  /**
   * Watches a loop: /healthz fails once it has not beaten for `maxSilenceMs`. Pick a bound the
   * loop can never reach while healthy: for the poll loop, the poll's hold time plus its slack
   * plus the longest retry delay, with a margin.
   */
  watchLoop(name: string, maxSilenceMs: number): LoopWatch;
  /**
   * Once registered: `lastAnswerAt` says when the coordinator last answered (performance.now()
   * milliseconds); /readyz fails once that is longer ago than `maxSilenceMs`.
   */
  watchCoordinator(lastAnswerAt: () => number | undefined, maxSilenceMs: number): void;
}

const idleLoop: LoopWatch = { beat: () => {}, done: () => {} };

/** The observer of a runner without `--health-addr`: does nothing. */
export const noObserver: RunnerObserver = {
  setState: () => {},
  setActiveRuns: () => {},
  setOutboxPending: () => {},
  runStarted: () => {},
  runEnded: () => {},
  requestFailed: () => {},
  journalWriteFailed: () => {},
  trackIdleSessions: () => {},
  watchLoop: () => idleLoop,
  watchCoordinator: () => {},
};
