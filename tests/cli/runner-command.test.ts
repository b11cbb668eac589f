import { beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { runnerEnvironmentVariables } from "../../src/config/flags.ts";
import { REPO_ROOT, tempDir } from "../support/processes.ts";

const BUILTIN_NAMES = ["coding", "coding-sandboxed", "research", "supervised", "test"];

// Variables the runner reads: the tests' own environment must not leak into the child.
const RUNNER_ENV = [
  ...runnerEnvironmentVariables(),
  "AUTH0_DOMAIN",
  "AUTH0_RUNNER_CLIENT_ID",
  "AUTH0_RUNNER_CLIENT_SECRET",
  "AUTH0_AUDIENCE",
];

const stripAnsi = (text: string) => Bun.stripANSI(text);

interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout as written, colour codes included. */
  rawStdout: string;
}

/** Runs `bun index.ts <args>` from the repo root as a real process and collects its output. */
/** Runs `bun index.ts args`; a variable set to undefined in `env` is left out of the child's environment. */
async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", ...env };
  for (const name of RUNNER_ENV) if (!(name in env)) delete childEnv[name];
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name];
  const proc = Bun.spawn([process.execPath, "index.ts", ...args], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // Every command here ends on its own; a hang must not outlive the test.
    timeout: 20_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr), rawStdout: stdout };
}

let tmp: string;

beforeEach(() => {
  tmp = tempDir("ar-cli-");
});

