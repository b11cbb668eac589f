/**
 * What the orchestration tools accept and how they answer: the limits, the execution modes, the
 * checks made before anything is sent, and the error an agent reads. Knows nothing of MCP.
 */
import { DEMANDS_HEADER, type Demands, PARENT_SESSION_HEADER, type RequestContext } from "./context.ts";

/** A failure the calling agent should read: becomes an MCP tool result with `isError: true`. */
export class ToolError extends Error {
  override name = "ToolError";
}

export const MAX_PROMPT_LENGTH = 100_000;
export const MAX_RESULT_LENGTH = 50_000;

export const EXECUTION_MODES = ["sync", "async_poll", "async_callback"] as const;
export type ExecutionMode = (typeof EXECUTION_MODES)[number];

export interface BlueprintSummary {
  name: string;
  description: string;
  tags: string[];
}

export interface SessionSummary {
  session_id: string;
  status: string | null;
  agent_name: string | null;
  created_at: string | null;
  last_resumed_at: string | null;
}

export type SessionRunResult =
  | { session_id: string; result: string; result_data?: Record<string, unknown> }
  | { session_id: string; run_id: string; status: string };

/** Cuts a result to MAX_RESULT_LENGTH characters and says so, without splitting a surrogate pair. */
export function truncateResult(result: string): string {
  if (result.length <= MAX_RESULT_LENGTH) return result;
  let end = MAX_RESULT_LENGTH;
  const last = result.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return (
    `${result.slice(0, end)}\n\n[Result truncated: showing the first ${MAX_RESULT_LENGTH.toLocaleString("en-US")} ` +
    `of ${result.length.toLocaleString("en-US")} characters]`
  );
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}

export function checkPrompt(prompt: string): void {
  if (prompt.trim() === "") throw new ToolError("prompt is empty: say what the agent should do");
  if (prompt.length > MAX_PROMPT_LENGTH) {
    throw new ToolError(
      `prompt is ${prompt.length.toLocaleString("en-US")} characters; the limit is ` +
        `${MAX_PROMPT_LENGTH.toLocaleString("en-US")}. Shorten it, or put the material in a file and pass its path.`,
    );
  }
}

export function checkMode(mode: ExecutionMode, context: RequestContext): void {
  if (mode === "async_callback" && !context.parentSessionId) {
    throw new ToolError(
      `mode "async_callback" needs the calling session's id in the ${PARENT_SESSION_HEADER} header, so the ` +
        `coordinator knows which session to call back; this request has none. Use "async_poll" or "sync" instead.`,
    );
  }
}

export function usableDemands(context: RequestContext): Demands | undefined {
  if (context.demandsError)
    throw new ToolError(
      `${context.demandsError}. Fix the ${DEMANDS_HEADER} header in this MCP server's configuration.`,
    );
  return context.demands && Object.keys(context.demands).length > 0 ? context.demands : undefined;
}
