/**
 * What a run used, from the `usage` session events its executor sends (one per turn): the event's
 * schema, each turn's own cost (the event's cost is the Claude Code session's running total), a
 * run's sum, and how it reads in logs, reports and exec's summary. Runner and exec share it.
 */
import { type } from "../shared/arktype.ts";
import type { TurnUsage } from "./session-events.ts";

/** Whole and finite: no NaN, no Infinity, nothing past 2^53. */
const Count = "number.safe % 1 >= 0";
const Amount = "number.safe >= 0";

/** A `usage` event's figures; the event's other fields are the gateway's concern. */
export const UsageEvent = type({
  event_type: "'usage'",
  usage: {
    input_tokens: Count,
    output_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
    total_cost_usd: Amount,
    num_turns: Count,
    duration_ms: Amount,
    duration_api_ms: Amount,
  },
});

/** What one turn added: its tokens and round trips, and its own share of the session's cost. */
export interface TurnShare {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
  costUsd: number;
  numTurns: number;
  /**
   * The cost is the session's whole running total: the turn was the first this runner saw of a
   * resumed session, whose earlier cost Claude Code restored from its transcript.
   */
  costIncludesEarlierTurns: boolean;
}

/** Sessions whose last running total is remembered; the oldest is forgotten beyond this. */
const MAX_REMEMBERED_SESSIONS = 10_000;

/**
 * Each session's running cost total as its executor last reported it, so each turn's own share
 * is the difference from the one before. A new Claude Code session starts at 0; a resumed one
 * continues from what its transcript kept, which is known here only if this process saw it.
 */
export class SessionCosts {
  private readonly totals = new Map<string, number>();

  /** A new executor starts the session afresh (a start, not a resume): its total starts at 0. */
  sessionStarted(sessionId: string): void {
    this.remember(sessionId, 0);
  }

  /** A resumed session's running total as known from before (exec's record of it). */
  sessionResumed(sessionId: string, totalCostUsd: number): void {
    this.remember(sessionId, totalCostUsd);
  }

  /** The share of one turn whose event said `usage`. */
  turnShare(sessionId: string, usage: TurnUsage): TurnShare {
    const before = this.totals.get(sessionId);
    const total = usage.total_cost_usd;
    // Below the last total: a new count (a process that did not restore the transcript's). From
    // 0 the total is passed on exactly as the executor said it.
    const costUsd = before === undefined || total < before || before === 0 ? total : withoutFloatNoise(total - before);
    this.remember(sessionId, total);
    return {
      inputTokens: usage.input_tokens,
      outputTokens: usage.output_tokens,
      cacheReadInputTokens: usage.cache_read_input_tokens,
      cacheCreationInputTokens: usage.cache_creation_input_tokens,
      costUsd,
      numTurns: usage.num_turns,
      costIncludesEarlierTurns: before === undefined && total > 0,
    };
  }

  private remember(sessionId: string, total: number): void {
    this.totals.delete(sessionId);
    this.totals.set(sessionId, total);
    if (this.totals.size > MAX_REMEMBERED_SESSIONS) this.totals.delete(this.totals.keys().next().value!);
  }
}

/** A run's sum of its turns' usage. */
export class RunUsage {
  inputTokens = 0;
  outputTokens = 0;
  cacheReadInputTokens = 0;
  cacheCreationInputTokens = 0;
  costUsd = 0;
  numTurns = 0;
  /** Usage events counted. */
  events = 0;
  costIncludesEarlierTurns = false;
  /** The last event's own figures: the session's running cost, and the round trips of the turn. */
  last?: TurnUsage;

  add(share: TurnShare, usage: TurnUsage): void {
    this.inputTokens = capped(this.inputTokens + share.inputTokens);
    this.outputTokens = capped(this.outputTokens + share.outputTokens);
    this.cacheReadInputTokens = capped(this.cacheReadInputTokens + share.cacheReadInputTokens);
    this.cacheCreationInputTokens = capped(this.cacheCreationInputTokens + share.cacheCreationInputTokens);
    this.costUsd = capped(this.costUsd + share.costUsd);
    this.numTurns = capped(this.numTurns + share.numTurns);
    this.costIncludesEarlierTurns ||= share.costIncludesEarlierTurns;
    this.events += 1;
    this.last = usage;
  }

  get tokens(): number {
    return capped(this.inputTokens + this.outputTokens + this.cacheReadInputTokens + this.cacheCreationInputTokens);
  }

  /** `8 turns, 41,200 tokens, $0.18`; empty when no usage came. */
  describe(): string {
    if (this.events === 0) return "";
    const turns = `${this.numTurns} turn${this.numTurns === 1 ? "" : "s"}`;
    const cost = `${formatUsd(this.costUsd)}${this.costIncludesEarlierTurns ? " (with the session's earlier turns)" : ""}`;
    return `${turns}, ${this.tokens.toLocaleString("en-US")} tokens, ${cost}`;
  }

  /** The report's `usage` object (snake_case, as the events have it); undefined when no usage came. */
  reportFields(): RunUsageReport | undefined {
    if (this.events === 0) return undefined;
    return {
      input_tokens: this.inputTokens,
      output_tokens: this.outputTokens,
      cache_read_input_tokens: this.cacheReadInputTokens,
      cache_creation_input_tokens: this.cacheCreationInputTokens,
      // One turn (the usual run: a one-shot run, or a persistent session's turn): its share as it came.
      cost_usd: this.events === 1 ? this.costUsd : withoutFloatNoise(this.costUsd),
      num_turns: this.numTurns,
      ...(this.costIncludesEarlierTurns ? { cost_includes_earlier_turns: true } : {}),
    };
  }
}

/** A run's usage as its report carries it (and the run journal keeps it until delivered). */
export const RunUsageReport = type({
  input_tokens: Count,
  output_tokens: Count,
  cache_read_input_tokens: Count,
  cache_creation_input_tokens: Count,
  cost_usd: Amount,
  num_turns: Count,
  "cost_includes_earlier_turns?": "true",
});
export type RunUsageReport = typeof RunUsageReport.infer;

/**
 * A sum kept within what a usage figure may be (a safe number): each event's figures are, but an
 * executor can send many. The report is journalled, and a journal must read back whole.
 */
function capped(sum: number): number {
  return Math.min(sum, Number.MAX_SAFE_INTEGER);
}

/** Sums and differences of amounts leave float noise (0.30000000000000004): 12 significant digits. */
function withoutFloatNoise(amount: number): number {
  return Number(amount.toPrecision(12));
}

/** `$0.18`; below a cent, two significant digits (`$0.0038`). */
export function formatUsd(amount: number): string {
  if (amount === 0 || amount >= 0.01) return `$${amount.toFixed(2)}`;
  return `$${Number(amount.toPrecision(2))}`;
}
