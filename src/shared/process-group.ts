/**
 * Process groups as this machine's /proc shows them: who is still running in one. No imports
 * beyond node:fs, so executors use it too.
 */
import { readdirSync, readFileSync } from "node:fs";

/** `/proc/<pid>/stat` as state and process group, or undefined when the process is gone. */
function procStat(pid: number | "self"): { state: string; pgrp: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so read after the last ")".
  const [state = "", , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 3);
  return { state, pgrp: Number(pgrp) };
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
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  const members: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = procStat(pid);
    if (stat && stat.pgrp === pgid && stat.state !== "Z" && stat.state !== "X") members.push(pid);
  }
  return members;
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
