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
 * `maxLineChars` of it (a flood without newlines is cut into pieces that long). The part of a line
 * read so far is kept in pieces and joined once, when the line ends or passes the limit: a long
 * line trickled in small chunks costs its length, not its length at every chunk.
 */
export async function drain(
  stream: ReadableStream<Uint8Array>,
  onChunk: (chunk: Uint8Array) => void,
  onLine?: (line: string) => void,
  maxLineChars = MAX_LINE_CHARS,
): Promise<void> {
  const decoder = onLine ? new TextDecoder() : undefined;
  let pieces: string[] = [];
  let length = 0;
  const endLine = () => {
    const line = pieces.length === 1 ? pieces[0]! : pieces.join("");
    pieces = [];
    length = 0;
    onLine?.(line.slice(0, maxLineChars));
  };
  for await (const chunk of stream) {
    onChunk(chunk);
    if (!decoder) continue;
    const text = decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
      pieces.push(text.slice(start, end));
      endLine();
      start = end + 1;
    }
    if (start < text.length) {
      pieces.push(start === 0 ? text : text.slice(start));
      length += text.length - start;
    }
    // A flood without newlines must not grow the buffer without bound.
    if (length > maxLineChars) endLine();
  }
  if (length > 0) endLine();
}
