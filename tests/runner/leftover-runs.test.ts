/**
 * What a restarted runner kills of a dead one's runs, from its journal: a run's marked processes
 * where it had no cgroup, and nothing else, whatever a journal says (a forged or stale process
 * group, cgroup or mark); and two runners sharing a state directory.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { killLeftoverCgroup, ownCgroup } from "../../src/process/cgroups.ts";
import { killMarkedProcesses, MARK_ENV, newMark } from "../../src/process/orphans.ts";
import { reapLeftovers } from "../../src/runner/leftover-runs.ts";
import { RunJournal } from "../../src/runner/run-journal.ts";
import { killLeftoverGroup, ownProcessGroup, processStartTime } from "../../src/shared/process-group.ts";
import { running } from "../support/contained.ts";
import { until } from "../support/fault-tools.ts";
import { cleanEnv, REPO_ROOT, tempDir } from "../support/processes.ts";
import { onTeardown } from "../support/teardown.ts";

/** A sleep in a session of its own with `env`; killed after the test. */
function sleeper(env: Record<string, string> = {}) {
  const child = Bun.spawn(["sleep", "300"], {
    env: cleanEnv(env),
    stdio: ["ignore", "ignore", "ignore"],
    detached: true,
  });
  onTeardown(() => child.kill("SIGKILL"));
  return child;
}

/** A pid that no process has now (a dead earlier runner). */
function deadPid(): number {
  const child = Bun.spawnSync(["true"]);
  return child.pid;
}

describe("a restarted runner kills a dead one's runs", () => {
  test("where a run had no cgroup: every process carrying its mark, wherever it went", async () => {
    const mark = newMark();
    const marked = sleeper({ [MARK_ENV]: mark });
    const other = sleeper({ [MARK_ENV]: newMark() });
    const reports = reapLeftovers({
      pid: deadPid(),
      runs: { run_1: { session_id: "ses_1", started_at: new Date().toISOString(), mark } },
      sessions: {},
    });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ runId: "run_1" });
    expect("report" in reports[0]! && reports[0].report).toEqual({
      kind: "failed",
      error: expect.stringContaining("; its executor was stopped when the runner restarted"),
    });
    expect(await marked.exited).toBe(137);
    expect(running(other.pid)).toBe(true);
  });
});

describe("a journal cannot make a restarted runner kill anything else", () => {
  let signalled: Array<[number, string | number | undefined]> = [];
  const realKill = process.kill;
  /** process.kill recorded instead of sent: a forged group such as -1 would be every process there is. */
  function recordKills() {
    signalled = [];
    process.kill = ((pid: number, signal?: string | number) => {
      if (signal === 0) return realKill(pid, 0);
      signalled.push([pid, signal]);
      return true;
    }) as typeof process.kill;
  }
  afterEach(() => {
    process.kill = realKill;
  });

  test("a process group of 1, 0, below 0, not a whole number, or the runner's own is never signalled", () => {
    recordKills();
    const own = ownProcessGroup()!;
    // Each with the start time the journal would need to pass the leader check.
    expect(killLeftoverGroup(1, processStartTime(1))).toBe(false);
    expect(killLeftoverGroup(0, undefined)).toBe(false);
    expect(killLeftoverGroup(-1, undefined)).toBe(false);
    expect(killLeftoverGroup(-own, undefined)).toBe(false);
    expect(killLeftoverGroup(1.5, undefined)).toBe(false);
    expect(killLeftoverGroup(own, processStartTime(own))).toBe(false);
    expect(signalled).toEqual([]);
  });

  test("a group whose leader is another process than the one started is left alone", async () => {
    const child = sleeper();
    expect(killLeftoverGroup(child.pid, "12345")).toBe(false);
    expect(running(child.pid)).toBe(true);
    expect(killLeftoverGroup(child.pid, processStartTime(child.pid))).toBe(true);
    expect(await child.exited).toBe(137);
  });

  test("a cgroup that no dead runner process of this journal made is left alone", () => {
    const own = ownCgroup();
    if ("reason" in own) throw new Error(`no cgroup v2 here: ${own.reason}`);
    const victim = join(own.dir, `victim-${process.pid}`);
    mkdirSync(victim);
    onTeardown(() => rmdirSync(victim));
    const dead = { pid: deadPid(), start: "1" };
    // Another runner's name, a name of ours with the wrong creator, no name of ours at all.
    for (const path of [
      victim,
      own.dir,
      join(own.dir, `agent-runner-1-${dead.pid}-2-1`),
      join(own.dir, "..", `agent-runner-1-${dead.pid}-1-1`),
      `/tmp/agent-runner-1-${dead.pid}-1-1`,
    ]) {
      expect(killLeftoverCgroup(path, dead)).toBe(false);
    }
    expect(readFileSync(join(victim, "cgroup.events"), "utf8")).toContain("frozen 0");
  });

  test("a mark must be whole: a part of one, or an empty one, matches nothing", () => {
    const mark = newMark();
    const marked = sleeper({ [MARK_ENV]: mark });
    expect(killMarkedProcesses([mark.slice(0, 31), "", `${mark}0`, mark.toUpperCase()])).toBe(0);
    expect(running(marked.pid)).toBe(true);
  });

  test("a journal another user could have written (writable by others) is not acted on", async () => {
    const state = tempDir("ar-journal-");
    const identity = { coordinatorUrl: "http://c", hostname: "h", projectDir: "/p", profile: "x" };
    const { journal } = RunJournal.open(state, identity);
    const victim = sleeper();
    journal.runStarted("run_1", "ses_1", { pid: victim.pid });
    journal.close();
    // The dead runner's journal, left writable by anyone.
    const path = journal.path;
    const text = JSON.parse(readFileSync(path, "utf8"));
    writeFileSync(path, JSON.stringify({ ...text, pid: deadPid() }));
    chmodSync(path, 0o666);
    const { previous } = RunJournal.open(state, identity);
    expect(previous).toBeUndefined();
    expect(running(victim.pid)).toBe(true);
  });
});

describe("two runners sharing a state directory", () => {
  test("started at the same moment with the same identity: exactly one takes the journal", async () => {
    const script = join(tempDir("ar-journal-race-"), "open.ts");
    writeFileSync(
      script,
      `import { existsSync, writeFileSync } from "node:fs";
import { RunJournal } from ${JSON.stringify(join(REPO_ROOT, "src/runner/run-journal.ts"))};
const [state, go] = process.argv.slice(2);
writeFileSync(\`\${go}.\${process.pid}\`, "");
while (!existsSync(go)) Bun.sleepSync(0.2);
try {
  RunJournal.open(state, { coordinatorUrl: "http://c", hostname: "h", projectDir: "/p", profile: "x" });
  console.log("took");
} catch (error) {
  console.log(error.name);
}
Bun.sleepSync(100);
`,
    );
    for (let round = 0; round < 8; round++) {
      const state = tempDir("ar-journal-state-");
      const go = join(state, "go");
      const starts = [0, 1].map(() =>
        Bun.spawn([process.execPath, script, state, go], { env: cleanEnv(), stdout: "pipe", stderr: "inherit" }),
      );
      for (const child of starts) onTeardown(() => child.kill("SIGKILL"));
      // Both started and waiting for the word.
      await until(() => starts.every((child) => existsSync(`${go}.${child.pid}`)), "both runners waiting");
      writeFileSync(go, "");
      const said = await Promise.all(starts.map((child) => new Response(child.stdout).text()));
      expect(said.map((text) => text.trim()).sort(), `round ${round}`).toEqual(["JournalInUseError", "took"]);
    }
  }, 60_000);
});
