/**
 * The bubblewrap sandbox with real processes: the host check, the prefix's mounts, a probe
 * executor that tries to get out, and a sandboxed ExecutorProcess stopped, killed and orphaned.
 * bubblewrap must be installed (CI installs it): without it these tests fail with the reason.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { claudeCodeSandboxNeeds } from "../../src/executors/sandbox-needs.ts";
import { ExecutorProcess } from "../../src/process/executor-process.ts";
import {
  type BubblewrapOptions,
  closeSandboxFds,
  expandHome,
  type SandboxPrefix,
  sandboxPrefix,
  signalOfSandboxExit,
} from "../../src/process/sandbox.ts";
import { checkBubblewrap, requireSandbox } from "../../src/process/sandbox-check.ts";
import { ConfigError } from "../../src/shared/errors.ts";
import { until } from "../support/fault-tools.ts";
import { REPO_ROOT, TempDirs } from "../support/processes.ts";
import {
  homeWithSecrets,
  needBubblewrap,
  PROBE,
  plant,
  probeResults,
  STUBBORN,
  sandboxOf,
  startDecoy,
} from "../support/sandbox.ts";
import { onTeardown } from "../support/teardown.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());
const noSettings = { extraWritable: [], extraHidden: [] };
const ENV = Bun.which("env")!;
const BWRAP = Bun.which("bwrap") ?? "bwrap";

/** The sandbox's command line alone (its descriptors closed at once): for what it says, not to run. */
function bubblewrapArgv(options: BubblewrapOptions): string[] {
  const prefix = sandboxPrefix(options);
  closeSandboxFds(prefix);
  return prefix.argv;
}

/** Runs `command` in the sandbox `prefix` describes, as the process module spawns it. */
async function run(prefix: SandboxPrefix, command: string[], env: Record<string, string | undefined>, stdin = "{}") {
  let child: Bun.Subprocess<Uint8Array, "pipe", "pipe">;
  try {
    child = Bun.spawn([...prefix.argv, ...command], {
      env,
      stdio: [new TextEncoder().encode(stdin), "pipe", "pipe", "ignore", ...prefix.fds],
      detached: true,
      timeout: 60_000,
    }) as Bun.Subprocess<Uint8Array, "pipe", "pipe">;
  } finally {
    closeSandboxFds(prefix);
  }
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { stdout, stderr, exitCode };
}

