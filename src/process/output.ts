/** Reading a child's output without ever blocking it: a bounded tail, and line-wise draining. */

/** Keeps the last `limit` bytes of a stream without holding the rest. */
export class Tail {
  private chunks: Uint8Array[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.byteLength >= this.limit) {
      this.size -= this.chunks.shift()!.byteLength;
    }
  }

  text(): string {
    const bytes = Buffer.concat(this.chunks);
    const start = Math.max(0, bytes.byteLength - this.limit);
    return bytes.subarray(start).toString("utf8");
  }
}

/** Longest line passed on whole; a flood without newlines is cut into pieces this long. */
export const MAX_LINE_CHARS = 2000;

/**
 * Reads a stream to its end, handing on every chunk and, if asked, every line: at most
 * `maxLineChars` of it (a flood without newlines is cut into pieces that long).
 */
export async function drain(
  stream: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
  onLine?: (line: string) => void,
  maxLineChars = MAX_LINE_CHARS,
): Promise<void> {
  const decoder = onLine ? new TextDecoder() : undefined;
  let partial = "";
  for await (const chunk of stream) {
    onChunk(chunk);
    if (decoder && onLine) {
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line.slice(0, maxLineChars));
      // A flood without newlines must not grow the buffer without bound.
      if (partial.length > maxLineChars) {
        onLine(partial.slice(0, maxLineChars));
        partial = "";
      }
    }
  }
  if (onLine && partial) onLine(partial);
}
