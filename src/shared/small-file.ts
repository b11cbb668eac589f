/**
 * Reading a file the operator points at (profile, blueprint, stored session) that must be small:
 * a FIFO, a device like /dev/zero or a huge file is refused at once, never read without end.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { messageOf } from "./errors.ts";

/** Profiles, blueprints and stored sessions are a few KB; 1 MiB is far more than any needs. */
export const MAX_SMALL_FILE_BYTES = 1024 * 1024;

/**
 * Why a file could not be read, to follow the file's name in the caller's message (the caller
 * knows what the file is for); `code` is the system's (ENOENT, EACCES, …) when it had one.
 */
export class SmallFileError extends Error {
  override name = "SmallFileError";
  constructor(
    message: string,
    readonly code?: string,
    /** Why the file itself was refused, when it was opened but not read. */
    readonly refusal?: "not a regular file" | "too big",
  ) {
    super(message);
  }
}

export function limitText(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a plain file";
}

/**
 * The text of a regular file of at most `maxBytes`. Opened without blocking (a FIFO with no
 * writer would block the open itself), checked on the open descriptor, read up to the limit.
 * With `noFollow`, a symbolic link is not followed (the open fails with ELOOP).
 * A refusal is a SmallFileError; callers put the file's name and purpose before its message.
 */
export function readSmallFile(
  path: string,
  maxBytes = MAX_SMALL_FILE_BYTES,
  options: { noFollow?: boolean } = {},
): string {
  let fd: number;
  try {
    const noFollow = options.noFollow ? constants.O_NOFOLLOW : 0;
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | noFollow);
  } catch (error) {
    throw new SmallFileError(messageOf(error), (error as NodeJS.ErrnoException).code);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile())
      throw new SmallFileError(`not a regular file (it is ${kindOf(stat)})`, undefined, "not a regular file");
    const tooBig = (size: number) =>
      new SmallFileError(`${size} bytes, over the ${limitText(maxBytes)} limit for such files`, undefined, "too big");
    if (stat.size > maxBytes) throw tooBig(stat.size);
    // Up to one byte more than allowed: a file that grew since fstat is caught too.
    const buffer = Buffer.allocUnsafe(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    if (length > maxBytes) throw tooBig(length);
    return buffer.subarray(0, length).toString("utf8");
  } finally {
    closeSync(fd);
  }
}
