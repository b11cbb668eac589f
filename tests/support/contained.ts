/** Drives tests/support/contained-parent.ts: executors contained as the runner contains them, in a process of their own. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { killAbandonedCgroups, probeCgroups } from "../../src/process/cgroups.ts";
import { cleanEnv, killTree, OutputWatcher, REPO_ROOT } from "./processes.ts";
import { killAfterTest, onTeardown } from "./teardown.ts";

export type ContainmentMode = "cgroup" | "subreaper";

/** A process's start time (field 22 of its stat), or undefined once it is gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** The process's state letter and parent, or undefined once it is gone (reaped). */
export function stateOf(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/**
 * True once the process that had `startTime` is gone from /proc, zombie included (so reaped too),
 * looked for every 10 ms up to `timeoutMs`: nothing announces the end of a process not our child.
 * No start time: it was gone before it was first looked at.
 */
export async function vanishedWithin(pid: number, startTime: string | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (startTime === undefined || startTimeOf(pid) !== startTime) return true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(10);
  }
}

/** True while the process runs (not a zombie). */
export function running(pid: number): boolean {
  const state = stateOf(pid)?.state;
  return state !== undefined && state !== "Z" && state !== "X";
}

export function containedParent(mode: ContainmentMode) {
  const child = Bun.spawn([process.execPath, join(REPO_ROOT, "tests/support/contained-parent.ts")], {
    cwd: REPO_ROOT,
    env: cleanEnv({ CONTAINMENT: mode }),
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  onTeardown(async () => {
    await killTree(child);
    // The run cgroups it made, emptied by the kill, are removed like any a dead runner left.
    const probe = probeCgroups();
    if (probe.ok) killAbandonedCgroups(probe.home);
  });
  const output = new OutputWatcher([child.stdout]);

  /** The groups of the first output line matching `pattern` (waited for). */
  const line = async (pattern: RegExp): Promise<string[]> => {
    const anchored = new RegExp(`^${pattern.source}$`, "m");
    await output.waitFor(anchored);
    return anchored.exec(output.output)!.slice(1);
  };
  const send = (command: object) => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
    child.stdin.flush();
  };

  return {
    pid: child.pid,
    ready: line(/containment (.*)/),
    /** Starts `script` under bash as executor `id`; resolves with its pid and cgroup. */
    async start(id: string, script: string, env: Record<string, string> = {}) {
      send({ op: "start", id, script, env });
      const [pid, cgroup] = await line(new RegExp(`started ${id} (\\d+) (\\S+)`));
      killAfterTest(Number(pid));
      return { pid: Number(pid), cgroup: cgroup === "-" ? undefined : cgroup };
    },
    /** Starts `argv` as executor `id`; resolves with why it was refused, if it was. */
    async refused(id: string, argv: string[]) {
      send({ op: "start", id, argv });
      const [why] = await line(new RegExp(`(?:refused ${id} (.*)|started ${id} .*)`));
      return why;
    },
    /** The pid executor `id` printed as `<label> <pid>`, with its start time; killed after the test. */
    async printed(id: string, label: string) {
      const [pid] = await line(new RegExp(`out ${id} ${label} (\\d+)`));
      killAfterTest(Number(pid));
      return { pid: Number(pid), startTime: startTimeOf(Number(pid)) };
    },
    /** Resolves with executor `id`'s exit status once it counts as ended. */
    async exited(id: string) {
      const [status] = await line(new RegExp(`exited ${id} (.*)`));
      return JSON.parse(status!);
    },
    async stop(id: string, graceMs: number) {
      send({ op: "stop", id, graceMs });
      const [signal, ms] = await line(new RegExp(`stopped ${id} (\\S+) (\\d+)`));
      return { signal, ms: Number(ms) };
    },
    kill(id: string) {
      send({ op: "kill", id });
    },
  };
}

/** True once the cgroup directory is gone, looked for every 10 ms up to `timeoutMs`. */
export async function cgroupRemovedWithin(path: string, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!existsSync(path)) return true;
    if (performance.now() > deadline) return false;
    await Bun.sleep(10);
  }
}
