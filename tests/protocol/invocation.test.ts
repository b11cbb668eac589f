import { describe, expect, test } from "bun:test";
import {
  buildInvocation,
  type Invocation,
  InvocationError,
  type InvocationInput,
  invocationJsonSchema,
  parseInvocation,
  SCHEMA_VERSION,
} from "../../src/protocol/invocation.ts";

/** Parses `text` and returns the InvocationError's message; fails if it parses or throws something else. */
function rejection(text: string): string {
  try {
    parseInvocation(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvocationError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

const START = {
  schema_version: "2.1",
  mode: "start",
  session_id: "ses_abc123",
  prompt: "hi",
  project_dir: "/work",
} satisfies Invocation;

describe("buildInvocation", () => {
  const input: InvocationInput = {
    schemaVersion: "2.1",
    mode: "start",
    sessionId: "ses_1",
    parameters: { prompt: "do it" },
    projectDir: "/proj",
  };

  test("start mode: the required fields and project_dir, nothing else", () => {
    expect(buildInvocation(input)).toEqual({
      schema_version: "2.1",
      mode: "start",
      session_id: "ses_1",
      prompt: "do it",
      project_dir: "/proj",
    });
  });

  test("resume mode has no project_dir", () => {
    const invocation = buildInvocation({ ...input, mode: "resume" });
    expect(invocation).toEqual({ schema_version: "2.1", mode: "resume", session_id: "ses_1", prompt: "do it" });
    expect("project_dir" in invocation).toBe(false);
  });

  test("executor_config is included when the profile's config has keys", () => {
    const executorConfig = { model: "opus", setting_sources: ["project"] };
    expect(buildInvocation({ ...input, executorConfig }).executor_config).toEqual(executorConfig);
  });

  test("an empty or missing config leaves executor_config out", () => {
    expect("executor_config" in buildInvocation({ ...input, executorConfig: {} })).toBe(false);
    expect("executor_config" in buildInvocation(input)).toBe(false);
  });

  test("blueprint and metadata are passed through", () => {
    const agentBlueprint = { name: "reviewer", system_prompt: "be brief", mcp_servers: {} };
    const metadata = { run_id: "run_1" };
    expect(buildInvocation({ ...input, agentBlueprint, metadata })).toEqual({
      schema_version: "2.1",
      mode: "start",
      session_id: "ses_1",
      prompt: "do it",
      project_dir: "/proj",
      agent_blueprint: agentBlueprint,
      metadata,
    });
  });

  test.each(["start", "resume"] as const)("build → JSON → parse round trip (%s)", (mode) => {
    const built = buildInvocation({
      schemaVersion: "2.1",
      mode,
      sessionId: "ses_rt",
      parameters: { prompt: 'line one\nline two \u00e9 \u{1f600} "quoted"' },
      projectDir: "/some/dir",
      agentBlueprint: { name: "a", mcp_servers: { x: { type: "http", url: "http://h" } } },
      executorConfig: { permission_mode: "default", nested: { n: 1, b: false, z: null } },
      metadata: { k: "v" },
    });
    expect(parseInvocation(JSON.stringify(built))).toEqual(built as Invocation);
  });
});

describe("parseInvocation", () => {
  test("accepts a valid start invocation", () => {
    expect(parseInvocation(JSON.stringify(START))).toEqual(START);
  });

  test("accepts resume without project_dir", () => {
    const { project_dir: _, ...resume } = { ...START, mode: "resume" as const };
    expect(parseInvocation(JSON.stringify(resume))).toEqual(resume);
  });

  test.each(["", "  \n\t"])("empty input %j says stdin is empty", (text) => {
    expect(rejection(text)).toBe(
      "Invalid invocation: stdin is empty; expected one JSON object of invocation schema 2.1",
    );
  });

  test("invalid JSON says so and gives the parse error", () => {
    const message = rejection('{"schema_version": "2.1",');
    expect(message).toStartWith("Invalid invocation: stdin is not valid JSON: ");
    expect(message.length).toBeGreaterThan("Invalid invocation: stdin is not valid JSON: ".length);
  });

  test.each(["session_id", "prompt", "mode", "schema_version"])("a missing %s is named", (field) => {
    const { [field as keyof typeof START]: _, ...rest } = START;
    expect(rejection(JSON.stringify(rest))).toContain(`${field} must be`);
    expect(rejection(JSON.stringify(rest))).toContain("(was missing)");
  });

  test("schema_version 2.0 is refused", () => {
    expect(rejection(JSON.stringify({ ...START, schema_version: "2.0" }))).toBe(
      'Invalid invocation (schema 2.1): schema_version must be "2.1" (was "2.0")',
    );
  });

  test("an unknown mode is refused", () => {
    expect(rejection(JSON.stringify({ ...START, mode: "fork" }))).toBe(
      'Invalid invocation (schema 2.1): mode must be "resume" or "start" (was "fork")',
    );
  });

  test("accepts start without project_dir (the executor then works in its current directory)", () => {
    const { project_dir: _, ...noDir } = START;
    expect(parseInvocation(JSON.stringify(noDir))).toEqual(noDir);
  });

  test("an empty project_dir is refused", () => {
    expect(rejection(JSON.stringify({ ...START, project_dir: "" }))).toContain("project_dir must be non-empty");
  });

  test("an empty session_id is refused", () => {
    expect(rejection(JSON.stringify({ ...START, session_id: "" }))).toContain("session_id must be non-empty");
  });

  test("executor_config must be an object, not an array", () => {
    expect(rejection(JSON.stringify({ ...START, executor_config: ["opus"] }))).toContain(
      "executor_config must be an object (not an array)",
    );
  });

  test.each(["null", "[1]", '"text"', "42"])("a non-object %s is refused", (text) => {
    expect(rejection(text)).toStartWith("Invalid invocation (schema 2.1): ");
  });
});

describe("invocationJsonSchema", () => {
  const schema = invocationJsonSchema() as {
    $schema?: string;
    type?: string;
    required?: string[];
    properties?: Record<string, Record<string, unknown>>;
    if?: unknown;
    then?: unknown;
  };

  test("is serialisable JSON", () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  test("describes an object with the required fields and the 2.1 version constant", () => {
    expect(schema.$schema).toContain("json-schema.org");
    expect(schema.type).toBe("object");
    expect([...(schema.required ?? [])].sort()).toEqual(["mode", "prompt", "schema_version", "session_id"]);
    expect(schema.properties?.schema_version).toEqual({ const: SCHEMA_VERSION });
    expect(SCHEMA_VERSION).toBe("2.1");
    expect(schema.properties?.mode).toEqual({ enum: ["resume", "start"] });
  });

  test("has every optional field, objects where the schema wants objects", () => {
    const properties = schema.properties ?? {};
    expect(Object.keys(properties).sort()).toEqual([
      "agent_blueprint",
      "executor_config",
      "metadata",
      "mode",
      "project_dir",
      "prompt",
      "schema_version",
      "session_id",
    ]);
    for (const field of ["agent_blueprint", "executor_config", "metadata"])
      expect(properties[field]?.type).toBe("object");
  });

  test("does not require project_dir, in either mode", () => {
    expect(schema.required).not.toContain("project_dir");
    expect(schema.if).toBeUndefined();
    expect(schema.then).toBeUndefined();
  });
});
