/**
 * `agent-runner exec` with sandboxed profiles, as a real process: a probe that tries to get out,
 * Claude Code's start and resume with the built-in `coding-sandboxed`, a stop, a host without
 * bubblewrap, and a resume whose writable directory an executor cannot choose.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { offlineClaudeEnv } from "../support/claude-code.ts";
import { startFakeAnthropic } from "../support/fake-anthropic.ts";
import { until } from "../support/fault-tools.ts";
import { cleanEnv, killTree, OutputWatcher, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";
import {
  homeWithSecrets,
  needBubblewrap,
  PROBE,
  plant,
  probeResults,
  STUBBORN,
  sandboxOf,
} from "../support/sandbox.ts";
import { onTeardown } from "../support/teardown.ts";

const INDEX = join(REPO_ROOT, "index.ts");
const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** A profiles directory with one sandboxed profile, `sandboxed`, running `command`. */
function sandboxedProfiles(command: string): string {
  const dir = temp.make("ar-sbx-profiles-");
  writeFileSync(join(dir, "sandboxed.json"), JSON.stringify({ type: "fixture", command, sandbox: true }));
  return dir;
}

/** A home with secrets and a project in it, and exec's state directory holding a recorded session. */
function execWorld() {
  const world = homeWithSecrets(temp);
  const stateDir = join(world.base, "exec-state");
  const stateFile = plant(join(stateDir, "ses_other.json"), '{"session_id":"ses_other","PLANTED":true}');
  return { ...world, stateDir, stateFile };
}

function exec(args: string[], env: Record<string, string | undefined>, cwd: string) {
  return runProcess([process.execPath, INDEX, "exec", ...args], { env: cleanEnv(env), cwd, timeoutMs: 90_000 });
}

