/** Draining a child's output: every line handed on, long ones cut, a flood without newlines read at the cost of its length. */
import { expect, test } from "bun:test";
import { drain } from "../../src/process/output.ts";

/** A stream of `text` in chunks of `size` bytes. */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + size));
      at += size;
    },
  });
}

async function linesOf(stream: ReadableStream<Uint8Array>, maxLineChars: number): Promise<string[]> {
  const lines: string[] = [];
  await drain(
    stream,
    () => {},
    (line) => lines.push(line),
    maxLineChars,
  );
  return lines;
}

test("lines split across chunks are handed on whole; a last line without a newline too", async () => {
  expect(await linesOf(chunked("one\ntwo\n\nthree\nfour", 3), 100)).toEqual(["one", "two", "", "three", "four"]);
});

test("a line longer than the limit is cut: its first part is handed on, a flood without newlines in pieces", async () => {
  expect(await linesOf(chunked(`${"a".repeat(25)}\nb\n`, 4), 10)).toEqual(["a".repeat(10), "a".repeat(10), "a", "b"]);
  const flood = await linesOf(chunked("x".repeat(100), 7), 10);
  expect(flood.length).toBeGreaterThan(1);
  expect(flood.every((line) => /^x{1,10}$/.test(line))).toBe(true);
});

test("a 32 MB line without a newline in 4 KB chunks, at a 4 MiB limit, is read at the cost of its length", async () => {
  // Joined again at each chunk, the part read so far would cost some 5 s of copying here; read
  // once, well under 0.5 s.
  const limit = 4 * 1024 * 1024;
  const started = performance.now();
  const lines = await linesOf(chunked("x".repeat(32 * 1024 * 1024), 4096), limit);
  const seconds = (performance.now() - started) / 1000;
  expect(lines.length).toBeGreaterThanOrEqual(7);
  expect(lines.every((line) => line.length <= limit)).toBe(true);
  expect(seconds).toBeLessThan(2);
});
