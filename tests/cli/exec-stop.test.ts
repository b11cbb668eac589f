/** Stopping `agent-runner exec` for real: an executor that ignores SIGTERM must not make exec unstoppable. */
import { afterAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { within } from "../../src/shared/retry.ts";
import { FAULT_FIXTURES } from "../support/fault-tools.ts";
import { cleanEnv, goneWithin, OutputWatcher, REPO_ROOT, TempDirs } from "../support/processes.ts";
import { killAfterTest } from "../support/teardown.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** exec with a profile whose executor ignores SIGTERM; resolves once the executor says it is ready. */
async function execIgnoringTerm(graceSeconds: number) {
  const profiles = temp.make("ar-exec-stop-");
  writeFileSync(
    join(profiles, "stubborn.json"),
    JSON.stringify({ type: "stubborn", command: join(FAULT_FIXTURES, "ignore-term") }),
  );
  const exec = Bun.spawn(
    [
      process.execPath,
      join(REPO_ROOT, "index.ts"),
      "exec",
      "--profile",
      "stubborn",
      "--profiles-dir",
      profiles,
      "--prompt",
      "x",
      "--state-dir",
      temp.make(),
      "--stop-grace-seconds",
      String(graceSeconds),
      "--json",
    ],
    { cwd: temp.make(), env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  killAfterTest(exec.pid);
  const output = new OutputWatcher([exec.stdout, exec.stderr]);
  await output.waitFor(/"event_type":"ready","pid":\d+/);
  const executor = Number(/"event_type":"ready","pid":(\d+)/.exec(output.output)![1]);
  killAfterTest(executor);
  return { exec, output, executor };
}

test("Ctrl+C stops an executor that ignores SIGTERM with SIGKILL after the grace, and says so", async () => {
  const { exec, output, executor } = await execIgnoringTerm(1);
  exec.kill("SIGINT");
  await output.waitFor(/stopping the executor \(SIGTERM, SIGKILL in 1 s\); Ctrl\+C again to kill it now/);
  expect(await exec.exited).toBe(137);
  await output.closed;
  expect(output.output).toContain('"exit_code":137');
  expect(output.output).toContain('"signal":"SIGKILL"');
  expect(await goneWithin(executor, 5000)).toBe(true);
});

test("a second Ctrl+C kills the executor at once, without waiting for the grace", async () => {
  const { exec, output, executor } = await execIgnoringTerm(60);
  exec.kill("SIGINT");
  await output.waitFor(/Ctrl\+C again to kill it now/);
  exec.kill("SIGINT");
  // The grace is a minute: only the second Ctrl+C can end it this soon.
  expect(await within(10_000, exec.exited)).toBe(true);
  expect(await exec.exited).toBe(137);
  await output.closed;
  expect(output.output).toContain("killing the executor now (SIGKILL)");
  expect(output.output).toContain('"signal":"SIGKILL"');
  expect(await goneWithin(executor, 5000)).toBe(true);
});

test("SIGTERM to exec stops the executor the same way; a second one kills it", async () => {
  const { exec, output } = await execIgnoringTerm(60);
  exec.kill("SIGTERM");
  await output.waitFor(/stopping the executor \(SIGTERM, SIGKILL in 60 s\)/);
  exec.kill("SIGTERM");
  expect(await within(10_000, exec.exited)).toBe(true);
  expect(await exec.exited).toBe(137);
});
