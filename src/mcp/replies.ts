/** The coordinator replies the orchestration tools read, as arktype schemas. */
import { type } from "../shared/arktype.ts";
import { JsonObject } from "../shared/json.ts";

/** `GET /agents`: the blueprints; a null status counts as active. */
export const AgentList = type({
  name: "string",
  "description?": "string | null",
  "tags?": "string[] | null",
  "status?": "string | null",
}).array();

const SessionEntry = type({
  session_id: "string",
  "status?": "string | null",
  "agent_name?": "string | null",
  "created_at?": "string | null",
  "last_resumed_at?": "string | null",
});

/** `GET /sessions`. */
export const SessionList = type({ sessions: SessionEntry.array() });
export type SessionEntry = typeof SessionEntry.infer;

/** `POST /runs` and `GET /runs/{id}`. */
export const RunReply = JsonObject.and({
  "run_id?": "string",
  "session_id?": "string",
  "status?": "string",
  "error?": "string | null",
});
export type RunReply = typeof RunReply.infer;

/** `GET /sessions/{id}/status`. */
export const SessionStatusReply = JsonObject.and({ "status?": "string" });

/**
 * `GET /sessions/{id}/result`: 2.1's `result` (usually text; anything else is shown as JSON), or
 * 2.2's `result_text` and `result_data` (structured output).
 */
export const SessionResultReply = JsonObject.and({
  "result?": "unknown",
  "result_text?": "string | null",
  "result_data?": JsonObject.or("null"),
});

/** Replies whose body the tools do not read. */
export const AnyReply = type("unknown");
