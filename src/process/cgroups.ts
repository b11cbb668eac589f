/**
 * A cgroup v2 per executor: where this process's own cgroup is, whether cgroups can be made under
 * it (delegated to this user, writable), and each run's cgroup from its creation to its removal.
 * Everything an executor starts stays in its cgroup whatever it does (a new session, a double
 * fork), so killing the cgroup kills all of it.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, normalize } from "node:path";
import { messageOf } from "../shared/errors.ts";
import { isSameProcessAlive, processStartTime, signalAll } from "../shared/process-group.ts";

/** Where run cgroups are made: this process's own cgroup, and how executors enter and leave them there. */
export interface CgroupHome {
  dir: string;
  /** `cgroup.kill` (Linux 5.14 and later); else frozen, then each process killed. */
  killFile: boolean;
  /**
   * How an executor gets into its run cgroup before it can start anything: made in it by the spawn
   * itself (`clone3` into the cgroup, Linux 5.7 and a Bun that knows the spawn option), else a
   * shell that moves itself in and then becomes the program (one more exec per run).
   */
  entry: "spawn" | "shell";
}

export type CgroupProbe = { ok: true; home: CgroupHome } | { ok: false; reason: string };

/** `\040` and the like in /proc/self/mountinfo are octal escapes of spaces, tabs, newlines, backslashes. */
const unescapeMount = (field: string) =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

const isWithin = (path: string, dir: string) => path === dir || path.startsWith(dir === "/" ? dir : `${dir}/`);

/** Mount points of cgroup2 with the part of the hierarchy each shows (its root). */
function cgroup2Mounts(): Array<{ root: string; mountPoint: string }> {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const mounts: Array<{ root: string; mountPoint: string }> = [];
  for (const line of text.split("\n")) {
    // "id parent major:minor root mount-point options [optional fields] - type source super-options"
    const [before, after] = line.split(" - ");
    if (after?.split(" ")[0] !== "cgroup2" || !before) continue;
    const fields = before.split(" ");
    const [root, mountPoint] = [fields[3], fields[4]];
    if (root && mountPoint) mounts.push({ root: unescapeMount(root), mountPoint: unescapeMount(mountPoint) });
  }
  return mounts;
}

/** This process's cgroup directory on the cgroup v2 hierarchy, or why there is none to be seen. */
export function ownCgroup(): { dir: string } | { reason: string } {
  let text: string;
  try {
    text = readFileSync("/proc/self/cgroup", "utf8");
  } catch {
    return { reason: "/proc/self/cgroup cannot be read (not Linux?)" };
  }
  const line = text.split("\n").find((entry) => entry.startsWith("0::"));
  if (!line) return { reason: "this process is in no cgroup v2 hierarchy (cgroup v1 only)" };
  const path = line.slice(3);
  for (const { root, mountPoint } of cgroup2Mounts()) {
    if (isWithin(path, root)) return { dir: join(mountPoint, path.slice(root.length)) };
  }
  return { reason: `cgroup2 is not mounted where this process's cgroup ${path} can be seen` };
}

/** This PID namespace's inode: a run cgroup's name says in which one its creator's pid means something. */
function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid").replace(/\D/g, "");
  } catch {
    return "0";
  }
}

const NAME = /^agent-runner-(\d+)-(\d+)-(\d+)-(\d+)$/;

/** This process as a run cgroup's name says it: its PID namespace, pid and start time (the same for every run). */
let creatorPart: string | undefined;

/** A run cgroup's name: the creator's PID namespace, pid and start time, and a sequence number. */
function runCgroupName(sequence: number): string {
  creatorPart ??= `${pidNamespace()}-${process.pid}-${processStartTime(process.pid) ?? 0}`;
  return `agent-runner-${creatorPart}-${sequence}`;
}

/** Who made a run cgroup of this name, or undefined when the name is not one this module gives. */
function creatorOf(name: string): { namespace: string; pid: number; start: string } | undefined {
  const match = NAME.exec(name);
  if (!match) return undefined;
  return { namespace: match[1]!, pid: Number(match[2]), start: match[3]! };
}

