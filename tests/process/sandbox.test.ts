/**
 * The bubblewrap sandbox with real processes: a probe executor tries to get out, Claude Code runs
 * a start and a resume inside it, and a sandbox is stopped and leaves nothing behind. bubblewrap
 * must be installed (CI installs it): without it every test fails with checkBubblewrap's reason.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { type BubblewrapOptions, bubblewrapArgv, checkBubblewrap, expandHome } from "../../src/process/sandbox.ts";
import { startFakeAnthropic } from "../support/fake-anthropic.ts";

const REPO = resolve(import.meta.dir, "../..");
const PROBE = join(REPO, "tests/fixtures/sandbox/probe");
const STUBBORN = join(REPO, "tests/fixtures/sandbox/stubborn");
const CLAUDE_CODE_EXECUTOR = join(REPO, "executors/claude-code/ao-claude-code-exec");
const CLAUDE_CODE_BINARY = join(REPO, "node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude");
const IS_ROOT = process.getuid?.() === 0;
const CLAUDE_TIMEOUT = 90_000;

const bubblewrap = checkBubblewrap();
/** Fails the calling test, with the reason, when this host cannot run a sandbox. */
function needBubblewrap(): void {
  if (!bubblewrap.ok) throw new Error(bubblewrap.reason);
}

