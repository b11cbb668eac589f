/** Facts about other processes, from /proc: is a recorded process still the same one, is a group left. */
import { readFileSync } from "node:fs";

/**
 * When the process started (clock ticks since boot, /proc/<pid>/stat field 22), or undefined if
 * there is no such process. A pid can be reused; pid and start time together cannot.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** True while the process that had `startTime` still runs (a zombie no longer counts). */
export function isSameProcessAlive(pid: number, startTime: string | undefined): boolean {
  if (startTime === undefined || processStartTime(pid) !== startTime) return false;
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Sends a signal to a process group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kills what is left of an executor's process group from an earlier runner process. The group is
 * ours if its leader is still the process we started; once the leader is gone, its id cannot be
 * reused while any member remains, so members still in the group are ours too.
 */
export function killLeftoverGroup(pgid: number, leaderStartTime: string | undefined): boolean {
  const leaderStart = processStartTime(pgid);
  if (leaderStart !== undefined && leaderStart !== leaderStartTime) return false;
  return signalGroup(pgid, "SIGKILL");
}
