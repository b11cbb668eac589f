/**
 * One set of schema data, two engines of the same validator: the runner's arktype types and the
 * executors' @ark/schema nodes accept and refuse the same data with the same messages.
 */
import { describe, expect, test } from "bun:test";
import { AGENT_BLUEPRINT_SCHEMA } from "../../src/protocol/invocation.ts";
import { type } from "../../src/shared/arktype.ts";
import { JsonObject as RunnerJsonObject } from "../../src/shared/json.ts";
import {
  JsonObject as ExecutorJsonObject,
  InvalidDataError,
  parseJson,
  schemaValidator,
  validate,
} from "../../src/shared/validation.ts";

const message = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidDataError);
    return (error as Error).message;
  }
  throw new Error("expected it to be refused");
};

describe("schema data under arktype and under @ark/schema", () => {
  test.each([[[1]], ["text"], [null], [42]])("a JSON object: %j refused by both, with one message", (data) => {
    const runner = message(() => validate(data, RunnerJsonObject, "origin"));
    expect(runner).toStartWith("origin: must be ");
    expect(message(() => validate(data, ExecutorJsonObject, "origin"))).toBe(runner);
  });

  test("an agent blueprint: the same fields named, the same words", () => {
    const runner = type.schema(AGENT_BLUEPRINT_SCHEMA);
    const executor = schemaValidator(AGENT_BLUEPRINT_SCHEMA);
    const bad = { name: 7, system_prompt: ["x"], mcp_servers: [] };
    const text = message(() => validate(bad, runner, "blueprint"));
    expect(text).toContain("name must be a string (was a number)");
    expect(text).toContain("mcp_servers must be");
    expect(message(() => validate(bad, executor, "blueprint"))).toBe(text);
    const good = { name: "a", system_prompt: null, mcp_servers: { x: {} }, other: 1 };
    expect(validate(good, runner, "blueprint")).toEqual(good);
    expect(validate(good, executor, "blueprint")).toEqual(good);
  });

  test("parseJson names the origin for text that is not JSON", () => {
    expect(message(() => parseJson("{", ExecutorJsonObject, "the reply"))).toStartWith("the reply is not valid JSON (");
  });
});
