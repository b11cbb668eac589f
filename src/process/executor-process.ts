/**
 * One executor process: spawned in its own process group (in its own cgroup, and in a bubblewrap
 * sandbox, when those are set up), fed its invocation on stdin, its output drained continuously,
 * stopped with SIGTERM then SIGKILL, and everything it started gone before it counts as ended.
 * Knows nothing of runs.
 */
import { existsSync, statSync } from "node:fs";
import type { Subprocess } from "bun";
import { LIFELINE_ENV } from "../protocol/lifeline.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
import type { Env } from "../shared/env.ts";
import { groupAlive, processGroupOf, subtreeOf } from "../shared/process-group.ts";
import { sleep, within } from "../shared/retry.ts";
import { RunCgroup } from "./cgroups.ts";
import { currentContainment } from "./containment.ts";
import { MARK_ENV, newMark, type OrphanKeeper } from "./orphans.ts";
import { drain, MAX_LINE_CHARS, Tail } from "./output.ts";
import {
  closeSandboxFds,
  type SandboxOptions,
  type SandboxPrefix,
  sandboxPrefix,
  signalOfSandboxExit,
} from "./sandbox.ts";

/** How much of an executor's stderr is kept for the failure report. */
export const STDERR_TAIL_BYTES = 8 * 1024;
/** The executor's lifeline: its fourth descriptor, named to it by `AGENT_RUNNER_LIFELINE_FD`. */
const LIFELINE_FD = 3;
/** After the group is gone, how long a process that left it (and holds the output) may delay the end. */
const DRAIN_AFTER_EXIT_MS = 1000;
/** After SIGKILL, how long what is left may take to disappear before it is given up on. */
const KILLED_GROUP_BOUND_MS = 2000;
/**
 * Nothing announces the end of a process that is not our child: what is left is looked for,
 * first every 10 ms, then less often, up to every 200 ms.
 */
const GROUP_POLL_MS = { first: 10, max: 200 };

export type ExitStatus = { code: number; signal: null } | { code: null; signal: string };

/** The executors this process started that are not all gone yet. */
const running = new Set<ExecutorProcess>();
let exitHookInstalled = false;

/**
 * An exit of this process with executors still running (a signal past the graceful stages, a
 * fatal error) kills all of each first: in a process group of its own, and maybe ignoring its
 * lifeline, an executor would otherwise outlive what started it.
 */
function killRunningAtExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const executor of running) executor.kill();
  });
}

export interface ExecutorProcessOptions {
  argv: string[];
  /** Written to the executor's stdin, which is then closed (unless `keepInputOpen`). */
  input: string;
  /** stdin stays open after `input` for `writeInput` (a persistent executor's next turns), until `closeInput`. */
  keepInputOpen?: boolean;
  /** The executor's environment; `AGENT_RUNNER_LIFELINE_FD` and `AGENT_RUNNER_PROCESS_MARK` are added. */
  env: Env;
  /** Working directory (default: this process's); a missing one is refused with its path. */
  cwd?: string;
  /**
   * Run the executor in a bubblewrap sandbox (see sandbox.ts) whose writable project is `cwd`
   * (then required). Its process group is bwrap's: a stop or kill reaches all of it.
   */
  sandbox?: SandboxOptions;
  /**
   * stdout: `ignore`d, each line handed to `onOutput`, or `capture`d whole for `stdout()`.
   * stderr: kept as a tail (and each line handed to `onOutput`), or `inherit`ed (a terminal).
   */
  stdout?: "ignore" | "lines" | "capture";
  stderr?: "tail" | "inherit";
  onOutput?: (stream: "stdout" | "stderr", line: string) => void;
  /** Called once, at the first output on a stream that is read (stderr unless inherited, stdout unless ignored). */
  onFirstOutput?: () => void;
  /** The longest stdout line handed to `onOutput` whole (default MAX_LINE_CHARS); longer ones are cut. */
  maxStdoutLineChars?: number;
}

