/** A persistent executor's lines both ways, and the lifecycle its environment asks for. */
import { describe, expect, test } from "bun:test";
import { LIFECYCLE_ENV, LifecycleError, lifecycleFrom } from "../../src/protocol/lifecycle.ts";
import {
  INTERRUPT_LINE,
  parseExecutorLine,
  parseSessionCommand,
  SessionLineError,
  SHUTDOWN_LINE,
  turnCompleteLine,
  turnLine,
} from "../../src/protocol/session-lines.ts";

/** The SessionLineError's message for a command line; fails if it parses. */
function rejection(line: string): string {
  try {
    parseSessionCommand(line);
  } catch (error) {
    expect(error).toBeInstanceOf(SessionLineError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(line)} to be rejected`);
}

describe("lifecycle", () => {
  test("one_shot unless the variable says persistent; anything else is an error naming it", () => {
    expect(LIFECYCLE_ENV).toBe("AGENT_RUNNER_LIFECYCLE");
    expect(lifecycleFrom({})).toBe("one_shot");
    expect(lifecycleFrom({ AGENT_RUNNER_LIFECYCLE: "" })).toBe("one_shot");
    expect(lifecycleFrom({ AGENT_RUNNER_LIFECYCLE: "one_shot" })).toBe("one_shot");
    expect(lifecycleFrom({ AGENT_RUNNER_LIFECYCLE: "persistent" })).toBe("persistent");
    expect(() => lifecycleFrom({ AGENT_RUNNER_LIFECYCLE: "Persistent" })).toThrow(
      new LifecycleError('AGENT_RUNNER_LIFECYCLE must be "one_shot" or "persistent" (was "Persistent")'),
    );
  });
});

describe("the lines as written", () => {
  test("each is one line of JSON, newline included, even when the text has line breaks", () => {
    const lines = [
      turnLine({ prompt: "a\nb" }),
      SHUTDOWN_LINE,
      INTERRUPT_LINE,
      turnCompleteLine("x\ny"),
      turnCompleteLine("", true),
    ];
    for (const line of lines) {
      expect(line.endsWith("\n")).toBe(true);
      expect(line.slice(0, -1)).not.toContain("\n");
    }
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      { type: "turn", parameters: { prompt: "a\nb" } },
      { type: "shutdown" },
      { type: "interrupt" },
      { type: "turn_complete", result: "x\ny" },
      { type: "turn_complete", result: "", interrupted: true },
    ]);
  });
});

describe("parseSessionCommand", () => {
  test("reads what the runner writes; keys it does not know are let through", () => {
    expect(parseSessionCommand(turnLine({ prompt: "p", n: 1 }))).toEqual({
      type: "turn",
      parameters: { prompt: "p", n: 1 },
    });
    expect(parseSessionCommand(SHUTDOWN_LINE)).toEqual({ type: "shutdown" });
    expect(parseSessionCommand(INTERRUPT_LINE)).toEqual({ type: "interrupt" });
    expect(parseSessionCommand('{"type":"shutdown","reason":"later field"}')).toEqual({
      type: "shutdown",
      reason: "later field",
    } as never);
  });

  test("what is wrong is named: the type, then that command's fields", () => {
    expect(rejection("{")).toStartWith("stdin line is not valid JSON (");
    expect(rejection('{"type":"stop"}')).toBe(
      'stdin line: type must be "interrupt", "shutdown" or "turn" (was "stop")',
    );
    expect(rejection("{}")).toBe('stdin line: type must be "interrupt", "shutdown" or "turn" (was missing)');
    expect(rejection('{"type":"turn"}')).toBe("stdin line: parameters must be an object (was missing)");
    expect(rejection('{"type":"turn","parameters":["p"]}')).toBe(
      'stdin line: parameters must be an object (not an array) (was ["p"])',
    );
    expect(rejection("null")).toBe("stdin line: must be an object (was null)");
  });
});

describe("parseExecutorLine", () => {
  test("reads what executors write", () => {
    expect(parseExecutorLine(turnCompleteLine("done"))).toEqual({ type: "turn_complete", result: "done" });
    expect(parseExecutorLine(turnCompleteLine("", true))).toEqual({
      type: "turn_complete",
      result: "",
      interrupted: true,
    });
  });

  test("other output is not a message; a turn_complete with wrong fields still ends the turn, without them", () => {
    for (const other of ["plain text", "{not json", '{"type":"log","result":"x"}', "[1]", "", "null"]) {
      expect(parseExecutorLine(other)).toBeUndefined();
    }
    expect(parseExecutorLine('{"type":"turn_complete"}')).toEqual({ type: "turn_complete" });
    expect(parseExecutorLine('{"type":"turn_complete","result":7,"interrupted":true}')).toEqual({
      type: "turn_complete",
    });
    expect(parseExecutorLine('  {"type":"turn_complete","result":"r","interrupted":false,"extra":1}')).toEqual({
      type: "turn_complete",
      result: "r",
    });
  });
});
