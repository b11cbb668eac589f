/**
 * Executors built on the kit end themselves, and what they started, when the process that started
 * them dies without a word (SIGKILL): through the lifeline the runner hands over, or by noticing
 * their parent is gone when there is none.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { LocalGateway } from "../../../src/exec/local-gateway.ts";
import { offlineClaudeEnv } from "../../support/claude-code.ts";
import { startFakeAnthropic } from "../../support/fake-anthropic.ts";
import { startFakeCoordinator } from "../../support/fake-coordinator.ts";
import {
  CLAUDE_CODE_EXECUTOR,
  cleanEnv,
  goneWithin,
  OutputWatcher,
  REPO_ROOT,
  spawnRunner,
  TempDirs,
} from "../../support/processes.ts";
import { FIXTURES } from "../../support/runner-harness.ts";
import { killAfterTest } from "../../support/teardown.ts";

/** What the assertions allow; the promise is 2 s, measured times are printed. */
const BOUND_MS = 5000;
const KIT_WAIT = join(FIXTURES, "kit-wait");
const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** Kills `parent` and measures how long each of `pids` takes to be gone (-1: still there after the bound). */
async function killAndTime(parent: Subprocess<any, any, any>, watched: number[]) {
  killAfterTest(...watched);
  parent.kill("SIGKILL");
  await parent.exited;
  const from = performance.now();
  const took: number[] = [];
  for (const pid of watched) took.push((await goneWithin(pid, BOUND_MS)) ? Math.round(performance.now() - from) : -1);
  return took;
}

/** A profiles directory with one profile, `gone`, running `command`. */
function profilesDir(command: string): string {
  const dir = temp.make("ar-gone-profiles-");
  writeFileSync(join(dir, "gone.json"), JSON.stringify({ type: "gone", command }));
  return dir;
}

function startRunner(command: string, env: Record<string, string> = {}) {
  const fake = startFakeCoordinator();
  const runner = spawnRunner(
    ["--profile", "gone", "--profiles-dir", profilesDir(command), "-c", fake.url, "-p", temp.make("ar-gone-project-")],
    env,
  );
  return { fake, runner };
}

describe("the runner SIGKILLed mid-run", () => {
  test("a kit executor that ignores stop requests, and its child, end within the bound", async () => {
    const { fake, runner } = startRunner(KIT_WAIT);
    await fake.waitForRequest("POST", "/runner/register");
    fake.handRun({ run_id: "run_gone", type: "start_session", session_id: "ses_gone", prompt: "wait" });
    const ready = await fake.waitFor((r) => r.path === "/sessions/ses_gone/events" && r.body?.role === "assistant");
    const { pid, child } = JSON.parse(ready.body.content[0].text);
    const [executorTook, childTook] = await killAndTime(runner.process, [pid, child]);
    console.log(`runner SIGKILLed: kit executor gone after ${executorTook} ms, its child after ${childTook} ms`);
    expect(executorTook).toBeGreaterThanOrEqual(0);
    expect(childTook).toBeGreaterThanOrEqual(0);
  });

  test("the Claude Code executor and Claude Code end within the bound", async () => {
    const thinking = startFakeAnthropic().holdMessages();
    try {
      const home = temp.make("ar-gone-home-");
      const { fake, runner } = startRunner(
        CLAUDE_CODE_EXECUTOR,
        offlineClaudeEnv(home, thinking.url, join(home, ".claude")),
      );
      await fake.waitForRequest("POST", "/runner/register");
      fake.handRun({ run_id: "run_cc", type: "start_session", session_id: "ses_cc", prompt: "take your time" });
      // Claude Code is waiting for the model: the turn is under way.
      await thinking.waitFor((r) => r.path === "/v1/messages");
      await runner.output.waitFor(/Run run_cc started: .*pid \d+/);
      const executor = Number(/Run run_cc started: .*pid (\d+)/.exec(runner.output.output)![1]);
      const claudeCode = Bun.spawnSync(["pgrep", "-P", String(executor)])
        .stdout.toString()
        .trim()
        .split("\n")
        .filter(Boolean)
        .map(Number);
      expect(claudeCode.length).toBeGreaterThan(0);
      const took = await killAndTime(runner.process, [executor, ...claudeCode]);
      console.log(
        `runner SIGKILLed: Claude Code executor gone after ${took[0]} ms, Claude Code after ${took.slice(1)} ms`,
      );
      for (const ms of took) expect(ms).toBeGreaterThanOrEqual(0);
    } finally {
      await thinking.stop();
    }
  }, 90_000);
});

