/**
 * When an executor's run must stop: SIGTERM or SIGINT (the runner stopping it, Ctrl+C), or the
 * process that started it gone without a word (killed, crashed): then nobody is left to report
 * to, and the executor ends itself and what it started instead of running on.
 */
import { fstatSync } from "node:fs";
import { LIFELINE_ENV } from "../../protocol/lifeline.ts";
import type { Env } from "../../shared/env.ts";
import { descendantsOf, groupMembers, ownProcessGroup } from "../../shared/process-group.ts";
import type { ExecutorLog } from "./executor-log.ts";

/** After a stop, how long the run gets to wind down (end its agent) before the executor exits anyway. */
const WIND_DOWN_MS = 1000;
/** Without a lifeline, how often the parent process is looked at. */
const PARENT_CHECK_MS = 500;

/** Why a run stopped: the message for stderr and the exit code. */
export class ExecutorStopped extends Error {
  override name = "ExecutorStopped";
  constructor(
    message: string,
    readonly exitCode: number,
    /** The process that started the executor is gone: what the executor started must go too. */
    readonly orphaned = false,
  ) {
    super(message);
  }
}

const SIGNAL_EXIT_CODES = { SIGTERM: 143, SIGINT: 130 } as const;

/**
 * Watches for the reasons to stop; `signal` aborts with an ExecutorStopped. The process that
 * started the executor is watched through the lifeline descriptor it handed over
 * (`AGENT_RUNNER_LIFELINE_FD`: end-of-file once it is gone, even through wrappers and PID
 * namespaces), or, without one, by the parent process id changing.
 */
export class StopWatch {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  private readonly cleanups: Array<() => void> = [];
  private disposed = false;

  constructor(env: Env, log: ExecutorLog) {
    for (const name of ["SIGTERM", "SIGINT"] as const) {
      const onSignal = () =>
        this.stop(new ExecutorStopped(`Stopped by ${name} before the agent finished`, SIGNAL_EXIT_CODES[name]));
      process.on(name, onSignal);
      this.cleanups.push(() => process.off(name, onSignal));
    }
    const lifeline = env[LIFELINE_ENV];
    // The descriptor is this executor's: its children (an agent, its tools) must not take it for theirs.
    delete env[LIFELINE_ENV];
    if (lifeline !== undefined && isPipeOrSocket(Number(lifeline))) this.watchLifeline(Number(lifeline));
    else {
      if (lifeline !== undefined) {
        log.warn(`${LIFELINE_ENV}=${lifeline} is not an open pipe or socket; watching the parent process instead`);
      }
      this.watchParent();
    }
  }

  /** Settles as `work` does; but once stopped, it gets WIND_DOWN_MS to end, then this rejects with the stop. */
  async bound<T>(work: Promise<T>): Promise<T> {
    let windDown: ReturnType<typeof setTimeout> | undefined;
    const stopped = new Promise<never>((_, reject) => {
      const onStop = () => {
        windDown = setTimeout(() => reject(this.signal.reason), WIND_DOWN_MS);
      };
      if (this.signal.aborted) onStop();
      else this.signal.addEventListener("abort", onStop, { once: true });
      this.cleanups.push(() => this.signal.removeEventListener("abort", onStop));
    });
    try {
      return await Promise.race([work, stopped]);
    } finally {
      clearTimeout(windDown);
    }
  }

  /**
   * After a stop because the starter is gone: kills what this executor started and is still
   * running (an agent, its tools, anything that ignored the stop): its descendants, and the rest
   * of its process group when it leads one (which catches those that moved to another parent).
   */
  killLeftovers(): void {
    const reason = this.signal.reason;
    if (!(reason instanceof ExecutorStopped) || !reason.orphaned) return;
    const leftovers = new Set(descendantsOf(process.pid));
    if (ownProcessGroup() === process.pid) for (const pid of groupMembers(process.pid) ?? []) leftovers.add(pid);
    leftovers.delete(process.pid);
    for (const pid of leftovers) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  private stop(reason: ExecutorStopped): void {
    if (!this.disposed && !this.signal.aborted) this.controller.abort(reason);
  }

  private watchLifeline(fd: number): void {
    const reader = Bun.file(fd).stream().getReader();
    this.cleanups.push(() => void reader.cancel().catch(() => {}));
    const gone = () =>
      this.stop(
        new ExecutorStopped(
          "the process that started this executor is gone (its lifeline closed): stopped before the agent finished",
          1,
          true,
        ),
      );
    void (async () => {
      // Nothing is ever written on it: any end of it (end-of-file, an error) means the starter is gone.
      while (!(await reader.read()).done) {}
    })().then(gone, gone);
  }

  private watchParent(): void {
    const parent = process.ppid;
    // Started by PID 1 (or a PID namespace's init): there is no parent to lose.
    if (parent <= 1) return;
    const timer = setInterval(() => {
      if (process.ppid === parent) return;
      this.stop(
        new ExecutorStopped(
          `the process that started this executor is gone (parent pid ${parent}): stopped before the agent finished`,
          1,
          true,
        ),
      );
    }, PARENT_CHECK_MS);
    timer.unref();
    this.cleanups.push(() => clearInterval(timer));
  }
}

function isPipeOrSocket(fd: number): boolean {
  if (!Number.isInteger(fd) || fd < 3) return false;
  try {
    const stat = fstatSync(fd);
    return stat.isSocket() || stat.isFIFO();
  } catch {
    return false;
  }
}
