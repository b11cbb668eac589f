/**
 * `agent-runner exec --interactive` for real: a terminal conversation with one persistent executor,
 * driven through its piped stdin and SIGINT (no pseudo-terminal), with the test profile, a fixture
 * executor, Claude Code against the fake Messages API, and a sandboxed profile.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { offlineClaudeEnv, recordingClaude } from "../support/claude-code.ts";
import { echoLastLine, startFakeAnthropic } from "../support/fake-anthropic.ts";
import { InteractiveExec, leftoversAfter } from "../support/interactive-exec.ts";
import { cleanEnv, goneWithin, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";
import { homeWithSecrets, needBubblewrap } from "../support/sandbox.ts";

const TIMEOUT = 120_000;
const temp = new TempDirs();
afterAll(() => temp.cleanup());

const PERSISTENT_FIXTURE = join(REPO_ROOT, "tests/fixtures/executors/persistent");

/** A profiles directory with `fixture`: the persistent fixture executor (turn "hang", "exit <n>", …). */
function fixtureProfiles(): string {
  const dir = temp.make("ar-int-profiles-");
  writeFileSync(
    join(dir, "fixture.json"),
    JSON.stringify({ type: "fixture", command: PERSISTENT_FIXTURE, lifecycle: "persistent" }),
  );
  return dir;
}

/** exec --interactive in a fresh project and state directory. */
function interactive(args: string[], env: Record<string, string | undefined> = {}, state = temp.make()) {
  const project = temp.make("ar-int-project-");
  const exec = new InteractiveExec([...args, "--state-dir", state], { env, cwd: project });
  return { exec, state, project };
}

/** exec --interactive with the persistent fixture executor, its first turn `prompt`, and `args` after. */
function interactiveFixture(prompt: string, ...args: string[]) {
  return interactive(["--profile", "fixture", "--profiles-dir", fixtureProfiles(), "--prompt", prompt, ...args]);
}

/** How many `bind` lines exec showed. */
const binds = (stderr: string) => stderr.split("\n").filter((line) => /^\d\d:\d\d:\d\d {2}bind /.test(line)).length;

