/** The kit's side of a persistent session, in process: stdin read line by line, turns in order, interrupts, ends. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { LocalGateway } from "../../../src/exec/local-gateway.ts";
import {
  type ExecutorDefinition,
  ExecutorError,
  type ExecutorIO,
  runExecutor,
  type TurnOutcome,
} from "../../../src/executors/kit/run-executor.ts";
import { StdinReader } from "../../../src/executors/kit/stdin-reader.ts";
import { INTERRUPT_LINE, SHUTDOWN_LINE, turnCompleteLine, turnLine } from "../../../src/protocol/session-lines.ts";
import type { JsonObject } from "../../../src/shared/validation.ts";

const encoder = new TextEncoder();

/** A stdin the test writes to, chunk by chunk. */
function pipe() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
  });
  return {
    reader: new StdinReader(stream),
    write: (chunk: string | Uint8Array) =>
      controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk),
    end: () => controller.close(),
  };
}

describe("StdinReader", () => {
  test("lines across chunks, CRLF, a character split between chunks, a last line without a newline", async () => {
    const input = pipe();
    const bytes = encoder.encode("first\r\nsecond é\n\nthird");
    const split = bytes.indexOf(0xc3) + 1;
    input.write(bytes.slice(0, 3));
    const first = input.reader.readLine();
    input.write(bytes.slice(3, split));
    input.write(bytes.slice(split));
    input.end();
    expect(await first).toBe("first");
    expect(await input.reader.readLine()).toBe("second é");
    expect(await input.reader.readLine()).toBe("");
    expect(await input.reader.readLine()).toBe("third");
    expect(await input.reader.readLine()).toBeUndefined();
  });

  test("one-shot reads everything (several lines); persistent only the first line that is not blank", async () => {
    expect(await new StdinReader('{\n  "a": 1\n}\n').readInvocation("one_shot")).toBe('{\n  "a": 1\n}\n');
    const persistent = new StdinReader('\n  \n{"a":1}\n{"type":"shutdown"}\n');
    expect(await persistent.readInvocation("persistent")).toBe('{"a":1}');
    expect(await persistent.readLine()).toBe('{"type":"shutdown"}');
    expect(await new StdinReader("\n\n").readInvocation("persistent")).toBe("");
  });

  test("a 32 MB turn line in 16 KB chunks is read at the cost of its length", async () => {
    // Joined and searched again at each chunk, the part read so far would cost some 7 s of
    // copying here; read once, well under 0.5 s.
    const bytes = encoder.encode(`${"x".repeat(32 * 1024 * 1024)}\n${SHUTDOWN_LINE}`);
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(at, at + 16 * 1024));
        at += 16 * 1024;
      },
    });
    const reader = new StdinReader(stream);
    const started = performance.now();
    const line = await reader.readLine();
    const seconds = (performance.now() - started) / 1000;
    expect(line?.length).toBe(32 * 1024 * 1024);
    expect(await reader.readLine()).toBe(SHUTDOWN_LINE.trimEnd());
    expect(seconds).toBeLessThan(2);
  }, 30_000);
});

let gateway: LocalGateway;
beforeEach(() => {
  gateway = new LocalGateway().start();
});
afterEach(async () => {
  await gateway.stop();
});

/** A session whose turns wait until the test ends them, or an interrupt does; it records what happened. */
function controlledExecutor() {
  const happened: string[] = [];
  let finishTurn: ((outcome: TurnOutcome | Error) => void) | undefined;
  const turnStarted: Array<() => void> = [];
  const definition: ExecutorDefinition = {
    name: "loop-exec",
    summary: "test",
    details: "",
    startSession: async () => ({
      turn: (parameters: JsonObject) =>
        new Promise<TurnOutcome>((resolve, reject) => {
          happened.push(`turn ${parameters.prompt}`);
          finishTurn = (outcome) => {
            finishTurn = undefined;
            if (outcome instanceof Error) reject(outcome);
            else resolve(outcome);
          };
          for (const started of turnStarted.splice(0)) started();
        }),
      interrupt: () => {
        happened.push("interrupt");
        finishTurn?.({ result: "cut", interrupted: true });
      },
      finish: async () => {
        happened.push("finish");
      },
      dispose: async () => {
        happened.push("dispose");
      },
    }),
  };
  return {
    definition,
    happened,
    /** Resolves once a turn is running. */
    turnRunning: () => (finishTurn ? Promise.resolve() : new Promise<void>((resolve) => turnStarted.push(resolve))),
    answer: (result: string) => finishTurn?.({ result }),
    fail: (message: string) => finishTurn?.(new ExecutorError(message)),
  };
}

