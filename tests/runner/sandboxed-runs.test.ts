/**
 * Sandboxed runs through the real runner: in process against the fake coordinator (a probe that
 * tries to get out, a stop, Claude Code's start and resume against the fake Messages API), and as
 * a real process (refused without bubblewrap, its journal holding bwrap's group, a crash).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import { killLeftoverGroup } from "../../src/shared/process-group.ts";
import { installClaudeCodeLink, offlineClaudeEnv } from "../support/claude-code.ts";
import { startFakeAnthropic } from "../support/fake-anthropic.ts";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { captureLog, startCli, until } from "../support/fault-tools.ts";
import { CLAUDE_CODE_EXECUTOR, TempDirs } from "../support/processes.ts";
import { startRunnerHarness } from "../support/runner-harness.ts";
import {
  homeWithSecrets,
  needBubblewrap,
  PROBE,
  plant,
  probeResults,
  STUBBORN,
  sandboxOf,
  startDecoy,
} from "../support/sandbox.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

function sandboxedProfile(command: string, type = "fixture", config = {}): ExecutorProfile {
  return {
    name: "sandboxed",
    type,
    command,
    config,
    lifecycle: "one_shot",
    source: "test",
    argv: [command],
    sandbox: true,
  };
}

/** A home with secrets, a project in it, and a runner state directory holding a planted file. */
function runnerWorld() {
  const world = homeWithSecrets(temp);
  const stateDir = join(world.base, "state");
  const stateFile = plant(join(stateDir, "runners/planted.json"), "PLANTED state");
  return { ...world, stateDir, stateFile };
}