describe("the host check", () => {
  test("bubblewrap works on this host", () => {
    expect(checkBubblewrap()).toEqual({ ok: true, bwrap: BWRAP });
  });

  test("no bwrap on PATH: names the package; a sandboxed profile refuses to start with it", () => {
    const empty = temp.make("ar-sbx-path-");
    const result = checkBubblewrap({ env: { PATH: empty } });
    const reason =
      "The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap).";
    expect(result).toEqual({ ok: false, reason });
    expect(() => requireSandbox("coding-sandboxed", { PATH: empty })).toThrow(
      new ConfigError(`Profile 'coding-sandboxed' runs its executors in a sandbox, which this host cannot: ${reason}`),
    );
  });

  test("bwrap that cannot create namespaces: its own message, the package and the sysctls", () => {
    const fake = temp.make("ar-sbx-fake-");
    const message =
      "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.";
    writeFileSync(join(fake, "bwrap"), `#!/bin/sh\necho "${message}" >&2\nexit 1\n`, { mode: 0o755 });
    const result = checkBubblewrap({ env: { PATH: `${fake}:${process.env.PATH}` } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toContain(
      `bubblewrap (${join(fake, "bwrap")}, Debian package \`bubblewrap\`) cannot create a sandbox: ${message.slice(0, -1)}. This usually means`,
    );
    for (const sysctl of [
      "kernel.unprivileged_userns_clone",
      "user.max_user_namespaces",
      "kernel.apparmor_restrict_unprivileged_userns",
    ]) {
      expect(result.reason).toContain(sysctl);
    }
  });
});

describe("sandboxPrefix", () => {
  test("expandHome: ~ and ~/ only", () => {
    expect(expandHome("~", "/home/u")).toBe("/home/u");
    expect(expandHome("~/.cache/pip", "/home/u")).toBe("/home/u/.cache/pip");
    expect(expandHome("~other/x", "/home/u")).toBe("~other/x");
    expect(expandHome("/srv/x", "/home/u")).toBe("/srv/x");
  });

  test("mounts go from the shallowest path to the deepest; what would change nothing is left out", () => {
    const base = temp.make("ar-sbx-argv-", "/var/tmp");
    const home = join(base, "home");
    const project = join(home, "work", "p");
    mkdirSync(project, { recursive: true });
    mkdirSync(join(base, "state"));
    // Not the checkout: it may lie in /tmp, and would then be shown again.
    const runnerDir = join(base, "runner");
    mkdirSync(runnerDir);
    // Likewise the Claude Code binary, else found in the checkout: here on the read-only host, no mount needed.
    const claudeCode = join(base, "claude");
    writeFileSync(claudeCode, "", { mode: 0o755 });
    const argv = bubblewrapArgv({
      projectDir: project,
      home,
      runnerDir,
      stateDirs: [join(home, ".local/state/agent-runner"), join(base, "state"), join(base, "missing")],
      settings: { extraWritable: ["~/missing"], extraHidden: ["~/.ssh"] },
      needs: claudeCodeSandboxNeeds({ CLAUDE_CODE_EXECUTABLE: claudeCode }),
      env: { CLAUDE_CODE_EXECUTABLE: claudeCode },
      uid: 1000,
    });
    expect(argv.join(" ")).toBe(
      [
        `${ENV} --ignore-signal=TERM ${BWRAP} --die-with-parent --unshare-pid --unshare-ipc`,
        "--ro-bind / / --dev /dev --perms 1777 --tmpfs /dev/shm --proc /proc",
        "--perms 1777 --tmpfs /tmp",
        // Same depth: emptied before hidden. The state inside the home and ~/.ssh are hidden already.
        `--tmpfs ${home}`,
        `--tmpfs ${base}/state`,
        // Each shown through the descriptor opened when it was checked.
        `--bind-fd 4 ${home}/.claude`,
        `--bind-fd 5 ${home}/.claude.json`,
        `--bind-fd 6 ${project}`,
        `--chdir ${project} --setenv TMPDIR /tmp -- ${ENV} --default-signal=TERM`,
      ].join(" "),
    );
    // Created on the host so that they can be bound.
    expect(lstatSync(join(home, ".claude")).isDirectory()).toBe(true);
    expect(readFileSync(join(home, ".claude.json"), "utf8")).toBe("{}\n");
  });

  test("as root, capabilities are dropped; a project in /tmp comes after the /tmp tmpfs", () => {
    const home = temp.make("ar-sbx-home-");
    const project = temp.make("ar-sbx-project-");
    const argv = bubblewrapArgv({
      projectDir: project,
      home,
      runnerDir: REPO_ROOT,
      stateDirs: [],
      settings: noSettings,
      env: {},
      uid: 0,
    });
    expect(argv.slice(3, 8)).toEqual(["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--cap-drop", "ALL"]);
    const text = argv.join(" ");
    // The project's bind, wherever the checkout is (under /tmp, the runner's directory is bound after it).
    const projectBind = text.search(new RegExp(`--bind-fd \\d+ ${project} `));
    expect(projectBind).toBeGreaterThan(-1);
    expect(text.indexOf("--tmpfs /tmp ")).toBeLessThan(projectBind);
    expect(text.indexOf("--tmpfs /tmp ")).toBeLessThan(text.indexOf(`--tmpfs ${home} `));
  });

  test("refuses a project that contains the home or lies in the runner's directory or state, and a home that does not exist", () => {
    const home = temp.make("ar-sbx-home-");
    const state = temp.make("ar-sbx-state-");
    mkdirSync(join(state, "p"));
    const other = temp.make("ar-sbx-project-");
    const options = { home, runnerDir: REPO_ROOT, stateDirs: [state], settings: noSettings, env: {} };
    expect(() => bubblewrapArgv({ ...options, projectDir: "/" })).toThrow("contains the home directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: home })).toThrow("contains the home directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: REPO_ROOT })).toThrow("is inside the runner's directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: join(REPO_ROOT, "src") })).toThrow(
      "is inside the runner's directory",
    );
    expect(() => bubblewrapArgv({ ...options, projectDir: join(state, "p") })).toThrow(
      "is inside the runner's state directory",
    );
    expect(() => bubblewrapArgv({ ...options, projectDir: other, home: join(home, "nope") })).toThrow("does not exist");
    expect(() => bubblewrapArgv({ ...options, projectDir: join(home, "nope") })).toThrow("project directory");
    expect(() =>
      bubblewrapArgv({ ...options, projectDir: other, settings: { extraWritable: ["relative/dir"], extraHidden: [] } }),
    ).toThrow("not an absolute path");
  });

  test("refuses a project that contains a state directory or the runner's directory (its agent could move them)", () => {
    const base = temp.make("ar-sbx-nest-", "/var/tmp");
    const home = join(base, "home");
    const project = join(base, "project");
    const state = join(project, "a", "state");
    const runnerDir = join(project, "tools", "agent-runner");
    for (const dir of [home, state, runnerDir]) mkdirSync(dir, { recursive: true });
    const options = { home, runnerDir: REPO_ROOT, stateDirs: [], settings: noSettings, env: {}, projectDir: project };
    expect(() => bubblewrapArgv({ ...options, stateDirs: [state] })).toThrow(
      `Sandbox: project directory ${project} contains the runner's state directory ${state}`,
    );
    expect(() => bubblewrapArgv({ ...options, runnerDir })).toThrow(
      `Sandbox: project directory ${project} contains the runner's directory ${runnerDir}`,
    );
  });

  test("refuses /proc, /sys and /dev, and what lies in them, as a project", () => {
    const home = temp.make("ar-sbx-home-");
    const options = { home, runnerDir: REPO_ROOT, stateDirs: [], settings: noSettings, env: {} };
    for (const projectDir of ["/proc", "/proc/self", "/sys", "/sys/kernel", "/dev", "/dev/shm"]) {
      expect(() => bubblewrapArgv({ ...options, projectDir })).toThrow("a system directory");
    }
  });

  test("an exit code bwrap gives for a signal is read back as the signal", () => {
    expect(signalOfSandboxExit(137)).toBe("SIGKILL");
    expect(signalOfSandboxExit(139)).toBe("SIGSEGV");
    expect(signalOfSandboxExit(1)).toBeUndefined();
    expect(signalOfSandboxExit(128)).toBeUndefined();
  });
});

