/** `agent-runner exec` whose terminal goes away (SIGHUP): the executor it started must not outlive it. */
import { afterAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAULT_FIXTURES } from "../support/fault-tools.ts";
import { cleanEnv, goneWithin, OutputWatcher, REPO_ROOT, TempDirs } from "../support/processes.ts";
import { killAfterTest } from "../support/teardown.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

test("SIGHUP to a one-shot exec stops its executor (one that ignores SIGTERM and has no lifeline reader) before exec exits", async () => {
  const profiles = temp.make("ar-exec-hup-");
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
      "1",
      "--json",
    ],
    { cwd: temp.make(), env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  killAfterTest(exec.pid);
  const output = new OutputWatcher([exec.stdout, exec.stderr]);
  await output.waitFor(/"event_type":"ready","pid":\d+/);
  const executor = Number(/"event_type":"ready","pid":(\d+)/.exec(output.output)![1]);
  killAfterTest(executor);

  exec.kill("SIGHUP");
  await output.waitFor(/SIGHUP: stopping the executor \(SIGTERM, SIGKILL in 1 s\)/);
  expect(await exec.exited).toBe(137);
  await output.closed;
  expect(output.output).toContain('"signal":"SIGKILL"');
  expect(await goneWithin(executor, 5000)).toBe(true);
});
