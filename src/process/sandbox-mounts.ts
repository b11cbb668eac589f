/**
 * How paths look inside the sandbox: from the paths to empty, show writable, show read-only and
 * hide, the bwrap mount arguments, each applied where it lands as meant, and the symlinks that
 * would dangle in an emptied directory made again.
 */
import { lstatSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";

// How a path looks inside the sandbox. Later mounts cover earlier ones, so mounts are applied from
// the shallowest path to the deepest; on the same path the later kind in this list wins.
const KINDS = ["empty", "writable", "readonly", "hidden"] as const;
type Kind = (typeof KINDS)[number];
interface Mount {
  kind: Kind;
  /** Real path (no symlinks), both source and destination. */
  path: string;
  /** Hidden non-directories are covered with /dev/null instead of a tmpfs. */
  file?: boolean;
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
  writable: string[];
  readonly: string[];
  /** Replaced by an empty view: a tmpfs thrown away with the run, or /dev/null (read-only) for a file. */
  hidden: string[];
}

/**
 * The mount arguments for `paths`, shallowest first, leaving out what would change nothing, then
 * a `--symlink` for each link met on the way to `reachable` that sits in an emptied or hidden
 * directory (Claude Code in ~/.local/bin pointing into ~/.local/share, a project reached through
 * ~/work). Paths that do not exist are skipped: there is nothing to show or hide.
 */
export function mountArgs(paths: MountPaths, reachable: string[]): string[] {
  const wanted: Mount[] = [];
  for (const kind of KINDS) {
    for (const path of paths[kind]) {
      const at = real(path);
      if (at) wanted.push({ kind, path: at, file: !statSync(at).isDirectory() });
    }
  }
  wanted.sort((a, b) => depth(a.path) - depth(b.path) || KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind));

  const mounts: Mount[] = [];
  const args: string[] = [];
  for (const mount of wanted) {
    const under = covering(mount.path, mounts);
    // Skip what would change nothing: showing what is already shown, hiding what is already hidden.
    if (mount.kind === "writable" && under === "writable") continue;
    if (mount.kind === "readonly" && (under === "root" || under === "readonly")) continue;
    if (mount.kind === "hidden" && (under === "empty" || under === "hidden")) continue;
    mounts.push(mount);
    if (mount.kind === "empty") args.push(...(mount.path === "/tmp" ? ["--perms", "1777"] : []), "--tmpfs", mount.path);
    else if (mount.kind === "writable") args.push("--bind", mount.path, mount.path);
    else if (mount.kind === "readonly") args.push("--ro-bind", mount.path, mount.path);
    else if (mount.file) args.push("--ro-bind", "/dev/null", mount.path);
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
  return args;
}
