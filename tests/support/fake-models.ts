/** The request bodies the fake coordinator checks, and its 422 answers in the shape FastAPI with pydantic 2 gives. */

type Kind = "str" | "int" | "bool" | "dict" | "list" | "any";

/** One field of a request model: its kind, whether it must be there, whether null is allowed, the values it may take. */
export interface Field {
  kind: Kind;
  required?: boolean;
  nullable?: boolean;
  values?: readonly string[];
}

export type Model = Record<string, Field>;

const req = (kind: Kind): Field => ({ kind, required: true });
const opt = (kind: Kind): Field => ({ kind, nullable: true });

const kindCheck: Record<Kind, [(value: unknown) => boolean, string, string]> = {
  str: [(v) => typeof v === "string", "string_type", "Input should be a valid string"],
  int: [(v) => Number.isInteger(v), "int_type", "Input should be a valid integer"],
  bool: [(v) => typeof v === "boolean", "bool_type", "Input should be a valid boolean"],
  dict: [
    (v) => typeof v === "object" && v !== null && !Array.isArray(v),
    "dict_type",
    "Input should be a valid dictionary",
  ],
  list: [Array.isArray, "list_type", "Input should be a valid list"],
  any: [() => true, "", ""],
};

/** The `detail` items of a 422 for `body` against `model` (empty when it fits); unknown keys are ignored, as pydantic does by default. */
export function validationErrors(model: Model, body: unknown): object[] {
  if (body === undefined) return [{ type: "missing", loc: ["body"], msg: "Field required", input: null }];
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    const msg = "Input should be a valid dictionary or object to extract fields from";
    return [{ type: "model_attributes_type", loc: ["body"], msg, input: body }];
  }
  const errors: object[] = [];
  for (const [name, field] of Object.entries(model)) {
    const value = (body as Record<string, unknown>)[name];
    const loc = ["body", name];
    if (value === undefined) {
      if (field.required) errors.push({ type: "missing", loc, msg: "Field required", input: body });
      continue;
    }
    if (value === null && field.nullable) continue;
    const [fits, type, msg] = kindCheck[field.kind];
    if (!fits(value)) errors.push({ type, loc, msg, input: value });
    else if (field.values && !field.values.includes(value as string)) {
      const expected = field.values
        .map((v) => `'${v}'`)
        .join(", ")
        .replace(/, ([^,]*)$/, " or $1");
      errors.push({ type: "enum", loc, msg: `Input should be ${expected}`, input: value, ctx: { expected } });
    }
  }
  return errors;
}

const executionMode: Field = { kind: "str", values: ["sync", "async_poll", "async_callback"] };
const runType: Field = { kind: "str", required: true, values: ["start_session", "resume_session"] };

/** `POST /runs` at 2.1: the prompt is a top-level string. */
export const RunCreate21: Model = {
  type: runType,
  session_id: opt("str"),
  agent_name: opt("str"),
  prompt: req("str"),
  project_dir: opt("str"),
  parent_session_id: opt("str"),
  execution_mode: executionMode,
  additional_demands: opt("dict"),
};

/** `POST /runs` at 2.2: `parameters` replaces the prompt; `scope` feeds the blueprint's placeholders. */
export const RunCreate22: Model = {
  type: runType,
  session_id: opt("str"),
  agent_name: opt("str"),
  parameters: req("dict"),
  project_dir: opt("str"),
  parent_session_id: opt("str"),
  execution_mode: executionMode,
  additional_demands: opt("dict"),
  scope: opt("dict"),
};

/** A session event (the reference's `Event`); 2.2 adds the result fields. */
export const Event21: Model = {
  event_type: req("str"),
  session_id: req("str"),
  timestamp: req("str"),
  tool_name: opt("str"),
  tool_input: opt("dict"),
  tool_output: opt("any"),
  error: opt("str"),
  exit_code: opt("int"),
  reason: opt("str"),
  role: opt("str"),
  content: opt("list"),
};
export const Event22: Model = { ...Event21, result_text: opt("str"), result_data: opt("dict") };

export const SessionBind: Model = {
  executor_session_id: req("str"),
  hostname: req("str"),
  executor_profile: req("str"),
  project_dir: opt("str"),
};

export const SessionMetadata: Model = {
  project_dir: opt("str"),
  agent_name: opt("str"),
  last_resumed_at: opt("str"),
  executor_session_id: opt("str"),
  executor_profile: opt("str"),
  hostname: opt("str"),
};

export const RunnerRegister: Model = {
  hostname: req("str"),
  project_dir: req("str"),
  executor_profile: req("str"),
  executor: opt("dict"),
  tags: opt("list"),
  require_matching_tags: { kind: "bool" },
  agents: opt("list"),
};

/** The run reports' bodies at 2.2, by report. */
export const Reports22: Record<string, Model> = {
  started: { runner_id: req("str") },
  completed: { runner_id: req("str"), status: { kind: "str" }, session_status: opt("str") },
  failed: { runner_id: req("str"), error: req("str") },
  stopped: { runner_id: req("str"), signal: { kind: "str" } },
};

export const SessionStatusReport: Model = { runner_id: req("str"), status: req("str") };