const dirs: string[] = [];
/** A temp directory; `where` /var/tmp keeps it out of the sandbox's private /tmp, so only the home tmpfs hides a home made there. */
function tempDir(prefix: string, where = tmpdir()): string {
  const dir = mkdtempSync(join(where, prefix));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function plant(path: string, content: string): string {
  mkdirSync(resolve(path, ".."), { recursive: true });
  writeFileSync(path, content);
  return path;
}

const noSettings = { extraWritable: [], extraHidden: [] };

async function run(argv: string[], env: Record<string, string | undefined>, stdin = "{}") {
  const child = Bun.spawn(argv, { env, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe", detached: true, timeout: 60_000 });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, exitCode };
}

function probeResults(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.trim().split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
}

describe("checkBubblewrap", () => {
  test("bubblewrap works on this host", () => {
    expect(bubblewrap).toEqual({ ok: true });
  });

  test("no bwrap on PATH: names the package", () => {
    const empty = tempDir("ar-sbx-path-");
    const result = checkBubblewrap({ env: { PATH: empty } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toBe("The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap).");
  });

  test("bwrap that cannot create namespaces: its own message, the package and the sysctls", () => {
    const fake = tempDir("ar-sbx-fake-");
    const message = "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.";
    writeFileSync(join(fake, "bwrap"), `#!/bin/sh\necho "${message}" >&2\nexit 1\n`, { mode: 0o755 });
    const result = checkBubblewrap({ env: { PATH: `${fake}:${process.env.PATH}` } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toContain(`bubblewrap (${join(fake, "bwrap")}, Debian package \`bubblewrap\`) cannot create a sandbox: ${message.slice(0, -1)}. This usually means`);
    for (const sysctl of ["kernel.unprivileged_userns_clone", "user.max_user_namespaces", "kernel.apparmor_restrict_unprivileged_userns"]) {
      expect(result.reason).toContain(sysctl);
    }
  });
});

describe("bubblewrapArgv", () => {
  test("expandHome: ~ and ~/ only", () => {
    expect(expandHome("~", "/home/u")).toBe("/home/u");
    expect(expandHome("~/.cache/pip", "/home/u")).toBe("/home/u/.cache/pip");
    expect(expandHome("~other/x", "/home/u")).toBe("~other/x");
    expect(expandHome("/srv/x", "/home/u")).toBe("/srv/x");
  });

  test("mounts go from the shallowest path to the deepest; what would change nothing is left out", () => {
    const base = tempDir("ar-sbx-argv-", "/var/tmp");
    const home = join(base, "home");
    const project = join(home, "work", "p");
    mkdirSync(project, { recursive: true });
    mkdirSync(join(base, "state"));
    const argv = bubblewrapArgv({
      projectDir: project,
      home,
      runnerDir: REPO,
      stateDirs: [join(home, ".local/state/agent-runner"), join(base, "state"), join(base, "missing")],
      settings: { extraWritable: ["~/missing"], extraHidden: ["~/.ssh"] },
      env: {},
      uid: 1000,
    });
    expect(argv.join(" ")).toBe(
      [
        "env --ignore-signal=TERM bwrap --die-with-parent --unshare-pid",
        "--ro-bind / / --dev /dev --proc /proc",
        "--perms 1777 --tmpfs /tmp",
        // Same depth: emptied before hidden. The state inside the home and ~/.ssh are hidden already.
        `--tmpfs ${home}`,
        `--tmpfs ${base}/state`,
        `--bind ${home}/.claude ${home}/.claude`,
        `--bind ${home}/.claude.json ${home}/.claude.json`,
        `--bind ${project} ${project}`,
        `--chdir ${project} --setenv TMPDIR /tmp -- env --default-signal=TERM`,
      ].join(" "),
    );
    // Created on the host so that they can be bound.
    expect(lstatSync(join(home, ".claude")).isDirectory()).toBe(true);
    expect(readFileSync(join(home, ".claude.json"), "utf8")).toBe("{}\n");
  });

  test("as root, capabilities are dropped; a project in /tmp comes after the /tmp tmpfs", () => {
    const home = tempDir("ar-sbx-home-");
    const project = tempDir("ar-sbx-project-");
    const argv = bubblewrapArgv({ projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env: {}, uid: 0 });
    expect(argv.slice(3, 7)).toEqual(["--die-with-parent", "--unshare-pid", "--cap-drop", "ALL"]);
    const text = argv.join(" ");
    expect(text.indexOf("--tmpfs /tmp ")).toBeLessThan(text.indexOf(`--bind ${project} `));
    expect(text.indexOf("--tmpfs /tmp ")).toBeLessThan(text.indexOf(`--tmpfs ${home} `));
  });

  test("refuses a project that contains the home or lies in the runner's directory or state, and a home that does not exist", () => {
    const home = tempDir("ar-sbx-home-");
    const state = tempDir("ar-sbx-state-");
    mkdirSync(join(state, "p"));
    const other = tempDir("ar-sbx-project-");
    const options = { home, runnerDir: REPO, stateDirs: [state], settings: noSettings, env: {} };
    expect(() => bubblewrapArgv({ ...options, projectDir: "/" })).toThrow("contains the home directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: home })).toThrow("contains the home directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: REPO })).toThrow("is inside the runner's directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: join(REPO, "src") })).toThrow("is inside the runner's directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: join(state, "p") })).toThrow("is inside the runner's state directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: other, home: join(home, "nope") })).toThrow("does not exist");
    expect(() => bubblewrapArgv({ ...options, projectDir: join(home, "nope") })).toThrow("project directory");
    expect(() => bubblewrapArgv({ ...options, projectDir: other, settings: { extraWritable: ["relative/dir"], extraHidden: [] } })).toThrow("not an absolute path");
  });
});

/** A runner's world under /var/tmp: a home with secrets, state inside and outside it, tools in the home. */
function world() {
  const base = tempDir("ar-sbx-", "/var/tmp");
  const home = join(base, "home");
  const w = {
    base,
    home,
    project: join(home, "work", "project"),
    outside: join(base, "outside"),
    stateFile: plant(join(home, ".local/state/agent-runner/exec-sessions/ses_1.json"), "PLANTED state"),
    outsideStateFile: plant(join(base, "runner-state/outbox.json"), "PLANTED outbox"),
    hiddenDir: join(base, "secrets"),
    hiddenFile: plant(join(base, "token.txt"), "PLANTED token"),
    runtimeDir: join(base, "run-user"),
    runnerDir: join(home, "opt/agent-runner"),
    tool: plant(join(home, ".rt/bin/tool"), "#!/bin/sh\necho tool-ran\n"),
    claudeCode: join(home, ".local/bin/claude"),
    extraWritable: [join(base, "shared"), join(home, ".cache/pip")],
  };
  mkdirSync(w.project, { recursive: true });
  mkdirSync(w.outside);
  for (const dir of w.extraWritable) mkdirSync(dir, { recursive: true });
  plant(join(home, ".ssh/id_ed25519"), "PLANTED private key");
  plant(join(w.hiddenDir, "file"), "PLANTED hidden");
  plant(join(w.runtimeDir, "bus"), "PLANTED bus");
  plant(join(w.runnerDir, "VERSION"), "PLANTED 1.0");
  plant(join(home, ".claude.json"), '{"PLANTED":true}');
  Bun.spawnSync(["chmod", "+x", w.tool]);
  // Claude Code as its native installer lays it out: a relative link into a versions directory.
  plant(join(home, ".local/share/claude/versions/1.0.0"), "#!/bin/sh\necho claude-ran\n");
  Bun.spawnSync(["chmod", "+x", join(home, ".local/share/claude/versions/1.0.0")]);
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
    settings: { extraWritable: [w.extraWritable[0]!, "~/.cache/pip"], extraHidden: [w.hiddenDir, w.hiddenFile, "~/.ssh", join(w.base, "missing")] },
    env,
    execPath: w.tool,
  };
}

describe("a probe executor inside the sandbox", () => {
  let decoy: Bun.Subprocess | undefined;
  afterEach(() => {
    decoy?.kill("SIGKILL");
  });

  test("cannot get out: writes outside, secrets, state, other processes, /tmp across runs; can write its project and ~/.claude", async () => {
    needBubblewrap();
    const w = world();
    // Another run's process, of the same user.
    decoy = Bun.spawn(["sleep", "60"], { stdout: "ignore", stderr: "ignore" });
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
    const argv = [...bubblewrapArgv(worldOptions(w, env)), PROBE];

    const first = await run(argv, env);
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
    });

    const second = probeResults((await run(argv, env)).stdout);
    expect(second.tmp_leftover_seen).toBe("no");
    expect(existsSync(join("/tmp", mark))).toBe(false);

    // What it may write is on the host afterwards; nothing else is.
    expect(readFileSync(join(w.project, "written-in-project"), "utf8")).toBe("from-sandbox\n");
    expect(readFileSync(join(w.home, ".claude/written-by-sandbox"), "utf8")).toBe("from-sandbox\n");
    expect(JSON.parse(readFileSync(join(w.home, ".claude.json"), "utf8"))).toEqual({ written: "by-sandbox" });
    for (const dir of w.extraWritable) expect(readFileSync(join(dir, "written-by-sandbox"), "utf8")).toBe("from-sandbox\n");
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
    const home = tempDir("ar-sbx-home-");
    plant(join(home, ".ssh/id_ed25519"), "PLANTED private key");
    const project = tempDir("ar-sbx-project-");
    const env = { PATH: process.env.PATH, HOME: home, PROBE_MARK: "m", PROBE_RUNNER_PID: String(process.pid) };
    const inTmp = probeResults((await run([...bubblewrapArgv({ projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env }), PROBE], env)).stdout);
    expect(inTmp).toMatchObject({ write_project: "yes", write_claude: "yes", read_ssh_key: "no", see_runner: "no", cwd: project });
    expect(existsSync(join(project, "written-in-project"))).toBe(true);

    const target = tempDir("ar-sbx-target-", "/var/tmp");
    symlinkSync(target, join(home, "linked-project"));
    const given = join(home, "linked-project");
    const probe = `test -d ${given} && echo through-link > ${given}/via-link && cat ${given}/via-link && pwd`;
    const viaLink = await run([...bubblewrapArgv({ projectDir: given, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env }), "sh", "-c", probe], env);
    expect(viaLink.exitCode, viaLink.stderr).toBe(0);
    expect(viaLink.stdout).toBe(`through-link\n${target}\n`);
    expect(readFileSync(join(target, "via-link"), "utf8")).toBe("through-link\n");
  });
});

