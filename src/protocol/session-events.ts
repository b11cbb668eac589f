/** The session events executors send through the gateway (docs/protocol.md, "Events"). */

export type EventRole = "user" | "assistant";

export interface SessionEvent {
  session_id: string;
  event_type: string;
  timestamp: string;
  [field: string]: unknown;
}

/**
 * What one turn of an agent used, as Claude Code's Agent SDK reports it at the end of the turn.
 * Tokens, `num_turns` and `duration_ms` are the turn's own; `total_cost_usd` and
 * `duration_api_ms` are the SDK's running totals for the agent's session (a resumed session
 * continues from what its transcript kept), so a turn's own share is the difference from the
 * session's previous usage event.
 */
export interface TurnUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
  total_cost_usd: number;
  /** Model round trips in the turn (each tool use adds one). */
  num_turns: number;
  duration_ms: number;
  duration_api_ms: number;
}

const now = () => new Date().toISOString();

export const sessionEvents = {
  message(sessionId: string, role: EventRole, text: string): SessionEvent {
    return { session_id: sessionId, event_type: "message", timestamp: now(), role, content: [{ type: "text", text }] };
  },
  postTool(
    sessionId: string,
    tool: { name: string; input: unknown; output: unknown; error: string | null },
  ): SessionEvent {
    return {
      session_id: sessionId,
      event_type: "post_tool",
      timestamp: now(),
      tool_name: tool.name,
      tool_input: tool.input,
      tool_output: tool.output,
      error: tool.error,
    };
  },
  sessionStart(sessionId: string): SessionEvent {
    return { session_id: sessionId, event_type: "session_start", timestamp: now() };
  },
  sessionStop(sessionId: string, exitCode: number, reason: string): SessionEvent {
    return { session_id: sessionId, event_type: "session_stop", timestamp: now(), exit_code: exitCode, reason };
  },
  /** A turn's result (invocation 2.2): its text, or the structured data an output schema asked for. */
  result(sessionId: string, result: { text: string | null; data: Record<string, unknown> | null }): SessionEvent {
    return {
      session_id: sessionId,
      event_type: "result",
      timestamp: now(),
      result_text: result.text,
      result_data: result.data,
    };
  },
  usage(sessionId: string, usage: TurnUsage): SessionEvent {
    return { session_id: sessionId, event_type: "usage", timestamp: now(), usage };
  },
};
