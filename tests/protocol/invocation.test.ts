import { describe, expect, test } from "bun:test";
import {
  buildInvocation,
  type Invocation,
  InvocationError,
  type InvocationInput,
  invocationJsonSchema,
  invocationParameters,
  parseInvocation,
  SCHEMA_VERSIONS,
  turnPrompt,
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
      "Invalid invocation: stdin is empty; expected one JSON object of invocation schema 2.1 or 2.2",
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
      'Invalid invocation (schema 2.1 or 2.2): schema_version must be "2.1" or "2.2" (was "2.0")',
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
    expect(rejection(text)).toStartWith("Invalid invocation (schema 2.1 or 2.2): ");
  });
});

describe("invocationJsonSchema", () => {
  type ObjectSchema = { type?: string; required?: string[]; properties?: Record<string, Record<string, unknown>> };
  const schema = invocationJsonSchema() as { $schema?: string; title?: string; anyOf?: ObjectSchema[] };
  const version = (v: string) => schema.anyOf?.find((branch) => branch.properties?.schema_version?.const === v);

  test("is serialisable JSON", () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  test("describes both versions, each an object with its required fields and version constant", () => {
    expect(schema.$schema).toContain("json-schema.org");
    expect(schema.title).toBe("Executor invocation 2.1 or 2.2");
    expect(SCHEMA_VERSIONS).toEqual(["2.1", "2.2"]);
    expect(schema.anyOf).toHaveLength(2);
    expect([...(version("2.1")?.required ?? [])].sort()).toEqual(["mode", "prompt", "schema_version", "session_id"]);
    expect([...(version("2.2")?.required ?? [])].sort()).toEqual([
      "mode",
      "parameters",
      "schema_version",
      "session_id",
    ]);
    for (const branch of schema.anyOf ?? []) {
      expect(branch.type).toBe("object");
      expect(branch.properties?.mode).toEqual({ enum: ["resume", "start"] });
    }
  });

  test("has every optional field, objects where the schema wants objects", () => {
    const common = [
      "agent_blueprint",
      "executor_config",
      "metadata",
      "mode",
      "project_dir",
      "schema_version",
      "session_id",
    ];
    expect(Object.keys(version("2.1")?.properties ?? {}).sort()).toEqual([...common, "prompt"].sort());
    expect(Object.keys(version("2.2")?.properties ?? {}).sort()).toEqual(
      [...common, "agent_name", "parameters"].sort(),
    );
    for (const field of ["agent_blueprint", "executor_config", "metadata"]) {
      expect(version("2.1")?.properties?.[field]?.type).toBe("object");
      expect(version("2.2")?.properties?.[field]?.type).toBe("object");
    }
    expect(version("2.2")?.properties?.parameters?.type).toBe("object");
  });

  test("does not require project_dir, in either mode", () => {
    for (const branch of schema.anyOf ?? []) expect(branch.required).not.toContain("project_dir");
  });
});

describe("invocation 2.2", () => {
  const START_22 = {
    schema_version: "2.2",
    mode: "start",
    session_id: "ses_22",
    parameters: { prompt: "hi" },
    project_dir: "/work",
    agent_name: "helper",
  } satisfies Invocation;

  test("buildInvocation: parameters as given, agent_name when given, project_dir on start only", () => {
    const parameters = { topic: "AI", depth: 2 };
    expect(
      buildInvocation({
        schemaVersion: "2.2",
        mode: "start",
        sessionId: "ses_22",
        parameters,
        projectDir: "/proj",
        agentName: "researcher",
        executorConfig: { model: "opus" },
        metadata: { k: 1 },
      }),
    ).toEqual({
      schema_version: "2.2",
      mode: "start",
      session_id: "ses_22",
      parameters,
      project_dir: "/proj",
      agent_name: "researcher",
      executor_config: { model: "opus" },
      metadata: { k: 1 },
    });
    expect(
      buildInvocation({ schemaVersion: "2.2", mode: "resume", sessionId: "s", parameters: {}, projectDir: "/proj" }),
    ).toEqual({ schema_version: "2.2", mode: "resume", session_id: "s", parameters: {} });
  });

  test("buildInvocation 2.1: prompt from parameters.prompt; anything else it cannot carry is an error", () => {
    const base = { schemaVersion: "2.1", mode: "start", sessionId: "s", projectDir: "/p" } as const;
    // 2.1 has no agent_name: it is left out.
    expect(buildInvocation({ ...base, parameters: { prompt: "x" }, agentName: "a" })).toEqual({
      schema_version: "2.1",
      mode: "start",
      session_id: "s",
      prompt: "x",
      project_dir: "/p",
    });
    expect(() => buildInvocation({ ...base, parameters: {} })).toThrow(
      new InvocationError(
        "Invocation 2.1 needs parameters.prompt as a string (was missing); other parameters need invocation 2.2",
      ),
    );
    expect(() => buildInvocation({ ...base, parameters: { prompt: 3 } })).toThrow("(was number)");
    expect(() => buildInvocation({ ...base, parameters: { prompt: "x", topic: "t", depth: 1 } })).toThrow(
      "Invocation 2.1 carries only a prompt; these parameters also have topic, depth: they need invocation 2.2",
    );
  });

  test("parseInvocation accepts 2.2 and round-trips what buildInvocation makes", () => {
    expect(parseInvocation(JSON.stringify(START_22))).toEqual(START_22);
    const built = buildInvocation({
      schemaVersion: "2.2",
      mode: "start",
      sessionId: "s",
      parameters: { prompt: "p", nested: { list: [1, null, "x"] } },
      projectDir: "/d",
      agentBlueprint: { name: "a", output_schema: { type: "object" } },
    });
    expect(parseInvocation(JSON.stringify(built))).toEqual(built);
  });

  test("a 2.2 invocation is checked against 2.2: parameters required, an object; prompt not needed", () => {
    const { parameters: _, ...noParameters } = START_22;
    expect(rejection(JSON.stringify(noParameters))).toBe(
      "Invalid invocation (schema 2.2): parameters must be an object (was missing)",
    );
    expect(rejection(JSON.stringify({ ...START_22, parameters: ["a"] }))).toContain(
      "parameters must be an object (not an array)",
    );
    expect(rejection(JSON.stringify({ ...START_22, parameters: "hi" }))).toContain("parameters must be an object");
    expect(rejection(JSON.stringify({ ...START_22, agent_name: 7 }))).toContain("agent_name must be a string");
  });

  test("a pretty-printed invocation (several lines) parses", () => {
    expect(parseInvocation(JSON.stringify(START_22, null, 2))).toEqual(START_22);
  });
});

describe("turn parameters and prompts", () => {
  const v21 = parseInvocation(JSON.stringify(START));
  const v22 = (blueprint?: Record<string, unknown>) =>
    parseInvocation(
      JSON.stringify({
        schema_version: "2.2",
        mode: "start",
        session_id: "s",
        parameters: { prompt: "first" },
        ...(blueprint ? { agent_blueprint: blueprint } : {}),
      }),
    );

  test("invocationParameters: 2.2's as sent, 2.1's prompt as {prompt}", () => {
    expect(invocationParameters(v21)).toEqual({ prompt: "hi" });
    expect(invocationParameters(v22())).toEqual({ prompt: "first" });
  });

  test("turnPrompt: parameters.prompt, under either version", () => {
    expect(turnPrompt(v21, { prompt: "next" })).toBe("next");
    expect(turnPrompt(v22(), { prompt: "next", extra: 1 })).toBe("next");
  });

  test("turnPrompt: no prompt is an error naming the parameters it got", () => {
    expect(() => turnPrompt(v22(), { topic: "AI" })).toThrow(
      new InvocationError(
        'The parameters carry no prompt: parameters.prompt must be a string (was missing; the parameters have topic). An agent takes {"prompt": "…"} unless its blueprint has a parameters_schema',
      ),
    );
    expect(() => turnPrompt(v21, { prompt: 1 })).toThrow("parameters.prompt must be a string (was number)");
  });

  test("turnPrompt 2.2 with a parameters_schema: every parameter in an <inputs> block", () => {
    const prompt = turnPrompt(v22({ name: "r", parameters_schema: { type: "object" } }), {
      topic: "AI safety",
      notes: "line one\nline two",
      depth: 3,
      tags: ["a", "b"],
      extra: null,
      prompt: "Focus",
    });
    expect(prompt).toBe(
      [
        "<inputs>",
        "topic: AI safety",
        "notes:",
        "  line one",
        "  line two",
        "depth: 3",
        'tags: ["a","b"]',
        "extra: null",
        "prompt: Focus",
        "</inputs>",
      ].join("\n"),
    );
    // 2.1 has no parameters_schema: the prompt as it is.
    const v21WithSchema = parseInvocation(JSON.stringify({ ...START, agent_blueprint: { parameters_schema: {} } }));
    expect(turnPrompt(v21WithSchema, { prompt: "plain" })).toBe("plain");
  });
});
