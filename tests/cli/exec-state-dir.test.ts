/**
 * `agent-runner exec` with a state directory it cannot write: refused before the executor starts,
 * with one clear message, never a stack trace, an HTML error page, or a `--resume` hint for a
 * session it could not save. Tests run as root, where permission bits do not stop writes: the
 * directories here are a path below a regular file (mkdir fails with ENOTDIR) and a directory
 * made immutable with `chattr +i` (EPERM even for root, on filesystems that support it).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
const immutable: string[] = [];
afterAll(async () => {
  for (const dir of immutable) await runProcess(["chattr", "-i", dir]);
  temp.cleanup();
});

const exec = (args: string[], env: Record<string, string> = {}) =>
  runProcess([process.execPath, join(REPO_ROOT, "index.ts"), "exec", "--profile", "test", "--prompt", "hi", ...args], {
    env: cleanEnv(env),
    timeoutMs: 30_000,
  });

function expectRefused(outcome: { exitCode: number; stdout: string; stderr: string }, dir: string): void {
  expect(outcome.exitCode, outcome.stderr).toBe(1);
  expect(outcome.stderr).toContain(`State directory ${dir} cannot be written`);
  expect(outcome.stderr).toContain("--state-dir");
  expect(outcome.stderr).toContain("AGENT_RUNNER_EXEC_STATE_DIR");
  expect(outcome.stderr).not.toContain("<html");
  expect(outcome.stderr).not.toContain("--resume");
  expect(outcome.stderr).not.toMatch(/^\s+at /m);
  // The executor never ran.
  expect(outcome.stdout).toBe("");
  expect(outcome.stderr).not.toContain("Starting session");
}

test("a state dir below a regular file, by flag or by env: exit 1 naming the dir and how to choose another", async () => {
  const file = join(temp.make("ar-state-"), "file");
  writeFileSync(file, "");
  const dir = join(file, "state");
  expectRefused(await exec(["--state-dir", dir]), dir);
  expectRefused(await exec([], { AGENT_RUNNER_EXEC_STATE_DIR: dir }), dir);
}, 60_000);

test("an existing directory that cannot be written (chattr +i): exit 1 before the executor starts", async () => {
  const dir = join(temp.make("ar-state-"), "frozen");
  mkdirSync(dir);
  const frozen = await runProcess(["chattr", "+i", dir]);
  if (frozen.exitCode !== 0) {
    console.log(`chattr +i not supported here (${frozen.stderr.trim()}); case skipped`);
    return;
  }
  immutable.push(dir);
  expectRefused(await exec(["--state-dir", dir]), dir);
}, 30_000);

test("a state dir that does not exist yet is created", async () => {
  const dir = join(temp.make("ar-state-"), "new", "sessions");
  const outcome = await exec(["--state-dir", dir, "--session-id", "ses_new"]);
  expect(outcome.exitCode, outcome.stderr).toBe(0);
  expect(await Bun.file(join(dir, "ses_new.json")).exists()).toBe(true);
}, 30_000);
