/**
 * The libc calls the runner needs and Bun has no API for, through bun:ffi: becoming a child
 * subreaper, reaping one given child, and an exclusive lock on a file. Loaded on first use;
 * unavailable where libc cannot be loaded (not Linux, no glibc).
 */
import { dlopen, FFIType } from "bun:ffi";

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;

function load() {
  if (process.platform !== "linux") return undefined;
  try {
    return dlopen("libc.so.6", {
      // Variadic in the header; on Linux's calling conventions passing all five is the same call.
      prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
      waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    }).symbols;
  } catch {
    return undefined;
  }
}

let libc: ReturnType<typeof load> | null = null;
function symbols() {
  if (libc === null) libc = load();
  return libc;
}

/**
 * Makes this process a child subreaper (or no longer one): orphaned descendants are handed to it
 * instead of to PID 1. False when that cannot be done here.
 */
export function setChildSubreaper(on: boolean): boolean {
  return symbols()?.prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) === 0;
}

/**
 * Reaps `pid` if it is a child of this process that has ended; true once it is reaped (or is no
 * child of ours). Only for children nobody else waits for: Bun waits for its own by pid.
 */
export function reapChild(pid: number): boolean {
  const lib = symbols();
  if (!lib) return false;
  const result = lib.waitpid(pid, null, WNOHANG);
  return result !== 0;
}

/**
 * Takes an exclusive lock on the open file `fd` without waiting: "taken", "held" (by another
 * open file, in this process or another), or "unavailable" (no libc here). The kernel lets go of
 * it when the file is closed, however the process ends.
 */
export function lockFile(fd: number): "taken" | "held" | "unavailable" {
  const lib = symbols();
  if (!lib) return "unavailable";
  return lib.flock(fd, LOCK_EX | LOCK_NB) === 0 ? "taken" : "held";
}
