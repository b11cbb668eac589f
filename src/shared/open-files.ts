/** The process's limit on open file descriptors (RLIMIT_NOFILE), as Linux reports it in /proc. */
import { readFileSync } from "node:fs";

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** Stands for "unlimited" and for a limit /proc does not show: large, but still a number to divide. */
const UNLIMITED = 1 << 20;

const limitValue = (text: string | undefined) =>
  text === undefined || text === "unlimited" ? UNLIMITED : Number(text);

/**
 * The soft and hard limit on open files of this process. Bun raises the soft limit to the hard one
 * as it starts (and its executable too), so the soft limit is the one the runner works with.
 */
export function openFilesLimit(): OpenFilesLimit {
  let limits: string;
  try {
    limits = readFileSync("/proc/self/limits", "utf8");
  } catch {
    return { soft: UNLIMITED, hard: UNLIMITED };
  }
  const row = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  return { soft: limitValue(row?.[1]), hard: limitValue(row?.[2]) };
}