describe("exec --interactive with the test profile", () => {
  test("each line is a turn of one executor process (one bind); Ctrl+D at the prompt ends it, exit 0", async () => {
    const { exec, state } = interactive(["--profile", "test", "--session-id", "ses_int1"]);
    exec.type("hello");
    await exec.stdout.waitFor(/Received: hello\n/);
    const [executor] = exec.children();
    exec.type("   ");
    exec.type("second line");
    await exec.stdout.waitFor(/Received: second line\n/);
    // The same process answered both turns.
    expect(exec.children()).toEqual([executor!]);
    exec.endInput();
    expect(await exec.end()).toBe(0);
    expect(exec.answers()).toEqual(["[TEST-EXECUTOR] Received: hello", "[TEST-EXECUTOR] Received: second line"]);
    const stderr = exec.stderr.output;
    expect(binds(stderr)).toBe(1);
    expect(stderr).toContain("session_stop   exit 0 (completed)");
    expect(stderr).toContain("--interactive --resume --session-id ses_int1");
    expect(JSON.parse(readFileSync(join(state, "ses_int1.json"), "utf8"))).toMatchObject({
      status: "finished",
      result: "[TEST-EXECUTOR] Received: second line",
    });
    expect(await goneWithin(executor!, 5_000)).toBe(true);
  });

  test("--prompt starts the session; --json prints a turn line per answer and the result last", async () => {
    const { exec } = interactive(["--profile", "test", "--session-id", "ses_json", "--prompt", "first", "--json"]);
    await exec.stdout.waitFor(/"kind":"turn".*Received: first/);
    exec.type("next");
    await exec.stdout.waitFor(/"kind":"turn".*Received: next/);
    exec.endInput();
    expect(await exec.end()).toBe(0);
    const lines = exec.answers().map((line) => JSON.parse(line));
    expect(lines.filter((line) => line.kind === "turn")).toEqual([
      { kind: "turn", session_id: "ses_json", turn: 1, result: "[TEST-EXECUTOR] Received: first" },
      { kind: "turn", session_id: "ses_json", turn: 2, result: "[TEST-EXECUTOR] Received: next" },
    ]);
    expect(lines.filter((line) => line.kind === "bind")).toHaveLength(1);
    expect(lines.at(-1)).toEqual({
      kind: "result",
      session_id: "ses_json",
      exit_code: 0,
      result: "[TEST-EXECUTOR] Received: next",
      duration_s: expect.any(Number),
    });
  });

  test("Ctrl+C at the prompt ends the session: the shutdown line, session_stop, exit 0", async () => {
    const { exec, state } = interactive(["--profile", "test", "--session-id", "ses_int2", "--prompt", "one"]);
    await exec.stdout.waitFor(/Received: one\n/);
    const [executor] = exec.children();
    exec.ctrlC();
    expect(await exec.end()).toBe(0);
    expect(exec.stderr.output).toContain("SIGINT: ending the session; Ctrl+C again to stop the executor");
    expect(exec.stderr.output).toContain("session_stop   exit 0 (completed)");
    expect(exec.stderr.output).toContain("Session ses_int2 done");
    expect(JSON.parse(readFileSync(join(state, "ses_int2.json"), "utf8")).status).toBe("finished");
    expect(await goneWithin(executor!, 5_000)).toBe(true);
  });

  test("Ctrl+C mid-turn: the interrupt line goes out; the test executor has nothing to cut short and answers", async () => {
    const { exec } = interactive(["--profile", "test", "--prompt", "one", "-v"]);
    await exec.stdout.waitFor(/Received: one\n/);
    const [executor] = exec.children();
    // Held still, the executor cannot read the turn before the Ctrl+C: the turn is under way for exec.
    process.kill(executor!, "SIGSTOP");
    exec.type("two");
    await exec.stderr.waitFor(/Turn 2 sent to the executor/);
    exec.ctrlC();
    await exec.stderr.waitFor(/SIGINT: interrupting the turn; Ctrl\+C again to stop the executor/);
    process.kill(executor!, "SIGCONT");
    await exec.stdout.waitFor(/Received: two\n/);
    expect(exec.stderr.output).not.toContain("Turn 2 was interrupted");
    // The session goes on.
    exec.type("three");
    await exec.stdout.waitFor(/Received: three\n/);
    exec.endInput();
    expect(await exec.end()).toBe(0);
    expect(binds(exec.stderr.output)).toBe(1);
  });

  test("Ctrl+D or Ctrl+C before the first line: nothing is started (exit 0, or 130 for the Ctrl+C)", async () => {
    const eof = interactive(["--profile", "test"]).exec;
    eof.endInput();
    expect(await eof.end()).toBe(0);
    expect(eof.stderr.output).toContain("End of input before the first prompt: no session was started");

    const { exec, state } = interactive(["--profile", "test", "-v"]);
    await exec.stderr.waitFor(/Waiting for the first prompt on stdin/);
    exec.ctrlC();
    expect(await exec.end()).toBe(130);
    expect(exec.stderr.output).toContain("SIGINT before the first prompt: no session was started");
    expect(readdirSync(state)).toEqual([]);
  });

  test("resume: --interactive --resume continues what an interactive exec recorded, and so does a one-shot --resume", async () => {
    const state = temp.make();
    const first = interactive(["--profile", "test", "--session-id", "ses_again", "--prompt", "one"], {}, state).exec;
    await first.stdout.waitFor(/Received: one\n/);
    first.endInput();
    expect(await first.end()).toBe(0);
    const recorded = JSON.parse(readFileSync(join(state, "ses_again.json"), "utf8"));

    const again = interactive(["--profile", "test", "--resume", "--session-id", "ses_again"], {}, state).exec;
    again.type("two");
    await again.stdout.waitFor(/Received: two\n/);
    again.type("three");
    await again.stdout.waitFor(/Received: three\n/);
    again.endInput();
    expect(await again.end()).toBe(0);
    expect(again.stderr.output).toContain("GET /sessions/ses_again → 200");
    expect(again.stderr.output).toContain("session_start  resumed");
    expect(again.stderr.output).toContain(`executor session ${recorded.executor_session_id}`);
    expect(binds(again.stderr.output)).toBe(1);
    expect(JSON.parse(readFileSync(join(state, "ses_again.json"), "utf8"))).toMatchObject({
      executor_session_id: recorded.executor_session_id,
      result: "[TEST-EXECUTOR] Received: three",
    });
    const oneShot = await runProcess(
      [
        process.execPath,
        join(REPO_ROOT, "index.ts"),
        "exec",
        "--profile",
        "test",
        "--state-dir",
        state,
        "--resume",
      ].concat(["--session-id", "ses_again", "--prompt", "four"]),
      { env: cleanEnv(), cwd: temp.make() },
    );
    expect(oneShot.exitCode, oneShot.stderr).toBe(0);
    expect(oneShot.stdout).toBe("[TEST-EXECUTOR] Received: four\n");
    expect(oneShot.stderr).toContain(`executor session ${recorded.executor_session_id}`);
  });
});

