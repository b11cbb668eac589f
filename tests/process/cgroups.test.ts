/**
 * Run cgroups for real (this host has cgroup v2 delegated to the tests' user; where it has not,
 * these fail with the reason): made, entered before the program starts, killed whole with
 * cgroup.kill or by freezing, removed; and those a dead runner process left, found and killed.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { type CgroupHome, killAbandonedCgroups, probeCgroups, RunCgroup } from "../../src/process/cgroups.ts";
import { startTimeOf, vanishedWithin } from "../support/contained.ts";
import { until } from "../support/fault-tools.ts";
import { cleanEnv, tempDir } from "../support/processes.ts";
import { killAfterTest, onTeardown } from "../support/teardown.ts";

function home(): CgroupHome {
  const probe = probeCgroups();
  if (!probe.ok) throw new Error(`no run cgroups on this host: ${probe.reason}`);
  return probe.home;
}

/** Spawns `argv` in `cgroup` as an executor is spawned. */
function spawnIn(cgroup: RunCgroup, argv: string[], stderr: "inherit" | "pipe" = "inherit") {
  const { argv: command, cgroup: path } = cgroup.spawnWith(argv);
  return Bun.spawn(command, { cgroup: path, env: cleanEnv(), stdio: ["ignore", "ignore", stderr] });
}

/** A bash script in `cgroup`: it starts a sleep in a session of its own, names it in `file`, and waits. */
function startIn(cgroup: RunCgroup, file: string) {
  const script = `setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${file}; exec sleep 300`;
  const child = spawnIn(cgroup, ["bash", "-c", script]);
  onTeardown(() => child.kill("SIGKILL"));
  return child;
}

async function pidIn(file: string) {
  await until(() => existsSync(file) && readFileSync(file, "utf8").endsWith("\n"), file);
  const pid = Number(readFileSync(file, "utf8"));
  killAfterTest(pid);
  return { pid, startTime: startTimeOf(pid) };
}

test("this host's Bun and kernel start a process in its cgroup at the spawn (no shell step)", () => {
  expect(home().entry).toBe("spawn");
});

const kinds = [true, false].flatMap((killFile) => (["spawn", "shell"] as const).map((entry) => ({ killFile, entry })));

describe.each(kinds)("a run cgroup (cgroup.kill: $killFile, entered by the $entry)", ({ killFile, entry }) => {
  test("the program is in it from its start, with all it starts; SIGKILL ends all of it; then it is removed", async () => {
    const cgroup = RunCgroup.create({ ...home(), killFile, entry });
    onTeardown(() => cgroup.signal("SIGKILL"));
    const file = join(tempDir("ar-cgroup-"), "escapee");
    const program = startIn(cgroup, file);
    const escapee = await pidIn(file);
    const procs = readFileSync(join(cgroup.path, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
    expect(procs.sort()).toEqual([program.pid, escapee.pid].sort());
    expect(cgroup.populated()).toBe(true);
    cgroup.signal("SIGKILL");
    expect(await program.exited).toBe(137);
    expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
    await until(() => !cgroup.populated(), "the cgroup empty");
    expect(cgroup.remove()).toBe(true);
    expect(existsSync(cgroup.path)).toBe(false);
  });
});

test("a program that cannot enter its cgroup does not start: it fails with a message naming the cgroup", async () => {
  const bySpawn = RunCgroup.create({ ...home(), entry: "spawn" });
  bySpawn.remove();
  expect(() => spawnIn(bySpawn, ["true"])).toThrow(bySpawn.path);
  const byShell = RunCgroup.create({ ...home(), entry: "shell" });
  byShell.remove();
  const child = spawnIn(byShell, ["true"], "pipe");
  expect(await child.exited).toBe(125);
  expect(await new Response(child.stderr).text()).toContain(
    `agent-runner: cannot enter the run's cgroup ${byShell.path}`,
  );
});

test("the run cgroups a dead runner process left are killed and removed; a live one's are left alone", async () => {
  const here = home();
  // A dead runner process's cgroup, named as a runner names it (its PID namespace, pid and start time).
  const pidNs = readlinkSync("/proc/self/ns/pid").replace(/\D/g, "");
  const dead = Bun.spawnSync(["true"]).pid;
  const abandoned = join(here.dir, `agent-runner-${pidNs}-${dead}-1-1`);
  mkdirSync(abandoned);
  onTeardown(() => killAbandonedCgroups(here));
  const file = join(tempDir("ar-cgroup-"), "left");
  const left = Bun.spawn(
    [
      "bash",
      "-c",
      `echo $$ > "${abandoned}/cgroup.procs"; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${file}; exec sleep 300`,
    ],
    {
      env: cleanEnv(),
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  onTeardown(() => left.kill("SIGKILL"));
  const escapee = await pidIn(file);
  // This process's own, alive.
  const live = RunCgroup.create(here);
  onTeardown(() => live.remove());
  expect(killAbandonedCgroups(here)).toEqual([abandoned]);
  expect(await left.exited).toBe(137);
  expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
  await until(() => !existsSync(abandoned), "the abandoned cgroup removed");
  expect(existsSync(live.path)).toBe(true);
});
