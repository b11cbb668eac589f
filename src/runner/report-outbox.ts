/**
 * Every report goes through here and is retried until the coordinator takes it: a run's outcome,
 * and how a persistent session ended, must survive a coordinator that is down, restarting or
 * slow to answer.
 */
import type { ReportOutcome, RunReport, SessionEnd } from "../coordinator/client.ts";
import { log } from "../shared/log.ts";
import { retry, type Wakeup, within } from "../shared/retry.ts";

/** A run's report (its target a run id), or how a session ended between runs (its target a session id). */
export type OutboxReport = RunReport | { kind: "session_ended"; status: SessionEnd };

export interface OutboxDelivery {
  /** Sends one report; throws when it should be retried (coordinator unreachable, 5xx). */
  deliver(target: string, report: OutboxReport): Promise<ReportOutcome>;
  /** The coordinator no longer knows this runner: register again. False means give up. */
  reregister(): Promise<boolean>;
}

export interface OutboxOptions {
  /** Cuts retry waits short when the coordinator answers again. */
  wakeup?: Wakeup;
  /** First retry delay (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
  /** A final report reached the coordinator, or was refused for good: its target needs nothing more. */
  onSettled?: (target: string, report: OutboxReport) => void;
  /** Called with the number of reports waiting whenever it changes. */
  onPendingChange?: (count: number) => void;
}

const isFinal = (report: OutboxReport) => report.kind !== "started";

function describeReport(target: string, report: OutboxReport): string {
  if (report.kind === "session_ended") return `session ${target} ${report.status}`;
  const detail =
    report.kind === "failed" ? `: ${report.error}` : report.kind === "stopped" ? ` by ${report.signal}` : "";
  return `run ${target} ${report.kind}${detail}`;
}

interface Entry {
  target: string;
  report: OutboxReport;
}

/** The reports of one queue (a session's, or a run's) not yet delivered: sent one at a time, in order. */
interface Queue {
  waiting: Entry[];
  sending?: Entry;
  /** Aborted when the final report of the `started` being sent is queued: it is no longer worth sending. */
  supersede?: AbortController;
  draining: boolean;
  done: Promise<void>;
}

/**
 * Reports of one queue go out strictly one after another, each only once the previous one was
 * answered, so a late answer can never let an earlier state land after a later one. The runner
 * queues by session: a session's runs and its end reach the coordinator in the order they
 * happened. A `started` not yet delivered when its run's final report is queued is dropped;
 * different queues do not wait for each other.
 */
export class ReportOutbox {
  private readonly queues = new Map<string, Queue>();
  private readonly closed = new AbortController();

  constructor(
    private readonly delivery: OutboxDelivery,
    private readonly options: OutboxOptions = {},
  ) {}

  /** Queues a report for `target` (a run id, or a session id for `session_ended`) in queue `queueKey`. */
  send(target: string, report: OutboxReport, queueKey = target): void {
    let queue = this.queues.get(queueKey);
    if (!queue) {
      queue = { waiting: [], draining: false, done: Promise.resolve() };
      this.queues.set(queueKey, queue);
    }
    if (isFinal(report)) {
      queue.waiting = queue.waiting.filter((entry) => entry.target !== target || entry.report.kind !== "started");
      if (queue.sending?.target === target && queue.sending.report.kind === "started") queue.supersede?.abort();
    }
    queue.waiting.push({ target, report });
    this.options.onPendingChange?.(this.pendingCount);
    if (!queue.draining) {
      queue.draining = true;
      queue.done = this.drain(queueKey, queue);
    }
  }

  /** Reports queued or being sent. */
  get pendingCount(): number {
    let count = 0;
    for (const queue of this.queues.values()) count += queue.waiting.length + (queue.sending ? 1 : 0);
    return count;
  }

  /** Waits until every report is delivered or `timeoutMs` passes; returns what is still undelivered. */
  async flush(timeoutMs: number): Promise<string[]> {
    await within(timeoutMs, Promise.allSettled([...this.queues.values()].map((queue) => queue.done)));
    const undelivered: string[] = [];
    for (const queue of this.queues.values()) {
      for (const { target, report } of [...(queue.sending ? [queue.sending] : []), ...queue.waiting]) {
        undelivered.push(describeReport(target, report));
      }
    }
    return undelivered;
  }

  /** Stops retrying: at exit, once the flush is over. */
  close(): void {
    this.closed.abort();
  }

  private async drain(queueKey: string, queue: Queue): Promise<void> {
    try {
      for (let entry = queue.waiting.shift(); entry; entry = queue.waiting.shift()) {
        queue.sending = entry;
        queue.supersede = new AbortController();
        await this.deliver(entry, queue.supersede.signal);
        queue.sending = undefined;
        this.options.onPendingChange?.(this.pendingCount);
      }
    } finally {
      // No await between the last shift and here: nothing can have been queued meanwhile.
      queue.sending = undefined;
      queue.draining = false;
      if (this.queues.get(queueKey) === queue) this.queues.delete(queueKey);
    }
  }

  private async deliver({ target, report }: Entry, superseded: AbortSignal): Promise<void> {
    const what = describeReport(target, report);
    // Only a `started` gives way to the final report; the final report itself is never dropped.
    const signal = report.kind === "started" ? AbortSignal.any([this.closed.signal, superseded]) : this.closed.signal;
    for (;;) {
      const outcome = await retry(() => this.delivery.deliver(target, report), {
        signal,
        wakeup: this.options.wakeup,
        initialMs: this.options.retryInitialMs,
        describeFailure: ({ message, attempt, delayMs }) =>
          `Report ${what} not delivered (${message}); retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s`,
        onRecovered: (failures) => log.info(`Report ${what} delivered after ${failures} retries`),
      });
      if (!outcome) {
        if (superseded.aborted && report.kind === "started") log.debug(`Report ${what} dropped: the run already ended`);
        return;
      }
      switch (outcome.kind) {
        case "delivered":
          break;
        case "unknown_run":
          log.warn(`Coordinator does not know ${target} (404); dropped report ${what}`);
          break;
        case "rejected":
          log.error(`Coordinator rejected report ${what} (${outcome.detail}); dropped`);
          break;
        case "not_registered":
          if (await this.delivery.reregister()) continue;
          log.error(`Runner is not registered and cannot register again; report not delivered: ${what}`);
          return;
      }
      if (isFinal(report)) this.options.onSettled?.(target, report);
      return;
    }
  }
}