describe("exec --interactive: stops and executors that end", () => {
  test("double Ctrl+C mid-turn stops the executor (SIGTERM); exit 143, and says in which turn", async () => {
    const { exec } = interactiveFixture("hang");
    await exec.stderr.waitFor(/"prompt":"hang"/);
    const [executor] = exec.children();
    exec.ctrlC();
    await exec.stderr.waitFor(/interrupting the turn/);
    exec.ctrlC();
    expect(await exec.end()).toBe(143);
    expect(exec.stderr.output).toContain("stopping the executor (SIGTERM, SIGKILL in 5 s)");
    expect(exec.stderr.output).toContain("Executor ended by SIGTERM during turn 1");
    expect(await goneWithin(executor!, 5_000)).toBe(true);
  });

  test("a third Ctrl+C kills an executor that ignores SIGTERM at once; exit 137", async () => {
    const { exec } = interactiveFixture("ignore-term", "--stop-grace-seconds", "60");
    await exec.stdout.waitFor(/turn 1: ignore-term\n/);
    exec.type("hang");
    await exec.stderr.waitFor(/"prompt":"hang"/);
    exec.ctrlC();
    await exec.stderr.waitFor(/interrupting the turn/);
    exec.ctrlC();
    await exec.stderr.waitFor(/stopping the executor/);
    exec.ctrlC();
    // The grace is a minute: only the third Ctrl+C ends it this soon.
    expect(await exec.end()).toBe(137);
    expect(exec.stderr.output).toContain("killing the executor now (SIGKILL)");
    expect(exec.stderr.output).toContain("Executor ended by SIGKILL during turn 2");
    expect(await leftoversAfter(exec, 5_000)).toEqual([]);
  });

  test("an executor that stays after the shutdown line and SIGTERM: SIGTERM after the grace, then SIGKILL; exit 137", async () => {
    const { exec } = interactiveFixture("ignore-shutdown", "--stop-grace-seconds", "1");
    await exec.stdout.waitFor(/turn 1: ignore-shutdown\n/);
    exec.endInput();
    expect(await exec.end()).toBe(137);
    expect(exec.stderr.output).toContain("Executor ended by SIGKILL");
    expect(await leftoversAfter(exec, 5_000)).toEqual([]);
  });

  test("the executor dies during a turn: its exit code, and the turn it died in", async () => {
    const { exec } = interactiveFixture("one");
    await exec.stdout.waitFor(/turn 1: one\n/);
    exec.type("exit 3");
    expect(await exec.end()).toBe(3);
    expect(exec.stderr.output).toContain("Executor exited with code 3 during turn 2");
    expect(exec.answers()).toEqual(["turn 1: one"]);
  });

  test("the executor dies while waiting for the next prompt: exec ends at once with its status", async () => {
    const { exec } = interactiveFixture("one");
    await exec.stdout.waitFor(/turn 1: one\n/);
    const [executor] = exec.children();
    process.kill(executor!, "SIGKILL");
    expect(await exec.end()).toBe(137);
    expect(exec.stderr.output).toContain("The executor ended the session by itself while waiting for the next prompt");
    expect(exec.stderr.output).toContain("Executor ended by SIGKILL while waiting for the next prompt");
  });
});

