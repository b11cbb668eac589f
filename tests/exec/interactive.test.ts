/** InteractiveSession in process: the lines come from the test, a small persistent executor answers. */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import { type InteractiveOutcome, InteractiveSession, type TurnAnswer } from "../../src/exec/interactive.ts";
import type { LocalRunResult } from "../../src/exec/run-local.ts";
import { cleanEnv, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/**
 * A persistent executor whose turn_complete carries no result: the turn's answer is its result
 * event (`{"echo": <prompt>}`). "hang" never completes; "stay" makes it ignore shutdown and end of input;
 * "deaf" closes its stdin (and stays).
 */
function resultEventExecutor(): ExecutorProfile {
  const path = join(temp.make("ar-int-exec-"), "result-event-exec");
  writeFileSync(
    path,
    `#!/usr/bin/env bun
const api = process.env.AGENT_ORCHESTRATOR_API_URL;
let sessionId = "";
let stay = false;
const post = (path, body) => fetch(api + path, { method: "POST", headers: { "content-type": "application/json" },
  body: JSON.stringify({ session_id: sessionId, ...body }) });
async function turn(prompt) {
  if (prompt === "hang") return;
  if (prompt === "stay") stay = true;
  if (prompt === "deaf") {
    stay = true;
    require("node:fs").closeSync(0);
  }
  await post("/events", { event_type: "result", result_text: null, result_data: { echo: prompt } });
  process.stdout.write('{"type":"turn_complete"}\\n');
}
let buffer = "";
let first = true;
try {
for await (const chunk of Bun.stdin.stream()) {
  buffer += new TextDecoder().decode(chunk);
  for (let at = buffer.indexOf("\\n"); at >= 0; at = buffer.indexOf("\\n")) {
    const message = JSON.parse(buffer.slice(0, at));
    buffer = buffer.slice(at + 1);
    if (first) {
      first = false;
      sessionId = message.session_id;
      await post("/bind", { executor_session_id: "exe-1" });
      await turn(message.parameters.prompt);
    } else if (message.type === "turn") await turn(message.parameters.prompt);
    else if (message.type === "shutdown" && !stay) process.exit(0);
  }
}
} catch (error) {
  if (!stay) throw error;
}
if (stay) setInterval(() => {}, 1000);
`,
  );
  chmodSync(path, 0o755);
  return {
    name: "result-event",
    type: "fixture",
    command: path,
    config: {},
    lifecycle: "persistent",
    source: "test",
    argv: [path],
  };
}

/** Lines the test types, one at a time; `end()` is Ctrl+D. */
class Lines {
  private queued: Array<string | undefined> = [];
  private waiting?: (line: string | undefined) => void;

  type(line: string | undefined): void {
    if (this.waiting) {
      const wake = this.waiting;
      this.waiting = undefined;
      wake(line);
    } else this.queued.push(line);
  }

  next(): Promise<string | undefined> {
    if (this.queued.length > 0) return Promise.resolve(this.queued.shift());
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }
}

function session(options: { prompt?: string; graceMs?: number } = {}) {
  const lines = new Lines();
  const answers: TurnAnswer[] = [];
  const answered: Array<() => void> = [];
  const conversation = new InteractiveSession({
    profile: resultEventExecutor(),
    mode: "start",
    sessionId: "ses_in",
    prompt: options.prompt,
    projectDir: temp.make(),
    env: cleanEnv(),
    lines,
    stopGraceMs: options.graceMs ?? 60_000,
    onAnswer: (answer) => {
      answers.push(answer);
      for (const wake of answered.splice(0)) wake();
    },
  });
  const nextAnswer = () => new Promise<void>((resolve) => answered.push(resolve));
  return { conversation, lines, answers, nextAnswer };
}

const started = (outcome: InteractiveOutcome): LocalRunResult => {
  if ("nothingStarted" in outcome) throw new Error("no session was started");
  return outcome;
};

describe("InteractiveSession", () => {
  test("a turn_complete without a result: the answer is the turn's result event, its data kept", async () => {
    const { conversation, lines, answers, nextAnswer } = session();
    const answer = nextAnswer();
    const running = conversation.run();
    lines.type("one");
    await answer;
    lines.type("two");
    lines.type(undefined);
    const outcome = started(await running);
    expect(answers).toEqual([
      { turn: 1, result: '{"echo":"one"}', data: { echo: "one" }, interrupted: false },
      { turn: 2, result: '{"echo":"two"}', data: { echo: "two" }, interrupted: false },
    ]);
    expect(outcome).toMatchObject({ exitCode: 0, result: '{"echo":"two"}', resultData: { echo: "two" } });
    expect(outcome.invocation).toMatchObject({ schema_version: "2.2", parameters: { prompt: "one" } });
    expect(outcome.records.filter((r) => r.kind === "bind")).toHaveLength(1);
  });

  test("SIGTERM while the executor is being started: the first turn's executor is stopped (no interrupt first): exit 143", async () => {
    const { conversation } = session({ prompt: "hang" });
    const running = conversation.run();
    conversation.terminate("SIGTERM");
    const outcome = started(await running);
    expect(outcome).toMatchObject({ exitCode: 143, signal: "SIGTERM", endedWhen: "during turn 1" });
  });

  test("SIGTERM at the prompt ends the session cleanly, like Ctrl+C there", async () => {
    const { conversation, nextAnswer } = session({ prompt: "one" });
    const answer = nextAnswer();
    const running = conversation.run();
    await answer;
    conversation.terminate("SIGHUP");
    expect(started(await running)).toMatchObject({ exitCode: 0, result: '{"echo":"one"}' });
  });

  test("two Ctrl+C at once at the prompt: the shutdown line, then SIGTERM for an executor that stays", async () => {
    const { conversation, nextAnswer } = session({ prompt: "stay" });
    const answer = nextAnswer();
    const running = conversation.run();
    await answer;
    // Both before the session has begun to end; the grace is a minute: only the second can end it soon.
    conversation.interrupt();
    conversation.interrupt();
    expect(started(await running)).toMatchObject({ exitCode: 143, signal: "SIGTERM" });
  });

  test("an executor that closed its stdin: the next line ends it (SIGKILL) instead of waiting for it", async () => {
    const { conversation, lines, nextAnswer } = session({ prompt: "deaf" });
    const answer = nextAnswer();
    const running = conversation.run();
    await answer;
    lines.type("two");
    expect(started(await running)).toMatchObject({ exitCode: 137, signal: "SIGKILL", endedWhen: "before turn 2" });
  });

  test("the end of input before any line: nothing is started", async () => {
    const { conversation, lines } = session();
    const running = conversation.run();
    lines.type(undefined);
    expect(await running).toEqual({ nothingStarted: true, exitCode: 0 });
  });
});
