/**
 * How paths look inside the sandbox: from the paths to empty, show writable, show read-only and
 * hide, the bwrap mount arguments, each applied where it lands as meant, and the symlinks that
 * would dangle in an emptied directory made again. What is shown is opened once, and bwrap binds
 * that open descriptor: a path resolved twice could lead somewhere else the second time.
 */
import { closeSync, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";

// How a path looks inside the sandbox. Later mounts cover earlier ones, so mounts are applied from
// the shallowest path to the deepest; on the same path the later kind in this list wins.
const KINDS = ["empty", "writable", "readonly", "hidden"] as const;
type Kind = (typeof KINDS)[number];
interface Mount {
  kind: Kind;
  /** Real path (no symlinks): the destination, and for a tmpfs all there is. */
  path: string;
  /** Hidden non-directories are covered with /dev/null instead of a tmpfs. */
  file?: boolean;
  /** What a writable or read-only mount shows: the place opened once. */
  place?: Place;
}

/** Where bwrap finds the first descriptor of a sandbox's mounts; the others follow it. */
const SANDBOX_FIRST_FD = 4;

/** Open without reading or writing (Linux's O_PATH): a handle on the place itself. */
const O_PATH = 0o10000000;

/**
 * A file or directory opened once: whatever happens to the path afterwards (a symlink flipped, a
 * directory renamed), `fd` is still what `path` named when it was opened.
 */
export interface Place {
  fd: number;
  /** Where it is, as the kernel names the open descriptor: a real path. */
  path: string;
  directory: boolean;
}

/**
 * Opens `path`, following its symlinks as they are now, and learns where it really is from the
 * open descriptor: undefined when nothing is there. Close it with `closePlace`.
 */
export function openPlace(path: string): Place | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_PATH);
  } catch {
    return undefined;
  }
  try {
    const at = readlinkSync(`/proc/self/fd/${fd}`);
    const opened = fstatSync(fd);
    // Deleted meanwhile, or out of this process's sight: the name leads elsewhere or nowhere.
    const there = isAbsolute(at) ? statSync(at) : undefined;
    if (!there || there.dev !== opened.dev || there.ino !== opened.ino) throw new Error(`${path} moved while opened`);
    return { fd, path: at, directory: opened.isDirectory() };
  } catch {
    closeSync(fd);
    return undefined;
  }
}

export function closePlace(place: Place | undefined): void {
  if (place) closeSync(place.fd);
}

const depth = (path: string) => (path === sep ? 0 : path.split(sep).length - 1);
export const isWithin = (path: string, dir: string) => path === dir || path.startsWith(dir === sep ? dir : dir + sep);

/** The real path, or undefined when the path does not exist. */
export function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The mount deciding what `path` shows: the deepest one at or above it (none: the read-only host root). */
function covering(path: string, mounts: Mount[]): Kind | "root" {
  let best: Mount | undefined;
  for (const mount of mounts) {
    if (isWithin(path, mount.path) && (!best || depth(mount.path) >= depth(best.path))) best = mount;
  }
  return best?.kind ?? "root";
}

/** Every symlink met while resolving `path`, each at its real location, with its target as written. */
function symlinksOnTheWay(path: string): Array<{ at: string; target: string }> {
  const found: Array<{ at: string; target: string }> = [];
  const pending = path.split(sep).filter(Boolean);
  let resolved: string = sep;
  for (let hops = 0; pending.length > 0 && hops < 40; ) {
    const name = pending.shift()!;
    if (name === ".") continue;
    if (name === "..") {
      resolved = dirname(resolved);
      continue;
    }
    const candidate = join(resolved, name);
    let isLink: boolean;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      break;
    }
    if (!isLink) {
      resolved = candidate;
      continue;
    }
    hops++;
    const target = readlinkSync(candidate);
    found.push({ at: candidate, target });
    pending.unshift(...target.split(sep).filter(Boolean));
    if (isAbsolute(target)) resolved = sep;
  }
  return found;
}

export interface MountPaths {
  /** Replaced by an empty, writable tmpfs (the home, /tmp). */
  empty: string[];
  /** Shown writable, or read-only: places opened (and checked) by the caller. */
  writable: Place[];
  readonly: Place[];
  /** Replaced by an empty view: a tmpfs thrown away with the run, or /dev/null (read-only) for a file. */
  hidden: string[];
}

/** The mount arguments, and the descriptors they name: SANDBOX_FIRST_FD is `fds[0]`, and so on. */
export interface Mounts {
  args: string[];
  fds: number[];
}

/**
 * The mount arguments for `paths`, shallowest first, leaving out what would change nothing, then
 * a `--symlink` for each link met on the way to `reachable` that sits in an emptied or hidden
 * directory (Claude Code in ~/.local/bin pointing into ~/.local/share, a project reached through
 * ~/work). Paths that do not exist are skipped: there is nothing to show or hide. Every place
 * shown is bound through its descriptor (`fds`, in the order the arguments name them); the caller
 * still owns and closes them all.
 */
export function mountArgs(paths: MountPaths, reachable: string[]): Mounts {
  const wanted: Mount[] = [];
  for (const kind of KINDS) {
    if (kind === "writable" || kind === "readonly") {
      for (const place of paths[kind]) wanted.push({ kind, path: place.path, file: !place.directory, place });
      continue;
    }
    for (const path of paths[kind]) {
      const at = real(path);
      if (at) wanted.push({ kind, path: at, file: !statSync(at).isDirectory() });
    }
  }
  wanted.sort((a, b) => depth(a.path) - depth(b.path) || KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind));

  const mounts: Mount[] = [];
  const args: string[] = [];
  const fds: number[] = [];
  for (const mount of wanted) {
    const under = covering(mount.path, mounts);
    // Skip what would change nothing: showing what is already shown, hiding what is already hidden.
    if (mount.kind === "writable" && under === "writable") continue;
    if (mount.kind === "readonly" && (under === "root" || under === "readonly")) continue;
    if (mount.kind === "hidden" && (under === "empty" || under === "hidden")) continue;
    mounts.push(mount);
    if (mount.place) {
      const fd = SANDBOX_FIRST_FD + fds.length;
      fds.push(mount.place.fd);
      args.push(mount.kind === "writable" ? "--bind-fd" : "--ro-bind-fd", String(fd), mount.path);
    } else if (mount.kind === "empty") {
      args.push(...(mount.path === "/tmp" ? ["--perms", "1777"] : []), "--tmpfs", mount.path);
    } else if (mount.file) args.push("--ro-bind", "/dev/null", mount.path);
    else args.push("--tmpfs", mount.path);
  }

  const links = new Map<string, string>();
  for (const path of reachable) {
    if (!real(path)) continue;
    for (const link of symlinksOnTheWay(resolve(path))) {
      const under = covering(link.at, mounts);
      if (under === "empty" || under === "hidden") links.set(link.at, link.target);
    }
  }
  for (const [at, target] of links) args.push("--symlink", target, at);
  return { args, fds };
}