describe("agent-runner CLI", () => {
  test("--profile-list prints one line per profile, name first, and exits 0", async () => {
    const { exitCode, stdout, stderr } = await cli(["--profile-list"]);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    const lines = stdout.trimEnd().split("\n");
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual(BUILTIN_NAMES);
    for (const line of lines) expect(line).toContain("built-in");
    expect(lines[0]).toContain("executors/claude-code/ao-claude-code-exec");
  });

  test("--profile-list shows runtime profiles with their file, and broken ones as unusable", async () => {
    const executor = join(tmp, "exec.sh");
    writeFileSync(executor, "#!/bin/sh\nexit 0\n");
    chmodSync(executor, 0o755);
    writeFileSync(join(tmp, "mine.json"), JSON.stringify({ type: "custom", command: executor }));
    writeFileSync(join(tmp, "broken.json"), "{");
    const { exitCode, stdout } = await cli(["--profile-list", "--profiles-dir", tmp]);
    expect(exitCode).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual([
      "broken",
      "coding",
      "coding-sandboxed",
      "mine",
      "research",
      "supervised",
      "test",
    ]);
    const mine = lines.find((line) => line.startsWith("mine "))!;
    expect(mine).toContain("custom");
    expect(mine).toContain(join(tmp, "mine.json"));
    expect(mine).not.toContain("unusable");
    expect(lines.find((line) => line.startsWith("broken "))).toContain("unusable");
  });

  test("--profile-list says which profiles are sandboxed, with their extra paths", async () => {
    writeFileSync(
      join(tmp, "boxed.json"),
      JSON.stringify({
        type: "custom",
        command: "/bin/true",
        sandbox: { extra_writable: ["~/.cache/pip", "/srv/shared"], extra_hidden: ["/srv/secrets"] },
      }),
    );
    const { exitCode, stdout } = await cli(["--profile-list", "--profiles-dir", tmp]);
    expect(exitCode).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    const column = (name: string) => lines.find((line) => line.startsWith(`${name} `))!.split(/\s{2,}/)[4];
    expect(column("boxed")).toBe("sandboxed (also writable: ~/.cache/pip, /srv/shared; also hidden: /srv/secrets)");
    expect(column("coding-sandboxed")).toBe("sandboxed");
    expect(column("coding")).toBe("-");
  });

  test("--profile-list shows each profile's budget: max_budget_usd and max_turns from its config", async () => {
    const profile = (config: Record<string, unknown>) =>
      JSON.stringify({ type: "claude-code", command: "executors/claude-code/ao-claude-code-exec", config });
    writeFileSync(join(tmp, "capped.json"), profile({ model: "opus", max_budget_usd: 2.5, max_turns: 40 }));
    writeFileSync(join(tmp, "turns.json"), profile({ max_turns: 12, max_budget_usd: null }));
    const { exitCode, stdout } = await cli(["--profile-list", "--profiles-dir", tmp]);
    expect(exitCode).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    const column = (name: string) => lines.find((line) => line.startsWith(`${name} `))!.split(/\s{2,}/)[5];
    expect(column("capped")).toBe("max_budget_usd 2.5, max_turns 40");
    expect(column("turns")).toBe("max_turns 12");
    expect(column("coding")).toBe("-");
  });

  test("profile files written for the reference runner's current version load unchanged; --profile-list shows the lifecycle", async () => {
    // As the reference runner ships them: type autonomous, a lifecycle, its Claude Code executor's path.
    writeFileSync(
      join(tmp, "claude-code.json"),
      JSON.stringify({
        type: "autonomous",
        lifecycle: "persistent",
        command: "executors/claude-code/ao-claude-code-exec",
        config: { permission_mode: "bypassPermissions", setting_sources: [], model: "opus" },
      }),
    );
    writeFileSync(
      join(tmp, "full-access-project-best.json"),
      JSON.stringify({ type: "autonomous", command: "executors/claude-code/ao-claude-code-exec", config: {} }),
    );
    writeFileSync(
      join(tmp, "test-procedural.json"),
      JSON.stringify({
        type: "procedural",
        command: "executors/procedural-executor/ao-procedural-exec",
        agents_dir: "executors/procedural-executor/scripts/test/agents",
        config: {},
      }),
    );
    const { exitCode, stdout } = await cli(["--profile-list", "--profiles-dir", tmp]);
    expect(exitCode).toBe(0);
    const line = (name: string) => stdout.split("\n").find((candidate) => candidate.startsWith(`${name} `))!;
    expect(
      line("claude-code")
        .split(/\s{2,}/)
        .slice(1, 3),
    ).toEqual(["autonomous", "persistent"]);
    expect(line("claude-code")).not.toContain("unusable");
    expect(
      line("full-access-project-best")
        .split(/\s{2,}/)
        .slice(1, 3),
    ).toEqual(["autonomous", "one_shot"]);
    expect(line("coding").split(/\s{2,}/)[2]).toBe("one_shot");
    expect(line("test-procedural")).toContain("unusable: Profile 'test-procedural' is procedural");

    // Refused at start, with a message that says why, before anything else happens.
    const procedural = await cli(["--profile", "test-procedural", "--profiles-dir", tmp, "-c", "http://127.0.0.1:9"]);
    expect(procedural.exitCode).toBe(1);
    expect(procedural.stderr).toContain(
      "Profile 'test-procedural' is procedural: this runner runs autonomous executors (agents that take a prompt) only",
    );
  });

  test("AGENT_RUNNER_PROFILES_DIR is read when there is no flag", async () => {
    writeFileSync(join(tmp, "envprofile.json"), JSON.stringify({ type: "custom", command: "/bin/true" }));
    const { exitCode, stdout } = await cli(["--profile-list"], { AGENT_RUNNER_PROFILES_DIR: tmp });
    expect(exitCode).toBe(0);
    expect(stdout).toContain(join(tmp, "envprofile.json"));
  });

  test("--profile nonexistent exits 1 and lists the available profiles", async () => {
    const { exitCode, stdout, stderr } = await cli(["--profile", "nonexistent"]);
    expect(exitCode).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain(
      "Profile 'nonexistent' not found. Available: coding, coding-sandboxed, research, supervised, test",
    );
    // Operator errors are a message, not a stack trace.
    expect(stderr).not.toMatch(/^\s+at /m);
  });

  test("--profile with a path is refused", async () => {
    const { exitCode, stderr } = await cli(["--profile", "../profiles/coding"]);
    expect(exitCode).toBe(1);
    expect(stderr).toContain("Invalid profile name '../profiles/coding'");
  });

  test.each([
    [["--executor", "claude-code"], "--executor", "--profile"],
    [["--executor-path", "/bin/x"], "--executor-path", "--profile"],
    [["--executor-list"], "--executor-list", "--profile-list"],
  ])("%j is refused and names its replacement", async (args, flag, replacement) => {
    const { exitCode, stdout, stderr } = await cli(args);
    expect(exitCode).not.toBe(0);
    expect(stdout).toBe("");
    expect(stderr).toContain(`${flag} has been removed`);
    expect(stderr).toContain(replacement);
  });

  test("an unknown flag is refused", async () => {
    const { exitCode, stdout, stderr } = await cli(["--profle", "coding"]);
    expect(exitCode).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain("Unknown option --profle");
  });

  test("a bad setting exits 1 naming its flag or variable", async () => {
    const fromFlag = await cli(["--coordinator-url", "ftp://host"]);
    expect(fromFlag.exitCode).toBe(1);
    expect(fromFlag.stderr).toContain("--coordinator-url 'ftp://host' must be an http:// or https:// URL");
    const fromEnv = await cli([], { POLL_TIMEOUT: "soon" });
    expect(fromEnv.exitCode).toBe(1);
    expect(fromEnv.stderr).toContain("POLL_TIMEOUT 'soon' is not valid");
  });

  test.each([
    [["--max-concurrent-runs", "0"], "--max-concurrent-runs '0' is not valid: expected a whole number >= 1"],
    [["--run-timeout", "-1"], "--run-timeout '-1' is not valid: expected a number > 0 and <= 604800"],
    [["--max-runs", "0"], "--max-runs '0' is not valid: expected a whole number >= 1"],
    [["--exit-after-idle", "0"], "--exit-after-idle '0' is not valid: expected a number > 0 and <= 604800"],
    [["--health-addr", "nonsense"], "--health-addr 'nonsense' is not valid: no host:port"],
    [["--log-format", "xml"], "--log-format 'xml' is not valid: expected one of auto, text, json"],
  ])("%p exits 1 naming the flag and what was expected", async (args, message) => {
    const { exitCode, stdout, stderr } = await cli(args);
    expect({ exitCode, stdout }).toEqual({ exitCode: 1, stdout: "" });
    expect(stderr).toContain(message);
  });

  test("with --log-format json even a config error is a JSON line", async () => {
    const { exitCode, stderr } = await cli(["--log-format", "json"], { MAX_CONCURRENT_RUNS: "0" });
    expect(exitCode).toBe(1);
    expect(JSON.parse(stderr)).toMatchObject({
      level: "error",
      msg: "MAX_CONCURRENT_RUNS '0' is not valid: expected a whole number >= 1",
    });
  });

  test("--help into a pipe is plain text, without colour codes", async () => {
    for (const args of [["--help"], ["exec", "--help"], ["doctor", "--help"]]) {
      const { exitCode, rawStdout } = await cli(args, { NO_COLOR: undefined });
      expect(exitCode).toBe(0);
      expect(rawStdout).toContain("USAGE");
      expect(rawStdout).not.toContain("\u001b[");
    }
  });

  test("--help shows the flags", async () => {
    const { exitCode, stdout } = await cli(["--help"]);
    expect(exitCode).toBe(0);
    for (const flag of [
      "--profile=<name>",
      "--profile-list",
      "--profiles-dir",
      "--require-matching-tags",
      "-c, --coordinator-url",
      "-p, --project-dir",
      "-t, --tags",
      "-m, --mcp-port",
      "-v, --verbose",
      "--max-concurrent-runs=<n>",
      "--run-timeout=<seconds>",
      "--max-runs=<n>",
      "--max-cost-usd=<usd>",
      "--exit-after-idle=<seconds>",
      "--health-addr=<host:port>",
      "--log-format=<auto|text|json>",
      "--log-level=<error|warn|info|debug>",
    ]) {
      expect(stdout).toContain(flag);
    }
    for (const variable of [
      "MAX_CONCURRENT_RUNS",
      "RUN_TIMEOUT",
      "MAX_RUNS",
      "MAX_COST_USD",
      "EXIT_AFTER_IDLE",
      "HEALTH_ADDR",
      "LOG_FORMAT",
      "LOG_LEVEL",
    ]) {
      expect(stdout).toContain(`(env ${variable})`);
    }
    expect(stdout).not.toContain("--executor");
    // -v is what it says: the same as --log-level debug (the executors' own variable sets nothing here).
    expect(stdout).toMatch(/-v, --verbose\s+Same as --log-level debug\s*\n/);
    expect(stdout).not.toContain("AGENT_RUNNER_DEBUG");
  });

  test("--version prints the package version", async () => {
    const { exitCode, stdout } = await cli(["--version"]);
    expect(exitCode).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });
});
