// Bubblewrap sandbox for executors: the command prefix that confines one executor, and a host check.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";

/** A profile's `sandbox` option once parsed: `true` is both lists empty. Paths may start with `~`. */
export interface SandboxSettings {
  extraWritable: string[];
  extraHidden: string[];
}

export interface BubblewrapOptions {
  /** The run's project directory: writable, and the executor's working directory. */
  projectDir: string;
  /** The runner's home directory, replaced by an empty one. */
  home: string;
  /** The runner's install directory: stays visible (read-only) even inside the home. */
  runnerDir: string;
  /** The runner's own state directories: hidden. */
  stateDirs: string[];
  settings: SandboxSettings;
  /** The executor's environment: CLAUDE_CODE_EXECUTABLE, CLAUDE_CONFIG_DIR, XDG_RUNTIME_DIR and Bun's cache variables are read from it. */
  env: Record<string, string | undefined>;
  /** The JS runtime executable, whose directory stays visible (default: process.execPath). */
  execPath?: string;
  /** The uid bwrap runs as (default: this process's); root gets its capabilities dropped. */
  uid?: number;
  /** The bwrap program (default: `bwrap` from PATH). */
  bwrap?: string;
}

/** `~` and `~/…` become paths in `home`; anything else is returned as is. */
export function expandHome(path: string, home: string): string {
  if (path === "~") return home;
  if (path.startsWith("~/")) return join(home, path.slice(2));
  return path;
}

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
const isWithin = (path: string, dir: string) => path === dir || path.startsWith(dir === sep ? dir : dir + sep);

