/** The coordinator's replies as arktype schemas: nothing it sends is used before it is checked here. */
import { type } from "../shared/arktype.ts";
import { JsonObject } from "../shared/json.ts";

/** `POST /runner/register` → 200. */
export const Registration = type({
  runner_id: "string > 0",
  "poll_endpoint?": "string",
  "poll_timeout_seconds?": "number > 0",
  "heartbeat_interval_seconds?": "number > 0",
});
export type Registration = typeof Registration.infer;

/** `POST /runner/register` → 409: who holds the identity. */
export const DuplicateRunnerReply = type({
  detail: {
    "message?": "string",
    "runner_id?": "string",
    "hostname?": "string",
    "project_dir?": "string",
    "executor_profile?": "string",
  },
});
export type DuplicateRunner = (typeof DuplicateRunnerReply.infer)["detail"];

const NullableObject = JsonObject.or("null");

/** What a run carries in both protocol generations; extra fields are kept for forward compatibility. */
const RunFields = {
  run_id: "string > 0",
  type: "string > 0",
  session_id: "string > 0",
  "agent_name?": "string | null",
  "project_dir?": "string | null",
  "parent_session_id?": "string | null",
  "execution_mode?": "string | null",
  "demands?": NullableObject,
  "metadata?": NullableObject,
  /** When the run was created at the coordinator (ISO 8601). */
  "created_at?": "string | null",
} as const;

/** A run of protocol 2.1: the input is a prompt; the runner fetches the agent's blueprint. */
export const RunRequest21 = type({ ...RunFields, prompt: "string" });
/** A run of protocol 2.2: the input is `parameters`; the blueprint comes resolved with the run. */
export const RunRequest22 = type({
  ...RunFields,
  parameters: JsonObject,
  "resolved_agent_blueprint?": NullableObject,
});

/** Enough of a malformed run to report it failed. */
export const RunIdOnly = type({ run_id: "string > 0", "session_id?": "unknown" }).pipe(({ run_id, session_id }) => ({
  run_id,
  session_id: typeof session_id === "string" && session_id !== "" ? session_id : undefined,
}));

/** `GET /runner/runs` → 200: what the poll brought (the run itself is checked on its own). */
export const PollReply = JsonObject.and({
  "deregistered?": "boolean",
  "stop_runs?": "string[]",
  "stop_sessions?": "string[]",
  "sync_scripts?": "string[]",
  "remove_scripts?": "string[]",
  "run?": "unknown",
});

/** `GET /runs/{id}`: the part the runner reads. */
export const RunStatusReply = JsonObject.and({ "status?": "string" });

/** `GET /agents/{name}`: the blueprint, possibly wrapped as `{"agent": {…}}`. */
export const AgentReply = JsonObject;
export const WrappedAgentReply = type({ agent: JsonObject });

/** The OAuth2 token endpoint's reply to a client-credentials grant. */
export const TokenReply = type({
  access_token: "string > 0",
  "expires_in?": "number",
});
