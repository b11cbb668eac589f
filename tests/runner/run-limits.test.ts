import { expect, test } from "bun:test";
import { RunLimits } from "../../src/runner/run-limits.ts";

test("no limits: never at capacity, never done", () => {
  const limits = new RunLimits({});
  for (let i = 0; i < 100; i++) limits.took();
  expect(limits.atCapacity(1000)).toBe(false);
  expect(limits.done(0)).toBeUndefined();
});

test("capacity is reached at the limit, not before", () => {
  const limits = new RunLimits({ maxConcurrentRuns: 2 });
  expect(limits.atCapacity(1)).toBe(false);
  expect(limits.atCapacity(2)).toBe(true);
});

test("--max-runs: done once that many runs were taken, whether or not they ended", () => {
  const limits = new RunLimits({ maxRuns: 2 });
  limits.took();
  expect(limits.done(1)).toBeUndefined();
  limits.took();
  expect(limits.done(2)).toBe("Took 2 run(s) (--max-runs 2)");
});

test("--max-cost-usd: done once the runs' cost reaches it, saying how much", () => {
  const limits = new RunLimits({ maxCostUsd: 1 });
  limits.spent(0.6);
  expect(limits.done(1)).toBeUndefined();
  limits.spent(0.39);
  expect(limits.done(1)).toBeUndefined();
  limits.spent(0.02);
  expect(limits.done(1)).toBe("Runs cost $1.01 so far, reaching --max-cost-usd 1");
});

test("--exit-after-idle: counted from the last moment a run was active", () => {
  let now = 0;
  const limits = new RunLimits({ exitAfterIdleSeconds: 10 }, () => now);
  now = 9_999;
  expect(limits.done(0)).toBeUndefined();
  limits.activeChanged(1);
  now = 30_000;
  expect(limits.done(1)).toBeUndefined();
  limits.activeChanged(0);
  now = 39_999;
  expect(limits.done(0)).toBeUndefined();
  now = 40_000;
  expect(limits.done(0)).toBe("No run for 10 s (--exit-after-idle 10)");
});
