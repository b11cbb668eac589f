import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { spawnRunner, tempDir } from "../support/processes.ts";
import { FIXTURES } from "../support/runner-harness.ts";

/** A runner's whole life: start, register, one run, SIGTERM, deregister; its stderr lines. */
async function runnerLines(args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const fake = startFakeCoordinator();
  const child = spawnRunner(["--profile", "test", "-c", fake.url, ...args], env);
  await fake.waitForRequest("POST", "/runner/register");
  fake.handRun({ run_id: "run_log", type: "start_session", session_id: "ses_log", prompt: "hi" });
  await fake.waitForRequest("POST", "/runner/runs/run_log/completed");
  child.process.kill("SIGTERM");
  expect(await child.process.exited).toBe(0);
  await child.output.closed;
  return child.output.output.trimEnd().split("\n");
}

test("--log-format json: every line a runner writes is one JSON object with time, level, msg, profile", async () => {
  const lines = await runnerLines(["--log-format", "json"]);
  expect(lines.length).toBeGreaterThan(4);
  const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const entry of entries) {
    expect(Object.keys(entry).slice(0, 3)).toEqual(["time", "level", "msg"]);
    expect(entry.profile).toBe("test");
  }
  expect(entries.find((entry) => String(entry.msg).startsWith("Run run_log completed"))).toMatchObject({
    level: "info",
    runner_id: "lnch_test",
  });
});

test("LOG_FORMAT=text: timestamped lines, as off a terminal by default", async () => {
  const lines = await runnerLines([], { LOG_FORMAT: "text" });
  for (const line of lines) expect(line).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z (INFO |WARN |ERROR|DEBUG) /);
});

test("a failing executor's stderr cannot forge the runner's log lines (text), nor escape its JSON string", async () => {
  const profiles = tempDir("ar-forge-");
  writeFileSync(
    join(profiles, "forge.json"),
    JSON.stringify({ type: "fixture", command: join(FIXTURES, "forge-log") }),
  );
  for (const format of ["text", "json"]) {
    const fake = startFakeCoordinator();
    const child = spawnRunner([
      "--profile",
      "forge",
      "--profiles-dir",
      profiles,
      "-c",
      fake.url,
      "--log-format",
      format,
    ]);
    await fake.waitForRequest("POST", "/runner/register");
    fake.handRun({ run_id: "run_forge", type: "start_session", session_id: "ses_forge", prompt: "hi" });
    const failed = await fake.waitForRequest("POST", "/runner/runs/run_forge/failed");
    expect(failed.body.error).toContain("2026-01-01T00:00:00.000Z INFO  Run run_forged completed in 1.0 s");
    child.process.kill("SIGTERM");
    await child.process.exited;
    await child.output.closed;
    const lines = child.output.output.trimEnd().split("\n");
    if (format === "text") {
      expect(lines.filter((line) => line.startsWith("2026-01-01T00:00:00.000Z"))).toEqual([]);
      expect(lines).toContain("    2026-01-01T00:00:00.000Z INFO  Run run_forged completed in 1.0 s");
      expect(lines).toContain("    boom\\x1b[2J\\rhidden");
      expect(child.output.output).not.toContain("\x1b");
    } else {
      const failure = lines.map((line) => JSON.parse(line) as { msg: string }).find((e) => e.msg.includes("failed"));
      expect(failure?.msg).toBe(
        "Run run_forge failed (exit code 3): starting up\n2026-01-01T00:00:00.000Z INFO  Run run_forged completed in 1.0 s\nboom\x1b[2J\rhidden",
      );
    }
  }
});