describe("Claude Code inside the sandbox", () => {
  test(
    "start, then resume of the same session, against the fake Messages API",
    async () => {
      needBubblewrap();
      const api = startFakeAnthropic((request) => ({ text: `Hello from the fake API (model ${request.body.model})` }));
      const gateway = new LocalGateway({ hostname: "test-host", executorProfile: "coding-sandboxed" }).start();
      try {
        const base = tempDir("ar-sbx-cc-", "/var/tmp");
        const home = join(base, "home");
        const project = join(home, "work", "project");
        mkdirSync(project, { recursive: true });
        plant(join(home, ".ssh/id_ed25519"), "PLANTED private key");
        // Claude Code reached through a link in the emptied home.
        mkdirSync(join(home, ".local/bin"), { recursive: true });
        symlinkSync(CLAUDE_CODE_BINARY, join(home, ".local/bin/claude"));
        const env: Record<string, string | undefined> = {
          PATH: process.env.PATH,
          HOME: home,
          ANTHROPIC_BASE_URL: api.url,
          ANTHROPIC_API_KEY: "sk-ant-test-dummy-key",
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
          DISABLE_TELEMETRY: "1",
          DISABLE_AUTOUPDATER: "1",
          DISABLE_ERROR_REPORTING: "1",
          CLAUDE_CODE_EXECUTABLE: join(home, ".local/bin/claude"),
          AGENT_ORCHESTRATOR_API_URL: gateway.url,
          AGENT_SESSION_ID: "ses_sbx",
          // Claude Code refuses bypassPermissions as root otherwise; this is the disposable case it is for.
          ...(IS_ROOT ? { IS_SANDBOX: "1" } : {}),
        };
        const argv = [...bubblewrapArgv({ projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env }), CLAUDE_CODE_EXECUTOR];
        const invocation = (fields: object) => JSON.stringify({ schema_version: "2.1", session_id: "ses_sbx", ...fields });

        const started = await run(argv, env, invocation({ mode: "start", prompt: "FIRST_TURN_MARKER", project_dir: project }));
        expect(started.exitCode, started.stderr).toBe(0);
        expect(started.stdout).toStartWith("Hello from the fake API");
        const executorSessionId = gateway.session("ses_sbx")!.executor_session_id!;
        expect(executorSessionId).toMatch(/^[0-9a-f-]{36}$/);
        // The session's transcript went to the real ~/.claude, so a later sandbox can resume it.
        const transcripts = readdirSync(join(home, ".claude/projects"), { recursive: true }).map(String);
        expect(transcripts.some((path) => path.endsWith(`${executorSessionId}.jsonl`))).toBe(true);
        expect(Object.keys(JSON.parse(readFileSync(join(home, ".claude.json"), "utf8"))).length).toBeGreaterThan(0);

        gateway.records.length = 0;
        const from = api.requests.length;
        const resumed = await run(argv, env, invocation({ mode: "resume", prompt: "SECOND_TURN_MARKER" }));
        expect(resumed.exitCode, resumed.stderr).toBe(0);
        expect(resumed.stdout).toStartWith("Hello from the fake API");
        expect(resumed.stderr).not.toContain("configuration file not found");
        expect(gateway.records.map((r) => `${r.kind} ${r.path}`).slice(0, 2)).toEqual(["request /sessions/ses_sbx", "bind /bind"]);
        expect(gateway.records[1]!.body.executor_session_id).toBe(executorSessionId);
        const history = JSON.stringify(api.requests.slice(from).filter((r) => r.path === "/v1/messages" && r.body?.tools?.length).map((r) => r.body.messages));
        expect(history).toContain("FIRST_TURN_MARKER");
        expect(history).toContain("SECOND_TURN_MARKER");
      } finally {
        await gateway.stop();
        await api.stop();
      }
    },
    CLAUDE_TIMEOUT,
  );
});