describe("exec --interactive with Claude Code against the fake Messages API", () => {
  test(
    "two turns in one Claude Code; Ctrl+C while the model holds its reply interrupts the turn, the session goes on",
    async () => {
      const api = startFakeAnthropic(echoLastLine);
      const claude = recordingClaude();
      const home = temp.make("ar-int-home-");
      const env = { ...offlineClaudeEnv(home, api.url, join(home, ".claude")), CLAUDE_CODE_EXECUTABLE: claude.path };
      const { exec } = interactive(["--session-id", "ses_cc", "--prompt", "FIRST_TURN_MARKER"], env);
      await exec.stdout.waitFor(/You said: FIRST_TURN_MARKER\n/);
      // The model "thinks" until released: the turn is under way when the Ctrl+C comes.
      await api.holdTurn("TAKE_YOUR_TIME", () => exec.type("TAKE_YOUR_TIME"));
      exec.ctrlC();
      await exec.stderr.waitFor(/Turn 2 was interrupted/);
      api.releaseHeld();
      exec.type("AFTER_THE_INTERRUPT");
      await exec.stdout.waitFor(/You said: AFTER_THE_INTERRUPT\n/);
      exec.endInput();
      expect(await exec.end()).toBe(0);
      expect(exec.answers()).toEqual(["You said: FIRST_TURN_MARKER", "You said: AFTER_THE_INTERRUPT"]);
      // The summary covers the whole conversation: every turn's usage event.
      expect(exec.stderr.output).toMatch(
        /Session ses_cc done in [\d.]+ s, \d+ turns, [\d,]+ tokens, \$[\d.]+\. Continue/,
      );
      // One Claude Code process for the whole conversation, which carries every turn.
      expect(claude.starts()).toHaveLength(1);
      expect(binds(exec.stderr.output)).toBe(1);
      const last = JSON.stringify(api.agentRequests().at(-1)?.messages);
      expect(last).toContain("FIRST_TURN_MARKER");
      expect(last).toContain("AFTER_THE_INTERRUPT");
      expect(await leftoversAfter(exec, 5_000)).toEqual([]);
    },
    TIMEOUT,
  );

  test(
    "--interactive --resume continues the Claude Code conversation in a new process",
    async () => {
      const api = startFakeAnthropic(echoLastLine);
      const home = temp.make("ar-int-home-");
      const env = offlineClaudeEnv(home, api.url, join(home, ".claude"));
      const state = temp.make();
      const first = interactive(["--session-id", "ses_ccr", "--prompt", "REMEMBER_THIS_MARKER"], env, state).exec;
      await first.stdout.waitFor(/You said: REMEMBER_THIS_MARKER\n/);
      first.ctrlC();
      expect(await first.end()).toBe(0);

      const from = api.agentRequests().length;
      const again = interactive(["--resume", "--session-id", "ses_ccr"], env, state).exec;
      again.type("SECOND_SESSION_MARKER");
      await again.stdout.waitFor(/You said: SECOND_SESSION_MARKER\n/);
      again.endInput();
      expect(await again.end()).toBe(0);
      const history = api.conversationSince(from);
      expect(history).toContain("REMEMBER_THIS_MARKER");
      expect(history).toContain("SECOND_SESSION_MARKER");
    },
    TIMEOUT,
  );

  test(
    "coding-sandboxed: two turns in one sandboxed Claude Code; the end of input ends the sandbox",
    async () => {
      needBubblewrap();
      const api = startFakeAnthropic(echoLastLine);
      const world = homeWithSecrets(temp);
      const exec = new InteractiveExec(
        ["--profile", "coding-sandboxed", "--state-dir", join(world.base, "exec-state"), "--prompt", "SANDBOXED_ONE"],
        { env: offlineClaudeEnv(world.home, api.url), cwd: world.project },
      );
      await exec.stdout.waitFor(/You said: SANDBOXED_ONE\n/);
      const [bwrap] = exec.children();
      exec.type("SANDBOXED_TWO");
      await exec.stdout.waitFor(/You said: SANDBOXED_TWO\n/);
      expect(exec.children()).toEqual([bwrap!]);
      exec.endInput();
      expect(await exec.end()).toBe(0);
      expect(binds(exec.stderr.output)).toBe(1);
      expect(await leftoversAfter(exec, 5_000)).toEqual([]);
    },
    TIMEOUT,
  );
});