/** A runner's world under /var/tmp: a home with secrets, state inside and outside it, tools in the home. */
function world() {
  const { base, home, project } = homeWithSecrets(temp);
  const w = {
    base,
    home,
    project,
    outside: join(base, "outside"),
    stateFile: plant(join(home, ".local/state/agent-runner/exec-sessions/ses_1.json"), "PLANTED state"),
    outsideStateFile: plant(join(base, "runner-state/runners/journal.json"), "PLANTED journal"),
    hiddenDir: join(base, "secrets"),
    hiddenFile: plant(join(base, "token.txt"), "PLANTED token"),
    runtimeDir: join(base, "run-user"),
    runnerDir: join(home, "opt/agent-runner"),
    tool: plant(join(home, ".rt/bin/tool"), "#!/bin/sh\necho tool-ran\n", 0o755),
    claudeCode: join(home, ".local/bin/claude"),
    extraWritable: [join(base, "shared"), join(home, ".cache/pip")],
  };
  mkdirSync(w.outside);
  for (const dir of w.extraWritable) mkdirSync(dir, { recursive: true });
  plant(join(w.hiddenDir, "file"), "PLANTED hidden");
  plant(join(w.runtimeDir, "bus"), "PLANTED bus");
  plant(join(w.runnerDir, "VERSION"), "PLANTED 1.0");
  plant(join(home, ".claude.json"), '{"PLANTED":true}');
  // Claude Code as its native installer lays it out: a relative link into a versions directory.
  plant(join(home, ".local/share/claude/versions/1.0.0"), "#!/bin/sh\necho claude-ran\n", 0o755);
  mkdirSync(join(home, ".local/bin"));
  symlinkSync("../share/claude/versions/1.0.0", w.claudeCode);
  return w;
}

