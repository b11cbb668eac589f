/**
 * Takes variables out of this process's environment for good, including the copy Linux shows in
 * /proc/<pid>/environ to every process of the same user (executors run as that user).
 */
import { closeSync, openSync, readFileSync, readSync, writeSync } from "node:fs";

/**
 * The start and end address of the environment block the process started with: fields 50 and 51
 * of /proc/self/stat, counted after the command name, which may itself hold spaces and ')'.
 */
function environBlock(): { start: number; end: number } {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state).
  const start = Number(fields[50 - 3]);
  const end = Number(fields[51 - 3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end <= start) {
    throw new Error(`/proc/self/stat has no usable env_start/env_end (${fields[47]}, ${fields[48]})`);
  }
  return { start, end };
}

/**
 * Removes `names` from process.env and zeroes their values in the original environment block.
 * `delete process.env.X` alone is not enough: the kernel serves /proc/<pid>/environ from that
 * block, so its bytes are overwritten in place through /proc/self/mem. Throws when that fails
 * (not Linux, /proc/self/mem not writable); process.env is cleaned either way.
 */
export function removeFromEnvironment(names: string[]): void {
  for (const name of names) delete process.env[name];
  if (process.platform !== "linux") throw new Error("only Linux is supported");
  const { start, end } = environBlock();
  const fd = openSync("/proc/self/mem", "r+");
  try {
    const block = Buffer.alloc(end - start);
    readSync(fd, block, 0, block.length, start);
    for (const name of names) {
      const key = Buffer.from(`${name}=`);
      for (let at = block.indexOf(key); at !== -1; at = block.indexOf(key, at + 1)) {
        // Only a whole entry: `X_SECRET=` also ends in `SECRET=`.
        if (at > 0 && block[at - 1] !== 0) continue;
        const valueStart = at + key.length;
        const valueEnd = block.indexOf(0, valueStart);
        const length = (valueEnd === -1 ? block.length : valueEnd) - valueStart;
        if (length > 0) writeSync(fd, Buffer.alloc(length), 0, length, start + valueStart);
      }
    }
  } finally {
    closeSync(fd);
  }
}
