/** Usage events: each turn's own share of a session's running cost, a run's sum, and how it reads. */
import { describe, expect, test } from "bun:test";
import { sessionEvents, type TurnUsage } from "../../src/protocol/session-events.ts";
import { formatUsd, RunUsage, SessionCosts, UsageEvent } from "../../src/protocol/usage.ts";
import { type } from "../../src/shared/arktype.ts";

const turn = (totalCostUsd: number, fields: Partial<TurnUsage> = {}): TurnUsage => ({
  input_tokens: 1000,
  output_tokens: 200,
  cache_read_input_tokens: 30,
  cache_creation_input_tokens: 4,
  total_cost_usd: totalCostUsd,
  num_turns: 2,
  duration_ms: 5000,
  duration_api_ms: 4000,
  ...fields,
});

describe("UsageEvent", () => {
  test("takes the usage events the executors build", () => {
    const event = sessionEvents.usage("ses_1", turn(0.25));
    expect(UsageEvent(event)).toMatchObject({ event_type: "usage", usage: turn(0.25) });
  });

  test.each([
    ["a negative token count", { input_tokens: -1 }, "usage.input_tokens must be non-negative"],
    ["a fractional token count", { output_tokens: 1.5 }, "usage.output_tokens must be an integer"],
    ["a cost that is a string", { total_cost_usd: "0.1" }, "usage.total_cost_usd must be a number"],
    ["a negative cost", { total_cost_usd: -0.1 }, "usage.total_cost_usd must be non-negative"],
    ["a missing field", { num_turns: undefined }, "usage.num_turns must be"],
  ])("refuses %s", (_, change, message) => {
    const usage = { ...turn(0.1), ...change } as Record<string, unknown>;
    for (const [key, value] of Object.entries(usage)) if (value === undefined) delete usage[key];
    const result = UsageEvent({ event_type: "usage", usage });
    expect(result).toBeInstanceOf(type.errors);
    expect((result as InstanceType<typeof type.errors>).summary).toContain(message);
  });

  test("refuses NaN and infinite costs", () => {
    for (const total_cost_usd of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(UsageEvent({ event_type: "usage", usage: { ...turn(0), total_cost_usd } })).toBeInstanceOf(type.errors);
    }
  });
});

describe("SessionCosts: each turn's own share of the session's running cost", () => {
  test("a started session counts from 0; its later turns (a persistent session) by the difference", () => {
    const costs = new SessionCosts();
    costs.sessionStarted("ses_a");
    expect(costs.turnShare("ses_a", turn(0.1))).toMatchObject({ costUsd: 0.1, costIncludesEarlierTurns: false });
    expect(costs.turnShare("ses_a", turn(0.25)).costUsd).toBeCloseTo(0.15, 10);
    expect(costs.turnShare("ses_a", turn(0.25)).costUsd).toBe(0);
  });

  test("the tokens and round trips are the turn's own, passed on as they are", () => {
    const costs = new SessionCosts();
    costs.sessionStarted("ses_a");
    expect(costs.turnShare("ses_a", turn(0.1))).toEqual({
      inputTokens: 1000,
      outputTokens: 200,
      cacheReadInputTokens: 30,
      cacheCreationInputTokens: 4,
      costUsd: 0.1,
      numTurns: 2,
      costIncludesEarlierTurns: false,
    });
  });

  test("a resume in a new executor continues from the total this process saw last (Claude Code restores it)", () => {
    const costs = new SessionCosts();
    costs.sessionStarted("ses_a");
    costs.turnShare("ses_a", turn(0.3));
    // A new executor resumes the session: no sessionStarted; its first total includes the 0.3.
    expect(costs.turnShare("ses_a", turn(0.5)).costUsd).toBeCloseTo(0.2, 10);
  });

  test("a resume of a session this process never saw: the whole total, said to include earlier turns", () => {
    const costs = new SessionCosts();
    expect(costs.turnShare("ses_unseen", turn(0.7))).toMatchObject({ costUsd: 0.7, costIncludesEarlierTurns: true });
    expect(costs.turnShare("ses_unseen", turn(0.9))).toMatchObject({ costIncludesEarlierTurns: false });
    // Nothing spent yet: nothing of earlier turns either.
    expect(costs.turnShare("ses_free", turn(0))).toMatchObject({ costUsd: 0, costIncludesEarlierTurns: false });
  });

  test("a total below the last one is a count started afresh: all of it is the turn's", () => {
    const costs = new SessionCosts();
    costs.sessionStarted("ses_a");
    costs.turnShare("ses_a", turn(0.8));
    expect(costs.turnShare("ses_a", turn(0.05)).costUsd).toBe(0.05);
  });

  test("remembers a bounded number of sessions, forgetting the least recent", () => {
    const costs = new SessionCosts();
    for (let i = 0; i <= 10_000; i++) {
      costs.sessionStarted(`ses_${i}`);
      costs.turnShare(`ses_${i}`, turn(1));
    }
    // ses_0 was forgotten: its next total counts whole; ses_10000 is remembered.
    expect(costs.turnShare("ses_0", turn(1.5))).toMatchObject({ costUsd: 1.5, costIncludesEarlierTurns: true });
    expect(costs.turnShare("ses_10000", turn(1.5)).costUsd).toBe(0.5);
  });
});

describe("RunUsage", () => {
  const costs = new SessionCosts();
  const add = (usage: RunUsage, sessionId: string, total: number, fields: Partial<TurnUsage> = {}) => {
    const event = turn(total, fields);
    usage.add(costs.turnShare(sessionId, event), event);
  };

  test("sums its turns; reads as turns, tokens and dollars", () => {
    const usage = new RunUsage();
    costs.sessionStarted("ses_r");
    add(usage, "ses_r", 0.1, { num_turns: 3, input_tokens: 40_000 });
    add(usage, "ses_r", 0.18, { num_turns: 5 });
    expect(usage.describe()).toBe("8 turns, 41,468 tokens, $0.18");
    expect(usage.reportFields()).toEqual({
      input_tokens: 41_000,
      output_tokens: 400,
      cache_read_input_tokens: 60,
      cache_creation_input_tokens: 8,
      cost_usd: 0.18,
      num_turns: 8,
    });
    expect(usage.last).toEqual(turn(0.18, { num_turns: 5 }));
  });

  test("no usage event: nothing to say or report", () => {
    expect(new RunUsage().describe()).toBe("");
    expect(new RunUsage().reportFields()).toBeUndefined();
  });

  test("a cost that includes earlier turns says so", () => {
    const usage = new RunUsage();
    add(usage, "ses_never_seen", 1.2, { num_turns: 1 });
    expect(usage.describe()).toBe("1 turn, 1,234 tokens, $1.20 (with the session's earlier turns)");
    expect(usage.reportFields()).toMatchObject({ cost_usd: 1.2, cost_includes_earlier_turns: true });
  });

  test("differences of totals leave no float noise in the report", () => {
    const usage = new RunUsage();
    costs.sessionStarted("ses_f");
    add(usage, "ses_f", 0.1);
    add(usage, "ses_f", 0.3);
    expect(usage.reportFields()?.cost_usd).toBe(0.3);
  });
});

test.each([
  [0, "$0.00"],
  [0.18, "$0.18"],
  [2, "$2.00"],
  [12.345, "$12.35"],
  [0.0038, "$0.0038"],
  [0.000381, "$0.00038"],
])("formatUsd(%p) is %s", (amount, text) => {
  expect(formatUsd(amount)).toBe(text);
});
