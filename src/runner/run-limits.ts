/**
 * When the runner asks the coordinator for another run: below `--max-concurrent-runs`, while
 * `--max-runs` has not been reached, below `--max-cost-usd`, and not idle past `--exit-after-idle`.
 */
import { formatUsd } from "../protocol/usage.ts";

export interface RunLimitSettings {
  maxConcurrentRuns?: number;
  maxRuns?: number;
  maxCostUsd?: number;
  exitAfterIdleSeconds?: number;
}

export class RunLimits {
  private taken = 0;
  /** What the runs' agents have cost so far (USD), as their executors report it. */
  private spentUsd = 0;
  private idleSince: number;

  constructor(
    private readonly limits: RunLimitSettings,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.idleSince = now();
  }

  /** A run was handed out and taken. */
  took(): void {
    this.taken++;
  }

  /** An executor reported what a turn cost. */
  spent(costUsd: number): void {
    this.spentUsd += costUsd;
  }

  /** The number of active runs changed; at 0 the idle time starts. */
  activeChanged(count: number): void {
    if (count === 0) this.idleSince = this.now();
  }

  atCapacity(active: number): boolean {
    return this.limits.maxConcurrentRuns !== undefined && active >= this.limits.maxConcurrentRuns;
  }

  /** Why the runner takes no more runs and exits once its active ones ended, if it is time. */
  done(active: number): string | undefined {
    const { maxRuns, maxCostUsd, exitAfterIdleSeconds } = this.limits;
    if (maxRuns !== undefined && this.taken >= maxRuns) return `Took ${this.taken} run(s) (--max-runs ${maxRuns})`;
    if (maxCostUsd !== undefined && this.spentUsd >= maxCostUsd) {
      return `Runs cost ${formatUsd(this.spentUsd)} so far, reaching --max-cost-usd ${maxCostUsd}`;
    }
    if (
      exitAfterIdleSeconds !== undefined &&
      active === 0 &&
      this.now() - this.idleSince >= exitAfterIdleSeconds * 1000
    ) {
      return `No run for ${exitAfterIdleSeconds} s (--exit-after-idle ${exitAfterIdleSeconds})`;
    }
    return undefined;
  }
}
