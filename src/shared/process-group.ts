/**
 * Processes as this machine's /proc shows them: who is still running in a process group, what a
 * process started, whether a recorded process is still the same one. No imports beyond node:fs,
 * so executors use it too.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  /** Clock ticks since boot (field 22): a pid can be reused; pid and start time together cannot. */
  startTime: string;
}

/** `/proc/<pid>/stat` as state, parent and process group, or undefined when the process is gone. */
function procStat(pid: number | "self"): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so read after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [state = "", ppid, pgrp] = fields;
  return { pid: Number.parseInt(stat, 10), state, ppid: Number(ppid), pgrp: Number(pgrp), startTime: fields[19] ?? "" };
}

/** Every running process (zombies left out), or undefined without /proc. */
function runningProcesses(): ProcStat[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  const running: ProcStat[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = procStat(pid);
    if (stat && stat.state !== "Z" && stat.state !== "X") running.push(stat);
  }
  return running;
}

/** A process's group id, or undefined when it is gone. */
export function processGroupOf(pid: number): number | undefined {
  return procStat(pid)?.pgrp;
}

/** This process's group id, or undefined without /proc. */
export function ownProcessGroup(): number | undefined {
  return procStat("self")?.pgrp;
}

/**
 * The running processes of a group, or undefined without /proc. Killed members stay in their
 * group as zombies until whoever inherited them reaps them (some inits take seconds): they are
 * gone for every purpose here, so they are not listed.
 */
export function groupMembers(pgid: number): number[] | undefined {
  return runningProcesses()
    ?.filter((running) => running.pgrp === pgid)
    .map((running) => running.pid);
}

/** The running processes of all of these groups, from one look at /proc (empty without /proc). */
export function membersOfGroups(pgids: ReadonlySet<number>): number[] {
  return (runningProcesses() ?? []).filter((running) => pgids.has(running.pgrp)).map((running) => running.pid);
}

/** Which running process is whose child: a snapshot of /proc to look up many subtrees in (empty without /proc). */
export type ProcessTree = Map<number, ProcStat[]>;

export function processTree(): ProcessTree {
  const children: ProcessTree = new Map();
  for (const running of runningProcesses() ?? []) {
    const siblings = children.get(running.ppid);
    if (siblings) siblings.push(running);
    else children.set(running.ppid, [running]);
  }
  return children;
}

/** The running children of a process, their children, and so on, with the group each is in. */
export function subtreeOf(pid: number, tree: ProcessTree = processTree()): Array<{ pid: number; pgrp: number }> {
  const found: ProcStat[] = [];
  for (let next = tree.get(pid) ?? []; next.length > 0; ) {
    found.push(...next);
    next = next.flatMap((child) => tree.get(child.pid) ?? []);
  }
  return found.map(({ pid, pgrp }) => ({ pid, pgrp }));
}

/** The running children of a process, their children, and so on (empty without /proc). */
export function descendantsOf(pid: number): number[] {
  return subtreeOf(pid).map((process) => process.pid);
}

/**
 * The children of a process, zombies included, as the kernel lists them per thread (a process
 * adopted by a subreaper is listed under one of its threads): undefined without /proc.
 */
export function childrenOf(pid: number): Array<{ pid: number; pgrp: number; zombie: boolean }> | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const pids = new Set<number>();
  if (!existsSync(`/proc/${pid}/task/${pid}/children`)) {
    // A kernel without CONFIG_PROC_CHILDREN: every process is looked at.
    for (const entry of readdirSync("/proc")) if (/^\d+$/.test(entry)) pids.add(Number(entry));
  }
  for (const task of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ")) {
        if (child.trim()) pids.add(Number(child));
      }
    } catch {
      // The thread ended meanwhile.
    }
  }
  const children: Array<{ pid: number; pgrp: number; zombie: boolean }> = [];
  for (const child of pids) {
    const stat = procStat(child);
    // Reaped meanwhile, or no longer ours.
    if (stat?.ppid !== pid) continue;
    children.push({ pid: child, pgrp: stat.pgrp, zombie: stat.state === "Z" || stat.state === "X" });
  }
  return children;
}

/** Sends `signal` to each of `pids`; those gone meanwhile are passed over. */
export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone meanwhile.
    }
  }
}

/** True while a process of the group is still running (zombies do not count; without /proc, the kernel's word). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    // ESRCH: no process is left in it; EPERM: the id is not ours any more.
    return false;
  }
  const members = groupMembers(pgid);
  return members === undefined || members.length > 0;
}

/** When the process started (see ProcStat.startTime), or undefined if there is no such process. */
export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/** True while the process that had `startTime` still runs (a zombie no longer counts). */
export function isSameProcessAlive(pid: number, startTime: string | undefined): boolean {
  const stat = procStat(pid);
  return startTime !== undefined && stat?.startTime === startTime && stat.state !== "Z" && stat.state !== "X";
}

/**
 * Kills what is left of an executor's process group from an earlier runner process. The group is
 * ours if its leader is still the process we started; once the leader is gone, its id cannot be
 * reused while any member remains, so members still in the group are ours too. An id no executor
 * can have is refused: 1 and below would be every process there is (kill(-1)) or this process's
 * own group (kill(0)), and so is this process's own group.
 */
export function killLeftoverGroup(pgid: number, leaderStartTime: string | undefined): boolean {
  if (!Number.isSafeInteger(pgid) || pgid <= 1 || pgid === ownProcessGroup()) return false;
  const leader = procStat(pgid);
  if (leader && leader.startTime !== leaderStartTime) return false;
  try {
    process.kill(-pgid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}

/** A process's resident memory in bytes (VmRSS), or undefined when it is gone. */
export function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}
