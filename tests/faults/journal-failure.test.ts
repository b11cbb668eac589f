/**
 * The run journal is a safety net: when the state directory can no longer be written (a full
 * disk, a read-only remount, a directory replaced by a file), runs are supervised, timed out,
 * stopped and reported exactly as without it, and the failure is said once.
 */
import { expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { type CliRunner, FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { goneWithin, tempDir } from "../support/processes.ts";
import { releaseServer } from "../support/release-server.ts";
import { killAfterTest, onTeardown } from "../support/teardown.ts";

function startRunner(
  fake: FakeCoordinator,
  fixture: string,
  stateDir: string,
  extra: string[] = [],
  env = {},
): CliRunner {
  const profiles = profilesDirFor(join(FAULT_FIXTURES, fixture));
  return startCli(
    ["--profile", "fault", "--profiles-dir", profiles, "-c", fake.url, "--stop-grace-seconds", "1", ...extra],
    { AGENT_RUNNER_STATE_DIR: stateDir, ...env },
  );
}

const finalReport = (fake: FakeCoordinator, runId: string) =>
  fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"), 20_000);

/** Makes every later journal write fail: its directory becomes a file (ENOTDIR). */
function breakJournal(stateDir: string): void {
  rmSync(join(stateDir, "runners"), { recursive: true, force: true });
  writeFileSync(join(stateDir, "runners"), "not a directory\n");
}

const failureLines = (runner: CliRunner) =>
  runner
    .output()
    .split("\n")
    .filter((line) => /Run journal .* failed/.test(line));

test("a journal that can no longer be written costs no run: the active run and the next are reported, the failure said once", async () => {
  const fake = startFakeCoordinator();
  const release = releaseServer();
  const stateDir = tempDir("ar-state-");
  const runner = startRunner(fake, "outcome", stateDir, [], { FAULT_RELEASE_URL: release.url });
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_j1", type: "start_session", session_id: "ses_j1", prompt: "p" });
  await release.waiting("ses_j1");
  breakJournal(stateDir);
  release.release("ses_j1");
  expect((await finalReport(fake, "run_j1")).path).toEndWith("/completed");
  fake.handRun({ run_id: "run_j2", type: "start_session", session_id: "ses_j2_fail_", prompt: "p" });
  await release.waiting("ses_j2_fail_");
  release.release("ses_j2_fail_");
  const failed = await finalReport(fake, "run_j2");
  expect(failed.path).toEndWith("/failed");
  expect(failed.body.error).toContain("planned failure");
  await runner.waitFor(/Run journal .* failed/);
  expect(failureLines(runner)).toHaveLength(1);
  expect(failureLines(runner)[0]).toContain(join(stateDir, "runners"));
  runner.process.kill("SIGTERM");
  expect(await runner.process.exited).toBe(0);
});

test("without its journal a run is still timed out: its executor stopped and the run reported failed", async () => {
  const fake = startFakeCoordinator();
  const stateDir = tempDir("ar-state-");
  const runner = startRunner(fake, "ignore-term", stateDir, ["--run-timeout", "1"]);
  await fake.waitForRequest("GET", "/runner/runs");
  breakJournal(stateDir);
  fake.handRun({ run_id: "run_jt", type: "start_session", session_id: "ses_jt", prompt: "p" });
  const ready = await fake.waitFor((r) => r.path === "/sessions/ses_jt/events" && r.body?.event_type === "ready");
  const pid = ready.body.pid as number;
  killAfterTest(pid);
  const report = await finalReport(fake, "run_jt");
  expect(report.path).toEndWith("/failed");
  expect(report.body.error).toContain("run timeout of 1 s");
  expect(await goneWithin(pid, 5000)).toBe(true);
  runner.process.kill("SIGTERM");
  expect(await runner.process.exited).toBe(0);
});

/** Mounts over `dir` (root only): a command's arguments before the target; false when it cannot be done here. */
function mountOver(dir: string, ...args: string[]): boolean {
  if (process.getuid?.() !== 0) return false;
  if (Bun.spawnSync(["mount", ...args, dir]).exitCode !== 0) return false;
  onTeardown(() => void Bun.spawnSync(["umount", "-l", dir]));
  return true;
}

test("a journal directory that turns read-only mid-run (EROFS), then full (ENOSPC): the runs are reported all the same", async () => {
  const stateDir = tempDir("ar-state-");
  const fake = startFakeCoordinator();
  const release = releaseServer();
  const runner = startRunner(fake, "outcome", stateDir, [], { FAULT_RELEASE_URL: release.url });
  await fake.waitForRequest("GET", "/runner/runs");
  const journalDir = join(stateDir, "runners");
  fake.handRun({ run_id: "run_ro", type: "start_session", session_id: "ses_ro", prompt: "p" });
  await release.waiting("ses_ro");
  // Read-only from now on, as after a remount: what the runner holds open stays usable.
  if (!mountOver(journalDir, "--bind", "-o", "ro", tempDir("ar-empty-"))) {
    console.warn("journal-failure: EROFS/ENOSPC case skipped: mounting needs root and CAP_SYS_ADMIN");
    release.release("ses_ro");
    runner.process.kill("SIGTERM");
    await runner.process.exited;
    return;
  }
  release.release("ses_ro");
  expect((await finalReport(fake, "run_ro")).path).toEndWith("/completed");
  await runner.waitFor(/Run journal .* failed \(EROFS/);

  // Writable again, but full.
  Bun.spawnSync(["umount", journalDir]);
  expect(mountOver(journalDir, "-t", "tmpfs", "-o", "size=64k", "tmpfs")).toBe(true);
  Bun.spawnSync(["dd", "if=/dev/zero", `of=${join(journalDir, "zeros")}`, "bs=4k", "count=64"]);
  fake.handRun({ run_id: "run_full", type: "start_session", session_id: "ses_full", prompt: "p" });
  await release.waiting("ses_full");
  release.release("ses_full");
  expect((await finalReport(fake, "run_full")).path).toEndWith("/completed");
  await runner.waitFor(/Run journal .* failed \(ENOSPC/);
  runner.process.kill("SIGTERM");
  expect(await runner.process.exited).toBe(0);
});
