/**
 * Orphans an executor leaves, kept by this process as child subreaper: a process whose parent
 * exits (a daemon in a session of its own, the grandchild of a double fork) becomes a child of
 * this process instead of PID 1's. Each one is told to its run by the mark in its environment,
 * inherited from the executor (or, with its environment cleared, by still being in the executor's
 * process group); it is killed when that run ends, and reaped once gone. One whose run cannot be
 * told (no mark, a mark of no live run) is killed at once: it came from some run, and keeping it
 * could only let it outlive that run.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { childrenOf, processTree, signalAll, subtreeOf } from "../shared/process-group.ts";
import { reapChild } from "./libc.ts";

/** Set in each executor's environment, and so in everything it starts: which run a process belongs to. */
export const MARK_ENV = "AGENT_RUNNER_PROCESS_MARK";
const MARK = /^[0-9a-f]{32}$/;

/** A new run's mark: random, so that neither a guess nor a forged journal can name another process. */
export function newMark(): string {
  return randomBytes(16).toString("hex");
}

function isMark(value: unknown): value is string {
  return typeof value === "string" && MARK.test(value);
}

/** How often orphans whose run cannot be told are looked for, and zombies reaped. */
const SWEEP_MS = 1000;

/** The mark in a process's environment, or undefined (none, unreadable, gone). */
function markOf(pid: number): string | undefined {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    return undefined;
  }
  const prefix = `${MARK_ENV}=`;
  for (const entry of environ.split("\0")) {
    if (entry.startsWith(prefix) && isMark(entry.slice(prefix.length))) return entry.slice(prefix.length);
  }
  return undefined;
}

/** The children Bun waits for itself: it holds a pidfd for each (Linux 5.3 and later). */
function pidfdChildren(): Set<number> {
  const pids = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync("/proc/self/fd");
  } catch {
    return pids;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== "anon_inode:[pidfd]") continue;
      const pid = /^Pid:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
      if (pid) pids.add(Number(pid));
    } catch {
      // Closed meanwhile.
    }
  }
  return pids;
}

export class OrphanKeeper {
  /** Runs by mark, with their executor (whose pid is its group's): live ones keep their orphans, ending ones have them killed. */
  private readonly runs = new Map<string, { state: "live" | "ending"; leader: number }>();
  /** Executors this process spawned (Bun reaps them): never taken for orphans. */
  private readonly spawned = new Set<number>();
  private timer?: ReturnType<typeof setInterval>;

  /** Sweeps every second until `stop()`, without keeping the process alive. */
  start(): this {
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A run's executor was spawned with `mark` as process `pid`. */
  track(mark: string, pid: number): void {
    this.runs.set(mark, { state: "live", leader: pid });
    this.spawned.add(pid);
  }

  /** Bun has reaped the executor `pid`. */
  leaderGone(pid: number): void {
    this.spawned.delete(pid);
  }

  /** The run is being killed: its orphans go with it, now and whenever more turn up. */
  ending(mark: string): void {
    const run = this.runs.get(mark);
    if (run) run.state = "ending";
  }

  /** The run is over and all of it gone. */
  untrack(mark: string): void {
    this.runs.delete(mark);
  }

  /**
   * This process's children that are no executor of its own and no other child Bun waits for:
   * what it adopted as subreaper.
   */
  private orphans(): Array<{ pid: number; pgrp: number; zombie: boolean }> {
    const children = (childrenOf(process.pid) ?? []).filter((child) => !this.spawned.has(child.pid));
    if (children.length === 0) return children;
    const bunChildren = pidfdChildren();
    return children.filter((child) => !bunChildren.has(child.pid));
  }

  /** The run an orphan belongs to: its mark, else the executor whose group it is still in. */
  private runOf(orphan: { pid: number; pgrp: number }): string | undefined {
    const mark = markOf(orphan.pid);
    if (mark !== undefined) return mark;
    for (const [runMark, run] of this.runs) if (run.leader === orphan.pgrp) return runMark;
    return undefined;
  }

  /**
   * Reaps orphans that are gone, kills (SIGKILL, with everything below them) those of runs that
   * are ending or unknown and those without a mark, and returns the marks of live runs that still
   * have orphans.
   */
  sweep(): Set<string> {
    const kept = new Set<string>();
    const doomed: number[] = [];
    for (const orphan of this.orphans()) {
      if (orphan.zombie) {
        reapChild(orphan.pid);
        continue;
      }
      const mark = this.runOf(orphan);
      if (mark !== undefined && this.runs.get(mark)?.state === "live") kept.add(mark);
      else doomed.push(orphan.pid);
    }
    if (doomed.length > 0) this.signalTrees(doomed, "SIGKILL");
    return kept;
  }

  /** True while orphans of the run (or orphans to be killed) are left. */
  hasOrphans(mark: string): boolean {
    this.sweep();
    return this.orphans().some((orphan) => !orphan.zombie && (this.runOf(orphan) ?? mark) === mark);
  }

  /** Signals the run's orphans and everything below them; returns the pids signalled. */
  signalRun(mark: string, signal: NodeJS.Signals, except?: (pgrp: number) => boolean): number[] {
    const roots = this.orphans()
      .filter((orphan) => !orphan.zombie && this.runOf(orphan) === mark)
      .map((orphan) => orphan.pid);
    return roots.length > 0 ? this.signalTrees(roots, signal, except) : [];
  }

  private signalTrees(roots: number[], signal: NodeJS.Signals, except?: (pgrp: number) => boolean): number[] {
    const tree = processTree();
    const targets = new Set<number>();
    const ours = new Map((tree.get(process.pid) ?? []).map((child) => [child.pid, child.pgrp]));
    for (const root of roots) {
      const pgrp = ours.get(root);
      if (pgrp === undefined || !except?.(pgrp)) targets.add(root);
      for (const below of subtreeOf(root, tree)) if (!except?.(below.pgrp)) targets.add(below.pid);
    }
    // The roots are our children: their pids cannot be taken by another process until reaped here.
    signalAll([...targets], signal);
    return [...targets];
  }
}

/**
 * A restarted runner's side, for runs without a cgroup: kills (SIGKILL) every process whose
 * environment carries one of `marks`, and what runs below them. Only whole, well-formed marks
 * match, so a journal cannot make this kill anything else. Returns how many were killed.
 */
export function killMarkedProcesses(marks: string[]): number {
  const wanted = new Set(marks.filter(isMark));
  if (wanted.size === 0) return 0;
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return 0;
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const mark = markOf(Number(entry));
    if (mark !== undefined && wanted.has(mark)) found.push(Number(entry));
  }
  if (found.length === 0) return 0;
  const tree = processTree();
  const targets = new Set(found);
  for (const pid of found) for (const below of subtreeOf(pid, tree)) targets.add(below.pid);
  signalAll([...targets], "SIGKILL");
  return found.length;
}