describe("the in-process runner", () => {
  test("a probe executor cannot write outside, read the SSH key or the runner's state, see processes, or leave /tmp files; it writes its project and ~/.claude", async () => {
    needBubblewrap();
    const w = runnerWorld();
    const decoy = startDecoy();
    const mark = `ar-sbx-run-${process.pid}-${Date.now()}`;
    const harness = await startRunnerHarness({
      profile: sandboxedProfile(PROBE),
      flags: { "project-dir": w.project, "state-dir": w.stateDir },
      env: {
        HOME: w.home,
        PROBE_OUTSIDE: w.base,
        PROBE_STATE_FILE: w.stateFile,
        PROBE_RUNNER_PID: String(process.pid),
        PROBE_DECOY_PID: String(decoy.pid),
        PROBE_MARK: mark,
      },
    });
    const results = async () => {
      const runId = harness.handRun();
      await harness.fake.waitForStatus(runId, ["completed", "failed"]);
      expect(harness.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "completed"]);
      return probeResults(readFileSync(join(w.project, "probe-results"), "utf8"));
    };
    const first = await results();
    expect(first).toMatchObject({
      write_project: "yes",
      write_claude: "yes",
      write_claude_json: "yes",
      write_outside: "no",
      read_ssh_key: "no",
      read_state: "no",
      see_runner: "no",
      signal_runner: "no",
      signal_decoy: "no",
      tmp_leftover_seen: "no",
      leave_tmp: "yes",
      remount_rw: "no",
      pid: "2",
      cwd: w.project,
    });
    // Nothing but the sandbox's own processes: its init, the probe, the subshell listing them.
    expect(first.processes).toMatch(/^1 2 \d+$/);
    expect(first.lifeline).toMatch(/^(pipe|socket):\[\d+\]$/);
    expect((await results()).tmp_leftover_seen).toBe("no");
    expect(existsSync(join("/tmp", mark))).toBe(false);
    expect(existsSync(join(w.base, "written"))).toBe(false);
    expect(readFileSync(join(w.home, ".claude/written-by-sandbox"), "utf8")).toBe("from-sandbox\n");
    expect(decoy.exitCode).toBeNull();
  });

  test("a stop is SIGTERM, the grace, then SIGKILL to all of the sandbox, reported stopped by SIGKILL", async () => {
    needBubblewrap();
    const w = runnerWorld();
    const log = captureLog();
    const harness = await startRunnerHarness({
      profile: sandboxedProfile(STUBBORN),
      flags: { "project-dir": w.project, "state-dir": w.stateDir, "stop-grace-seconds": "1" },
      env: { HOME: w.home, ON_TERM: "ignore" },
    });
    const runId = harness.handRun();
    const started = await log.waitFor(new RegExp(`Run ${runId} started: .*pid (\\d+)`));
    const pid = Number(/pid (\d+)/.exec(started)![1]);
    await until(() => existsSync(join(w.project, "stubborn-log")), "the executor's ready");
    const sandbox = sandboxOf(pid);
    expect(sandbox.members().length).toBeGreaterThanOrEqual(5);
    harness.fake.requestStop(runId);
    const report = await harness.fake.waitForRequest("POST", `/runner/runs/${runId}/stopped`);
    expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGKILL" });
    expect(readFileSync(join(w.project, "stubborn-log"), "utf8")).toBe("ready\ngot-term\n");
    expect(sandbox.members()).toEqual([]);
    expect(harness.fake.reportsFor(runId).map((r) => r.kind)).toEqual(["started", "stopped"]);
  });

  test("Claude Code starts a session and resumes it inside the sandbox, against the fake Messages API", async () => {
    needBubblewrap();
    const api = startFakeAnthropic((request) => ({ text: `Hello from the fake API (model ${request.body.model})` }));
    const w = runnerWorld();
    const harness = await startRunnerHarness({
      profile: sandboxedProfile(CLAUDE_CODE_EXECUTOR, "claude-code", {
        permission_mode: "bypassPermissions",
        setting_sources: ["project", "local"],
      }),
      flags: { "project-dir": w.project, "state-dir": w.stateDir },
      // Claude Code reached through a link in the emptied home.
      env: { ...offlineClaudeEnv(w.home, api.url), CLAUDE_CODE_EXECUTABLE: installClaudeCodeLink(w.home) },
    });
    const { fake } = harness;
    const startRun = harness.handRun({ session_id: "ses_sbx", prompt: "FIRST_TURN_MARKER", project_dir: w.project });
    await fake.waitForStatus(startRun, ["completed", "failed"], 60_000);
    expect(
      fake.reportsFor(startRun).map((r) => r.kind),
      fake.describe(),
    ).toEqual(["started", "completed"]);
    const bind = fake.find("POST", "/sessions/ses_sbx/bind")[0]!;
    const executorSessionId = bind.body.executor_session_id as string;
    expect(bind.body.project_dir).toBe(w.project);
    // The transcript went to the real ~/.claude, so a later sandbox can resume it.
    const transcripts = readdirSync(join(w.home, ".claude/projects"), { recursive: true }).map(String);
    expect(transcripts.some((path) => path.endsWith(`${executorSessionId}.jsonl`))).toBe(true);

    fake.on("GET", /^\/sessions\/ses_sbx$/, () =>
      Response.json({ session_id: "ses_sbx", executor_session_id: executorSessionId, project_dir: w.project }),
    );
    const from = api.agentRequests().length;
    // No project_dir: the runner's own project directory is writable, and the executor's cwd.
    const resumeRun = `${startRun}_resume`;
    fake.handRun({ run_id: resumeRun, type: "resume_session", session_id: "ses_sbx", prompt: "SECOND_TURN_MARKER" });
    await fake.waitForStatus(resumeRun, ["completed", "failed"], 60_000);
    expect(
      fake.reportsFor(resumeRun).map((r) => r.kind),
      fake.describe(),
    ).toEqual(["started", "completed"]);
    expect(fake.find("POST", "/sessions/ses_sbx/bind")[1]!.body.executor_session_id).toBe(executorSessionId);
    const history = api.conversationSince(from);
    expect(history).toContain("FIRST_TURN_MARKER");
    expect(history).toContain("SECOND_TURN_MARKER");
  }, 120_000);
});

/** A process's group, from /proc (undefined once it is gone). */
function processGroupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}

