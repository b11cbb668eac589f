/** Invocation 2.1: what the runner writes on an executor's stdin, and how executors read it. */
import { type } from "../shared/arktype.ts";
import { JsonObject, validate } from "../shared/json.ts";

/** The invocation schema the runner writes and executors read (2.0 is not accepted any more). */
export const SCHEMA_VERSION = "2.1";

/** The parts of an agent blueprint executors read; other fields pass through untouched. */
export const AgentBlueprint = JsonObject.and({
  "name?": "string",
  "system_prompt?": "string | null",
  "mcp_servers?": JsonObject.or("null"),
});

/**
 * Invocation 2.1: what the runner hands an executor, as one JSON object on stdin. Without
 * `project_dir` (the runner always sends it on start; other callers may not) an executor works in
 * its current directory.
 */
export const Invocation = type({
  schema_version: `'${SCHEMA_VERSION}'`,
  mode: "'start' | 'resume'",
  session_id: "string > 0",
  prompt: "string",
  "project_dir?": "string > 0",
  "agent_blueprint?": JsonObject,
  "executor_config?": JsonObject,
  "metadata?": JsonObject,
});

export type Invocation = typeof Invocation.infer;
export type InvocationMode = Invocation["mode"];

export interface InvocationInput {
  mode: InvocationMode;
  sessionId: string;
  prompt: string;
  projectDir: string;
  agentBlueprint?: JsonObject;
  /** The profile's config; sent only when it has at least one key. */
  executorConfig?: JsonObject;
  metadata?: JsonObject;
}

/** Runner side: the invocation for one run, with only the fields its mode and profile call for. */
export function buildInvocation(input: InvocationInput): Invocation {
  const invocation: Invocation = {
    schema_version: SCHEMA_VERSION,
    mode: input.mode,
    session_id: input.sessionId,
    prompt: input.prompt,
  };
  if (input.mode === "start") invocation.project_dir = input.projectDir;
  if (input.agentBlueprint) invocation.agent_blueprint = input.agentBlueprint;
  if (input.executorConfig && Object.keys(input.executorConfig).length > 0) {
    invocation.executor_config = input.executorConfig;
  }
  if (input.metadata) invocation.metadata = input.metadata;
  return invocation;
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
    throw new InvocationError(`Invalid invocation: stdin is not valid JSON: ${(error as Error).message}`);
  }
  return validate(data, Invocation, `Invalid invocation (schema ${SCHEMA_VERSION})`, InvocationError);
}

/** JSON Schema (draft 2020-12) of invocation 2.1, for executors written in other languages. */
export function invocationJsonSchema(): Record<string, unknown> {
  // arktype cannot export a .narrow predicate; the only ones here are JsonObject's "not an array",
  // which JSON Schema's `type: "object"` already says.
  const schema = Invocation.toJsonSchema({ fallback: { predicate: (ctx) => ctx.base } }) as Record<string, unknown>;
  return { ...schema, title: `Executor invocation ${SCHEMA_VERSION}` };
}
