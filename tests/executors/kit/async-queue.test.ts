/** The kit's queue: items in order, a wait that a later push or the end answers, a wait a signal ends. */
import { expect, test } from "bun:test";
import { AsyncQueue } from "../../../src/executors/kit/async-queue.ts";

test("items come in the order pushed; a waiting next() takes a later push; after end(), what is left, then undefined", async () => {
  const queue = new AsyncQueue<string>();
  queue.push("a");
  expect(await queue.next()).toBe("a");
  const waiting = queue.next();
  queue.push("b");
  expect(await waiting).toBe("b");
  queue.push("c");
  queue.end();
  expect(await queue.next()).toBe("c");
  expect(await queue.next()).toBeUndefined();
});

test("a wait ends when the queue ends", async () => {
  const queue = new AsyncQueue<number>();
  const waiting = queue.next();
  queue.end();
  expect(await waiting).toBeUndefined();
});

test("a wait rejects when its signal aborts, and an aborted signal is refused at once", async () => {
  const queue = new AsyncQueue<number>();
  const stop = new AbortController();
  const waiting = queue.next(stop.signal);
  stop.abort();
  await expect(waiting).rejects.toThrow();
  await expect(queue.next(stop.signal)).rejects.toThrow();
  // The queue itself goes on.
  queue.push(1);
  expect(await queue.next()).toBe(1);
});

test("iterated: each item as it is pushed, until the end", async () => {
  const queue = new AsyncQueue<number>();
  const seen = (async () => {
    const items: number[] = [];
    for await (const item of queue) items.push(item);
    return items;
  })();
  queue.push(1);
  queue.push(2);
  queue.end();
  expect(await seen).toEqual([1, 2]);
});
