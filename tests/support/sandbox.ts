/** Helpers for sandbox tests: a runner's world with secrets to protect, the probe's answers, the processes of a sandbox. */
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { checkBubblewrap } from "../../src/process/sandbox-check.ts";
import { REPO_ROOT, type TempDirs } from "./processes.ts";
import { onTeardown } from "./teardown.ts";

export const SANDBOX_FIXTURES = join(REPO_ROOT, "tests/fixtures/sandbox");
export const PROBE = join(SANDBOX_FIXTURES, "probe");
export const STUBBORN = join(SANDBOX_FIXTURES, "stubborn");

const bubblewrap = checkBubblewrap();
/** Fails the calling test, with the reason, when this host cannot run a sandbox (CI installs bubblewrap). */
export function needBubblewrap(): void {
  if (!bubblewrap.ok) throw new Error(bubblewrap.reason);
}

export function plant(path: string, content: string, mode = 0o644): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content, { mode });
  return path;
}

/**
 * A runner's home with a planted SSH key, under /var/tmp (the sandbox's private /tmp would hide a
 * home in /tmp on its own, proving nothing), and a project inside it.
 */
export function homeWithSecrets(temp: TempDirs): { base: string; home: string; project: string; sshKey: string } {
  const base = temp.make("ar-sbx-", "/var/tmp");
  const home = join(base, "home");
  const project = join(home, "work", "project");
  mkdirSync(project, { recursive: true });
  const sshKey = plant(join(home, ".ssh/id_ed25519"), "PLANTED private key", 0o600);
  return { base, home, project, sshKey };
}

/** Another run's process, of the same user (a sleep), for a probe to try to see and signal; killed after the test. */
export function startDecoy(): Bun.Subprocess {
  const decoy = Bun.spawn(["sleep", "60"], { stdout: "ignore", stderr: "ignore" });
  onTeardown(() => decoy.kill("SIGKILL"));
  return decoy;
}

/** The probe's `name=value` lines as an object. */
export function probeResults(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

/**
 * The sandbox that the bwrap process `bwrapPid` runs, to count and await its processes: those in
 * its PID namespace or in bwrap's process group.
 */
export function sandboxOf(bwrapPid: number) {
  const namespace = sandboxNamespace(bwrapPid);
  const members = () => sandboxMembers(namespace, bwrapPid);
  return {
    /** Every running process of the sandbox (host pids). */
    members,
    /** Every running process in its PID namespace, whatever its group. */
    inNamespace: () => sandboxMembers(namespace),
    /** What of it is still running after up to `timeoutMs` (checked every 20 ms): [] once all is gone. */
    async leftAfter(timeoutMs: number): Promise<number[]> {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const left = members();
        if (left.length === 0 || performance.now() > deadline) return left;
        await Bun.sleep(20);
      }
    },
  };
}

/** The PID namespace of the sandbox that the bwrap process `bwrapPid` runs (its one child is the sandbox's init). */
function sandboxNamespace(bwrapPid: number): string {
  const [init] = readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, "utf8").trim().split(" ");
  return readlinkSync(`/proc/${init}/ns/pid`);
}

/** Every running process (host pid) in the PID namespace, in the process group, or the pid itself. */
function sandboxMembers(namespace: string, group = -1): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z") continue;
      if (Number(pgrp) === group || Number(name) === group || readlinkSync(`/proc/${name}/ns/pid`) === namespace) {
        found.push(Number(name));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