describe("exec SIGKILLed mid-run", () => {
  test("a kit executor that ignores stop requests, and its child, end within the bound", async () => {
    const exec = Bun.spawn(
      [
        process.execPath,
        join(REPO_ROOT, "index.ts"),
        "exec",
        "--profile",
        "gone",
        "--profiles-dir",
        profilesDir(KIT_WAIT),
        "--prompt",
        "wait",
        "--state-dir",
        temp.make(),
        "--json",
      ],
      { cwd: temp.make(), env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    killAfterTest(exec.pid);
    const output = new OutputWatcher([exec.stdout, exec.stderr]);
    await output.waitFor(/"role":"assistant"/);
    const line = output.output.split("\n").find((l) => l.includes('"role":"assistant"'))!;
    const { pid, child } = JSON.parse(JSON.parse(line).body.content[0].text);
    const [executorTook, childTook] = await killAndTime(exec, [pid, child]);
    console.log(`exec SIGKILLed: kit executor gone after ${executorTook} ms, its child after ${childTook} ms`);
    expect(executorTook).toBeGreaterThanOrEqual(0);
    expect(childTook).toBeGreaterThanOrEqual(0);
  });
});

describe("a parent process SIGKILLed mid-run", () => {
  /** A Bun script that starts the kit-wait executor, with the runner's process module or without a lifeline. */
  function parentScript(how: "executor-process" | "plain-spawn"): string {
    const path = join(temp.make("ar-gone-parent-"), "parent.ts");
    const spawn =
      how === "executor-process"
        ? `new ExecutorProcess({ argv: [${JSON.stringify(KIT_WAIT)}], input, env: process.env, stderr: "inherit" });`
        : `Bun.spawn([${JSON.stringify(KIT_WAIT)}], { stdin: new TextEncoder().encode(input), stdout: "ignore", stderr: "inherit", detached: true });`;
    writeFileSync(
      path,
      `import { ExecutorProcess } from ${JSON.stringify(join(REPO_ROOT, "src/process/executor-process.ts"))};
const input = JSON.stringify({ schema_version: "2.1", mode: "start", session_id: "ses_p", prompt: "wait", project_dir: process.cwd() });
${spawn}
setInterval(() => {}, 60_000);
`,
    );
    return path;
  }

  for (const [how, means] of [
    ["executor-process", "the lifeline"],
    ["plain-spawn", "its parent process changing"],
  ] as const) {
    test(`${how}: the kit executor notices through ${means}, ends with its child and says why`, async () => {
      let ready!: (text: string) => void;
      const readyText = new Promise<string>((resolve) => (ready = resolve));
      const gateway = new LocalGateway({
        onRecord: (record) => {
          const body = record.body as { role?: string; content?: Array<{ text: string }> };
          if (body?.role === "assistant") ready(body.content![0]!.text);
        },
      }).start();
      const stderrFile = join(temp.make(), "stderr");
      try {
        const parent = Bun.spawn([process.execPath, parentScript(how)], {
          cwd: temp.make(),
          env: cleanEnv({ AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_p"), AGENT_SESSION_ID: "ses_p" }),
          stdio: ["ignore", "ignore", Bun.file(stderrFile)],
        });
        killAfterTest(parent.pid);
        const { pid, child } = JSON.parse(await readyText);
        const [executorTook, childTook] = await killAndTime(parent, [pid, child]);
        console.log(
          `${how}: parent SIGKILLed, kit executor gone after ${executorTook} ms, its child after ${childTook} ms`,
        );
        expect(executorTook).toBeGreaterThanOrEqual(0);
        expect(childTook).toBeGreaterThanOrEqual(0);
        expect(readFileSync(stderrFile, "utf8")).toMatch(
          /^kit-wait: the process that started this executor is gone \(.+\): stopped before the agent finished$/m,
        );
      } finally {
        await gateway.stop();
      }
    });
  }
});
