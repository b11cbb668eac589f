/** The session events executors send through the gateway (docs/protocol.md, "Events"). */

export type EventRole = "user" | "assistant";

export interface SessionEvent {
  session_id: string;
  event_type: string;
  timestamp: string;
  [field: string]: unknown;
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
};
