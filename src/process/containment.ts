/**
 * How this process keeps every executor's processes within the executor's run, whatever they do
 * (a new session, a double fork): a cgroup v2 per executor where cgroups are delegated to it (it
 * catches everything, and is killed whole), and in any case this process as child subreaper, so
 * that orphans come to it and are killed with their run (see orphans.ts). Without either, only
 * the executor's process group is killed.
 */
import { type CgroupHome, killAbandonedCgroups, probeCgroups } from "./cgroups.ts";
import { setChildSubreaper } from "./libc.ts";
import { OrphanKeeper } from "./orphans.ts";

export interface Containment {
  /** Where each executor gets its own cgroup. */
  cgroups?: CgroupHome;
  /** Orphaned descendants of executors come to this process. */
  subreaper: boolean;
  /** Why a mechanism does not hold here. */
  missing: string[];
}

export interface ContainmentOptions {
  /** Look for delegated cgroups (default: yes). */
  cgroups?: boolean;
}

let current: { containment: Containment; keeper?: OrphanKeeper } | undefined;

function probe(options: ContainmentOptions, subreaper: () => boolean): Containment {
  const missing: string[] = [];
  let cgroups: CgroupHome | undefined;
  if (options.cgroups === false) missing.push("cgroups are not used (turned off)");
  else {
    const found = probeCgroups();
    if (found.ok) cgroups = found.home;
    else missing.push(found.reason);
  }
  const isSubreaper = subreaper();
  if (!isSubreaper) missing.push("this process cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER failed)");
  return { cgroups, subreaper: isSubreaper, missing };
}

/**
 * Sets up, once, what a process that runs executors (the runner, exec) keeps them with: cgroups
 * where they can be made (killing those that dead runner processes left), and this process as a
 * child subreaper. Executors spawned after this are contained; before it, only by their group.
 */
export function setUpContainment(options: ContainmentOptions = {}): Containment {
  if (current) return current.containment;
  const containment = probe(options, () => setChildSubreaper(true));
  if (containment.cgroups) killAbandonedCgroups(containment.cgroups);
  current = { containment, keeper: containment.subreaper ? new OrphanKeeper().start() : undefined };
  return containment;
}

/** What this process set up, if it did; the orphan keeper when it is a subreaper. */
export function currentContainment(): { containment: Containment; keeper?: OrphanKeeper } | undefined {
  return current;
}

/** What would hold in a process started here (for `doctor`), leaving this one as it was. */
export function detectContainment(options: ContainmentOptions = {}): Containment {
  return probe(options, () => {
    if (current?.containment.subreaper) return true;
    const ok = setChildSubreaper(true);
    if (ok) setChildSubreaper(false);
    return ok;
  });
}

/** One line saying which mechanism holds, for the runner's start and `doctor`. */
export function describeContainment(containment: Containment): string {
  const { cgroups, subreaper, missing } = containment;
  if (cgroups) {
    const kill = cgroups.killFile
      ? "killed whole with cgroup.kill at the run's end"
      : "frozen and killed at the run's end: no cgroup.kill before Linux 5.14";
    const net = subreaper ? "; child subreaper as a second net" : "";
    const entry =
      cgroups.entry === "spawn" ? "entered at the spawn" : "entered through a shell step: no clone3 into a cgroup";
    return `cgroup v2 per run (delegated at ${cgroups.dir}; ${entry}; ${kill})${net}`;
  }
  if (subreaper) {
    return `child subreaper (descendants are tracked by a mark in their environment and killed with their run; no cgroup per run: ${missing.join("; ")})`;
  }
  return `process group only (${missing.join("; ")}): an agent that leaves its process group can outlive its run`;
}
