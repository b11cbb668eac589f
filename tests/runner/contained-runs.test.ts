/**
 * Agents that leave their process group (a session of their own), through the real runner as a
 * process and through `agent-runner exec`: nothing outlives its run, nor the runner's exit, nor
 * the runner's death (the restarted runner kills it).
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ownCgroup } from "../../src/process/cgroups.ts";
import { running, startTimeOf, vanishedWithin } from "../support/contained.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { startCli, until } from "../support/fault-tools.ts";
import { cleanEnv, killTree, OutputWatcher, REPO_ROOT, TempDirs } from "../support/processes.ts";
import { killAfterTest, onTeardown } from "../support/teardown.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/**
 * An executor that starts a sleep in a session of its own, writes its pid to escapee-<session>
 * in OUT_DIR once it has left the group, then exits 0 (or, with STAY=1, goes on running).
 */
function detachingExecutor(): string {
  const path = join(temp.make("ar-detach-"), "detach");
  writeFileSync(
    path,
    `#!/usr/bin/env bash
cat > /dev/null
setsid sleep 300 < /dev/null > /dev/null 2>&1 &
e=$!
until [ "$(cut -d' ' -f6 /proc/$e/stat 2>/dev/null)" = "$e" ]; do sleep 0.01; done
echo $e > "$OUT_DIR/escapee-$AGENT_SESSION_ID"
if [ "$STAY" = 1 ]; then exec sleep 1000; fi
exit 0
`,
    { mode: 0o755 },
  );
  return path;
}

function startRunner(
  fake: FakeCoordinator,
  world: { profiles: string; state: string; out: string },
  args: string[] = [],
  env = {},
) {
  return startCli(
    ["--profile", "detach", "--profiles-dir", world.profiles, "-c", fake.url, "--state-dir", world.state, ...args],
    { OUT_DIR: world.out, ...env },
  );
}

function world() {
  const profiles = temp.make("ar-detach-profiles-");
  writeFileSync(join(profiles, "detach.json"), JSON.stringify({ type: "fixture", command: detachingExecutor() }));
  return { profiles, state: temp.make("ar-detach-state-"), out: temp.make("ar-detach-out-") };
}

/** The escapee's pid and start time, once the executor of `session` wrote it; killed after the test. */
async function escapeeOf(out: string, session: string) {
  const file = join(out, `escapee-${session}`);
  await until(() => {
    try {
      return readFileSync(file, "utf8").endsWith("\n");
    } catch {
      return false;
    }
  }, `the escapee of ${session}`);
  const pid = Number(readFileSync(file, "utf8"));
  killAfterTest(pid);
  return { pid, startTime: startTimeOf(pid) };
}

test("a run whose executor leaves a child in its own session and exits 0: completed, the child killed, the runner exits cleanly", async () => {
  const w = world();
  const fake = startFakeCoordinator();
  const runner = startRunner(fake, w, ["--max-runs", "1"]);
  await runner.waitFor(/Executors are contained by (cgroup v2 per run|child subreaper)/);
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_detach", type: "start_session", session_id: "ses_detach", prompt: "p" });
  const escapee = await escapeeOf(w.out, "ses_detach");
  await fake.waitForRequest("POST", "/runner/runs/run_detach/completed");
  expect(await runner.process.exited).toBe(0);
  expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
});

test("the runner SIGKILLed while a run's executor has a child in its own session: the restarted runner kills it", async () => {
  const w = world();
  const fake = startFakeCoordinator();
  const first = startRunner(fake, w, [], { STAY: "1" });
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_crash", type: "start_session", session_id: "ses_crash", prompt: "p" });
  const escapee = await escapeeOf(w.out, "ses_crash");
  await first.kill();
  // Nothing else takes it: the runner's death leaves it running, adopted by whoever is above.
  expect(running(escapee.pid)).toBe(true);
  const restartedAt = performance.now();
  startRunner(fake, w);
  const report = await fake.waitFor(
    (r) => r.at > restartedAt && r.path.startsWith("/runner/runs/run_crash/") && !r.path.endsWith("/started"),
  );
  expect(report.path).toEndWith("/failed");
  expect(report.body.error).toBe(
    `runner process ended unexpectedly (pid ${first.process.pid}) while the run was active; its executor was stopped when the runner restarted`,
  );
  expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
});

test("agent-runner exec: the executor's child in its own session ends with the run", async () => {
  const w = world();
  const exec = Bun.spawn(
    [
      process.execPath,
      join(REPO_ROOT, "index.ts"),
      "exec",
      "--profile",
      "detach",
      "--profiles-dir",
      w.profiles,
      "--prompt",
      "x",
      "--session-id",
      "ses_exec",
      "--state-dir",
      w.state,
      "--json",
    ],
    { cwd: temp.make(), env: cleanEnv({ OUT_DIR: w.out }), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  killAfterTest(exec.pid);
  const output = new OutputWatcher([exec.stdout, exec.stderr]);
  const escapee = await escapeeOf(w.out, "ses_exec");
  expect(await exec.exited, output.output).toBe(0);
  expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
});

/**
 * The runner where its cgroup cannot be written, as in a container (read-only cgroup filesystem):
 * in a mount namespace of its own with its cgroup's directory bound read-only. Needs root.
 */
function startRunnerWithoutCgroups(fake: FakeCoordinator, w: ReturnType<typeof world>, env = {}) {
  if (process.getuid?.() !== 0) throw new Error("this test makes a mount namespace: it needs root");
  const own = ownCgroup();
  if ("reason" in own) throw new Error(own.reason);
  const readOnly = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"';
  const argv = [process.execPath, join(REPO_ROOT, "index.ts")];
  const args = ["--profile", "detach", "--profiles-dir", w.profiles, "-c", fake.url, "--state-dir", w.state];
  const child = Bun.spawn(
    ["unshare", "--mount", "--propagation", "private", "sh", "-c", readOnly, own.dir, ...argv, ...args],
    { cwd: REPO_ROOT, env: cleanEnv({ OUT_DIR: w.out, ...env }), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  onTeardown(() => killTree(child));
  return { process: child, output: new OutputWatcher([child.stdout, child.stderr]) };
}

test("without cgroups (read-only, as in a container): the runner is a child subreaper; SIGKILLed mid-run, the restarted runner finds the child by its mark", async () => {
  const w = world();
  const fake = startFakeCoordinator();
  const first = startRunnerWithoutCgroups(fake, w, { STAY: "1" });
  await first.output.waitFor(
    /Executors are contained by child subreaper \(.*no cgroup per run: no cgroup can be made in .* \(EROFS\): not delegated\)/,
  );
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_sub", type: "start_session", session_id: "ses_sub", prompt: "p" });
  const escapee = await escapeeOf(w.out, "ses_sub");
  // The journal holds no cgroup for the run: only its group and its mark.
  first.process.kill("SIGKILL");
  await first.process.exited;
  expect(running(escapee.pid)).toBe(true);
  const restartedAt = performance.now();
  startRunnerWithoutCgroups(fake, w);
  const report = await fake.waitFor(
    (r) => r.at > restartedAt && r.path.startsWith("/runner/runs/run_sub/") && !r.path.endsWith("/started"),
  );
  expect(report.body.error).toContain("its executor was stopped when the runner restarted");
  expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
});
