/**
 * Files the operator points the CLI at that are not small regular files (a FIFO nobody writes,
 * /dev/zero, a huge file) are refused at once with the file named, never read without end.
 */
import { afterAll, expect, test } from "bun:test";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** The CLI, killed after 15 s: today's hang shows as a kill, not as a stuck test run. */
const cli = (args: string[]) =>
  runProcess([process.execPath, join(REPO_ROOT, "index.ts"), ...args], { env: cleanEnv(), timeoutMs: 15_000 });

async function fifo(path: string): Promise<string> {
  const made = await runProcess(["mkfifo", path]);
  if (made.exitCode !== 0) throw new Error(`mkfifo ${path}: ${made.stderr}`);
  return path;
}

test("--profile-list with a FIFO, /dev/zero and a 2 MiB file among the profiles lists them all, those three unusable", async () => {
  const dir = temp.make("ar-profiles-");
  await fifo(join(dir, "pipe.json"));
  symlinkSync("/dev/zero", join(dir, "zero.json"));
  writeFileSync(join(dir, "huge.json"), `{"type":"x","command":"/bin/true","config":{"pad":"${"x".repeat(2 << 20)}"}}`);
  writeFileSync(join(dir, "fine.json"), JSON.stringify({ type: "fine", command: "/bin/true" }));
  const listed = await cli(["--profile-list", "--profiles-dir", dir]);
  expect(listed.exitCode, listed.stderr).toBe(0);
  const line = (name: string) => listed.stdout.split("\n").find((l) => l.startsWith(`${name} `)) ?? "";
  expect(line("fine")).not.toContain("unusable");
  expect(line("test")).toContain("built-in");
  expect(line("pipe")).toContain(`(unusable: Cannot read profile file ${join(dir, "pipe.json")}`);
  expect(line("pipe")).toContain("not a regular file");
  expect(line("zero")).toContain("not a regular file");
  expect(line("huge")).toContain("over the 1 MiB limit");
}, 30_000);

test("--profile naming a FIFO profile: exit 1 at once with the file named", async () => {
  const dir = temp.make("ar-profiles-");
  const path = await fifo(join(dir, "pipe.json"));
  const outcome = await cli(["--profile", "pipe", "--profiles-dir", dir, "-c", "http://127.0.0.1:9"]);
  expect(outcome.exitCode).toBe(1);
  expect(outcome.stderr).toContain(`Cannot read profile file ${path}`);
  expect(outcome.stderr).toContain("not a regular file");
}, 30_000);

test("exec --blueprint /dev/zero, a FIFO or a 2 MiB file: exit 1 at once with the file named", async () => {
  const dir = temp.make("ar-blueprint-");
  const pipe = await fifo(join(dir, "pipe.json"));
  const huge = join(dir, "huge.json");
  writeFileSync(huge, `{"name":"x","system_prompt":"${"x".repeat(2 << 20)}"}`);
  for (const [file, reason] of [
    ["/dev/zero", "not a regular file"],
    [pipe, "not a regular file"],
    [huge, "over the 1 MiB limit"],
  ]) {
    const outcome = await cli(["exec", "--profile", "test", "--prompt", "x", "--blueprint", file!, "--state-dir", dir]);
    expect(outcome.exitCode, `--blueprint ${file}: ${outcome.stderr}`).toBe(1);
    expect(outcome.stderr).toContain(`--blueprint ${file}`);
    expect(outcome.stderr).toContain(reason!);
  }
}, 60_000);

test("exec --resume of a stored session that is a FIFO: exit 1 at once with the file named", async () => {
  const state = temp.make("ar-state-");
  const path = await fifo(join(state, "ses_pipe.json"));
  const outcome = await cli([
    "exec",
    "--profile",
    "test",
    "--prompt",
    "x",
    "--resume",
    "--session-id",
    "ses_pipe",
    "--state-dir",
    state,
  ]);
  expect(outcome.exitCode).toBe(1);
  expect(outcome.stderr).toContain(`Cannot read stored session ${path}`);
  expect(outcome.stderr).toContain("not a regular file");
}, 30_000);