/**
 * Spawned in its own process group, so a Ctrl+C meant for the runner does not reach it and a
 * stop reaches its children too; output is drained so it can never block on a full pipe. When
 * the executor ends, whatever it left running is killed: its group, and where containment is set
 * up (containment.ts) its cgroup and the orphans it left to this process. Nothing outlives it.
 */
export class ExecutorProcess {
  readonly pid: number;
  /** The mark every process the executor starts inherits (orphans.ts): what finds them should the runner die. */
  readonly mark: string;
  /**
   * Resolves once, when the executor has exited, all it started is gone and its output is read.
   * After a normal exit that is at once (leftovers are killed); during a stop it is at most the
   * grace period (leftovers that ignore the SIGTERM are killed when it ends).
   */
  readonly exited: Promise<ExitStatus>;
  private readonly child: Subprocess<Uint8Array | "pipe", "pipe" | "ignore", "pipe" | "inherit">;
  /** An open stdin (keepInputOpen), until closed or broken. */
  private input?: import("bun").FileSink;
  private readonly stderr = new Tail(STDERR_TAIL_BYTES);
  private readonly captured: Uint8Array[] = [];
  private readonly groupEnded: Promise<void>;
  private readonly runCgroup?: RunCgroup;
  private readonly keeper?: OrphanKeeper;
  private leaderExited = false;
  private groupGone = false;
  private stopping?: Promise<StopSignal | undefined>;
  /** Set once SIGKILL went to the group: from then on the group has a bounded time to go. */
  private killedAt?: number;

  /** Throws when the program cannot be started (missing, not executable, no such working directory). */
  constructor(options: ExecutorProcessOptions) {
    if (options.cwd !== undefined) checkWorkingDirectory(options.cwd);
    const stdoutMode = options.stdout ?? "ignore";
    const stderrMode = options.stderr ?? "tail";
    const contained = currentContainment();
    this.mark = newMark();
    const env = { ...options.env, [LIFELINE_ENV]: String(LIFELINE_FD), [MARK_ENV]: this.mark };
    let argv = options.argv;
    let sandbox: SandboxPrefix | undefined;
    if (options.sandbox) {
      if (options.cwd === undefined) throw new Error("a sandboxed executor needs a working directory (its project)");
      sandbox = sandboxPrefix({ ...options.sandbox, projectDir: options.cwd, env, programs: argv.slice(0, 1) });
      argv = [...sandbox.argv, ...argv];
    }
    let cgroup: RunCgroup | undefined;
    let cgroupPath: string | undefined;
    try {
      if (contained?.containment.cgroups) {
        cgroup = RunCgroup.create(contained.containment.cgroups);
        // The shell that enters the cgroup would report a missing program only by its exit code.
        if (!sandbox && cgroup.entersByShell) checkProgram(argv[0] ?? "", options.env.PATH, options.cwd);
        ({ argv, cgroup: cgroupPath } = cgroup.spawnWith(argv));
      }
      this.child = Bun.spawn(argv, {
        cgroup: cgroupPath,
        // The fourth descriptor is the lifeline: this process holds its other end, which the kernel
        // closes whenever this process ends, however it ends. A sandbox's mounts follow it.
        stdio: [
          options.keepInputOpen ? "pipe" : new TextEncoder().encode(options.input),
          stdoutMode === "ignore" ? "ignore" : "pipe",
          stderrMode === "inherit" ? "inherit" : "pipe",
          "pipe",
          ...(sandbox?.fds ?? []),
        ],
        env,
        cwd: options.cwd,
        detached: true,
      }) as Subprocess<Uint8Array | "pipe", "pipe" | "ignore", "pipe" | "inherit">;
    } catch (error) {
      cgroup?.remove();
      throw error;
    } finally {
      if (sandbox) closeSandboxFds(sandbox);
    }
    this.pid = this.child.pid;
    running.add(this);
    killRunningAtExit();
    this.runCgroup = cgroup;
    this.keeper = contained?.keeper;
    this.keeper?.track(this.mark, this.pid);
    if (options.keepInputOpen && typeof this.child.stdin === "object" && this.child.stdin !== null) {
      this.input = this.child.stdin as import("bun").FileSink;
      this.writeInput(options.input);
    }
    const { onOutput } = options;
    const lines = (stream: "stdout" | "stderr") => (onOutput ? (line: string) => onOutput(stream, line) : undefined);
    let firstOutput = options.onFirstOutput;
    const output = () => {
      const first = firstOutput;
      firstOutput = undefined;
      first?.();
    };
    const drained: Promise<void>[] = [];
    if (this.child.stderr instanceof ReadableStream) {
      drained.push(
        drain(
          this.child.stderr,
          (chunk) => {
            output();
            this.stderr.push(chunk);
          },
          lines("stderr"),
        ),
      );
    }
    if (this.child.stdout instanceof ReadableStream) {
      const captured = this.captured;
      const keep =
        stdoutMode === "capture"
          ? (chunk: Uint8Array) => {
              output();
              captured.push(chunk);
            }
          : output;
      drained.push(
        drain(
          this.child.stdout,
          keep,
          stdoutMode === "lines" ? lines("stdout") : undefined,
          options.maxStdoutLineChars ?? MAX_LINE_CHARS,
        ),
      );
    }
    this.groupEnded = this.child.exited.then(() => this.endGroup());
    this.exited = this.groupEnded.then(async () => {
      await within(DRAIN_AFTER_EXIT_MS, Promise.allSettled(drained));
      const code = await this.child.exited;
      const signal = this.child.signalCode ?? (options.sandbox ? signalOfSandboxExit(code) : undefined);
      return signal ? { code: null, signal: String(signal) } : { code, signal: null };
    });
  }

