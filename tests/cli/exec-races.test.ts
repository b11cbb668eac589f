/**
 * Ctrl+C races in exec, one-shot and interactive: while the executor is being spawned, between two
 * turns, at the moment a turn completes, many at once. Whatever the timing, exec ends, with an exit
 * code that says how, and nothing it started is left running. Each race is run several times: its
 * outcome may differ between runs, never its guarantees.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { InteractiveExec, leftoversAfter } from "../support/interactive-exec.ts";
import { REPO_ROOT, TempDirs } from "../support/processes.ts";

const TRIALS = 6;
const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** `fixture`: the persistent fixture executor ("hang" never completes); `hang`: a one-shot run that waits for a signal. */
function fixtureProfiles(): string {
  const dir = temp.make("ar-race-profiles-");
  const command = join(REPO_ROOT, "tests/fixtures/executors/persistent");
  writeFileSync(join(dir, "fixture.json"), JSON.stringify({ type: "fixture", command, lifecycle: "persistent" }));
  const hang = join(REPO_ROOT, "tests/fixtures/executors/hang");
  writeFileSync(join(dir, "hang.json"), JSON.stringify({ type: "fixture", command: hang }));
  return dir;
}

function start(args: string[], oneShot = false): InteractiveExec {
  return new InteractiveExec([...args, "--state-dir", temp.make()], { cwd: temp.make(), oneShot });
}

/** exec ended, with one of the codes that fit, said nothing unexpected, and left nothing running. */
async function endsCleanly(exec: InteractiveExec, codes: number[]): Promise<number> {
  const code = await exec.end();
  expect(codes, `exit ${code}; stderr:\n${exec.stderr.output}`).toContain(code);
  expect(exec.stderr.output).not.toMatch(/unexpected|TypeError|at async|Unhandled/);
  expect(await leftoversAfter(exec, 5_000)).toEqual([]);
  return code;
}

/**
 * Bursts of ten SIGINTs, as fast as they can be sent, until exec ends: a burst may reach exec as
 * one signal (a signal sent while the same one is pending is merged into it), so each next burst
 * waits until exec has said what the previous one did (each of `steps`), or has ended.
 */
async function burstsOfCtrlC(exec: InteractiveExec, steps: RegExp[]): Promise<void> {
  const ended = exec.exited.then(() => true);
  for (const step of [...steps, undefined]) {
    for (let i = 0; i < 10; i++) exec.ctrlC();
    if (!step) return;
    const said = exec.stderr.waitFor(step).then(
      () => false,
      () => true,
    );
    if (await Promise.race([ended, said])) return;
  }
}

describe("Ctrl+C races in exec", () => {
  test("one-shot: Ctrl+C as the executor is being spawned", async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const exec = start(["--profile", "hang", "--profiles-dir", fixtureProfiles(), "--prompt", "x"], true);
      // The line before the spawn; a later trial waits a little longer each time.
      await exec.stderr.waitFor(/Starting session/);
      if (trial > 0) await Bun.sleep(trial * 3);
      exec.ctrlC();
      // 130: before exec took the signal; 143: the executor stopped.
      await endsCleanly(exec, [130, 143]);
    }
  }, 120_000);

  test("one-shot: many Ctrl+C at once", async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const exec = start(["--profile", "hang", "--profiles-dir", fixtureProfiles(), "--prompt", "x", "--json"], true);
      await exec.stdout.waitFor(/"event_type":"ready"/);
      await burstsOfCtrlC(exec, [/stopping the executor/]);
      await endsCleanly(exec, [143, 137]);
    }
  }, 120_000);

  test("interactive: Ctrl+C as the first line starts the executor", async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const exec = start(["--profile", "test"]);
      await exec.stderr.waitFor(/Starting interactive session/);
      exec.type("one");
      if (trial > 0) await Bun.sleep(trial * 3);
      exec.ctrlC();
      exec.endInput();
      // 130: before the first line was read (or before exec took the signal); 0: the turn, then the end of input.
      await endsCleanly(exec, [130, 0]);
    }
  }, 120_000);

  test("interactive: Ctrl+C at the moment a turn completes, and between two turns", async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const exec = start(["--profile", "test", "--prompt", "one"]);
      await exec.stdout.waitFor(/Received: one\n/);
      exec.type("two");
      if (trial > 0) await Bun.sleep(trial * 3);
      // During turn two (an interrupt the test executor ignores, then the end of input) or at the prompt after it.
      exec.ctrlC();
      exec.endInput();
      await endsCleanly(exec, [0]);
    }
  }, 120_000);

  test("interactive: many Ctrl+C at once, during a turn and at the prompt", async () => {
    for (let trial = 0; trial < TRIALS; trial++) {
      const duringTurn = start(["--profile", "fixture", "--profiles-dir", fixtureProfiles(), "--prompt", "hang"]);
      await duringTurn.stderr.waitFor(/"prompt":"hang"/);
      // The fixture has nothing to interrupt: it takes the stop to end it.
      await burstsOfCtrlC(duringTurn, [/interrupting the turn/, /stopping the executor/]);
      await endsCleanly(duringTurn, [143, 137]);

      const atPrompt = start(["--profile", "test", "--prompt", "one"]);
      await atPrompt.stdout.waitFor(/Received: one\n/);
      await burstsOfCtrlC(atPrompt, [/ending the session/]);
      await endsCleanly(atPrompt, [0, 143, 137]);
    }
  }, 120_000);
});
