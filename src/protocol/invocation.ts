/**
 * The invocation: what the runner writes on an executor's stdin, in schema 2.1 (a `prompt`) or 2.2
 * (`parameters`), and how executors read it. The schemas are data (validation.ts): executors
 * validate with them without loading arktype.
 */
import type { RootSchema } from "@ark/schema";
import { messageOf } from "../shared/errors.ts";
import { JSON_OBJECT_SCHEMA, type JsonObject, schemaValidator, toJsonSchema, validate } from "../shared/validation.ts";

/** The invocation schemas the runner writes and executors read (2.0 is not accepted any more). */
export const SCHEMA_VERSIONS = ["2.1", "2.2"] as const;
export type SchemaVersion = (typeof SCHEMA_VERSIONS)[number];
const VERSIONS_TEXT = SCHEMA_VERSIONS.join(" or ");

const NON_EMPTY_STRING = { domain: "string", minLength: 1 } satisfies RootSchema;
const NULLABLE = (schema: RootSchema) => [schema, { unit: null }] satisfies RootSchema;

/** The parts of an agent blueprint executors read; other fields pass through untouched. */
export interface AgentBlueprint extends JsonObject {
  name?: string;
  system_prompt?: string | null;
  mcp_servers?: JsonObject | null;
  /** JSON Schema of the parameters an agent takes instead of `{"prompt": "…"}` (2.2). */
  parameters_schema?: JsonObject | null;
  /** JSON Schema of the structured output an agent answers with (2.2). */
  output_schema?: JsonObject | null;
}

export const AGENT_BLUEPRINT_SCHEMA = {
  ...JSON_OBJECT_SCHEMA,
  optional: [
    { key: "name", value: "string" },
    { key: "system_prompt", value: NULLABLE("string") },
    { key: "mcp_servers", value: NULLABLE(JSON_OBJECT_SCHEMA) },
    { key: "parameters_schema", value: NULLABLE(JSON_OBJECT_SCHEMA) },
    { key: "output_schema", value: NULLABLE(JSON_OBJECT_SCHEMA) },
  ],
} satisfies RootSchema;

export type InvocationMode = "start" | "resume";

/**
 * What both schemas share. Without `project_dir` (the runner always sends it on start; other
 * callers may not) an executor works in its current directory.
 */
interface InvocationBase {
  mode: InvocationMode;
  session_id: string;
  project_dir?: string;
  agent_blueprint?: JsonObject;
  executor_config?: JsonObject;
  metadata?: JsonObject;
}

/** Invocation 2.1: the run's input is one prompt. */
export interface Invocation21 extends InvocationBase {
  schema_version: "2.1";
  prompt: string;
}

/**
 * Invocation 2.2: the run's input is `parameters`, `{"prompt": "…"}` for an agent without a
 * `parameters_schema`, and the agent's name when the run names one.
 */
export interface Invocation22 extends InvocationBase {
  schema_version: "2.2";
  parameters: JsonObject;
  agent_name?: string;
}

/** A validated invocation of either schema. */
export type Invocation = Invocation21 | Invocation22;

const COMMON_OPTIONAL = [
  { key: "project_dir", value: NON_EMPTY_STRING },
  { key: "agent_blueprint", value: JSON_OBJECT_SCHEMA },
  { key: "executor_config", value: JSON_OBJECT_SCHEMA },
  { key: "metadata", value: JSON_OBJECT_SCHEMA },
] as const;

const commonRequired = (version: SchemaVersion) =>
  [
    { key: "schema_version", value: { unit: version } },
    { key: "mode", value: [{ unit: "start" }, { unit: "resume" }] },
    { key: "session_id", value: NON_EMPTY_STRING },
  ] as const;

const INVOCATION_SCHEMAS = {
  "2.1": {
    domain: "object",
    required: [...commonRequired("2.1"), { key: "prompt", value: "string" }],
    optional: [...COMMON_OPTIONAL],
  },
  "2.2": {
    domain: "object",
    required: [...commonRequired("2.2"), { key: "parameters", value: JSON_OBJECT_SCHEMA }],
    optional: [...COMMON_OPTIONAL, { key: "agent_name", value: "string" }],
  },
} satisfies Record<SchemaVersion, RootSchema>;

const VALIDATORS = {
  "2.1": schemaValidator<Invocation21>(INVOCATION_SCHEMAS["2.1"]),
  "2.2": schemaValidator<Invocation22>(INVOCATION_SCHEMAS["2.2"]),
};

/** Only the version: what is checked first, so that the errors then come from the right schema. */
const VersionOnly = schemaValidator<{ schema_version: SchemaVersion }>({
  domain: "object",
  required: [{ key: "schema_version", value: SCHEMA_VERSIONS.map((unit) => ({ unit })) }],
});

export interface InvocationInput {
  schemaVersion: SchemaVersion;
  mode: InvocationMode;
  sessionId: string;
  /** The run's input; under 2.1 only `parameters.prompt` (a string) can be sent. */
  parameters: JsonObject;
  projectDir: string;
  /** Sent under 2.2 only (2.1 has no such field). */
  agentName?: string;
  agentBlueprint?: JsonObject;
  /** The profile's config; sent only when it has at least one key. */
  executorConfig?: JsonObject;
  metadata?: JsonObject;
}

