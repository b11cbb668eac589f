/**
 * Invocation 2.1: what the runner writes on an executor's stdin, and how executors read it. The
 * schema is data (validation.ts): executors validate with it without loading arktype.
 */
import type { RootSchema } from "@ark/schema";
import { messageOf } from "../shared/errors.ts";
import { JSON_OBJECT_SCHEMA, type JsonObject, schemaValidator, toJsonSchema, validate } from "../shared/validation.ts";

/** The invocation schema the runner writes and executors read (2.0 is not accepted any more). */
export const SCHEMA_VERSION = "2.1";

const NON_EMPTY_STRING = { domain: "string", minLength: 1 } satisfies RootSchema;
const NULLABLE = (schema: RootSchema) => [schema, { unit: null }] satisfies RootSchema;

/** The parts of an agent blueprint executors read; other fields pass through untouched. */
export interface AgentBlueprint extends JsonObject {
  name?: string;
  system_prompt?: string | null;
  mcp_servers?: JsonObject | null;
}

export const AGENT_BLUEPRINT_SCHEMA = {
  ...JSON_OBJECT_SCHEMA,
  optional: [
    { key: "name", value: "string" },
    { key: "system_prompt", value: NULLABLE("string") },
    { key: "mcp_servers", value: NULLABLE(JSON_OBJECT_SCHEMA) },
  ],
} satisfies RootSchema;

/**
 * Invocation 2.1: what the runner hands an executor, as one JSON object on stdin. Without
 * `project_dir` (the runner always sends it on start; other callers may not) an executor works in
 * its current directory.
 */
export interface Invocation {
  schema_version: typeof SCHEMA_VERSION;
  mode: "start" | "resume";
  session_id: string;
  prompt: string;
  project_dir?: string;
  agent_blueprint?: JsonObject;
  executor_config?: JsonObject;
  metadata?: JsonObject;
}

const INVOCATION_SCHEMA = {
  domain: "object",
  required: [
    { key: "schema_version", value: { unit: SCHEMA_VERSION } },
    { key: "mode", value: [{ unit: "start" }, { unit: "resume" }] },
    { key: "session_id", value: NON_EMPTY_STRING },
    { key: "prompt", value: "string" },
  ],
  optional: [
    { key: "project_dir", value: NON_EMPTY_STRING },
    { key: "agent_blueprint", value: JSON_OBJECT_SCHEMA },
    { key: "executor_config", value: JSON_OBJECT_SCHEMA },
    { key: "metadata", value: JSON_OBJECT_SCHEMA },
  ],
} satisfies RootSchema;

const InvocationValidator = schemaValidator<Invocation>(INVOCATION_SCHEMA);

export type InvocationMode = Invocation["mode"];

/** Invocation 2.2: `parameters` (any object; `{prompt}` for an agent without an input schema) instead of `prompt`. */
export interface Invocation22 extends Omit<Invocation, "schema_version" | "prompt"> {
  schema_version: "2.2";
  parameters: JsonObject;
  agent_name?: string;
}

export interface InvocationInput {
  /** 2.1 for a coordinator of that generation (the prompt is `parameters.prompt`), else 2.2. */
  schemaVersion: "2.1" | "2.2";
  mode: InvocationMode;
  sessionId: string;
  parameters: JsonObject;
  projectDir: string;
  agentName?: string;
  agentBlueprint?: JsonObject;
  /** The profile's config; sent only when it has at least one key. */
  executorConfig?: JsonObject;
  metadata?: JsonObject;
}

/** Runner side: the invocation for one run, with only the fields its version, mode and profile call for. */
export function buildInvocation(input: InvocationInput): Invocation | Invocation22 {
  const common: Omit<Invocation, "schema_version" | "prompt"> = { mode: input.mode, session_id: input.sessionId };
  if (input.mode === "start") common.project_dir = input.projectDir;
  if (input.agentBlueprint) common.agent_blueprint = input.agentBlueprint;
  if (input.executorConfig && Object.keys(input.executorConfig).length > 0) {
    common.executor_config = input.executorConfig;
  }
  if (input.metadata) common.metadata = input.metadata;
  if (input.schemaVersion === "2.2") {
    return {
      schema_version: "2.2",
      ...common,
      parameters: input.parameters,
      ...(input.agentName ? { agent_name: input.agentName } : {}),
    };
  }
  const { prompt } = input.parameters;
  if (typeof prompt !== "string")
    throw new InvocationError("invocation 2.1 needs a prompt: parameters.prompt must be a string");
  // Key order as before: schema_version, mode, session_id, prompt, then the rest.
  const { mode, session_id, ...rest } = common;
  return { schema_version: SCHEMA_VERSION, mode, session_id, prompt, ...rest };
}

export class InvocationError extends Error {
  override name = "InvocationError";
}

/** Executor side: parses and validates the invocation read from stdin. */
export function parseInvocation(text: string): Invocation {
  if (text.trim() === "") {
    throw new InvocationError(
      `Invalid invocation: stdin is empty; expected one JSON object of invocation schema ${SCHEMA_VERSION}`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new InvocationError(`Invalid invocation: stdin is not valid JSON: ${messageOf(error)}`);
  }
  return validate(data, InvocationValidator, `Invalid invocation (schema ${SCHEMA_VERSION})`, InvocationError);
}

/** JSON Schema (draft 2020-12) of invocation 2.1, for executors written in other languages. */
export function invocationJsonSchema(): Record<string, unknown> {
  return { ...toJsonSchema(INVOCATION_SCHEMA), title: `Executor invocation ${SCHEMA_VERSION}` };
}