  /** The executor's own cgroup, when cgroups are set up here: what a restarted runner kills. */
  get cgroup(): string | undefined {
    return this.runCgroup?.path;
  }

  /**
   * Writes to the open stdin (keepInputOpen). False when it is closed, or the executor no longer
   * reads it (gone): the text was not delivered.
   */
  writeInput(text: string): boolean {
    if (!this.input || this.leaderExited) return false;
    try {
      const written = this.input.write(text);
      const flushed = this.input.flush();
      // A pipe whose reader is gone fails later, asynchronously: the exit tells the caller.
      for (const pending of [written, flushed]) if (pending instanceof Promise) pending.catch(() => {});
      return true;
    } catch {
      this.input = undefined;
      return false;
    }
  }

  /** Closes the open stdin: the executor reads end-of-file. */
  closeInput(): void {
    const input = this.input;
    this.input = undefined;
    try {
      const ended = input?.end();
      if (ended instanceof Promise) ended.catch(() => {});
    } catch {
      // Already closed by the executor's end.
    }
  }

  /** The last few KB the executor wrote to stderr (empty when stderr is inherited). */
  stderrTail(): string {
    return this.stderr.text();
  }

  /** Everything the executor wrote to stdout, when it was captured. */
  stdout(): string {
    return Buffer.concat(this.captured).toString("utf8");
  }

  /**
   * SIGTERM to all of it, then SIGKILL if anything of it is still there after the grace period.
   * Resolves with the signal that ended it (SIGKILL if any process needed it), or undefined if the
   * executor had already exited. A second call returns the first one's answer.
   */
  stop(graceMs: number): Promise<StopSignal | undefined> {
    if (this.leaderExited && !this.stopping) return Promise.resolve(undefined);
    this.stopping ??= this.stopGroup(graceMs);
    return this.stopping;
  }

  /** SIGKILL to all of it now (also cuts a stop's grace short); nothing once it is gone. */
  kill(): void {
    if (this.groupGone) return;
    this.killedAt ??= performance.now();
    this.keeper?.ending(this.mark);
    this.signal("SIGKILL");
  }

