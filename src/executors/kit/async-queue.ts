/** Items handed from one side to another that waits for them, in order, until the giving side ends. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private ended = false;
  private wake?: () => void;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  /** No more items: a wait for the next one ends once those already pushed are taken. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** The next item; undefined once the queue has ended with none left. Rejects when `signal` aborts. */
  async next(signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      signal?.throwIfAborted();
      const item = this.items.shift();
      if (item !== undefined || this.ended) return item;
      await new Promise<void>((resolve) => {
        const done = () => {
          this.wake = undefined;
          signal?.removeEventListener("abort", done);
          resolve();
        };
        this.wake = done;
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (let item = await this.next(); item !== undefined; item = await this.next()) yield item;
  }
}
