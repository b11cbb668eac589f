/**
 * The bubblewrap sandbox of an executor: the command prefix that confines it to its project. The
 * whole filesystem read-only, the project writable, a private /tmp, the home emptied except
 * Claude Code's own files, the runner's state hidden, a PID namespace of its own.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { constants, homedir } from "node:os";
import { dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import type { Env } from "../shared/env.ts";
import { isWithin, mountArgs, real } from "./sandbox-mounts.ts";

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

function checkProject(projectDir: string, realHome: string, home: string, guarded: Array<[string, string]>): string {
  const project = real(projectDir);
  if (!project || !statSync(project).isDirectory()) {
    throw new Error(`Sandbox: project directory ${projectDir} does not exist`);
  }
  const system = SYSTEM_DIRS.find((dir) => isWithin(project, dir));
  if (system) throw new Error(`Sandbox: project directory ${projectDir} is in ${system}, a system directory`);
  // The project comes with the run: it must not open up what the sandbox protects. The runner's
  // directory holds code the runner itself loads later (outside any sandbox).
  if (isWithin(realHome, project)) {
    throw new Error(
      `Sandbox: project directory ${projectDir} contains the home directory ${home}, which the sandbox hides`,
    );
  }
  for (const [dir, what] of guarded) {
    const realDir = real(dir) ?? resolve(dir);
    if (isWithin(project, realDir)) {
      throw new Error(
        `Sandbox: project directory ${projectDir} is inside ${what} ${dir}, which stays read-only or hidden`,
      );
    }
    // Inside a writable project, the agent could rename a parent of the directory and put its own
    // in its place, which the runner then uses outside the sandbox.
    if (isWithin(realDir, project)) {
      throw new Error(
        `Sandbox: project directory ${projectDir} contains ${what} ${dir}, which the agent could move or replace`,
      );
    }
  }
  return project;
}

/**
 * The home to empty, the runner's directory and the project, checked: throws, naming the path,
 * when the project or home cannot be sandboxed. Touches nothing.
 */
export function sandboxPlaces(options: Omit<BubblewrapOptions, "settings">) {
  const home = normalize(options.home ?? (options.env.HOME || homedir()));
  if (!isAbsolute(home)) throw new Error(`Sandbox: home directory ${home} is not an absolute path`);
  const realHome = real(home);
  if (!realHome || !statSync(realHome).isDirectory()) throw new Error(`Sandbox: home directory ${home} does not exist`);
  if (realHome === sep) throw new Error("Sandbox: the home directory is /, which cannot be replaced by an empty one");
  const { runnerDir } = options;
  const guarded: Array<[string, string]> = [
    [runnerDir, "the runner's directory"],
    ...options.stateDirs.map((dir): [string, string] => [dir, "the runner's state directory"]),
  ];
  return { home, realHome, runnerDir, project: checkProject(options.projectDir, realHome, home, guarded) };
}

/**
 * The command prefix that runs an executor in a bubblewrap sandbox: append the executor's argv.
 * Spawn it in a process group of its own and stop it by signalling the group (SIGTERM, then
 * SIGKILL). Throws, naming the path, when the project or home cannot be sandboxed.
 */
export function bubblewrapArgv(options: BubblewrapOptions): string[] {
  const { env } = options;
  const { home, realHome, runnerDir, project } = sandboxPlaces(options);

  const needs = options.needs ?? NO_SANDBOX_NEEDS;
  const writable = [options.projectDir, ...neededWritable(needs, home)];
  for (const path of options.settings.extraWritable) writable.push(absolute(path, home, "extra_writable path"));
  const readonly = [runnerDir, dirname(options.execPath ?? process.execPath)];
  for (const program of options.programs ?? []) if (isAbsolute(program)) readonly.push(program);
  // What the executor runs, wherever it is (Claude Code's binary in ~/.local/bin, say).
  for (const path of needs.readonly) readonly.push(absolute(path, home, "read-only path"));
  // Without its cache a Bun executor re-transpiles the Agent SDK on every start (+100 ms).
  // Read-only: an entry written in here would be code the runner outside loads.
  const transpilerCache = bunTranspilerCache(env);
  if (transpilerCache && isAbsolute(transpilerCache)) readonly.push(transpilerCache);
  const hidden = [...options.stateDirs, ...HOST_SOCKETS];
  for (const path of options.settings.extraHidden) hidden.push(absolute(path, home, "extra_hidden path"));
  // The per-user runtime directory holds the systemd user bus and agent sockets: a socket on a
  // read-only mount still connects, and the user bus runs commands outside the sandbox.
  const uid = options.uid ?? process.getuid?.() ?? -1;
  hidden.push(`/run/user/${uid}`);
  if (env.XDG_RUNTIME_DIR) hidden.push(env.XDG_RUNTIME_DIR);

  const args = mountArgs({ empty: [realHome, "/tmp"], writable, readonly, hidden }, [
    home,
    options.projectDir,
    ...writable,
    ...readonly,
  ]);

  const bwrap = options.bwrap ?? findProgram("bwrap", process.env.PATH);
  const envProgram = options.envProgram ?? findProgram("env", process.env.PATH);
  if (!bwrap || !envProgram) {
    throw new Error(`Sandbox: ${bwrap ? "env" : "bwrap"} is not on PATH (${process.env.PATH ?? "PATH not set"})`);
  }
  return [
    ...sandboxBase({ bwrap, env: envProgram }, uid),
    ...args,
    "--chdir",
    project,
    // A TMPDIR of the host may be read-only or hidden in here; /tmp is private and writable.
    "--setenv",
    "TMPDIR",
    "/tmp",
    "--",
    // The executor itself takes SIGTERM as usual (the ignored disposition would be inherited).
    envProgram,
    "--default-signal=TERM",
  ];
}

/**
 * bwrap reports an executor that a signal ended as exit code 128 + the signal's number: the
 * signal's name, or undefined for an ordinary exit code.
 */
export function signalOfSandboxExit(code: number): string | undefined {
  if (code <= 128) return undefined;
  return Object.entries(constants.signals).find(([, number]) => number === code - 128)?.[0];
}
