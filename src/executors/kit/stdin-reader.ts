/** An executor's stdin, read as its lifecycle needs: whole (one invocation) or line by line (a persistent session). */
import type { Lifecycle } from "../../protocol/lifecycle.ts";

export class StdinReader {
  /** Text read and not yet handed on, after `partial`; only its newest chunk has not been searched for a line break. */
  private buffer = "";
  /**
   * The part of the next line read so far, in pieces, joined once when the line ends: a long line
   * in many chunks costs its length, not its length at every chunk.
   */
  private partial: string[] = [];
  private ended = false;
  private readonly decoder = new TextDecoder();
  private reader?: { read(): Promise<{ done: boolean; value?: Uint8Array }> };
  private readonly open?: () => ReadableStream<Uint8Array>;

  /** Text (all of the input), a stream, or a function that opens one at the first read. */
  constructor(source: string | ReadableStream<Uint8Array> | (() => ReadableStream<Uint8Array>)) {
    if (typeof source === "string") {
      this.buffer = source;
      this.ended = true;
    } else this.open = typeof source === "function" ? source : () => source;
  }

  /** This process's stdin, opened when first read. */
  static standard(): StdinReader {
    return new StdinReader(() => Bun.stdin.stream());
  }

  /** Everything up to the end of input (what is left of it). */
  private async readAll(): Promise<string> {
    while (await this.fill()) {}
    return this.take();
  }

  /** The next line without its line break (a last line may lack one), or undefined at the end of input. */
  async readLine(): Promise<string | undefined> {
    for (;;) {
      const end = this.buffer.indexOf("\n");
      if (end >= 0) {
        this.partial.push(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 1);
        const line = this.partial.join("");
        this.partial = [];
        return line.endsWith("\r") ? line.slice(0, -1) : line;
      }
      // No line break in it: kept aside, so that only what comes next is searched.
      if (this.buffer !== "") this.partial.push(this.buffer);
      this.buffer = "";
      if (!(await this.fill())) {
        const last = this.take();
        return last === "" ? undefined : last;
      }
    }
  }

  /** The invocation's text: all of stdin (one-shot; it may span lines), or its first line (persistent). */
  readInvocation(lifecycle: Lifecycle): Promise<string> {
    return lifecycle === "persistent" ? this.readFirstLine() : this.readAll();
  }

  /** The first line that is not blank (a persistent session's invocation), or "" at the end of input. */
  private async readFirstLine(): Promise<string> {
    for (let line = await this.readLine(); line !== undefined; line = await this.readLine()) {
      if (line.trim() !== "") return line;
    }
    return "";
  }

  /** What was read and not handed on yet, all of it. */
  private take(): string {
    const text = this.partial.join("") + this.buffer;
    this.partial = [];
    this.buffer = "";
    return text;
  }

  /** Reads one more chunk into the buffer; false once the input has ended. */
  private async fill(): Promise<boolean> {
    if (this.ended || !this.open) return false;
    this.reader ??= this.open().getReader();
    const { done, value } = await this.reader.read();
    if (done) {
      this.ended = true;
      this.buffer += this.decoder.decode();
      return false;
    }
    this.buffer += this.decoder.decode(value, { stream: true });
    return true;
  }
}