function persistentIO(input: ReturnType<typeof pipe>) {
  const out: string[] = [];
  const err: string[] = [];
  let wrote = () => {};
  const io: ExecutorIO = {
    stdin: input.reader,
    stdout: async (text) => {
      out.push(text);
      wrote();
    },
    stderr: (text) => err.push(text),
    env: { AGENT_RUNNER_LIFECYCLE: "persistent", AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("s1") },
  };
  /** Resolves once stdout holds `count` lines. */
  const lines = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (out.length >= count) resolve();
      };
      wrote = check;
      check();
    });
  return { io, out, err, lines };
}

const invocationLine = (prompt: string) =>
  `${JSON.stringify({ schema_version: "2.1", mode: "start", session_id: "s1", prompt })}\n`;

/** A controlled executor's persistent session, run in process, with `firstLines` (its invocation first) on stdin. */
function startSession(firstLines: string) {
  const input = pipe();
  const output = persistentIO(input);
  const executor = controlledExecutor();
  input.write(firstLines);
  const exit = runExecutor(executor.definition, [], output.io);
  return { input, executor, exit, ...output };
}

describe("a persistent session", () => {
  test("turns in order; an interrupt reaches only the running turn; shutdown comes after the turns before it", async () => {
    const { input, executor, exit, out, err, lines } = startSession(invocationLine("one"));
    await executor.turnRunning();
    executor.answer("answer one");
    await lines(1);
    // Idle: an interrupt has no turn to cut short.
    input.write(INTERRUPT_LINE);
    input.write(turnLine({ prompt: "two" }) + turnLine({ prompt: "three" }) + SHUTDOWN_LINE);
    await executor.turnRunning();
    input.write(INTERRUPT_LINE);
    await lines(2);
    await executor.turnRunning();
    executor.answer("answer three");
    expect(await exit).toBe(0);
    expect(out).toEqual([
      turnCompleteLine("answer one"),
      turnCompleteLine("cut", true),
      turnCompleteLine("answer three"),
    ]);
    expect(executor.happened).toEqual(["turn one", "turn two", "interrupt", "turn three", "finish", "dispose"]);
    expect(err).toEqual([]);
  });

  test("a failed turn: its message, exit 1, no finish, dispose; the turn queued after it never runs", async () => {
    const { executor, exit, out, err } = startSession(invocationLine("one") + turnLine({ prompt: "two" }));
    await executor.turnRunning();
    executor.fail("the agent fell over");
    expect(await exit).toBe(1);
    expect(out).toEqual([]);
    expect(err).toEqual(["loop-exec: the agent fell over\n"]);
    expect(executor.happened).toEqual(["turn one", "dispose"]);
  });

  test("SIGTERM while idle: exit 143 at once, the session disposed of", async () => {
    const { executor, exit, err, lines } = startSession(invocationLine("one"));
    await executor.turnRunning();
    executor.answer("answer one");
    await lines(1);
    const from = performance.now();
    process.kill(process.pid, "SIGTERM");
    expect(await exit).toBe(143);
    // Nothing is running while idle: no wait for the second of wind-down a running turn gets.
    expect(performance.now() - from).toBeLessThan(1000);
    expect(err).toEqual(["loop-exec: Stopped by SIGTERM before the agent finished\n"]);
    expect(executor.happened).toEqual(["turn one", "dispose"]);
    expect(process.listenerCount("SIGTERM")).toBe(0);
  });
});