  private async stopGroup(graceMs: number): Promise<StopSignal> {
    this.signal("SIGTERM");
    if (!(await within(graceMs, this.groupEnded))) this.kill();
    await this.exited;
    return this.killedAt === undefined ? "SIGTERM" : "SIGKILL";
  }

  /**
   * The executor has exited: what is left of it are leftovers. After a normal exit they are
   * killed at once; during a stop they got the SIGTERM too and have the rest of the grace.
   */
  private async endGroup(): Promise<void> {
    this.leaderExited = true;
    this.keeper?.leaderGone(this.pid);
    // The waits here take no signal: each is at most GROUP_POLL_MS.max, and the loop is bounded
    // (SIGKILL now after a normal exit, at the end of a stop's grace otherwise, or at once by
    // kill(); then KILLED_GROUP_BOUND_MS at most). A signal could end the loop only by giving up
    // on what is still there.
    if (!this.stopping) this.kill();
    for (let delay = GROUP_POLL_MS.first; this.anythingLeft(); delay = Math.min(delay * 2, GROUP_POLL_MS.max)) {
      if (this.killedAt !== undefined) {
        // A process stuck in the kernel (uninterruptible I/O): it is given up on.
        if (performance.now() - this.killedAt > KILLED_GROUP_BOUND_MS) break;
        // Orphans turn up as their parents die, and a process may have forked before the kill.
        this.signal("SIGKILL");
      }
      await sleep(delay);
    }
    this.groupGone = true;
    running.delete(this);
    this.runCgroup?.remove();
    this.keeper?.untrack(this.mark);
  }

  /** True while a process of the executor's group, of its cgroup, or an orphan it left, is running. */
  private anythingLeft(): boolean {
    return (
      groupAlive(this.pid) || (this.runCgroup?.populated() ?? false) || (this.keeper?.hasOrphans(this.mark) ?? false)
    );
  }

  /**
   * Signals all of the executor: its group (its own children go with it; the group's id cannot be
   * reused while any member is left, and once none is, no signal is sent to it again), its
   * cgroup, the orphans it left, and what it started in sessions of its own while it runs. SIGTERM
   * reaches each process once.
   */
  private signal(signal: StopSignal): void {
    if (signal === "SIGKILL") {
      this.signalGroup(signal);
      this.runCgroup?.signal("SIGKILL");
      this.keeper?.signalRun(this.mark, "SIGKILL");
      return;
    }
    // The detached ones first, found while the executor still holds them: once the group's
    // SIGTERM ends it, its children are orphans, no longer below it.
    const inGroup = (pgrp: number) => pgrp === this.pid;
    const outside = this.leaderExited ? [] : subtreeOf(this.pid).filter((below) => !inGroup(below.pgrp));
    const reached = new Set(this.keeper?.signalRun(this.mark, signal, inGroup) ?? []);
    for (const { pid } of outside) {
      if (reached.has(pid)) continue;
      reached.add(pid);
      try {
        process.kill(pid, signal);
      } catch {
        // Gone meanwhile.
      }
    }
    this.runCgroup?.signal(signal, (pid) => reached.has(pid) || processGroupOf(pid) === this.pid);
    this.signalGroup(signal);
  }

  private signalGroup(signal: StopSignal): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      if (!this.leaderExited) this.child.kill(signal);
    }
  }
}

function checkProgram(program: string, path: string | undefined, cwd: string | undefined): void {
  if (!Bun.which(program, { PATH: path ?? "", cwd }))
    throw new Error(`${program} is not an executable program (PATH ${path ?? "not set"})`);
}

function checkWorkingDirectory(cwd: string): void {
  if (!existsSync(cwd)) throw new Error(`working directory ${cwd} does not exist`);
  if (!statSync(cwd).isDirectory()) throw new Error(`working directory ${cwd} is not a directory`);
}