describe("the runner as a process", () => {
  function startRunner(
    fake: FakeCoordinator,
    command: string,
    w: ReturnType<typeof runnerWorld>,
    env: Record<string, string> = {},
  ) {
    const profiles = temp.make("ar-sbx-profiles-");
    writeFileSync(join(profiles, "sandboxed.json"), JSON.stringify({ type: "fixture", command, sandbox: true }));
    return startCli(
      [
        "--profile",
        "sandboxed",
        "--profiles-dir",
        profiles,
        "-c",
        fake.url,
        "-p",
        w.project,
        "--stop-grace-seconds",
        "1",
      ],
      { HOME: w.home, AGENT_RUNNER_STATE_DIR: w.stateDir, ON_TERM: "ignore", ...env },
    );
  }

  /** Hands out a run of the stubborn executor; once it is ready, the journal's record of it and its sandbox. */
  async function stubbornRun(fake: FakeCoordinator, w: ReturnType<typeof runnerWorld>, runId: string) {
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun({ run_id: runId, type: "start_session", session_id: `ses_${runId}`, prompt: "p" });
    await until(() => existsSync(join(w.project, "stubborn-log")), "the executor's ready");
    const [journal] = readdirSync(join(w.stateDir, "runners")).filter(
      (name) => name.endsWith(".json") && name !== "planted.json",
    );
    const record = JSON.parse(readFileSync(join(w.stateDir, "runners", journal!), "utf8")).runs[runId];
    return { pgid: record.pgid as number, pgidStart: record.pgid_start as string, sandbox: sandboxOf(record.pgid) };
  }

  test("a sandboxed profile refuses to start without bubblewrap, naming the package", async () => {
    const w = runnerWorld();
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, STUBBORN, w, { PATH: temp.make("ar-sbx-nopath-") });
    expect(await runner.process.exited).toBe(1);
    await runner.closed;
    expect(runner.output()).toContain(
      "✗ sandbox: The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap`",
    );
    expect(fake.find("POST", "/runner/register")).toEqual([]);
  });

  test("a default project directory the sandbox refuses is named at start: runs without their own would fail", async () => {
    needBubblewrap();
    const w = runnerWorld();
    const fake = startFakeCoordinator();
    const runner = startRunner(fake, STUBBORN, w, { AGENT_RUNNER_STATE_DIR: join(w.project, "a", "state") });
    await fake.waitForRequest("POST", "/runner/register");
    expect(runner.output()).toContain(
      `Runs without a project_dir of their own will fail: Sandbox: project directory ${w.project} contains the runner's state directory ${join(w.project, "a", "state")}`,
    );
  });

  test("the journal records bwrap's process group: killing it, as a restarted runner does, kills all of the sandbox", async () => {
    needBubblewrap();
    const w = runnerWorld();
    const fake = startFakeCoordinator();
    startRunner(fake, STUBBORN, w);
    const { pgid, pgidStart, sandbox } = await stubbornRun(fake, w, "run_journal");
    expect(readFileSync(`/proc/${pgid}/comm`, "utf8").trim()).toBe("bwrap");
    // Every process of the sandbox is in bwrap's group, but the daemon that made a session of its
    // own: the sandbox's end (its init's) takes that one.
    const members = sandbox.inNamespace();
    expect(members.length).toBeGreaterThanOrEqual(5);
    const outside = members.filter((pid) => processGroupOf(pid) !== pgid);
    expect(outside.map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim())).toEqual([
      "sleep 301",
    ]);
    expect(killLeftoverGroup(pgid, pgidStart)).toBe(true);
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
    const report = await fake.waitForRequest("POST", "/runner/runs/run_journal/failed");
    expect(report.body.error).toBe("Process killed by SIGKILL");
  });

  test("SIGKILL of the runner leaves nothing of the sandbox running; the restarted runner reports the run failed", async () => {
    needBubblewrap();
    const w = runnerWorld();
    const fake = startFakeCoordinator();
    const first = startRunner(fake, STUBBORN, w);
    const { sandbox } = await stubbornRun(fake, w, "run_crash");
    await first.kill();
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
    const restartedAt = performance.now();
    startRunner(fake, STUBBORN, w);
    const report = await fake.waitFor(
      (r) => r.at > restartedAt && r.path.startsWith("/runner/runs/run_crash/") && !r.path.endsWith("/started"),
    );
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("runner process ended unexpectedly");
  });
});
