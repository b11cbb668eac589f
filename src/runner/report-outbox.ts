/**
 * Every run report goes through here and is retried until the coordinator takes it: a run's
 * outcome must survive a coordinator that is down, restarting or slow to answer.
 */
import type { ReportOutcome, RunReport } from "../coordinator/client.ts";
import { log } from "../shared/log.ts";
import { retry, type Wakeup, within } from "../shared/retry.ts";

export interface OutboxDelivery {
  /** Sends one report; throws when it should be retried (coordinator unreachable, 5xx). */
  deliver(runId: string, report: RunReport): Promise<ReportOutcome>;
  /** The coordinator no longer knows this runner: register again. False means give up. */
  reregister(): Promise<boolean>;
}

export interface OutboxOptions {
  /** Cuts retry waits short when the coordinator answers again. */
  wakeup?: Wakeup;
  /** First retry delay (default 1 s, doubling to 30 s). */
  retryInitialMs?: number;
  /** A run's final report reached the coordinator, or was refused for good: it needs nothing more. */
  onSettled?: (runId: string) => void;
  /** Called with the number of reports waiting whenever it changes. */
  onPendingChange?: (count: number) => void;
}

const isFinal = (report: RunReport) => report.kind !== "started";

function describeReport(runId: string, report: RunReport): string {
  const detail =
    report.kind === "failed" ? `: ${report.error}` : report.kind === "stopped" ? ` by ${report.signal}` : "";
  return `run ${runId} ${report.kind}${detail}`;
}

/** The reports of one run not yet delivered: sent one at a time, in order. */
interface RunQueue {
  waiting: RunReport[];
  sending?: RunReport;
  /** Aborted once a final report is queued: a `started` not yet delivered is no longer worth sending. */
  superseded: AbortController;
  draining: boolean;
  done: Promise<void>;
}

/**
 * Reports of one run go out strictly one after another, each only once the previous one was
 * answered, so a late answer can never let an earlier state land after a later one. A `started`
 * not yet delivered when the run's final report is queued is dropped; different runs do not wait
 * for each other.
 */
export class ReportOutbox {
  private readonly queues = new Map<string, RunQueue>();
  private readonly closed = new AbortController();

  constructor(
    private readonly delivery: OutboxDelivery,
    private readonly options: OutboxOptions = {},
  ) {}

  send(runId: string, report: RunReport): void {
    let queue = this.queues.get(runId);
    if (!queue) {
      queue = { waiting: [], superseded: new AbortController(), draining: false, done: Promise.resolve() };
      this.queues.set(runId, queue);
    }
    if (isFinal(report)) {
      queue.waiting = queue.waiting.filter((waiting) => waiting.kind !== "started");
      queue.superseded.abort();
    }
    queue.waiting.push(report);
    this.options.onPendingChange?.(this.pendingCount);
    if (!queue.draining) {
      queue.draining = true;
      queue.done = this.drain(runId, queue);
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
    for (const [runId, queue] of this.queues) {
      for (const report of [...(queue.sending ? [queue.sending] : []), ...queue.waiting]) {
        undelivered.push(describeReport(runId, report));
      }
    }
    return undelivered;
  }

  /** Stops retrying: at exit, once the flush is over. */
  close(): void {
    this.closed.abort();
  }

  private async drain(runId: string, queue: RunQueue): Promise<void> {
    try {
      for (let report = queue.waiting.shift(); report; report = queue.waiting.shift()) {
        queue.sending = report;
        await this.deliver(runId, report, queue);
        queue.sending = undefined;
        this.options.onPendingChange?.(this.pendingCount);
      }
    } finally {
      // No await between the last shift and here: nothing can have been queued meanwhile.
      queue.sending = undefined;
      queue.draining = false;
      if (this.queues.get(runId) === queue) this.queues.delete(runId);
    }
  }

  private async deliver(runId: string, report: RunReport, queue: RunQueue): Promise<void> {
    const what = describeReport(runId, report);
    // Only a `started` gives way to the final report; the final report itself is never dropped.
    const signal =
      report.kind === "started" ? AbortSignal.any([this.closed.signal, queue.superseded.signal]) : this.closed.signal;
    for (;;) {
      const outcome = await retry(() => this.delivery.deliver(runId, report), {
        signal,
        wakeup: this.options.wakeup,
        initialMs: this.options.retryInitialMs,
        describeFailure: ({ message, attempt, delayMs }) =>
          `Report ${what} not delivered (${message}); retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s`,
        onRecovered: (failures) => log.info(`Report ${what} delivered after ${failures} retries`),
      });
      if (!outcome) {
        if (queue.superseded.signal.aborted && report.kind === "started")
          log.debug(`Report ${what} dropped: the run already ended`);
        return;
      }
      switch (outcome.kind) {
        case "delivered":
          break;
        case "unknown_run":
          log.warn(`Coordinator does not know ${runId} (404); dropped report ${what}`);
          break;
        case "rejected":
          log.error(`Coordinator rejected report ${what} (${outcome.detail}); dropped`);
          break;
        case "not_registered":
          if (await this.delivery.reregister()) continue;
          log.error(`Runner is not registered and cannot register again; report not delivered: ${what}`);
          return;
      }
      if (isFinal(report)) this.options.onSettled?.(runId);
      return;
    }
  }
}