/**
 * Whether run cgroups can be made here, found by doing it: a cgroup is created in this process's
 * own, a process is started in it (by the spawn, else by a shell moving itself in), and it is
 * removed. Synchronous, a few milliseconds.
 */
export function probeCgroups(): CgroupProbe {
  const own = ownCgroup();
  if ("reason" in own) return { ok: false, reason: own.reason };
  const probe = join(own.dir, `agent-runner-probe-${process.pid}-${Date.now()}`);
  try {
    mkdirSync(probe);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return { ok: false, reason: `no cgroup can be made in this process's cgroup ${own.dir} (${code}): not delegated` };
  }
  try {
    const killFile = existsSync(join(probe, "cgroup.kill"));
    if (startsInside(probe)) return { ok: true, home: { dir: own.dir, killFile, entry: "spawn" } };
    const moved = spawnSync("/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs"', probe], {
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
      timeout: 5000,
    });
    if (moved.status !== 0) {
      const said = (moved.stderr ?? "").trim() || String(moved.error ?? `exit ${moved.status}`);
      return { ok: false, reason: `a process cannot be moved into a cgroup made in ${own.dir}: ${said}` };
    }
    return { ok: true, home: { dir: own.dir, killFile, entry: "shell" } };
  } finally {
    removeTree(probe);
  }
}

/**
 * True when a process spawned with `cgroup` is in it from its start. A Bun without the spawn
 * option ignores it (the process would be in this one's cgroup); a kernel without `clone3` into a
 * cgroup makes the spawn fail.
 */
function startsInside(cgroup: string): boolean {
  try {
    const seen = Bun.spawnSync({ cmd: ["cat", "/proc/self/cgroup"], cgroup, stdout: "pipe", stderr: "ignore" });
    const line = seen.stdout.toString().match(/^0::(.*)$/m)?.[1];
    return seen.exitCode === 0 && line !== undefined && basename(line) === basename(cgroup);
  } catch {
    return false;
  }
}

/** The cgroup and those below it, deepest first. */
function subtree(dir: string): string[] {
  const below: string[] = [];
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) below.push(...subtree(join(dir, entry.name)));
    }
  } catch {
    // Gone meanwhile.
  }
  return [...below, dir];
}

/** Removes a cgroup and those below it (empty ones only: the kernel refuses the others). True once it is gone. */
function removeTree(dir: string): boolean {
  for (const cgroup of subtree(dir)) {
    try {
      rmdirSync(cgroup);
    } catch {
      // Still populated, or gone already.
    }
  }
  return !existsSync(dir);
}

function readProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** True while a process runs in the cgroup or below it (zombies do not count). */
function populated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(dir, "cgroup.events"), "utf8"));
  } catch {
    return false;
  }
}

/** SIGKILL to everything in the cgroup and below it: `cgroup.kill`, else frozen so that nothing forks, then each process. */
function killCgroup(dir: string, killFile: boolean): void {
  try {
    if (killFile) {
      writeFileSync(join(dir, "cgroup.kill"), "1");
      return;
    }
    writeFileSync(join(dir, "cgroup.freeze"), "1");
  } catch {
    // Gone already (or no freezer): what is listed is killed all the same.
  }
  // A frozen process still dies of SIGKILL. One that forked before the freeze took hold is found
  // by the next kill, which the caller repeats while the cgroup is populated.
  for (const cgroup of subtree(dir)) signalAll(readProcs(cgroup), "SIGKILL");
  try {
    writeFileSync(join(dir, "cgroup.freeze"), "0");
  } catch {
    // Gone.
  }
}

let sequence = 0;

/** The cgroup of one executor: made before it starts, killed when its run ends, removed once empty. */
export class RunCgroup {
  private constructor(
    readonly path: string,
    private readonly killFile: boolean,
    private readonly entry: CgroupHome["entry"],
  ) {}

