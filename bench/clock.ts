import { dlopen, FFIType, ptr } from "bun:ffi";

/**
 * CLOCK_MONOTONIC in nanoseconds, read with libc's clock_gettime through bun:ffi (~250 ns a call).
 * Not process.hrtime.bigint(): in Bun that counts from the process's own start (it is
 * CLOCK_MONOTONIC minus a per-process offset), so it cannot be compared across processes. The
 * stamp executor reads CLOCK_MONOTONIC itself, so this is the one clock both sides share.
 */
const CLOCK_MONOTONIC = 1;
const libc = dlopen(process.platform === "linux" ? "libc.so.6" : "libc.dylib", {
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});
const timespec = new BigInt64Array(2);
const timespecPtr = ptr(timespec);

export function monoNs(): bigint {
  libc.symbols.clock_gettime(CLOCK_MONOTONIC, timespecPtr);
  return timespec[0]! * 1_000_000_000n + timespec[1]!;
}

export const nsToMs = (ns: bigint | number) => Number(ns) / 1e6;