/** The real path, or undefined when the path does not exist. */
function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The mount deciding what `path` shows: the deepest one at or above it (none: the read-only host root). */
function covering(path: string, mounts: Mount[]): Kind | "root" {
  let best: Mount | undefined;
  for (const mount of mounts) if (isWithin(path, mount.path) && (!best || depth(mount.path) >= depth(best.path))) best = mount;
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

/** Where Bun keeps transpiled sources of big files, found as Bun finds it. */
function bunTranspilerCache(env: Record<string, string | undefined>): string | undefined {
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

/**
 * The command prefix that runs an executor in a bubblewrap sandbox: append the executor's argv.
 * Spawn it detached and stop it by signalling its process group (SIGTERM, then SIGKILL).
 */
export function bubblewrapArgv(options: BubblewrapOptions): string[] {
  const home = absolute(options.home, options.home, "home directory");
  const realHome = real(home);
  if (!realHome || !statSync(realHome).isDirectory()) throw new Error(`Sandbox: home directory ${home} does not exist`);
  if (realHome === sep) throw new Error("Sandbox: the home directory is /, which cannot be replaced by an empty one");
  const project = real(options.projectDir);
  if (!project || !statSync(project).isDirectory()) throw new Error(`Sandbox: project directory ${options.projectDir} does not exist`);
  // The project comes with the run: it must not open up what the sandbox protects. The runner's
  // directory holds code the runner itself loads later (outside any sandbox).
  if (isWithin(realHome, project)) {
    throw new Error(`Sandbox: project directory ${options.projectDir} contains the home directory ${home}, which the sandbox hides`);
  }
  for (const [dir, what] of [[options.runnerDir, "the runner's directory"], ...options.stateDirs.map((d) => [d, "the runner's state directory"])] as const) {
    const realDir = real(dir);
    if (realDir && isWithin(project, realDir)) {
      throw new Error(`Sandbox: project directory ${options.projectDir} is inside ${what} ${dir}, which stays read-only or hidden`);
    }
  }

  // Claude Code keeps credentials, settings and sessions (needed for a resume) in ~/.claude, and
  // its global config in ~/.claude.json (in CLAUDE_CONFIG_DIR when that is set). A bind needs an
  // existing source, so both are created when missing: without a persistent ~/.claude.json every
  // run would write a fresh one into the emptied home, back it up into ~/.claude/backups, and
  // warn on the next run that the file is gone.
  const claudeDirs = [join(home, ".claude")];
  const configDir = options.env.CLAUDE_CONFIG_DIR;
  if (configDir) claudeDirs.push(absolute(configDir, home, "CLAUDE_CONFIG_DIR"));
  for (const dir of claudeDirs) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!configDir && !existsSync(join(home, ".claude.json"))) {
    try {
      writeFileSync(join(home, ".claude.json"), "{}\n", { flag: "wx", mode: 0o600 });
    } catch {
      // Created meanwhile by a concurrent run, or a dangling symlink: bound if it exists.
    }
  }
  const claudeCode = options.env.CLAUDE_CODE_EXECUTABLE;
  const runtimeDir = dirname(options.execPath ?? process.execPath);

  const writable = [options.projectDir, ...claudeDirs, join(home, ".claude.json")];
  for (const path of options.settings.extraWritable) writable.push(absolute(path, home, "extra_writable path"));
  const readonly = [options.runnerDir, runtimeDir];
  if (claudeCode && isAbsolute(claudeCode)) readonly.push(claudeCode);
  // Without its cache a Bun executor re-transpiles the Agent SDK on every start (+100 ms).
  // Read-only: an entry written in here would be code the runner outside loads.
  const transpilerCache = bunTranspilerCache(options.env);
  if (transpilerCache && isAbsolute(transpilerCache)) readonly.push(transpilerCache);
  const hidden = [...options.stateDirs];
  for (const path of options.settings.extraHidden) hidden.push(absolute(path, home, "extra_hidden path"));
  // The per-user runtime directory holds the systemd user bus and agent sockets: a socket on a
  // read-only mount still connects, and the user bus runs commands outside the sandbox.
  const uid = options.uid ?? process.getuid?.() ?? -1;
  hidden.push(`/run/user/${uid}`);
  if (options.env.XDG_RUNTIME_DIR) hidden.push(options.env.XDG_RUNTIME_DIR);

  const wanted: Mount[] = [
    { kind: "empty", path: realHome },
    { kind: "empty", path: "/tmp" },
  ];
  const add = (kind: Kind, paths: string[]) => {
    for (const path of paths) {
      const at = real(path);
      // Paths that do not exist are skipped: there is nothing to show or hide.
      if (at) wanted.push({ kind, path: at, file: !statSync(at).isDirectory() });
    }
  };
  add("writable", writable);
  add("readonly", readonly);
  add("hidden", hidden);
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

  // Paths given through symlinks that now sit in an emptied directory (a CLAUDE_CODE_EXECUTABLE
  // in ~/.local/bin pointing into ~/.local/share, a project reached through ~/work) would
  // dangle: make the same links again inside the sandbox.
  const links = new Map<string, string>();
  const reachable = [home, options.projectDir, ...writable, ...readonly];
  for (const path of reachable) {
    if (!real(path)) continue;
    for (const link of symlinksOnTheWay(resolve(path))) {
      const under = covering(link.at, mounts);
      if (under === "empty" || under === "hidden") links.set(link.at, link.target);
    }
  }
  for (const [at, target] of links) args.push("--symlink", target, at);

  return [
    // bwrap dies on SIGTERM and --die-with-parent then SIGKILLs the sandbox at once: the outer
    // bwrap ignores SIGTERM so the executor gets its grace period; SIGKILL still ends it all.
    "env",
    "--ignore-signal=TERM",
    options.bwrap ?? "bwrap",
    "--die-with-parent",
    "--unshare-pid",
    // Root keeps all capabilities in bwrap by default and could remount / read-write.
    ...(uid === 0 ? ["--cap-drop", "ALL"] : []),
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    ...args,
    "--chdir",
    project,
    // A TMPDIR of the host may be read-only or hidden in here; /tmp is private and writable.
    "--setenv",
    "TMPDIR",
    "/tmp",
    "--",
    "env",
    "--default-signal=TERM",
  ];
}

const PACKAGE_HINT = "Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap).";
const USERNS_SYSCTLS = ["kernel.unprivileged_userns_clone", "user.max_user_namespaces", "kernel.apparmor_restrict_unprivileged_userns"];

/** Where `program` is on PATH, if it is there and executable. */
function onPath(program: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

function sysctlValues(): string {
  return USERNS_SYSCTLS.map((name) => {
    try {
      return `${name} = ${readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim()}`;
    } catch {
      return `${name} (not on this kernel)`;
    }
  }).join(", ");
}

/**
 * Runs a tiny sandbox the way executors are run, and says in words why it failed, if it did.
 * Synchronous and quick (a few ms): meant for start-up.
 */
export function checkBubblewrap(options: { env?: Record<string, string | undefined>; uid?: number } = {}): { ok: true } | { ok: false; reason: string } {
  const env = options.env ?? process.env;
  const bwrap = onPath("bwrap", env.PATH);
  if (!bwrap) return { ok: false, reason: `The sandbox needs bubblewrap, but \`bwrap\` is not on PATH. ${PACKAGE_HINT}` };
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const argv = ["--ignore-signal=TERM", bwrap, "--die-with-parent", "--unshare-pid", ...(uid === 0 ? ["--cap-drop", "ALL"] : []),
    "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--", "env", "--default-signal=TERM", "true"];
  const result = spawnSync("env", argv, { env: env as NodeJS.ProcessEnv, encoding: "utf8", timeout: 10_000, stdio: ["ignore", "ignore", "pipe"] });
  if (result.error) return { ok: false, reason: `The sandbox check could not run \`env ${argv.join(" ")}\`: ${result.error.message}` };
  if (result.status === 0) return { ok: true };
  const stderr = (result.stderr ?? "").trim().replace(/\.$/, "") || `exit status ${result.status ?? result.signal}`;
  if (/^env: (unrecognized|invalid) option/m.test(stderr)) {
    return { ok: false, reason: `The sandbox needs GNU coreutils env 8.31 or later (for --ignore-signal): ${stderr}` };
  }
  return {
    ok: false,
    reason:
      `bubblewrap (${bwrap}, Debian package \`bubblewrap\`) cannot create a sandbox: ${stderr}. ` +
      "This usually means unprivileged user namespaces are disabled, or /proc cannot be mounted (inside a container). " +
      `Check the sysctls: ${sysctlValues()}; kernel.unprivileged_userns_clone must be 1 where it exists, ` +
      "user.max_user_namespaces above 0, kernel.apparmor_restrict_unprivileged_userns 0 (or an AppArmor profile allowing bwrap).",
  };
}
