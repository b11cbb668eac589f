/**
 * A persistent executor's lines (protocol 2.2, profile lifecycle `persistent`): the runner writes
 * the invocation as one line and keeps stdin open, then one `turn` line per later turn and a
 * `shutdown` line to end it; the executor prints a `turn_complete` line on stdout after each turn.
 */
import type { JsonObject } from "../shared/validation.ts";

/** Tells an executor its lifecycle: `persistent` (turn after turn on stdin) or `one_shot`. */
export const LIFECYCLE_ENV = "AGENT_RUNNER_LIFECYCLE";

/** The next turn of the session, with the run's parameters. */
export function turnLine(parameters: JsonObject): string {
  return `${JSON.stringify({ type: "turn", parameters })}\n`;
}

/** Ends the session: the executor finishes what it keeps and exits 0. */
export const SHUTDOWN_LINE = `${JSON.stringify({ type: "shutdown" })}\n`;

/** Ends the current turn early and keeps the session (an interactive terminal's Ctrl+C). */
export const INTERRUPT_LINE = `${JSON.stringify({ type: "interrupt" })}\n`;

/** What an executor's stdout line says, for the lines the runner acts on. */
export type ExecutorLine = { type: "turn_complete"; result?: string; interrupted?: boolean };

/** The line as an executor message, or undefined for any other output. */
export function parseExecutorLine(line: string): ExecutorLine | undefined {
  if (!line.startsWith("{")) return undefined;
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof message !== "object" || message === null || (message as { type?: unknown }).type !== "turn_complete") {
    return undefined;
  }
  const { result, interrupted } = message as { result?: unknown; interrupted?: unknown };
  return {
    type: "turn_complete",
    ...(typeof result === "string" ? { result } : {}),
    ...(interrupted === true ? { interrupted } : {}),
  };
}
