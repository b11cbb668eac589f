/** The runs this runner is executing: start one, stop one (by run or by session) or all, and ask the coordinator about stop requests. */
import type { CoordinatorClient, RunRequest } from "../coordinator/client.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { Wakeup } from "../shared/retry.ts";
import { type RunContext, RunJob } from "./run-job.ts";

export class ActiveRuns {
  private readonly jobs = new Map<string, RunJob>();
  /** Woken whenever a run ends. */
  readonly ended = new Wakeup();

  constructor(
    private readonly context: RunContext & {
      client: Pick<CoordinatorClient, "getAgent" | "generation" | "runStatus" | "sessionStatus">;
    },
    /** Called with the number of active runs whenever it changes. */
    private readonly onCount: (count: number) => void = () => {},
  ) {}

  get size(): number {
    return this.jobs.size;
  }

  /** Executes a run handed out; with `stopAtOnce` (the runner is being stopped) its executor never starts. */
  start(run: RunRequest, stopAtOnce = false): void {
    if (this.jobs.has(run.run_id)) {
      log.warn(`Run ${run.run_id} handed out again while it is running; ignored`);
      return;
    }
    const job = new RunJob(run, this.context);
    this.jobs.set(run.run_id, job);
    this.onCount(this.jobs.size);
    if (stopAtOnce) job.stop();
    void job.execute().finally(() => {
      this.jobs.delete(run.run_id);
      this.onCount(this.jobs.size);
      this.ended.wake();
    });
  }

  stop(runId: string): void {
    const job = this.jobs.get(runId);
    if (job) job.stop();
    else log.debug(`Stop for run ${runId}, which is not running here; ignored`);
  }

  /** Stops the run serving a session; false when no run of it is active here. */
  stopSession(sessionId: string): boolean {
    const job = [...this.jobs.values()].find((candidate) => candidate.sessionId === sessionId);
    job?.stop();
    return job !== undefined;
  }

  /** The run of this session whose executor is under way here, if any. */
  serving(sessionId: string): RunJob | undefined {
    for (const job of this.jobs.values()) if (job.sessionId === sessionId && job.underWay) return job;
    return undefined;
  }

  stopAll(): void {
    for (const job of this.jobs.values()) job.stop();
  }

  /**
   * Stops the runs the coordinator marked `stopping`. Used while the runner asks for no run: stop
   * commands come with polls, and a poll would also claim a run.
   */
  async stopThoseRequested(signal: AbortSignal): Promise<void> {
    const { client, sessions } = this.context;
    const idle = sessions.idleSessionIds();
    await Promise.all([
      ...[...this.jobs.values()].map(async (job) => {
        try {
          if ((await client.runStatus(job.runId, signal)) === "stopping") job.stop();
        } catch (error) {
          log.debug(`Could not check run ${job.runId} for a stop request: ${messageOf(error)}`);
        }
      }),
      // A persistent session waiting for its next turn is stopped through its session.
      ...idle.map(async (sessionId) => {
        try {
          if ((await client.sessionStatus(sessionId, signal)) === "stopping") sessions.stopIdle(sessionId);
        } catch (error) {
          log.debug(`Could not check session ${sessionId} for a stop request: ${messageOf(error)}`);
        }
      }),
    ]);
  }
}