/** The pid namespace of the sandbox under an outer bwrap (whose one child is the sandbox's init). */
function sandboxNamespace(bwrapPid: number): string {
  const [init] = readFileSync(`/proc/${bwrapPid}/task/${bwrapPid}/children`, "utf8").trim().split(" ");
  return readlinkSync(`/proc/${init}/ns/pid`);
}

/** Every process (host pid) in the given pid namespace, or in the process group. */
function members(namespace: string, group: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === group || readlinkSync(`/proc/${name}/ns/pid`) === namespace) found.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to look at.
    }
  }
  return found;
}

/** Resolves with the output so far once it contains `text`. */
async function waitForOutput(stream: ReadableStream<Uint8Array>, text: string, seen: { text: string }): Promise<void> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  while (!seen.text.includes(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`output ended without "${text}": ${seen.text}`);
    seen.text += decoder.decode(value);
  }
  reader.releaseLock();
}

async function collect(stream: ReadableStream<Uint8Array>, seen: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) seen.text += decoder.decode(chunk);
}

describe("stopping a sandbox", () => {
  function startStubborn(onTerm: "ignore" | "exit") {
    const home = tempDir("ar-sbx-home-");
    const project = tempDir("ar-sbx-project-");
    const env = { PATH: process.env.PATH, HOME: home, ON_TERM: onTerm };
    const argv = [...bubblewrapArgv({ projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env }), STUBBORN];
    // Detached: bwrap leads a process group of its own, as the runner's executors do.
    return Bun.spawn(argv, { env, stdin: new Blob([""]), stdout: "pipe", stderr: "ignore", detached: true });
  }

  test("an executor that ignores SIGTERM: SIGTERM to the group, grace, SIGKILL; nothing of it survives", async () => {
    needBubblewrap();
    const child = startStubborn("ignore");
    const output = { text: "" };
    await waitForOutput(child.stdout, "ready", output);
    const namespace = sandboxNamespace(child.pid);
    // bwrap, its init, the script, its child sleep, the daemon, the sleep of its loop.
    expect(members(namespace, child.pid).length).toBeGreaterThanOrEqual(5);
    const collected = collect(child.stdout, output);

    process.kill(-child.pid, "SIGTERM");
    const exitedInGrace = await Promise.race([child.exited.then(() => true), Bun.sleep(700).then(() => false)]);
    expect(exitedInGrace).toBe(false);
    process.kill(-child.pid, "SIGKILL");
    await child.exited;
    await collected;
    expect(child.signalCode).toBe("SIGKILL");
    expect(output.text).toContain("got-term");
    // The daemon left the process group, but not the pid namespace that died with its init.
    expect(await goneWithin(() => members(namespace, child.pid), 2_000)).toEqual([]);
  });

  test("an executor that handles SIGTERM gets its grace period, and what it leaves running is killed after it", async () => {
    needBubblewrap();
    const child = startStubborn("exit");
    const output = { text: "" };
    await waitForOutput(child.stdout, "ready", output);
    const namespace = sandboxNamespace(child.pid);
    const collected = collect(child.stdout, output);

    process.kill(-child.pid, "SIGTERM");
    expect(await child.exited).toBe(7);
    await collected;
    // Without the ignored SIGTERM in the outer bwrap, bwrap would die at once and its
    // --die-with-parent would SIGKILL the executor before it had cleaned up.
    expect(output.text).toBe("ready\ngot-term\ncleaned-up\n");
    expect(await goneWithin(() => members(namespace, child.pid), 2_000)).toEqual([]);
  });

  test("a sandbox whose parent dies is killed with it (--die-with-parent)", async () => {
    needBubblewrap();
    const home = tempDir("ar-sbx-home-");
    const project = tempDir("ar-sbx-project-");
    const env = { PATH: process.env.PATH, HOME: home, ON_TERM: "ignore" };
    const argv = [...bubblewrapArgv({ projectDir: project, home, runnerDir: REPO, stateDirs: [], settings: noSettings, env }), STUBBORN];
    // A stand-in runner: a shell that starts the sandbox and waits.
    const parent = Bun.spawn(["sh", "-c", '"$@" < /dev/null & wait', "sh", ...argv], { env, stdout: "pipe", stderr: "ignore", detached: true });
    const output = { text: "" };
    await waitForOutput(parent.stdout, "ready", output);
    const bwrapPid = Number(readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, "utf8").trim());
    const namespace = sandboxNamespace(bwrapPid);
    expect(members(namespace, -1).length).toBeGreaterThanOrEqual(4);

    process.kill(parent.pid, "SIGKILL");
    await parent.exited;
    expect(await goneWithin(() => [...members(namespace, -1), ...(existsSync(`/proc/${bwrapPid}`) ? [bwrapPid] : [])], 2_000)).toEqual([]);
  });
});

/** Polls `alive` every 20 ms until it is empty or `timeoutMs` has passed; returns what is left. */
async function goneWithin(alive: () => number[], timeoutMs: number): Promise<number[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = alive().filter((pid) => {
      try {
        return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
      } catch {
        return false;
      }
    });
    if (left.length === 0 || performance.now() > deadline) return left;
    await Bun.sleep(20);
  }
}