  /** Makes a new run cgroup in `home`; throws, naming it, when that fails. */
  static create(home: CgroupHome): RunCgroup {
    const path = join(home.dir, runCgroupName(++sequence));
    try {
      mkdirSync(path);
    } catch (error) {
      throw new Error(`cannot make the run's cgroup ${path}: ${messageOf(error)}`);
    }
    return new RunCgroup(path, home.killFile, home.entry);
  }

  /**
   * How to spawn `argv` so that it is in this cgroup before it can start anything: the spawn
   * option `cgroup`, or an argv whose shell moves itself in, then becomes the program.
   */
  spawnWith(argv: string[]): { argv: string[]; cgroup?: string } {
    if (this.entry === "spawn") return { argv, cgroup: this.path };
    const enter =
      'echo $$ > "$0/cgroup.procs" || { echo "agent-runner: cannot enter the run\'s cgroup $0" >&2; exit 125; }';
    return { argv: ["/bin/sh", "-c", `${enter}; exec "$@"`, this.path, ...argv] };
  }

  /** Whether a program that cannot be started would only be seen by the entering shell's exit code. */
  get entersByShell(): boolean {
    return this.entry === "shell";
  }

  /** True while anything of the run is left in it. */
  populated(): boolean {
    return populated(this.path);
  }

  /** Sends `signal` to every process in it (SIGKILL to all of it; another signal to those `skip` does not rule out). */
  signal(signal: NodeJS.Signals, skip?: (pid: number) => boolean): void {
    if (signal === "SIGKILL") {
      killCgroup(this.path, this.killFile);
      return;
    }
    for (const cgroup of subtree(this.path))
      signalAll(
        readProcs(cgroup).filter((pid) => !skip?.(pid)),
        signal,
      );
  }

  /** Removes it: at once when it is empty (true), else tried again for a while. */
  remove(): boolean {
    if (removeTree(this.path)) return true;
    scheduleRemoval([this.path]);
    return false;
  }
}

/**
 * A restarted runner's side: kills what is left in a run cgroup of an earlier runner process that
 * is gone (`creator`, from its journal), then removes it when it can. Nothing is touched unless
 * the path is a run cgroup that very process made, in this PID namespace, on a cgroup2 mount:
 * a journal cannot make this kill anything else. True when there was such a cgroup to kill.
 */
export function killLeftoverCgroup(path: string, creator: { pid: number; start?: string }): boolean {
  if (!isAbsolute(path) || normalize(path) !== path) return false;
  const made = creatorOf(basename(path));
  if (!made || made.pid !== creator.pid || made.start !== creator.start || made.namespace !== pidNamespace()) {
    return false;
  }
  if (isSameProcessAlive(made.pid, made.start)) return false;
  if (!cgroup2Mounts().some(({ mountPoint }) => isWithin(dirname(path), mountPoint))) return false;
  if (!existsSync(join(path, "cgroup.procs"))) return false;
  killCgroup(path, existsSync(join(path, "cgroup.kill")));
  scheduleRemoval([path]);
  return true;
}

/**
 * Kills and removes the run cgroups in `home` that runner processes of this PID namespace left
 * when they died (a runner or an `exec` that was SIGKILLed): their runs are over. Returns them.
 */
export function killAbandonedCgroups(home: CgroupHome): string[] {
  let names: string[];
  try {
    names = readdirSync(home.dir);
  } catch {
    return [];
  }
  const namespace = pidNamespace();
  const abandoned: string[] = [];
  for (const name of names) {
    const made = creatorOf(name);
    if (!made || made.namespace !== namespace || isSameProcessAlive(made.pid, made.start)) continue;
    const path = join(home.dir, name);
    if (populated(path)) killCgroup(path, home.killFile);
    abandoned.push(path);
  }
  scheduleRemoval(abandoned);
  return abandoned;
}

/** Removes killed cgroups once their processes are gone: tried again for a while, never holding the process open. */
function scheduleRemoval(paths: string[], attempt = 0): void {
  const left = paths.filter((path) => !removeTree(path));
  if (left.length === 0 || attempt >= 50) return;
  setTimeout(() => scheduleRemoval(left, attempt + 1), 100).unref();
}
