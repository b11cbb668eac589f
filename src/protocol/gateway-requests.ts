/** What executors send to the gateway's own routes (docs/protocol.md, "Gateway"), as arktype schemas. */
import { type } from "../shared/arktype.ts";

const SessionId = type("string > 0");

/** `POST /bind`: the executor's own session id, once its framework has one. */
export const BindRequest = type({
  session_id: SessionId,
  executor_session_id: "string > 0",
  "project_dir?": "string",
});

/** `POST /events`: one session event; its other fields depend on `event_type`. */
export const EventRequest = type({
  session_id: SessionId,
  event_type: "string > 0",
  /** Message events: who spoke, and the text blocks. */
  "role?": "string",
  "content?": "unknown",
});

/** `PATCH /metadata`. */
export const MetadataRequest = type({
  session_id: SessionId,
  "last_resumed_at?": "string",
  "executor_session_id?": "string",
});

/** A message event's content: text blocks (others are shown by type only). */
export const MessageContent = type({ type: "string", "text?": "string" }).array().or("string");