type World = ReturnType<typeof world>;

function worldOptions(w: World, env: Record<string, string | undefined>): BubblewrapOptions {
  return {
    projectDir: w.project,
    home: w.home,
    runnerDir: w.runnerDir,
    stateDirs: [join(w.home, ".local/state/agent-runner"), join(w.base, "runner-state")],
    settings: {
      extraWritable: [w.extraWritable[0]!, "~/.cache/pip"],
      extraHidden: [w.hiddenDir, w.hiddenFile, "~/.ssh", join(w.base, "missing")],
    },
    // The probe stands in for an agent: it gets what Claude Code declares.
    needs: claudeCodeSandboxNeeds(env),
    env,
    execPath: w.tool,
    // As the process module passes the executor's program: visible even where the checkout is hidden (/tmp).
    programs: [PROBE],
  };
}

describe("a probe executor inside the sandbox", () => {
  test("cannot get out: writes outside, secrets, state, other processes, /tmp across runs; can write its project and ~/.claude", async () => {
    needBubblewrap();
    const w = world();
    const decoy = startDecoy();
    const mark = `ar-sbx-mark-${process.pid}-${Date.now()}`;
    const env = {
      PATH: process.env.PATH,
      HOME: w.home,
      TMPDIR: w.outside,
      XDG_RUNTIME_DIR: w.runtimeDir,
      CLAUDE_CODE_EXECUTABLE: w.claudeCode,
      PROBE_OUTSIDE: w.outside,
      PROBE_RUNNER_DIR: w.runnerDir,
      PROBE_TOOL: w.tool,
      PROBE_EXTRA_WRITABLE: w.extraWritable.join(" "),
      PROBE_STATE_FILE: w.stateFile,
      PROBE_OUTSIDE_STATE_FILE: w.outsideStateFile,
      PROBE_HIDDEN_DIR: w.hiddenDir,
      PROBE_HIDDEN_FILE: w.hiddenFile,
      PROBE_XDG_RUNTIME_DIR: w.runtimeDir,
      PROBE_RUNNER_PID: String(process.pid),
      PROBE_DECOY_PID: String(decoy.pid),
      PROBE_MARK: mark,
    };
    const first = await run(sandboxPrefix(worldOptions(w, env)), [PROBE], env);
    expect(first.exitCode, first.stderr).toBe(0);
    const results = probeResults(first.stdout);
    // bwrap's init, the probe, and the subshell listing them.
    expect(results.processes).toMatch(/^1 2 \d+$/);
    expect(results).toEqual({
      write_project: "yes",
      write_claude: "yes",
      write_claude_json: "yes",
      // The emptied home is writable, and thrown away with the sandbox.
      write_home: "yes",
      write_outside: "no",
      // The project's parent is in the emptied home: writable, and thrown away.
      write_project_parent: "yes",
      write_runner_dir: "no",
      write_tool_dir: "no",
      write_extra: "yes",
      write_shm: "yes",
      read_ssh_key: "no",
      read_state: "no",
      read_outside_state: "no",
      read_hidden_dir: "no",
      read_hidden_file: "no",
      read_xdg_runtime_dir: "no",
      // Kept visible inside the emptied home: the runner, the runtime, Claude Code through its links.
      read_runner_dir: "yes",
      run_tool: "yes",
      run_claude_code: "yes",
      see_runner: "no",
      signal_runner: "no",
      signal_decoy: "no",
      tmp_leftover_seen: "no",
      leave_tmp: "yes",
      remount_rw: "no",
      unmount_home: "no",
      processes: results.processes!,
      pid: "2",
      capabilities: "0000000000000000",
      tmpdir: "/tmp",
      cwd: w.project,
      lifeline: "",
    });

    const second = probeResults((await run(sandboxPrefix(worldOptions(w, env)), [PROBE], env)).stdout);
    expect(second.tmp_leftover_seen).toBe("no");
    expect(existsSync(join("/tmp", mark))).toBe(false);

    // What it may write is on the host afterwards; nothing else is.
    expect(readFileSync(join(w.project, "written-in-project"), "utf8")).toBe("from-sandbox\n");
    expect(readFileSync(join(w.home, ".claude/written-by-sandbox"), "utf8")).toBe("from-sandbox\n");
    expect(JSON.parse(readFileSync(join(w.home, ".claude.json"), "utf8"))).toEqual({ written: "by-sandbox" });
    for (const dir of w.extraWritable)
      expect(readFileSync(join(dir, "written-by-sandbox"), "utf8")).toBe("from-sandbox\n");
    expect(existsSync(join(w.home, "scratch"))).toBe(false);
    expect(existsSync(join(w.home, "work/written"))).toBe(false);
    expect(readdirSync(w.outside)).toEqual([]);
    expect(readFileSync(w.hiddenFile, "utf8")).toBe("PLANTED token");
    expect(decoy.killed || decoy.exitCode !== null).toBe(false);
    // The link the sandbox made again exists only inside it.
    expect(readlinkSync(w.claudeCode)).toBe("../share/claude/versions/1.0.0");
  });

  test("a project and a home in /tmp, and a project reached through a symlink in the home", async () => {
    needBubblewrap();
    const home = temp.make("ar-sbx-home-");
    plant(join(home, ".ssh/id_ed25519"), "PLANTED private key");
    const project = temp.make("ar-sbx-project-");
    const env = { PATH: process.env.PATH, HOME: home, PROBE_MARK: "m", PROBE_RUNNER_PID: String(process.pid) };
    const options = {
      home,
      runnerDir: REPO_ROOT,
      stateDirs: [],
      settings: noSettings,
      needs: claudeCodeSandboxNeeds(env),
      env,
    };
    const inTmp = probeResults((await run(sandboxPrefix({ ...options, projectDir: project }), [PROBE], env)).stdout);
    expect(inTmp).toMatchObject({
      write_project: "yes",
      write_claude: "yes",
      read_ssh_key: "no",
      see_runner: "no",
      cwd: project,
    });
    expect(existsSync(join(project, "written-in-project"))).toBe(true);

    const target = temp.make("ar-sbx-target-", "/var/tmp");
    symlinkSync(target, join(home, "linked-project"));
    const given = join(home, "linked-project");
    const probe = `test -d ${given} && echo through-link > ${given}/via-link && cat ${given}/via-link && pwd`;
    const viaLink = await run(sandboxPrefix({ ...options, projectDir: given }), ["sh", "-c", probe], env);
    expect(viaLink.exitCode, viaLink.stderr).toBe(0);
    expect(viaLink.stdout).toBe(`through-link\n${target}\n`);
    expect(readFileSync(join(target, "via-link"), "utf8")).toBe("through-link\n");
  });
});

