import { Backoff, sleep } from "./backoff.ts";
import type { ReportOutcome, RunReport } from "./coordinator-client.ts";
import { log } from "./log.ts";

export interface OutboxDelivery {
  /** Sends one report; throws when it should be retried (coordinator unreachable, 5xx). */
  deliver(runId: string, report: RunReport): Promise<ReportOutcome>;
  /** The coordinator no longer knows this runner: register again. False means give up. */
  reregister(): Promise<boolean>;
}

interface Pending {
  runId: string;
  report: RunReport;
}

function describe({ runId, report }: Pending): string {
  const detail = report.kind === "failed" ? `: ${report.error}` : report.kind === "stopped" ? ` by ${report.signal}` : "";
  return `run ${runId} ${report.kind}${detail}`;
}

/**
 * Every run report goes through here and is retried until the coordinator takes it: a run's
 * outcome must survive a coordinator that is down or restarting. Reports of one run are sent
 * in order (started before completed); different runs do not wait for each other.
 */
export class ReportOutbox {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly undelivered = new Set<Pending>();
  private wakeUp = new AbortController();

  constructor(
    private readonly delivery: OutboxDelivery,
    private readonly backoff: () => Backoff = () => new Backoff(),
  ) {}

  send(runId: string, report: RunReport): void {
    const pending = { runId, report };
    this.undelivered.add(pending);
    const previous = this.chains.get(runId) ?? Promise.resolve();
    const chain = previous.then(() => this.deliverWithRetry(pending)).finally(() => {
      this.undelivered.delete(pending);
      if (this.chains.get(runId) === chain) this.chains.delete(runId);
    });
    this.chains.set(runId, chain);
  }

  get pendingCount(): number {
    return this.undelivered.size;
  }

  /** Cuts retry waits short: the coordinator has just answered something, so it is back. */
  wake(): void {
    this.wakeUp.abort();
    this.wakeUp = new AbortController();
  }

  /** Waits until every report is delivered or `timeoutMs` passes; returns what is still undelivered. */
  async flush(timeoutMs: number): Promise<string[]> {
    const all = Promise.allSettled([...this.chains.values()]);
    await Promise.race([all, sleep(timeoutMs)]);
    return [...this.undelivered].map(describe);
  }

  private async deliverWithRetry(pending: Pending): Promise<void> {
    const backoff = this.backoff();
    for (;;) {
      let outcome: ReportOutcome;
      try {
        outcome = await this.delivery.deliver(pending.runId, pending.report);
      } catch (error) {
        const delay = backoff.next();
        // First failure and then every fifth: enough to see at 3 a.m., not a flood of 200 runs.
        const say = backoff.attempts === 1 || backoff.attempts % 5 === 0 ? log.warn : log.debug;
        say(`Report ${describe(pending)} not delivered (${(error as Error).message}); retry ${backoff.attempts} in ${(delay / 1000).toFixed(1)} s`);
        await sleep(delay, this.wakeUp.signal);
        continue;
      }
      switch (outcome.kind) {
        case "delivered":
          if (backoff.attempts > 0) {
            log.info(`Report ${describe(pending)} delivered after ${backoff.attempts} retries`);
            this.wake();
          }
          return;
        case "unknown_run":
          log.warn(`Coordinator does not know ${pending.runId} (404); dropped report ${describe(pending)}`);
          return;
        case "rejected":
          log.error(`Coordinator rejected report ${describe(pending)} (${outcome.detail}); dropped`);
          return;
        case "not_registered":
          if (await this.delivery.reregister()) continue;
          log.error(`Runner is no longer registered; report not delivered: ${describe(pending)}`);
          return;
      }
    }
  }
}