describe("exec with a sandboxed profile", () => {
  test("a probe executor cannot write outside, read the SSH key or exec's sessions, see processes, or leave /tmp files", async () => {
    needBubblewrap();
    const w = execWorld();
    const args = ["--profile", "sandboxed", "--profiles-dir", sandboxedProfiles(PROBE), "--prompt", "p"];
    const env = {
      HOME: w.home,
      PROBE_OUTSIDE: w.base,
      PROBE_STATE_FILE: w.stateFile,
      PROBE_RUNNER_PID: String(process.pid),
      PROBE_MARK: `ar-sbx-exec-${process.pid}`,
    };
    const first = await exec([...args, "--state-dir", w.stateDir], env, w.project);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(probeResults(first.stdout)).toMatchObject({
      write_project: "yes",
      write_claude: "yes",
      write_outside: "no",
      read_ssh_key: "no",
      read_state: "no",
      see_runner: "no",
      signal_runner: "no",
      tmp_leftover_seen: "no",
      leave_tmp: "yes",
      pid: "2",
      cwd: w.project,
    });
    expect(probeResults(first.stdout).processes).toMatch(/^1 2 \d+$/);
    const second = await exec([...args, "--state-dir", w.stateDir], env, w.project);
    expect(probeResults(second.stdout).tmp_leftover_seen).toBe("no");
    expect(existsSync(join(w.base, "written"))).toBe(false);
  });

  test("coding-sandboxed: Claude Code starts a session, and a resume continues it, against the fake Messages API", async () => {
    needBubblewrap();
    const api = startFakeAnthropic((request) => ({ text: `fake answer from ${request.body.model}` }));
    const w = execWorld();
    const env = offlineClaudeEnv(w.home, api.url);
    const common = ["--profile", "coding-sandboxed", "--state-dir", w.stateDir, "--json"];
    const started = await exec(
      [...common, "--prompt", "FIRST_TURN_MARKER", "--project-dir", w.project],
      env,
      w.project,
    );
    expect(started.exitCode, started.stderr).toBe(0);
    const result = JSON.parse(started.stdout.trim().split("\n").at(-1)!);
    expect(result).toMatchObject({ kind: "result", exit_code: 0 });
    expect(result.result).toStartWith("fake answer from claude-opus");
    const sessionId = result.session_id as string;

    const from = api.agentRequests().length;
    // Elsewhere, without --project-dir: refused, the record does not choose a sandbox's writable directory.
    const resume = [...common, "--resume", "--session-id", sessionId, "--prompt", "SECOND_TURN_MARKER"];
    const elsewhere = await exec(resume, env, temp.make());
    expect(elsewhere.exitCode).toBe(1);
    expect(elsewhere.stderr).toContain(`Session ${sessionId} is recorded in ${w.project}, not in `);
    expect(api.agentRequests()).toHaveLength(from);
    // In the session's project it resumes.
    const resumed = await exec(resume, env, w.project);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout.trim().split("\n").at(-1)!)).toMatchObject({ exit_code: 0 });
    const history = api.conversationSince(from);
    expect(history).toContain("FIRST_TURN_MARKER");
    expect(history).toContain("SECOND_TURN_MARKER");
  }, 180_000);

  test("what a sandboxed executor binds as its project_dir does not become the next resume's writable directory", async () => {
    needBubblewrap();
    const w = execWorld();
    const elsewhere = temp.make("ar-sbx-elsewhere-", "/var/tmp");
    // An agent with the gateway URL in its environment binds a directory of its choosing.
    const binder = plant(
      join(temp.make("ar-sbx-binder-"), "binder"),
      `#!/bin/sh
cat > /dev/null
curl -sf -X POST -H 'Content-Type: application/json' "$AGENT_ORCHESTRATOR_API_URL/bind" \\
  -d "{\\"session_id\\":\\"$AGENT_SESSION_ID\\",\\"executor_session_id\\":\\"x\\",\\"project_dir\\":\\"${elsewhere}\\"}"
`,
      0o755,
    );
    const args = ["--profile", "sandboxed", "--profiles-dir", sandboxedProfiles(binder), "--state-dir", w.stateDir];
    const started = await exec([...args, "--prompt", "p", "--session-id", "ses_bind"], { HOME: w.home }, w.project);
    expect(started.exitCode, started.stderr).toBe(0);
    expect(started.stderr).toContain(`in ${elsewhere}`);
    const recorded = JSON.parse(readFileSync(join(w.stateDir, "ses_bind.json"), "utf8"));
    expect(recorded.project_dir).toBe(w.project);
  });

  test("Ctrl+C: SIGTERM, the grace, then SIGKILL to all of the sandbox; exec says so and exits 137", async () => {
    needBubblewrap();
    const w = execWorld();
    const child = Bun.spawn(
      [
        process.execPath,
        INDEX,
        "exec",
        "--profile",
        "sandboxed",
        "--profiles-dir",
        sandboxedProfiles(STUBBORN),
        "--prompt",
        "p",
        "--state-dir",
        w.stateDir,
        "--stop-grace-seconds",
        "1",
        "--json",
      ],
      {
        cwd: w.project,
        env: cleanEnv({ HOME: w.home, ON_TERM: "ignore" }),
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    onTeardown(() => killTree(child));
    const output = new OutputWatcher([child.stdout, child.stderr]);
    await until(() => existsSync(join(w.project, "stubborn-log")), "the executor's ready");
    const bwrapPid = Number(
      Bun.spawnSync(["pgrep", "-P", String(child.pid), "-x", "bwrap"])
        .stdout.toString()
        .trim(),
    );
    const sandbox = sandboxOf(bwrapPid);
    child.kill("SIGINT");
    await output.waitFor(/stopping the executor \(SIGTERM, SIGKILL in 1 s\)/);
    expect(await child.exited).toBe(137);
    await output.closed;
    expect(output.output).toContain('"signal":"SIGKILL"');
    expect(readFileSync(join(w.project, "stubborn-log"), "utf8")).toBe("ready\ngot-term\n");
    expect(await sandbox.leftAfter(2_000)).toEqual([]);
  });

  test("a state directory inside the project is refused before the executor starts: its agent could move it and write the sessions", async () => {
    needBubblewrap();
    const w = execWorld();
    const stateDir = join(w.project, "a", "state");
    const args = ["--profile", "sandboxed", "--profiles-dir", sandboxedProfiles(PROBE), "--prompt", "p"];
    const outcome = await exec([...args, "--state-dir", stateDir], { HOME: w.home }, w.project);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toContain(
      `Sandbox: project directory ${w.project} contains the runner's state directory ${stateDir}`,
    );
    expect(existsSync(join(w.project, "probe-results"))).toBe(false);
  });

  test("without bubblewrap, exec refuses a sandboxed profile before starting anything, naming the package", async () => {
    const w = execWorld();
    const args = ["--profile", "sandboxed", "--profiles-dir", sandboxedProfiles(PROBE), "--prompt", "p"];
    const outcome = await exec([...args, "--state-dir", w.stateDir], { HOME: w.home, PATH: temp.make() }, w.project);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toContain(
      "Profile 'sandboxed' runs its executors in a sandbox, which this host cannot: The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap`",
    );
    expect(existsSync(join(w.project, "probe-results"))).toBe(false);
  });
});
