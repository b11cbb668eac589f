import { describe, expect, test } from "bun:test";
import { Backoff, MAX_TIMER_MS, retry, sleep, Wakeup, within } from "../../src/shared/retry.ts";

describe("Backoff", () => {
  test("doubles from the first delay to the ceiling, with jitter between half and all of it", () => {
    const low = new Backoff(100, 1000, () => 0);
    expect([1, 2, 3, 4, 5].map(() => low.next())).toEqual([50, 100, 200, 400, 500]);
    const high = new Backoff(100, 1000, () => 1);
    expect([1, 2, 3, 4, 5].map(() => high.next())).toEqual([100, 200, 400, 800, 1000]);
    high.reset();
    expect(high.attempts).toBe(0);
    expect(high.next()).toBe(100);
  });
});

describe("sleep and within", () => {
  test("a signal cuts a sleep short; an already aborted one does not wait at all", async () => {
    const controller = new AbortController();
    const started = performance.now();
    const sleeping = sleep(60_000, controller.signal);
    controller.abort();
    await sleeping;
    await sleep(60_000, controller.signal);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  test("a delay beyond setTimeout's ceiling is clamped instead of firing at once", async () => {
    const controller = new AbortController();
    let done = false;
    const sleeping = sleep(MAX_TIMER_MS * 10, controller.signal).then(() => (done = true));
    await sleep(50);
    expect(done).toBe(false);
    controller.abort();
    await sleeping;
  });

  test("within: true when the promise settles first, false after the time; no timer is left behind", async () => {
    expect(await within(5000, Promise.resolve())).toBe(true);
    expect(await within(20, new Promise(() => {}))).toBe(false);
  });
});

describe("retry", () => {
  const quiet = { describeFailure: () => "attempt failed" };

  test("retries until the attempt succeeds and says when it recovered", async () => {
    let calls = 0;
    let recovered = 0;
    const result = await retry(
      async () => {
        if (++calls < 3) throw new Error("not yet");
        return "ok";
      },
      {
        ...quiet,
        signal: new AbortController().signal,
        initialMs: 1,
        onRecovered: (failures) => (recovered = failures),
      },
    );
    expect(result).toBe("ok");
    expect(calls).toBe(3);
    expect(recovered).toBe(2);
  });

  test("a fatal error is thrown at once", async () => {
    let calls = 0;
    const attempt = async () => {
      calls++;
      throw new TypeError("refused");
    };
    await expect(
      retry(attempt, {
        ...quiet,
        signal: new AbortController().signal,
        isFatal: (error) => error instanceof TypeError,
      }),
    ).rejects.toThrow("refused");
    expect(calls).toBe(1);
  });

  test("the signal ends the loop during a wait: undefined, no further attempt", async () => {
    const controller = new AbortController();
    let calls = 0;
    const retrying = retry(
      async () => {
        calls++;
        throw new Error("down");
      },
      { ...quiet, signal: controller.signal, initialMs: 60_000 },
    );
    await sleep(20);
    controller.abort();
    expect(await retrying).toBeUndefined();
    expect(calls).toBe(1);
  });

  test("a wake-up ends the wait and starts the backoff over", async () => {
    const wakeup = new Wakeup();
    let calls = 0;
    const retrying = retry(
      async () => {
        if (++calls < 2) throw new Error("down");
        return calls;
      },
      { ...quiet, signal: new AbortController().signal, wakeup, initialMs: 60_000 },
    );
    await sleep(20);
    wakeup.wake();
    expect(await retrying).toBe(2);
  });
});
