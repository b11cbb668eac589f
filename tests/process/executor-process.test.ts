/** One executor process for real: stop (grace, SIGKILL), its process group, output, leftovers, the lifeline. */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExecutorProcess, type ExecutorProcessOptions, STDERR_TAIL_BYTES } from "../../src/process/executor-process.ts";
import { LIFELINE_ENV } from "../../src/protocol/lifeline.ts";
import { within } from "../../src/shared/retry.ts";
import {
  type ContainmentMode,
  cgroupRemovedWithin,
  containedParent,
  running,
  startTimeOf,
  stateOf,
  vanishedWithin,
} from "../support/contained.ts";
import { until } from "../support/fault-tools.ts";
import { cleanEnv, goneWithin, isAlive, REPO_ROOT, TempDirs } from "../support/processes.ts";
import { killAfterTest } from "../support/teardown.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** A shell script as an executor; its stdout lines are collected, and `line()` awaits one. */
function start(script: string, options: Partial<ExecutorProcessOptions> = {}) {
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const executor = new ExecutorProcess({
    argv: ["bash", "-c", script],
    input: "",
    env: cleanEnv(),
    stdout: "lines",
    onOutput: (stream, line) => {
      if (stream !== "stdout") return;
      lines.push(line);
      for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    },
    ...options,
  });
  // Every pid a test sees is killed after it, whatever happened.
  killAfterTest(executor.pid);
  /** Resolves with the first stdout line matching `pattern`. */
  const line = (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      const found = lines.find((l) => pattern.test(l));
      if (found !== undefined) resolve(found);
      else waiters.push({ pattern, resolve });
    });
  /** The pid the executor printed as `<label> <pid>`. */
  const pidOf = async (label: string) => {
    const pid = Number((await line(new RegExp(`^${label} \\d+$`))).split(" ")[1]);
    killAfterTest(pid);
    return pid;
  };
  return { executor, lines, line, pidOf };
}

