import { describe, expect, test } from "bun:test";
import type { ReportOutcome } from "../../src/coordinator/client.ts";
import { type OutboxReport, ReportOutbox } from "../../src/runner/report-outbox.ts";
import { sleep, Wakeup } from "../../src/shared/retry.ts";

/** A coordinator stand-in whose answers the test controls, recording each report as it is sent. */
function coordinator() {
  const sent: string[] = [];
  const settled: string[] = [];
  let answer: (runId: string, report: OutboxReport) => Promise<ReportOutcome> = async () => ({ kind: "delivered" });
  return {
    sent,
    settled,
    answerWith(fn: typeof answer) {
      answer = fn;
    },
    outbox(options: { wakeup?: Wakeup; reregister?: () => Promise<boolean>; retryInitialMs?: number } = {}) {
      return new ReportOutbox(
        {
          deliver: (runId, report) => {
            sent.push(`${runId}:${report.kind}`);
            return answer(runId, report);
          },
          reregister: options.reregister ?? (async () => true),
        },
        {
          retryInitialMs: options.retryInitialMs ?? 5,
          wakeup: options.wakeup,
          onSettled: (runId) => settled.push(runId),
        },
      );
    },
  };
}

describe("ReportOutbox", () => {
  test("a run's reports go out in order, one at a time; runs do not wait for each other", async () => {
    const c = coordinator();
    const gate = Promise.withResolvers<void>();
    c.answerWith(async (runId) => {
      if (runId === "slow") await gate.promise;
      return { kind: "delivered" };
    });
    const outbox = c.outbox();
    outbox.send("slow", { kind: "started" });
    outbox.send("slow", { kind: "completed" });
    outbox.send("fast", { kind: "started" });
    outbox.send("fast", { kind: "failed", error: "x" });
    await sleep(20);
    expect(c.sent).toEqual(["slow:started", "fast:started", "fast:failed"]);
    gate.resolve();
    expect(await outbox.flush(5000)).toEqual([]);
    expect(c.sent).toEqual(["slow:started", "fast:started", "fast:failed", "slow:completed"]);
    expect(c.settled.sort()).toEqual(["fast", "slow"]);
  });

  test("a started not yet delivered when the final report comes is dropped, never sent after it", async () => {
    const c = coordinator();
    let down = true;
    c.answerWith(async () => {
      if (down) throw new Error("coordinator down");
      return { kind: "delivered" };
    });
    const outbox = c.outbox();
    outbox.send("r", { kind: "started" });
    await sleep(20);
    outbox.send("r", { kind: "completed" });
    down = false;
    expect(await outbox.flush(5000)).toEqual([]);
    expect(c.sent.filter((s) => s === "r:completed")).toEqual(["r:completed"]);
    expect(c.sent.lastIndexOf("r:started")).toBeLessThan(c.sent.indexOf("r:completed"));
    expect(c.sent.at(-1)).toBe("r:completed");
  });

  test("a wake-up retries at once instead of after the backoff", async () => {
    const c = coordinator();
    const wakeup = new Wakeup();
    let down = true;
    c.answerWith(async () => {
      if (down) throw new Error("down");
      return { kind: "delivered" };
    });
    const outbox = c.outbox({ wakeup, retryInitialMs: 60_000 });
    outbox.send("r", { kind: "completed" });
    await sleep(20);
    down = false;
    wakeup.wake();
    expect(await outbox.flush(2000)).toEqual([]);
  });

  test("not registered: registers again and delivers; flush names what is still undelivered", async () => {
    const c = coordinator();
    let registered = false;
    c.answerWith(async () => (registered ? { kind: "delivered" } : { kind: "not_registered" }));
    const outbox = c.outbox({ reregister: async () => (registered = true) });
    outbox.send("r", { kind: "stopped", signal: "SIGKILL" });
    expect(await outbox.flush(2000)).toEqual([]);
    expect(c.sent).toEqual(["r:stopped", "r:stopped"]);

    const stuck = c.outbox();
    c.answerWith(async () => {
      throw new Error("down");
    });
    stuck.send("s", { kind: "failed", error: "boom" });
    expect(await stuck.flush(50)).toEqual(["run s failed: boom"]);
    expect(stuck.pendingCount).toBe(1);
    stuck.close();
  });
});
