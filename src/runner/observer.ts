/**
 * What the worker tells the outside about itself: its state (for /readyz), that its loops are
 * alive (for /healthz), and its runs and failures (for /metrics). Dependency-free, so a runner
 * without `--health-addr` loads nothing more than this file and its no-op observer.
 */
import type { CoordinatorCall } from "../coordinator/http.ts";
import type { TurnShare } from "../protocol/usage.ts";

export type { CoordinatorCall, TurnShare };

/**
 * Where the worker is. `ready` means registered; /readyz also answers `coordinator_unreachable`
 * when the coordinator has not answered for longer than it should (see `watchCoordinator`).
 * Being busy (`--max-concurrent-runs` runs active) is not a state: a busy runner is ready.
 */
export type RunnerState = "starting" | "ready" | "reregistering" | "draining";

/**
 * How a run ended, each run exactly one: `timed_out` runs are reported `failed` to the
 * coordinator, but counted apart (with the failure reason `timeout`).
 */
export type RunOutcome = "completed" | "failed" | "stopped" | "timed_out";

/**
 * Why a run was reported failed, a short closed set (the metrics' `reason` label):
 * - `executor_exit`: its executor exited non-zero (or a signal the runner did not send ended it);
 * - `budget`: that exit came from the profile's `max_budget_usd` (the run's cost reached it);
 * - `turn_limit`: that exit came from the profile's `max_turns` (a turn took more round trips);
 * - `timeout`: `--run-timeout` stopped it;
 * - `spawn_error`: its executor could not be started;
 * - `blueprint_error`: its agent blueprint could not be fetched or was not found (2.1);
 * - `bad_run`: the run as handed out could not be executed (malformed, an unknown run type);
 * - `tag_mismatch`: `--require-matching-tags` refused it;
 * - `busy`: its session already has a live executor or a turn under way here;
 * - `runner_error`: the runner itself failed handling it (a bug, or local I/O it needed).
 */
export const FAILURE_REASONS = [
  "executor_exit",
  "budget",
  "turn_limit",
  "timeout",
  "spawn_error",
  "blueprint_error",
  "bad_run",
  "tag_mismatch",
  "busy",
  "runner_error",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** A run's end as the metrics count it. */
export interface RunEnd {
  outcome: RunOutcome;
  /** Set for the runs reported failed (`failed` and `timed_out`). */
  reason?: FailureReason;
  /** From its executor's start to its outcome, if it had an executor. */
  durationSeconds?: number;
}

/** The coordinator requests whose failures are counted. */
export type FailedCall = "poll" | "report" | "register" | "heartbeat";

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
  /**
   * An executor was started for a run (or a persistent session's live one took its turn);
   * `queueWaitSeconds` since the coordinator created the run, when the run says when that was.
   */
  runStarted(queueWaitSeconds?: number): void;
  /** A run's new executor showed its first sign of life (output, or a gateway request) this long after its spawn. */
  executorResponded(seconds: number): void;
  /** A run's outcome was queued. */
  runEnded(end: RunEnd): void;
  /** A request to the coordinator failed (it will be retried). */
  requestFailed(call: FailedCall): void;
  /** The coordinator answered a request (any status) this long after it was sent. */
  coordinatorAnswered(call: CoordinatorCall, seconds: number): void;
  /** Registered under this runner id (again after a re-registration). */
  registered(runnerId: string): void;
  /** An executor reported what a turn used (a usage event): its tokens and its own share of the cost. */
  usage(share: TurnShare): void;
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
   * milliseconds); /readyz fails once that is longer ago than `maxSilenceMs`, and /metrics shows it.
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
  executorResponded: () => {},
  runEnded: () => {},
  requestFailed: () => {},
  coordinatorAnswered: () => {},
  registered: () => {},
  usage: () => {},
  journalWriteFailed: () => {},
  trackIdleSessions: () => {},
  watchLoop: () => idleLoop,
  watchCoordinator: () => {},
};