describe("ExecutorProcess: stop", () => {
  test("SIGTERM first; an executor that ignores it gets SIGKILL after the grace", async () => {
    const { executor, line } = start("trap '' TERM; echo ready; exec sleep 1000");
    await line(/^ready$/);
    const from = performance.now();
    expect(await executor.stop(300)).toBe("SIGKILL");
    expect(performance.now() - from).toBeGreaterThanOrEqual(290);
    expect(await executor.exited).toEqual({ code: null, signal: "SIGKILL" });
  });

  test("an executor that ends on SIGTERM is stopped by it, without waiting for the grace", async () => {
    const { executor, line } = start("echo ready; exec sleep 1000");
    await line(/^ready$/);
    const stopped = executor.stop(60_000);
    expect(await within(10_000, stopped)).toBe(true);
    expect(await stopped).toBe("SIGTERM");
    expect(await executor.exited).toEqual({ code: null, signal: "SIGTERM" });
  });

  test("reaches the whole group: the executor's children end with it", async () => {
    const { executor, pidOf } = start("sleep 1000 & echo child $!; wait");
    const child = await pidOf("child");
    expect(await executor.stop(5000)).toBe("SIGTERM");
    expect(isAlive(child)).toBe(false);
  });

  test("when the executor ends on SIGTERM but members of its group ignore it, they get SIGKILL after the grace", async () => {
    // The member has let go of the executor's output: nothing but the group shows it is still there.
    const { executor, pidOf } = start(
      "(trap '' TERM; echo member $BASHPID; exec sleep 1000 </dev/null >/dev/null 2>&1) & wait",
    );
    const member = await pidOf("member");
    const from = performance.now();
    expect(await executor.stop(500)).toBe("SIGKILL");
    expect(performance.now() - from).toBeGreaterThanOrEqual(490);
    // `exited` waits for the whole group: nothing is left once it resolves.
    await executor.exited;
    expect(isAlive(member)).toBe(false);
  });

  test("members that end on SIGTERM within the grace: stopped by SIGTERM, without waiting for the grace", async () => {
    const { executor, pidOf } = start("trap 'exit 0' TERM; sleep 1000 & echo member $!; wait");
    const member = await pidOf("member");
    const stopped = executor.stop(60_000);
    expect(await within(10_000, stopped)).toBe(true);
    expect(await stopped).toBe("SIGTERM");
    expect(isAlive(member)).toBe(false);
  });

  test("kill(): SIGKILL to the group at once, also during a stop's grace", async () => {
    const { executor, line, pidOf } = start("trap '' TERM; sleep 1000 & echo child $!; echo ready; exec sleep 1000");
    const child = await pidOf("child");
    await line(/^ready$/);
    const stopped = executor.stop(60_000);
    executor.kill();
    expect(await within(10_000, stopped)).toBe(true);
    expect(await stopped).toBe("SIGKILL");
    expect(await executor.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(isAlive(child)).toBe(false);
  });

  test("stop() and kill() after the executor is gone do nothing", async () => {
    const { executor } = start("exit 3");
    expect(await executor.exited).toEqual({ code: 3, signal: null });
    expect(await executor.stop(1000)).toBeUndefined();
    executor.kill();
  });
});

describe("ExecutorProcess: after the executor exits", () => {
  test("what it left running in its group is killed at once, and `exited` waits until it is gone", async () => {
    // One leftover holds the executor's stdout and stderr open, the other has let go of them.
    const { executor, pidOf } = start(
      "sleep 1000 & echo holding $!; sleep 1000 </dev/null >/dev/null 2>&1 & echo detached $!; exit 0",
    );
    const holding = await pidOf("holding");
    const detached = await pidOf("detached");
    const from = performance.now();
    expect(await executor.exited).toEqual({ code: 0, signal: null });
    const took = performance.now() - from;
    expect(isAlive(holding)).toBe(false);
    expect(isAlive(detached)).toBe(false);
    console.log(`leftovers killed, exited resolved ${took.toFixed(0)} ms after the executor's last line`);
  });

  test("its output is read to the end", async () => {
    const { executor, lines } = start("for i in $(seq 1 2000); do echo line $i; done; echo done >&2");
    await executor.exited;
    expect(lines.length).toBe(2000);
    expect(lines.at(-1)).toBe("line 2000");
    expect(executor.stderrTail()).toBe("done\n");
  });
});

describe("ExecutorProcess: output", () => {
  test("stderr: the last 8 KB are kept, every line is handed on", async () => {
    const stderrLines: string[] = [];
    const executor = new ExecutorProcess({
      argv: [
        "bash",
        "-c",
        "echo first >&2; for i in $(seq 1 3000); do echo filler $i >&2; done; echo last >&2; exit 1",
      ],
      input: "",
      env: cleanEnv(),
      onOutput: (stream, line) => stream === "stderr" && stderrLines.push(line),
    });
    expect(await executor.exited).toEqual({ code: 1, signal: null });
    const tail = executor.stderrTail();
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(STDERR_TAIL_BYTES);
    expect(Buffer.byteLength(tail)).toBeGreaterThan(STDERR_TAIL_BYTES - 100);
    expect(tail.endsWith("filler 3000\nlast\n")).toBe(true);
    expect(tail).not.toContain("first");
    expect(stderrLines[0]).toBe("first");
    expect(stderrLines.at(-1)).toBe("last");
    expect(stderrLines.length).toBe(3002);
  });

  test("stdin carries the input and is closed; stdout can be captured whole", async () => {
    const executor = new ExecutorProcess({
      argv: ["bash", "-c", "cat; echo; echo end"],
      input: '{"hello":1}',
      env: cleanEnv(),
      stdout: "capture",
    });
    await executor.exited;
    expect(executor.stdout()).toBe('{"hello":1}\nend\n');
  });
});

describe("ExecutorProcess: start", () => {
  test("a missing working directory is refused with a message naming it", () => {
    const missing = join(temp.make(), "gone");
    expect(() => new ExecutorProcess({ argv: ["true"], input: "", env: cleanEnv(), cwd: missing })).toThrow(
      `working directory ${missing} does not exist`,
    );
  });

  test("a missing program is refused", () => {
    expect(() => new ExecutorProcess({ argv: ["/nonexistent/executor"], input: "", env: cleanEnv() })).toThrow();
  });
});

describe("ExecutorProcess: the lifeline", () => {
  test(`the descriptor named by ${LIFELINE_ENV} reaches end-of-file when the spawning process dies`, async () => {
    const dir = temp.make();
    const out = join(dir, "lifeline");
    // A parent (standing in for the runner) spawns an executor that waits on its lifeline.
    const parentScript = join(dir, "parent.ts");
    writeFileSync(
      parentScript,
      `import { ExecutorProcess } from ${JSON.stringify(join(REPO_ROOT, "src/process/executor-process.ts"))};
const executor = new ExecutorProcess({
  argv: ["bash", "-c", 'echo "$$" > "$OUT.pid"; cat <&"$${LIFELINE_ENV}"; echo "eof $${LIFELINE_ENV}" > "$OUT"'],
  input: "",
  env: { PATH: process.env.PATH, OUT: process.env.OUT },
});
setInterval(() => {}, 60_000);
`,
    );
    const parent = Bun.spawn([process.execPath, parentScript], {
      env: cleanEnv({ OUT: out }),
      stdio: ["ignore", "inherit", "inherit"],
    });
    killAfterTest(parent.pid);
    const executorPid = await waitForFile(`${out}.pid`);
    killAfterTest(Number(executorPid));
    expect(isAlive(Number(executorPid))).toBe(true);
    parent.kill("SIGKILL");
    await parent.exited;
    expect(await waitForFile(out)).toBe("eof 3");
    expect(await goneWithin(Number(executorPid), 5000)).toBe(true);
  });
});

/** The file's trimmed content once it exists and is not empty (written by a process under test). */
async function waitForFile(path: string, timeoutMs = 10_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const text = readFileSync(path, "utf8").trim();
      if (text !== "") return text;
    } catch {}
    if (performance.now() > deadline) throw new Error(`${path} was not written within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

/** Bash: `detached PID` waits until the process leads a session of its own (setsid has run). */
const DETACHED = `detached() { until [ "$(cut -d' ' -f6 /proc/$1/stat 2>/dev/null)" = "$1" ]; do sleep 0.01; done; }; `;
/** Bash: `orphan FILE CMD…` starts CMD in a subshell that exits at once, so CMD is orphaned; its pid lands in FILE. */
const ORPHAN = `orphan() { f=$1; shift; ( "$@" </dev/null >/dev/null 2>&1 & echo $! > "$f" ); until [ -s "$f" ]; do sleep 0.01; done; }; `;

/** A contained parent (tests/support/contained-parent.ts), once it is ready to start executors. */
async function readyParent(mode: ContainmentMode) {
  const contained = containedParent(mode);
  await contained.ready;
  return contained;
}

/**
 * Starts executor `id`, which orphans `command` (see ORPHAN), prints the orphan's pid and then
 * goes on with `then`; resolves with the orphan's pid and start time.
 */
async function startLeavingOrphan(
  p: Awaited<ReturnType<typeof readyParent>>,
  id: string,
  command: string,
  then: string,
) {
  const file = join(temp.make(), id);
  await p.start(id, `${ORPHAN} orphan ${file} ${command}; echo escapee $(cat ${file}); ${then}`);
  return p.printed(id, "escapee");
}

describe.each(["cgroup", "subreaper"] as const)(
  "ExecutorProcess contained by %s: nothing it starts outlives it",
  (mode) => {
    const parent = () => readyParent(mode);

    test("a child in a session of its own (setsid) is killed when the executor exits 0, and its cgroup removed", async () => {
      const p = await parent();
      const run = await p.start(
        "a",
        `${DETACHED} setsid sleep 300 </dev/null >/dev/null 2>&1 & e=$!; detached $e; echo escapee $e; exit 0`,
      );
      const escapee = await p.printed("a", "escapee");
      expect(await p.exited("a")).toEqual({ code: 0, signal: null });
      expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
      if (mode === "cgroup") expect(await cgroupRemovedWithin(run.cgroup!, 5000)).toBe(true);
    });

    test("a missing program is refused before anything starts, as without containment", async () => {
      const p = await parent();
      // Named in the reason, whether the spawn or the look for it refused it.
      expect(await p.refused("a", ["/nonexistent/executor"])).toContain("/nonexistent/executor");
    });

    test("a double fork (a grandchild in another session, its parent gone) is killed when the executor exits", async () => {
      const p = await parent();
      const file = join(temp.make(), "escapee");
      await p.start(
        "a",
        `(setsid sh -c 'sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$0"' "${file}" &); until [ -s ${file} ]; do sleep 0.01; done; echo escapee $(cat ${file}); exit 0`,
      );
      const escapee = await p.printed("a", "escapee");
      expect(await p.exited("a")).toEqual({ code: 0, signal: null });
      expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
    });

    test("nohup in a session of its own is killed when the executor exits", async () => {
      const p = await parent();
      await p.start(
        "a",
        `${DETACHED} nohup setsid sleep 300 </dev/null >/dev/null 2>&1 & e=$!; detached $e; echo escapee $e; exit 0`,
      );
      const escapee = await p.printed("a", "escapee");
      expect(await p.exited("a")).toEqual({ code: 0, signal: null });
      expect(await vanishedWithin(escapee.pid, escapee.startTime, 5000)).toBe(true);
    });

    test("stop: detached children get SIGTERM too; one that ignores it gets SIGKILL after the grace", async () => {
      const p = await parent();
      const dir = temp.make();
      // Each says it is ready once its trap is set.
      await p.start(
        "a",
        `setsid sh -c 'trap "" TERM; : > "$0.ready"; while :; do sleep 0.05; done' ${dir}/stubborn </dev/null >/dev/null 2>&1 & s=$!; ` +
          `setsid sh -c 'trap "echo got-term > $0; exit 0" TERM; : > "$0.ready"; while :; do sleep 0.05; done' ${dir}/polite </dev/null >/dev/null 2>&1 & q=$!; ` +
          `until [ -e ${dir}/stubborn.ready ] && [ -e ${dir}/polite.ready ]; do sleep 0.01; done; ` +
          "echo stubborn $s; echo polite $q; wait",
      );
      const stubborn = await p.printed("a", "stubborn");
      const polite = await p.printed("a", "polite");
      const stopped = await p.stop("a", 500);
      expect(stopped.signal).toBe("SIGKILL");
      expect(stopped.ms).toBeGreaterThanOrEqual(490);
      expect(readFileSync(join(dir, "polite"), "utf8")).toBe("got-term\n");
      expect(await vanishedWithin(stubborn.pid, stubborn.startTime, 5000)).toBe(true);
      expect(await vanishedWithin(polite.pid, polite.startTime, 5000)).toBe(true);
    });

    test("two runs at once: when one ends, only its orphans are killed; the other's live until it ends", async () => {
      const p = await parent();
      const ofB = await startLeavingOrphan(p, "b", "setsid sleep 300", "exec sleep 1000");
      // Adopted by the parent (subreaper): only the mark in its environment says whose it is.
      await until(() => stateOf(ofB.pid)?.ppid === p.pid, "the orphan of b adopted by the parent");
      const ofA = await startLeavingOrphan(p, "a", "setsid sleep 300", "exit 0");
      expect(await p.exited("a")).toEqual({ code: 0, signal: null });
      expect(await vanishedWithin(ofA.pid, ofA.startTime, 5000)).toBe(true);
      // The end of a went through the orphans (a sweep) after a's were gone: b's is still there.
      expect(running(ofB.pid)).toBe(true);
      expect(startTimeOf(ofB.pid)).toBe(ofB.startTime);
      p.kill("b");
      expect(await p.exited("b")).toEqual({ code: null, signal: "SIGKILL" });
      expect(await vanishedWithin(ofB.pid, ofB.startTime, 5000)).toBe(true);
    });

    test("orphans that end while their run goes on are reaped (no zombies), and executors' exit codes stay theirs", async () => {
      const p = await parent();
      const brief = await startLeavingOrphan(p, "a", "setsid sleep 0.5", "exec sleep 1000");
      expect(stateOf(brief.pid)?.ppid).toBe(p.pid);
      await p.start("b", "exit 7");
      expect(await p.exited("b")).toEqual({ code: 7, signal: null });
      // Adopted, ended, and waited for by the parent's sweep: gone from /proc, no zombie left.
      expect(await vanishedWithin(brief.pid, brief.startTime, 5000)).toBe(true);
      p.kill("a");
      expect(await p.exited("a")).toEqual({ code: null, signal: "SIGKILL" });
    });
  },
);

describe("ExecutorProcess contained by subreaper alone", () => {
  test("an orphan with its environment cleared but still in its executor's group is that run's: kept while it runs", async () => {
    const p = await readyParent("subreaper");
    const ofB = await startLeavingOrphan(p, "b", "env -i /bin/sleep 300", "exec sleep 1000");
    await until(() => stateOf(ofB.pid)?.ppid === p.pid, "the orphan of b adopted by the parent");
    // The end of another run sweeps the orphans: b's, unmarked but in b's group, is kept.
    await p.start("a", "exit 0");
    expect(await p.exited("a")).toEqual({ code: 0, signal: null });
    expect(running(ofB.pid)).toBe(true);
    p.kill("b");
    await p.exited("b");
    expect(await vanishedWithin(ofB.pid, ofB.startTime, 5000)).toBe(true);
  });

  test("an orphan whose run cannot be told (its mark removed from its environment) is killed at once", async () => {
    const p = await readyParent("subreaper");
    const unmarked = await startLeavingOrphan(
      p,
      "a",
      "env -u AGENT_RUNNER_PROCESS_MARK setsid sleep 300",
      "exec sleep 1000",
    );
    // Its run still runs, but nothing says it is that run's: the keeper's next sweep kills it.
    expect(await vanishedWithin(unmarked.pid, unmarked.startTime, 5000)).toBe(true);
    p.kill("a");
    await p.exited("a");
  });
});
