import { describe, expect, test } from "bun:test";
import { assertKnownFlags } from "../../src/cli/args.ts";
import { runnerArgs } from "../../src/cli/runner-command.ts";
import { ConfigError } from "../../src/shared/errors.ts";

function refusal(argv: string[]): string {
  try {
    assertKnownFlags(argv, runnerArgs);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`);
}

describe("assertKnownFlags", () => {
  test.each([
    [[]],
    [["--profile", "coding"]],
    [["--profile=coding", "--profile-list"]],
    [["-c", "http://h:1", "-p", "/tmp", "-t", "a,b", "-m", "9000", "-v"]],
    [["--coordinator-url", "http://h:1", "--project-dir=/tmp", "--tags", "a", "--mcp-port", "1"]],
    [["--require-matching-tags", "--tags", "x", "--no-verbose"]],
    [["--profiles-dir", "/tmp", "--poll-timeout", "5", "--heartbeat-interval", "9", "--stop-grace-seconds", "0"]],
    [["--help"]],
    [["-h"]],
    [["--version"]],
    // A negative number is a value, not a flag: the config check refuses it with a better message.
    [["--poll-timeout", "-1"]],
    // Everything after -- is not ours to check.
    [["--", "--whatever", "x"]],
  ])("accepts %j", (argv) => {
    expect(() => assertKnownFlags(argv, runnerArgs)).not.toThrow();
  });

  test.each([
    ["--executor", ["--executor", "claude-code"], "--profile <name>"],
    ["--executor=", ["--executor=claude-code"], "--profile <name>"],
    ["--executor-path", ["--executor-path", "/bin/x"], "--profile <name>"],
    ["--executor-list", ["--executor-list"], "--profile-list"],
  ])("removed flag %s names its replacement", (flag, argv, replacement) => {
    const message = refusal(argv);
    expect(message).toStartWith(`${flag.replace(/=$/, "")} has been removed: `);
    expect(message).toContain(replacement);
  });

  test("a removed flag is refused even after valid ones", () => {
    expect(refusal(["--profile", "coding", "--executor-list"])).toStartWith("--executor-list has been removed");
  });

  test.each([
    [["--profle"], "--profle"],
    [["--Profile", "coding"], "--Profile"],
    [["-x"], "-x"],
    [["--profile-lists"], "--profile-lists"],
    [["--tags=a", "--bogus=1"], "--bogus"],
  ])("unknown %j is refused", (argv, unknown) => {
    expect(refusal(argv)).toBe(`Unknown option ${unknown} (see --help)`);
  });

  test("a stray argument is refused", () => {
    expect(refusal(["coding"])).toBe("Unexpected argument 'coding' (see --help)");
    expect(refusal(["--verbose", "coding"])).toBe("Unexpected argument 'coding' (see --help)");
  });

  test("a flag's value is not mistaken for a stray argument", () => {
    expect(() => assertKnownFlags(["--profile", "coding"], runnerArgs)).not.toThrow();
  });

  test.each([
    [["--profile"], "--profile"],
    [["--profile", "--verbose"], "--profile"],
    [["-c"], "-c"],
    [["--tags", "--require-matching-tags"], "--tags"],
  ])("%j: a flag without its value is refused", (argv, flag) => {
    expect(refusal(argv)).toBe(`${flag} needs a value`);
  });

  test("positionals are allowed up to the given count", () => {
    expect(() => assertKnownFlags(["one"], runnerArgs, 1)).not.toThrow();
    expect(() => assertKnownFlags(["one", "two"], runnerArgs, 1)).toThrow("Unexpected argument 'two'");
  });
});