export class InvocationError extends Error {
  override name = "InvocationError";
}

/**
 * Runner side: the invocation for one run, with only the fields its mode and profile call for.
 * Under 2.1, parameters other than a string `prompt` cannot be sent: an InvocationError says so.
 */
export function buildInvocation(input: InvocationInput): Invocation {
  const invocation = {
    schema_version: input.schemaVersion,
    mode: input.mode,
    session_id: input.sessionId,
  } as Invocation;
  if (invocation.schema_version === "2.2") invocation.parameters = input.parameters;
  else invocation.prompt = promptOnly(input.parameters);
  if (input.mode === "start") invocation.project_dir = input.projectDir;
  if (invocation.schema_version === "2.2" && input.agentName) invocation.agent_name = input.agentName;
  if (input.agentBlueprint) invocation.agent_blueprint = input.agentBlueprint;
  if (input.executorConfig && Object.keys(input.executorConfig).length > 0) {
    invocation.executor_config = input.executorConfig;
  }
  if (input.metadata) invocation.metadata = input.metadata;
  return invocation;
}

/** 2.1's prompt: the parameters must be exactly `{"prompt": "<text>"}`. */
function promptOnly(parameters: JsonObject): string {
  const { prompt, ...others } = parameters;
  if (typeof prompt !== "string") {
    throw new InvocationError(
      `Invocation 2.1 needs parameters.prompt as a string (was ${describeValue(prompt)}); other parameters need invocation 2.2`,
    );
  }
  const extra = Object.keys(others);
  if (extra.length > 0) {
    throw new InvocationError(
      `Invocation 2.1 carries only a prompt; these parameters also have ${extra.join(", ")}: they need invocation 2.2`,
    );
  }
  return prompt;
}

const describeValue = (value: unknown): string =>
  value === undefined ? "missing" : value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;

/**
 * Executor side: parses and validates an invocation (the whole of stdin, or its first line in a
 * persistent session). Errors name the schema the invocation claims, and the fields that are wrong.
 */
export function parseInvocation(text: string): Invocation {
  if (text.trim() === "") {
    throw new InvocationError(
      `Invalid invocation: stdin is empty; expected one JSON object of invocation schema ${VERSIONS_TEXT}`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new InvocationError(`Invalid invocation: stdin is not valid JSON: ${messageOf(error)}`);
  }
  const { schema_version: version } = validate(
    data,
    VersionOnly,
    `Invalid invocation (schema ${VERSIONS_TEXT})`,
    InvocationError,
  );
  return validate<Invocation>(data, VALIDATORS[version], `Invalid invocation (schema ${version})`, InvocationError);
}

/** The input of the invocation's first turn: 2.2's parameters as sent, 2.1's prompt as `{"prompt": …}`. */
export function invocationParameters(invocation: Invocation): JsonObject {
  return invocation.schema_version === "2.2" ? invocation.parameters : { prompt: invocation.prompt };
}

/**
 * The prompt a turn's parameters stand for, for executors that run an agent on a prompt. Under 2.2
 * an agent whose blueprint has a `parameters_schema` gets every parameter, as an `<inputs>` block;
 * otherwise the parameters must carry `prompt`, a string (an InvocationError says so).
 */
export function turnPrompt(invocation: Invocation, parameters: JsonObject): string {
  const schema = invocation.agent_blueprint?.parameters_schema;
  if (invocation.schema_version === "2.2" && schema !== undefined && schema !== null) return inputsBlock(parameters);
  if (typeof parameters.prompt === "string") return parameters.prompt;
  const keys = Object.keys(parameters);
  const others = parameters.prompt === undefined && keys.length > 0 ? `; the parameters have ${keys.join(", ")}` : "";
  throw new InvocationError(
    `The parameters carry no prompt: parameters.prompt must be a string (was ${describeValue(parameters.prompt)}${others}). ` +
      'An agent takes {"prompt": "…"} unless its blueprint has a parameters_schema',
  );
}

/** Every parameter, one per line (multi-line text indented below its name), in an `<inputs>` block. */
function inputsBlock(parameters: JsonObject): string {
  const lines = ["<inputs>"];
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === "string" && value.includes("\n")) {
      lines.push(`${key}:`, ...value.split("\n").map((line) => `  ${line}`));
    } else if (typeof value === "string") lines.push(`${key}: ${value}`);
    else lines.push(`${key}: ${JSON.stringify(value)}`);
  }
  lines.push("</inputs>");
  return lines.join("\n");
}

/** JSON Schema (draft 2020-12) of both invocation schemas, for executors written in other languages. */
export function invocationJsonSchema(): Record<string, unknown> {
  const union = toJsonSchema(SCHEMA_VERSIONS.map((version) => INVOCATION_SCHEMAS[version]));
  return { ...union, title: `Executor invocation ${VERSIONS_TEXT}` };
}
