/**
 * Every run report goes through here and is retried until the coordinator takes it: a run's
 * outcome must survive a coordinator that is down or restarting.
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
}

interface Pending {
  runId: string;
  report: RunReport;
}

export function describeReport({ runId, report }: Pending): string {
  const detail =
    report.kind === "failed" ? `: ${report.error}` : report.kind === "stopped" ? ` by ${report.signal}` : "";
  return `run ${runId} ${report.kind}${detail}`;
}

/** Reports of one run are sent in order (started before completed); different runs do not wait for each other. */
export class ReportOutbox {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly undelivered = new Set<Pending>();
  private readonly closed = new AbortController();

  constructor(
    private readonly delivery: OutboxDelivery,
    private readonly options: OutboxOptions = {},
  ) {}

  send(runId: string, report: RunReport): void {
    const pending = { runId, report };
    this.undelivered.add(pending);
    const previous = this.chains.get(runId) ?? Promise.resolve();
    const chain = previous
      .then(() => this.deliver(pending))
      .finally(() => {
        this.undelivered.delete(pending);
        if (this.chains.get(runId) === chain) this.chains.delete(runId);
      });
    this.chains.set(runId, chain);
  }

  get pendingCount(): number {
    return this.undelivered.size;
  }

  /** Waits until every report is delivered or `timeoutMs` passes; returns what is still undelivered. */
  async flush(timeoutMs: number): Promise<string[]> {
    await within(timeoutMs, Promise.allSettled([...this.chains.values()]));
    return [...this.undelivered].map(describeReport);
  }

  private async deliver(pending: Pending): Promise<void> {
    for (;;) {
      const outcome = await retry(() => this.delivery.deliver(pending.runId, pending.report), {
        signal: this.closed.signal,
        wakeup: this.options.wakeup,
        initialMs: this.options.retryInitialMs,
        describeFailure: ({ message, attempt, delayMs }) =>
          `Report ${describeReport(pending)} not delivered (${message}); retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s`,
        onRecovered: (failures) => {
          log.info(`Report ${describeReport(pending)} delivered after ${failures} retries`);
          this.options.wakeup?.wake();
        },
      });
      switch (outcome?.kind) {
        case undefined:
        case "delivered":
          return;
        case "unknown_run":
          log.warn(`Coordinator does not know ${pending.runId} (404); dropped report ${describeReport(pending)}`);
          return;
        case "rejected":
          log.error(`Coordinator rejected report ${describeReport(pending)} (${outcome.detail}); dropped`);
          return;
        case "not_registered":
          if (await this.delivery.reregister()) continue;
          log.error(`Runner is no longer registered; report not delivered: ${describeReport(pending)}`);
          return;
      }
    }
  }
}
