/** Waiting and retrying: exponential backoff, sleeps a signal can cut short, and the one retry loop. */
import { messageOf } from "./errors.ts";
import { log } from "./log.ts";

/** setTimeout's ceiling (about 24.8 days); a longer delay would fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The longest wait between two attempts of a retry, by default. */
export const MAX_RETRY_DELAY_MS = 30_000;

/**
 * Exponential backoff with jitter: 1 s doubling to 30 s by default. The jitter keeps a fleet of
 * runners from hammering a coordinator that comes back in lockstep.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = 1000,
    private readonly maxMs = MAX_RETRY_DELAY_MS,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call doubles the ceiling. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt++;
    // Between half and all of the ceiling: never zero, never in step with other runners.
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Waits `ms` (at most MAX_TIMER_MS), or less if the signal aborts; resolves either way. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** True if `promise` settles within `ms`; the timer does not outlive it. */
export async function within(ms: number, promise: Promise<unknown>): Promise<boolean> {
  const settled = new AbortController();
  const timedOut = sleep(ms, settled.signal).then(() => false);
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    settled.abort();
  }
}

/** Wakes every retry wait at once, e.g. when the coordinator answers again after an outage. */
export class Wakeup {
  private controller = new AbortController();

  /** Aborts at the next wake(). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  wake(): void {
    const { controller } = this;
    this.controller = new AbortController();
    controller.abort();
  }
}

export interface RetryOptions {
  /** Ends the loop: the attempt in flight gets it, and a wait between attempts is cut short. */
  signal: AbortSignal;
  /** Cuts the current wait short and starts the backoff over. */
  wakeup?: Wakeup;
  /** First delay (default 1 s), doubling up to maxMs (default 30 s). */
  initialMs?: number;
  maxMs?: number;
  /** Errors that retrying cannot fix: thrown at once. */
  isFatal?: (error: unknown) => boolean;
  /** One log line for a failed attempt: a warning on the first failure and every fifth, else debug. */
  describeFailure: (failure: { error: unknown; message: string; attempt: number; delayMs: number }) => string;
  /** Called when an attempt succeeds after `failures` failed ones. */
  onRecovered?: (failures: number) => void;
}

/**
 * Calls `attempt` until it succeeds and returns its result, or undefined once `signal` aborts
 * (no attempt is started after that, and the attempt in flight is handed the signal).
 */
export async function retry<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  options: RetryOptions,
): Promise<T | undefined> {
  const backoff = new Backoff(options.initialMs, options.maxMs);
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      const result = await attempt(options.signal);
      if (failures > 0) options.onRecovered?.(failures);
      return result;
    } catch (error) {
      if (options.signal.aborted) break;
      if (options.isFatal?.(error)) throw error;
      failures++;
      const delayMs = backoff.next();
      // First failure and then every fifth: enough to see at 3 a.m., not a flood.
      const say = failures === 1 || failures % 5 === 0 ? log.warn : log.debug;
      say(options.describeFailure({ error, message: messageOf(error), attempt: failures, delayMs }));
      const wakeup = options.wakeup?.signal;
      await sleep(delayMs, wakeup ? AbortSignal.any([options.signal, wakeup]) : options.signal);
      if (wakeup?.aborted) backoff.reset();
    }
  }
  return undefined;
}

/** `1.50 s`, `42 s`: a duration for a log line. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 0)} s`;
}
