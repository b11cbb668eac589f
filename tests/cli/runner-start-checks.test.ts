/**
 * A runner whose executor cannot run here refuses to start, before it registers, with the line
 * `agent-runner doctor` prints for the same setup: it must not take runs only to fail each one.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { cleanEnv, REPO_ROOT, runProcess, spawnRunner, TEST_EXECUTOR, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** An executable shell script. */
function script(body: string, mode = 0o755): string {
  const path = join(temp.make("ar-start-check-"), "program");
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, mode);
  return path;
}

/** A profiles directory holding `name.json`. */
function profiles(name: string, profile: Record<string, unknown>): string {
  const dir = temp.make("ar-start-profiles-");
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(profile));
  return dir;
}

/** What doctor says for the same flags and environment: its ✗ lines. */
async function doctorFailures(args: string[], env: Record<string, string>): Promise<string[]> {
  const doctor = await runProcess([process.execPath, join(REPO_ROOT, "index.ts"), "doctor", ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(env),
    timeoutMs: 30_000,
  });
  return doctor.stdout.split("\n").filter((line) => line.startsWith("✗ "));
}

/**
 * Starts a runner with `args` and `env`; it must exit 1 without registering, saying what doctor
 * says. Returns its output.
 */
async function refusedStart(args: string[], env: Record<string, string>, check: string): Promise<string> {
  const fake = startFakeCoordinator();
  const flags = [...args, "-c", fake.url, "-p", temp.make("ar-start-project-")];
  const allEnv = { AGENT_RUNNER_STATE_DIR: temp.make("ar-start-state-"), ...env };
  const runner = spawnRunner(flags, allEnv);
  expect(await runner.process.exited).toBe(1);
  await runner.output.closed;
  expect(fake.find("POST", "/runner/register")).toEqual([]);
  expect(fake.requests).toEqual([]);
  const failures = await doctorFailures(flags, allEnv);
  const line = failures.find((failure) => failure.startsWith(`✗ ${check}: `));
  expect(line, failures.join("\n")).toBeDefined();
  expect(runner.output.output).toContain(line!);
  expect(runner.output.output).toContain("agent-runner cannot start");
  return runner.output.output;
}

describe("the runner checks its executor as doctor does, and refuses to start when it cannot run", () => {
  test("a Claude Code profile whose CLAUDE_CODE_EXECUTABLE points nowhere", async () => {
    const output = await refusedStart(
      ["--profile", "coding"],
      { CLAUDE_CODE_EXECUTABLE: "/nonexistent/claude" },
      "claude code",
    );
    expect(output).toContain(
      "✗ claude code: No Claude Code binary found. Tried: CLAUDE_CODE_EXECUTABLE=/nonexistent/claude: /nonexistent/claude does not exist.",
    );
  });

  test("a Claude Code binary that does not run (built for another libc, say)", async () => {
    const claude = script('echo "cannot execute: required file not found" >&2; exit 127');
    const output = await refusedStart(["--profile", "coding"], { CLAUDE_CODE_EXECUTABLE: claude }, "claude code");
    expect(output).toContain(`${claude} (CLAUDE_CODE_EXECUTABLE) does not run: --version exited with code 127`);
  });

  test("an executor command that is not executable", async () => {
    const command = script("exit 0", 0o644);
    const dir = profiles("mine", { type: "custom", command });
    const output = await refusedStart(["--profile", "mine", "--profiles-dir", dir], {}, "executor");
    expect(output).toContain(`✗ executor: ${command} cannot be run: ${command} is not executable (chmod +x it)`);
  });

  test("a sandboxed profile on a host without bubblewrap (PATH without bwrap)", async () => {
    const dir = profiles("boxed", { type: "custom", command: TEST_EXECUTOR, sandbox: true });
    const output = await refusedStart(
      ["--profile", "boxed", "--profiles-dir", dir],
      { PATH: temp.make("ar-start-nopath-") },
      "sandbox",
    );
    expect(output).toContain(
      "✗ sandbox: The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap`",
    );
  });

  test("a Claude Code binary that answers --version: the runner registers", async () => {
    const fake = startFakeCoordinator();
    const claude = script('echo "9.9.9 (Claude Code)"');
    const runner = spawnRunner(["--profile", "coding", "-c", fake.url, "-p", temp.make("ar-start-project-")], {
      CLAUDE_CODE_EXECUTABLE: claude,
      AGENT_RUNNER_STATE_DIR: temp.make("ar-start-state-"),
    });
    await fake.waitForRequest("POST", "/runner/register");
    runner.process.kill("SIGTERM");
    expect(await runner.process.exited).toBe(0);
  });
});