describe("a sandboxed ExecutorProcess", () => {
  function start(argv: string[], extraEnv: Record<string, string> = {}) {
    const { home, project, base } = homeWithSecrets(temp);
    const stateDir = join(base, "state");
    const journal = plant(join(stateDir, "runners/journal.json"), "PLANTED journal");
    const executor = new ExecutorProcess({
      argv,
      input: "{}",
      env: {
        PATH: process.env.PATH,
        HOME: home,
        PROBE_RUNNER_PID: String(process.pid),
        PROBE_STATE_FILE: journal,
        ...extraEnv,
      },
      cwd: project,
      stdout: "capture",
      sandbox: { settings: noSettings, stateDirs: [stateDir], runnerDir: REPO_ROOT },
    });
    onTeardown(() => executor.kill());
    return { executor, project };
  }

  test("the executor gets its lifeline through bwrap, its project, and nothing of the runner's state", async () => {
    needBubblewrap();
    const { executor, project } = start([PROBE]);
    expect(await executor.exited).toEqual({ code: 0, signal: null });
    const results = probeResults(executor.stdout());
    expect(results).toMatchObject({
      write_project: "yes",
      read_ssh_key: "no",
      read_state: "no",
      see_runner: "no",
      cwd: project,
    });
    // The runner holds the other end (a socket pair in Bun): end-of-file when the runner is gone.
    expect(results.lifeline).toMatch(/^(pipe|socket):\[\d+\]$/);
  });

  test("an executor a signal ends inside is reported ended by that signal, as without a sandbox", async () => {
    needBubblewrap();
    const { executor } = start(["sh", "-c", "kill -SEGV $$"]);
    expect(await executor.exited).toEqual({ code: null, signal: "SIGSEGV" });
  });

  /** Waits for "ready" on the stubborn executor's log, then returns its sandbox. */
  async function ready(project: string, executor: ExecutorProcess) {
    const log = join(project, "stubborn-log");
    await until(() => existsSync(log) && readFileSync(log, "utf8").includes("ready"), "the stubborn executor's ready");
    return sandboxOf(executor.pid);
  }

  test("stop: SIGTERM to the group, grace, SIGKILL; nothing of it survives, not even a daemon in its own session", async () => {
    needBubblewrap();
    const { executor, project } = start([STUBBORN], { ON_TERM: "ignore" });
    const sandbox = await ready(project, executor);
    // bwrap, its init, the script, its child sleep, the daemon, the sleep of its loop.
    expect(sandbox.members().length).toBeGreaterThanOrEqual(5);
    const from = performance.now();
    expect(await executor.stop(700)).toBe("SIGKILL");
    expect(performance.now() - from).toBeGreaterThanOrEqual(650);
    expect(await executor.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(executor.stdout()).toContain("got-term");
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
  });

  test("stop: an executor that handles SIGTERM gets its grace period; what it leaves running is killed after it", async () => {
    needBubblewrap();
    const { executor, project } = start([STUBBORN], { ON_TERM: "exit" });
    const sandbox = await ready(project, executor);
    expect(await executor.stop(10_000)).toBe("SIGTERM");
    expect(await executor.exited).toEqual({ code: 7, signal: null });
    // Were SIGTERM not ignored by the outer bwrap, it would die at once and --die-with-parent
    // would SIGKILL the executor before it had cleaned up.
    expect(executor.stdout()).toBe("ready\ngot-term\ncleaned-up\n");
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
  });

  test("a sandbox whose parent is SIGKILLed ends at once, all of it (--die-with-parent)", async () => {
    needBubblewrap();
    const { project } = homeWithSecrets(temp);
    const script = plant(
      join(temp.make("ar-sbx-parent-"), "parent.ts"),
      `import { ExecutorProcess } from ${JSON.stringify(join(REPO_ROOT, "src/process/executor-process.ts"))};
const executor = new ExecutorProcess({ argv: [${JSON.stringify(STUBBORN)}], input: "", env: process.env, cwd: ${JSON.stringify(project)}, stdout: "capture",
  sandbox: { settings: { extraWritable: [], extraHidden: [] }, stateDirs: [], runnerDir: ${JSON.stringify(REPO_ROOT)} } });
console.log(executor.pid);
setInterval(() => {}, 60_000);
`,
    );
    const parent = Bun.spawn([process.execPath, script], {
      env: { ...process.env, ON_TERM: "ignore" },
      stdout: "pipe",
      stderr: "inherit",
    });
    onTeardown(() => parent.kill("SIGKILL"));
    const reader = parent.stdout.getReader();
    const bwrapPid = Number(new TextDecoder().decode((await reader.read()).value).trim());
    await until(() => existsSync(join(project, "stubborn-log")), "the stubborn executor's ready");
    const sandbox = sandboxOf(bwrapPid);
    expect(sandbox.members().length).toBeGreaterThanOrEqual(5);
    parent.kill("SIGKILL");
    await parent.exited;
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
  });
});

describe("the project a sandbox mounts is the one it checked", () => {
  test("the descriptors it is mounted through reach neither the executor nor stay open in the runner", async () => {
    needBubblewrap();
    const { home, project } = homeWithSecrets(temp);
    /** What this process's descriptors lead to. */
    const openHere = () =>
      readdirSync("/proc/self/fd").map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return "";
        }
      });
    for (let i = 0; i < 5; i++) {
      const executor = new ExecutorProcess({
        // Every descriptor the executor holds, with what it leads to.
        argv: ["sh", "-c", 'for fd in /proc/$$/fd/*; do echo "${fd##*/} $(readlink "$fd")"; done'],
        input: "",
        env: { PATH: process.env.PATH, HOME: home },
        cwd: project,
        stdout: "capture",
        sandbox: { settings: noSettings, stateDirs: [], runnerDir: REPO_ROOT, home },
      });
      onTeardown(() => executor.kill());
      expect(await executor.exited).toEqual({ code: 0, signal: null });
      const fds = executor.stdout().trim().split("\n");
      // stdin, stdout, stderr, the lifeline, and the one the shell's loop reads the directory through.
      expect(fds.map((line) => line.split(" ")[0])).toEqual(["0", "1", "2", "3", expect.any(String)]);
      expect(fds.some((line) => line.endsWith(` ${project}`))).toBe(false);
    }
    expect(openHere().filter((target) => target.startsWith(home))).toEqual([]);
  });

  test("a writable path that contains or lies in the runner's state is refused, as a project is", () => {
    const base = temp.make("ar-sbx-extra-", "/var/tmp");
    const home = join(base, "home");
    const project = join(base, "project");
    const state = join(base, "shared", "state");
    for (const dir of [home, project, state]) mkdirSync(dir, { recursive: true });
    const options = { home, runnerDir: REPO_ROOT, stateDirs: [state], env: {}, projectDir: project };
    // Say an extra writable path lies in a project an earlier run could write: its agent could
    // have made it a link to anywhere.
    const link = join(project, "cache");
    symlinkSync(join(base, "shared"), link);
    expect(() => bubblewrapArgv({ ...options, settings: { extraWritable: [link], extraHidden: [] } })).toThrow(
      `Sandbox: writable path ${link} contains the runner's state directory ${state}`,
    );
    expect(() =>
      bubblewrapArgv({ ...options, settings: { extraWritable: [join(state, "x", "..")], extraHidden: [] } }),
    ).toThrow("is inside the runner's state directory");
  });

  test("a symlink flipped between a harmless and a refused directory never gets the refused one mounted", async () => {
    needBubblewrap();
    // The project is reached through a link inside a writable project (the agent's own), which a
    // racing process flips between a harmless directory and one that holds the runner's state.
    const base = temp.make("ar-sbx-race-", "/var/tmp");
    const home = join(base, "home");
    const guarded = join(base, "guarded");
    const state = join(guarded, "state");
    const writable = join(base, "project");
    const harmless = join(writable, "harmless");
    const link = join(writable, "link");
    for (const dir of [home, state, harmless]) mkdirSync(dir, { recursive: true });
    symlinkSync(harmless, link);
    const flipper = Bun.spawn(
      ["sh", "-c", 'while :; do ln -sfn "$1" "$3"; ln -sfn "$2" "$3"; done', "sh", harmless, guarded, link],
      { stdio: ["ignore", "ignore", "ignore"] },
    );
    onTeardown(() => flipper.kill("SIGKILL"));
    // The probe tries to leave a mark in the refused directory, which only a writable mount allows.
    const probe = `touch ${guarded}/escaped.$RUN 2>/dev/null; exit 0`;
    const counts = { ran: 0, refused: 0 };
    const runOnce = async (run: number) => {
      let executor: ExecutorProcess;
      try {
        executor = new ExecutorProcess({
          argv: ["sh", "-c", probe],
          input: "",
          env: { PATH: process.env.PATH, HOME: home, RUN: String(run) },
          cwd: link,
          sandbox: { settings: noSettings, stateDirs: [state], runnerDir: REPO_ROOT, home },
        });
      } catch {
        counts.refused++;
        return;
      }
      onTeardown(() => executor.kill());
      await executor.exited;
      counts.ran++;
    };
    // Until 200 sandboxes ran. Most starts can be refused (the check saw the refused side): on a
    // busy machine fewer than one in twenty runs, so the bound on starts is far above 200.
    for (let started = 0; counts.ran < 200 && started < 20_000; started += 4) {
      await Promise.all([0, 1, 2, 3].map((i) => runOnce(started + i)));
    }
    flipper.kill("SIGKILL");
    console.log(`flipping link: ${counts.ran} sandboxes ran, ${counts.refused} refused at the check`);
    // Both sides of the flip were seen: the race was on.
    expect(counts.ran).toBeGreaterThanOrEqual(200);
    expect(counts.refused).toBeGreaterThan(0);
    expect(readdirSync(guarded)).toEqual(["state"]);
  }, 120_000);
});
