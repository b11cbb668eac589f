/**
 * The bubblewrap sandbox of an executor: the command prefix that confines it to its project. The
 * whole filesystem read-only, the project writable, a private /tmp, the home emptied except
 * Claude Code's own files, the runner's state hidden, a PID namespace of its own.
 */
import { closeSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { constants, homedir } from "node:os";
import { dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import type { Env } from "../shared/env.ts";
import { closePlace, isWithin, mountArgs, openPlace, type Place, real } from "./sandbox-mounts.ts";

/** A profile's `sandbox` option once parsed: `true` is both lists empty. Paths may start with `~/`. */
export interface SandboxSettings {
  extraWritable: string[];
  extraHidden: string[];
}

/**
 * What an executor needs in its sandbox beyond its project, as the executor declares it: paths may
 * start with `~/` (the sandbox's home).
 */
export interface SandboxNeeds {
  /** Directories it keeps writable (created when missing: a bind needs an existing source). */
  writableDirs: string[];
  /** Files it keeps writable; created with `initial` when missing and given, else bound only if they exist. */
  writableFiles: Array<{ path: string; initial?: string }>;
  /** Paths that stay visible read-only wherever they are (programs it runs). */
  readonly: string[];
}

export const NO_SANDBOX_NEEDS: SandboxNeeds = { writableDirs: [], writableFiles: [], readonly: [] };

/** What a caller says about an executor's sandbox; its project is the executor's working directory. */
export interface SandboxOptions {
  settings: SandboxSettings;
  /** The runner's own state directories (run journal, exec's sessions): hidden. */
  stateDirs: string[];
  /** The runner's install directory, visible read-only even inside the home. */
  runnerDir: string;
  /** What the executor needs besides its project (default: nothing). */
  needs?: SandboxNeeds;
  /** The home directory that is emptied (default: the executor's HOME, else this user's). */
  home?: string;
}

export interface BubblewrapOptions extends SandboxOptions {
  /** The run's project directory: writable, and the executor's working directory. */
  projectDir: string;
  /** The executor's environment: HOME, XDG_RUNTIME_DIR and Bun's cache variables are read from it. */
  env: Env;
  /** Programs that must stay visible (read-only) wherever they are: the executor's own. */
  programs?: string[];
  /** The JS runtime executable, whose directory stays visible (default: process.execPath). */
  execPath?: string;
  /** The uid bwrap runs as (default: this process's); root gets its capabilities dropped. */
  uid?: number;
  /** The bwrap and env programs (default: found on this process's PATH). */
  bwrap?: string;
  envProgram?: string;
}

/**
 * Sockets of daemons that run anything as root for whoever can connect (a read-only mount does
 * not stop a connect): covered so that membership of the docker group is not a way out.
 */
const HOST_SOCKETS = ["/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock"];

/** `~` and `~/…` become paths in `home`; anything else is returned as is. */
export function expandHome(path: string, home: string): string {
  if (path === "~") return home;
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return path;
}

/** Where Bun keeps transpiled sources of big files, found as Bun finds it. */
function bunTranspilerCache(env: Env): string | undefined {
  const explicit = env.BUN_RUNTIME_TRANSPILER_CACHE_PATH;
  if (explicit !== undefined) return explicit === "" || explicit === "0" ? undefined : explicit;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "bun", "@t@");
  return env.HOME ? join(env.HOME, ".bun", "install", "cache", "@t@") : undefined;
}

function absolute(path: string, home: string, what: string): string {
  const expanded = expandHome(path, home);
  if (!isAbsolute(expanded)) throw new Error(`Sandbox: ${what} ${path} is not an absolute path (nor starts with ~/)`);
  return normalize(expanded);
}

/** `program` on PATH (or the path itself when it has a slash); undefined when not there. */
export function findProgram(program: string, path: string | undefined): string | undefined {
  return Bun.which(program, { PATH: path ?? "" }) ?? undefined;
}

/** Where an executor's sandbox starts: bwrap, its namespaces, the read-only root, /dev, /proc, a private /tmp. */
export function sandboxBase(programs: { bwrap: string; env: string }, uid: number): string[] {
  return [
    // bwrap dies on SIGTERM, and --die-with-parent then SIGKILLs the sandbox at once: the outer
    // bwrap ignores SIGTERM so that the executor gets its grace period; SIGKILL still ends it all.
    programs.env,
    "--ignore-signal=TERM",
    programs.bwrap,
    "--die-with-parent",
    "--unshare-pid",
    // System V shared memory and message queues of the user's other processes.
    "--unshare-ipc",
    // No --new-session: that would take the sandbox out of the process group that stops are sent
    // to. The spawn already made the group a session without a controlling terminal, so an agent
    // cannot push input into one (TIOCSTI).
    // Root keeps all capabilities in bwrap by default and could remount / read-write.
    ...(uid === 0 ? ["--cap-drop", "ALL"] : []),
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    // --dev leaves /dev/shm unwritable; POSIX semaphores (Python's multiprocessing) need it.
    "--perms",
    "1777",
    "--tmpfs",
    "/dev/shm",
    "--proc",
    "/proc",
  ];
}

/** The executor's writable needs as real paths in `home`, created where it asks for that. */
function neededWritable(needs: SandboxNeeds, home: string): string[] {
  const dirs = needs.writableDirs.map((dir) => absolute(dir, home, "writable directory"));
  for (const dir of dirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = needs.writableFiles.map(({ path, initial }) => {
    const file = absolute(path, home, "writable file");
    if (initial !== undefined && !existsSync(file)) {
      try {
        writeFileSync(file, initial, { flag: "wx", mode: 0o600 });
      } catch {
        // Created meanwhile by a concurrent run, or a dangling symlink: bound if it exists.
      }
    }
    return file;
  });
  return [...dirs, ...files];
}

/** Kernel filesystems: writable in the sandbox they would reach other processes and the host. */
const SYSTEM_DIRS = ["/proc", "/sys", "/dev"];

/** Directories the sandbox protects from being written: the runner's own, what they are, where they really are. */
type Guarded = Array<{ dir: string; which: string; realDir: string }>;

const guard = (dir: string, which: string) => ({ dir, which, realDir: real(dir) ?? resolve(dir) });

/**
 * Nothing the sandbox makes writable may open up what it protects: be inside the runner's
 * directory (code the runner itself loads later, outside any sandbox) or a state directory, or
 * contain one (the agent could rename a parent of it and put its own in its place).
 */
function checkWritable(place: Place, given: string, what: string, guarded: Guarded): void {
  for (const { dir, which, realDir } of guarded) {
    if (isWithin(place.path, realDir)) {
      throw new Error(`Sandbox: ${what} ${given} is inside ${which} ${dir}, which stays read-only or hidden`);
    }
    if (isWithin(realDir, place.path)) {
      throw new Error(`Sandbox: ${what} ${given} contains ${which} ${dir}, which the agent could move or replace`);
    }
  }
}

/**
 * The project, opened once and checked where it really is. It comes with the run, and may be
 * reached through symlinks the agent of an earlier run could write: what is mounted is this open
 * directory, never the path resolved again.
 */
function openProject(projectDir: string, realHome: string, home: string, guarded: Guarded): Place {
  const project = openPlace(projectDir);
  if (!project?.directory) {
    closePlace(project);
    throw new Error(`Sandbox: project directory ${projectDir} does not exist`);
  }
  try {
    const system = SYSTEM_DIRS.find((dir) => isWithin(project.path, dir));
    if (system) throw new Error(`Sandbox: project directory ${projectDir} is in ${system}, a system directory`);
    if (isWithin(realHome, project.path)) {
      throw new Error(
        `Sandbox: project directory ${projectDir} contains the home directory ${home}, which the sandbox hides`,
      );
    }
    checkWritable(project, projectDir, "project directory", guarded);
  } catch (error) {
    closePlace(project);
    throw error;
  }
  return project;
}

/** The home to empty, the runner's directory and the project (opened: close it), checked. */
function openPlaces(options: Omit<BubblewrapOptions, "settings">) {
  const home = normalize(options.home ?? (options.env.HOME || homedir()));
  if (!isAbsolute(home)) throw new Error(`Sandbox: home directory ${home} is not an absolute path`);
  const realHome = real(home);
  if (!realHome || !statSync(realHome).isDirectory()) throw new Error(`Sandbox: home directory ${home} does not exist`);
  if (realHome === sep) throw new Error("Sandbox: the home directory is /, which cannot be replaced by an empty one");
  const { runnerDir } = options;
  // Resolved once: each writable place is checked against them.
  const guarded: Guarded = [
    guard(runnerDir, "the runner's directory"),
    ...options.stateDirs.map((dir) => guard(dir, "the runner's state directory")),
  ];
  return { home, realHome, runnerDir, guarded, project: openProject(options.projectDir, realHome, home, guarded) };
}

/**
 * Checks the home to empty and the project: throws, naming the path, when either cannot be
 * sandboxed. Touches nothing.
 */
export function checkSandboxPlaces(options: Omit<BubblewrapOptions, "settings">): void {
  closePlace(openPlaces(options).project);
}

/**
 * The command prefix that runs an executor in a bubblewrap sandbox, and the descriptors of what
 * it shows: spawn `argv` followed by the executor's argv, with `fds` as the child's descriptors
 * 4, 5, … (bwrap closes them once it has mounted them), then call `closeSandboxFds`. Spawn it in
 * a process group of its own and stop it by signalling the group (SIGTERM, then SIGKILL).
 */
export interface SandboxPrefix {
  argv: string[];
  fds: number[];
}

/** Closes this process's descriptors of a sandbox prefix (once the sandbox is spawned, or not to be). */
export function closeSandboxFds(prefix: SandboxPrefix): void {
  for (const fd of prefix.fds) closeSync(fd);
}

/** Opens each path that exists; a writable one is checked against what the sandbox protects. */
function openAll(paths: string[], opened: Place[], check?: (place: Place, given: string) => void): Place[] {
  const places: Place[] = [];
  for (const path of paths) {
    const place = openPlace(path);
    if (!place) continue;
    opened.push(place);
    check?.(place, path);
    places.push(place);
  }
  return places;
}

/**
 * The sandbox of an executor (see SandboxPrefix). Throws, naming the path, when the project or
 * home cannot be sandboxed, or a writable path would open up the runner's directory or state.
 */
export function sandboxPrefix(options: BubblewrapOptions): SandboxPrefix {
  const { env } = options;
  const { home, realHome, runnerDir, guarded, project } = openPlaces(options);
  const opened: Place[] = [project];
  try {
    const needs = options.needs ?? NO_SANDBOX_NEEDS;
    const writablePaths = [
      ...neededWritable(needs, home),
      ...options.settings.extraWritable.map((path) => absolute(path, home, "extra_writable path")),
    ];
    const writable = [
      project,
      ...openAll(writablePaths, opened, (place, given) => checkWritable(place, given, "writable path", guarded)),
    ];
    const readonlyPaths = [runnerDir, dirname(options.execPath ?? process.execPath)];
    for (const program of options.programs ?? []) if (isAbsolute(program)) readonlyPaths.push(program);
    // What the executor runs, wherever it is (Claude Code's binary in ~/.local/bin, say).
    for (const path of needs.readonly) readonlyPaths.push(absolute(path, home, "read-only path"));
    // Without its cache a Bun executor re-transpiles the Agent SDK on every start (+100 ms).
    // Read-only: an entry written in here would be code the runner outside loads.
    const transpilerCache = bunTranspilerCache(env);
    if (transpilerCache && isAbsolute(transpilerCache)) readonlyPaths.push(transpilerCache);
    const readonly = openAll(readonlyPaths, opened);
    const hidden = [...options.stateDirs, ...HOST_SOCKETS];
    for (const path of options.settings.extraHidden) hidden.push(absolute(path, home, "extra_hidden path"));
    // The per-user runtime directory holds the systemd user bus and agent sockets: a socket on a
    // read-only mount still connects, and the user bus runs commands outside the sandbox.
    const uid = options.uid ?? process.getuid?.() ?? -1;
    hidden.push(`/run/user/${uid}`);
    if (env.XDG_RUNTIME_DIR) hidden.push(env.XDG_RUNTIME_DIR);

    // The paths as given: the links on the way to them are made again where they would dangle.
    const mounts = mountArgs({ empty: [realHome, "/tmp"], writable, readonly, hidden }, [
      home,
      options.projectDir,
      ...writablePaths,
      ...readonlyPaths,
    ]);

    const bwrap = options.bwrap ?? findProgram("bwrap", process.env.PATH);
    const envProgram = options.envProgram ?? findProgram("env", process.env.PATH);
    if (!bwrap || !envProgram) {
      throw new Error(`Sandbox: ${bwrap ? "env" : "bwrap"} is not on PATH (${process.env.PATH ?? "PATH not set"})`);
    }
    // What is not mounted (already shown by a mount above it) is not passed on.
    for (const place of opened) if (!mounts.fds.includes(place.fd)) closePlace(place);
    opened.length = 0;
    const argv = [
      ...sandboxBase({ bwrap, env: envProgram }, uid),
      ...mounts.args,
      "--chdir",
      project.path,
      // A TMPDIR of the host may be read-only or hidden in here; /tmp is private and writable.
      "--setenv",
      "TMPDIR",
      "/tmp",
      "--",
      // The executor itself takes SIGTERM as usual (the ignored disposition would be inherited).
      envProgram,
      "--default-signal=TERM",
    ];
    return { argv, fds: mounts.fds };
  } finally {
    for (const place of opened) closePlace(place);
  }
}

/**
 * bwrap reports an executor that a signal ended as exit code 128 + the signal's number: the
 * signal's name, or undefined for an ordinary exit code.
 */
export function signalOfSandboxExit(code: number): string | undefined {
  if (code <= 128) return undefined;
  return Object.entries(constants.signals).find(([, number]) => number === code - 128)?.[0];
}
