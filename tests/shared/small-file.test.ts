import { afterAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_SMALL_FILE_BYTES, readSmallFile, SmallFileError } from "../../src/shared/small-file.ts";
import { runProcess, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

function refusal(path: string, maxBytes?: number): SmallFileError {
  try {
    readSmallFile(path, maxBytes);
  } catch (error) {
    expect(error).toBeInstanceOf(SmallFileError);
    return error as SmallFileError;
  }
  throw new Error(`${path} was read`);
}

test("reads a regular file whole, up to the limit exactly", () => {
  const file = join(temp.make(), "ok.json");
  writeFileSync(file, '{"a":"é"}');
  expect(readSmallFile(file)).toBe('{"a":"é"}');
  writeFileSync(file, "x".repeat(100));
  expect(readSmallFile(file, 100)).toBe("x".repeat(100));
});

test("/dev/zero, a FIFO without a writer and a directory are refused at once, saying what they are", async () => {
  expect(refusal("/dev/zero").message).toBe("not a regular file (it is a character device)");
  const fifo = join(temp.make(), "pipe");
  expect((await runProcess(["mkfifo", fifo])).exitCode).toBe(0);
  expect(refusal(fifo).message).toBe("not a regular file (it is a FIFO)");
  const dir = join(temp.make(), "dir");
  mkdirSync(dir);
  expect(refusal(dir).message).toBe("not a regular file (it is a directory)");
});

test("a file over the limit is refused, naming the limit", () => {
  const file = join(temp.make(), "big.json");
  writeFileSync(file, Buffer.alloc(MAX_SMALL_FILE_BYTES + 1, "x"));
  expect(refusal(file).message).toBe("1048577 bytes, over the 1 MiB limit for such files");
  writeFileSync(file, "x".repeat(101));
  expect(refusal(file, 100).message).toBe("101 bytes, over the 100 bytes limit for such files");
});

test("a missing file keeps the system's code", () => {
  const missing = join(temp.make(), "missing.json");
  const error = refusal(missing);
  expect(error.code).toBe("ENOENT");
  expect(error.message).toContain(missing);
});
