/** One long poll at a time: retried with backoff while the coordinator is unreachable, paced when it answers at once. */
import type { CoordinatorClient, PollEvent } from "../coordinator/client.ts";
import { REQUEST_TIMEOUT_MS } from "../coordinator/request-timeout.ts";
import { log } from "../shared/log.ts";
import { MAX_RETRY_DELAY_MS, retry, seconds, sleep } from "../shared/retry.ts";

/** A poll's HTTP timeout is this much above the time the coordinator holds it. */
const POLL_SLACK_MS = 5_000;
/** A poll that comes back empty sooner than this is followed by a pause, not at once. */
const MIN_EMPTY_POLL_MS = 1_000;

export interface PollerOptions {
  client: Pick<CoordinatorClient, "poll" | "http">;
  /** Ends waits between attempts (not the request in flight). */
  signal: AbortSignal;
  retryInitialMs?: number;
  /** A poll failed (it will be retried). */
  onFailure?: () => void;
}

export class Poller {
  /** How long the coordinator holds a poll (what it said at registration, or --poll-timeout). */
  holdSeconds: number;
  private inFlight = false;

  constructor(
    private readonly options: PollerOptions,
    holdSeconds: number,
  ) {
    this.holdSeconds = holdSeconds;
  }

  /**
   * The longest a poll can keep its caller waiting between two signs of life (the start, each
   * failure, the end): a token fetched first, the poll held to its timeout, then the longest
   * wait before the next attempt (or the pause after an empty reply, which is shorter).
   */
  get maxSilenceMs(): number {
    return REQUEST_TIMEOUT_MS + this.holdSeconds * 1000 + POLL_SLACK_MS + MAX_RETRY_DELAY_MS;
  }

  /** A poll request is on its way or held by the coordinator. */
  get polling(): boolean {
    return this.inFlight;
  }

  /**
   * What one poll brought; undefined when the signal ended the retries first. The request itself
   * is never cut short by the signal: the coordinator may already have handed it a run, which
   * would be lost.
   */
  async poll(): Promise<PollEvent[] | undefined> {
    const { client, signal } = this.options;
    const startedAt = performance.now();
    const events = await retry(
      async () => {
        this.inFlight = true;
        try {
          return await client.poll(this.holdSeconds * 1000 + POLL_SLACK_MS);
        } catch (error) {
          // A poll held past our own timeout is an empty poll, not a failure.
          if ((error as Error).name === "TimeoutError") return [];
          throw error;
        } finally {
          this.inFlight = false;
        }
      },
      {
        signal,
        wakeup: client.http.backOnline,
        initialMs: this.options.retryInitialMs,
        describeFailure: ({ message, attempt, delayMs }) => {
          this.options.onFailure?.();
          return `Poll failed (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`;
        },
        onRecovered: (failures) => log.info(`Coordinator answers again after ${failures} failed poll(s)`),
      },
    );
    // A coordinator answering at once with nothing must not make this a busy loop.
    const elapsed = performance.now() - startedAt;
    if (events?.length === 0 && elapsed < MIN_EMPTY_POLL_MS) await sleep(MIN_EMPTY_POLL_MS - elapsed, signal);
    return events;
  }
}
