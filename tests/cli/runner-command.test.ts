import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { REPO_ROOT } from "../support/processes.ts";

const BUILTIN_NAMES = ["coding", "research", "supervised", "test"];

// Variables the runner reads: the tests' own environment must not leak into the child.
const RUNNER_ENV = [
  "AGENT_ORCHESTRATOR_API_URL",
  "AGENT_RUNNER_PROFILES_DIR",
  "PROJECT_DIR",
  "RUNNER_TAGS",
  "POLL_TIMEOUT",
  "HEARTBEAT_INTERVAL",
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
}

/** Runs `bun index.ts <args>` from the repo root as a real process and collects its output. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", ...env };
  for (const name of RUNNER_ENV) if (!(name in env)) delete childEnv[name];
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
  return { exitCode, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr) };
}

let tmp: string;

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), "ar-cli-"));
});

afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
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
    expect(stderr).toContain("Profile 'nonexistent' not found. Available: coding, research, supervised, test");
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
    ]) {
      expect(stdout).toContain(flag);
    }
    expect(stdout).not.toContain("--executor");
  });

  test("--version prints the package version", async () => {
    const { exitCode, stdout } = await cli(["--version"]);
    expect(exitCode).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });
});
