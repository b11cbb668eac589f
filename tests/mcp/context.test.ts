import { describe, expect, test } from "bun:test";
import { contextFromHeaders, parseDemands } from "../../src/mcp/context.ts";

describe("MCP request context", () => {
  test("reads parent session, tags and demands from the headers, case-insensitively", () => {
    const context = contextFromHeaders(
      new Headers({
        "x-agent-session-id": " ses_parent ",
        "X-AGENT-TAGS": "python,backend",
        "X-Additional-Demands": '{"project_dir": "/work", "tags": ["gpu"], "custom": 1}',
      }),
    );
    expect(context).toEqual({
      parentSessionId: "ses_parent",
      tags: "python,backend",
      demands: { project_dir: "/work", tags: ["gpu"], custom: 1 },
    });
  });

  test("no headers, or empty ones: no context", () => {
    expect(contextFromHeaders(new Headers())).toEqual({ parentSessionId: undefined, tags: undefined });
    expect(contextFromHeaders(new Headers({ "X-Agent-Session-Id": "", "X-Additional-Demands": "  " }))).toEqual({
      parentSessionId: undefined,
      tags: undefined,
    });
  });

  test("malformed demands are kept as a reason, not thrown", () => {
    const context = contextFromHeaders(new Headers({ "X-Additional-Demands": "not json" }));
    expect(context.demands).toBeUndefined();
    expect(context.demandsError).toContain("X-Additional-Demands header is not valid JSON");
  });

  test.each([
    ["[1, 2]", "must be an object (not an array)"],
    ["null", "must be an object (was null)"],
    ['"/work"', "must be an object (was a string)"],
    ['{"project_dir": 5}', "project_dir must be a string or null (was 5)"],
    ['{"hostname": ["a"]}', "hostname must be a string or null"],
    ['{"executor_profile": true}', "executor_profile must be a string or null (was true)"],
    ['{"tags": [1]}', "tags[0] must be a string (was a number)"],
  ])("demands %s are refused: %s", (raw, reason) => {
    const result = parseDemands(raw);
    expect("error" in result && result.error).toContain(reason);
  });
});
