/**
 * The run journal as a start finds it: a FIFO, a link to /dev/zero, a directory or a huge file
 * at its path is set aside unread with a message naming it; one that is not JSON or not the
 * journal's shape is kept aside with a warning naming what it still shows; the runner starts.
 */
import { expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { resolveConfig } from "../../src/config/runner-config.ts";
import { journalPath, RunJournal, type RunnerIdentity } from "../../src/runner/run-journal.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { captureLog } from "../support/fault-tools.ts";
import { runProcess, spawnRunner, tempDir } from "../support/processes.ts";

const identity: RunnerIdentity = {
  coordinatorUrl: "http://127.0.0.1:9",
  hostname: "test-host",
  projectDir: "/work/project",
  profile: "test",
};

/** A state directory whose journal for `identity` is made by `plant`; returns the journal's path. */
function plantedJournal(plant: (path: string) => void): { stateDir: string; path: string } {
  const stateDir = tempDir("ar-journal-");
  const path = journalPath(stateDir, identity);
  mkdirSync(dirname(path), { recursive: true });
  plant(path);
  return { stateDir, path };
}

/** What sits beside the journal under `<name>.<kind>-<time>`. */
function keptAside(path: string, kind: string): string[] {
  return readdirSync(dirname(path))
    .filter((name) => name.startsWith(`${basename(path)}.${kind}-`))
    .map((name) => join(dirname(path), name));
}

function openFresh(stateDir: string) {
  const { journal, previous } = RunJournal.open(stateDir, identity);
  journal.close();
  return previous;
}

const deadPid = 2 ** 22 + 1;
const run = (fields: Record<string, unknown> = {}) => ({
  session_id: "ses_a",
  started_at: "2026-01-01T00:00:00.000Z",
  ...fields,
});

test("a journal that is not JSON is kept aside as .corrupt-<time> with a warning giving its size; the start goes on", async () => {
  const log = captureLog();
  const { stateDir, path } = plantedJournal((p) => writeFileSync(p, '{"version":1,"pid":12,"runs":{"run_a":{"ses'));
  const previous = openFresh(stateDir);
  expect(previous).toBeUndefined();
  const [kept] = keptAside(path, "corrupt");
  expect(kept).toBeDefined();
  expect(readFileSync(kept!, "utf8")).toStartWith('{"version":1');
  const line = await log.waitFor(/Run journal .* cannot be used/);
  expect(line).toContain(path);
  expect(line).toContain(kept!);
  expect(line).toContain("43 bytes");
  expect(line).toContain("run_a");
});

test("a journal of valid JSON in a forged shape is kept aside; none of its process groups is handed on", async () => {
  const forgeries = [
    { version: 1, pid: deadPid, runs: { run_zero: run({ pgid: 0 }) } },
    { version: 1, pid: deadPid, runs: { run_init: run({ pgid: -1 }) } },
    { version: 1, pid: deadPid, runs: { run_frac: run({ pgid: 1.5 }) } },
    { version: 1, pid: "12", runs: { run_text: run() } },
    { version: 1, pid: deadPid, runs: {}, sessions: { ses_p: { pgid: 0 } } },
    { version: 2, pid: deadPid, runs: {} },
    [1, 2, 3],
  ];
  for (const forged of forgeries) {
    const log = captureLog();
    const { stateDir, path } = plantedJournal((p) => writeFileSync(p, JSON.stringify(forged)));
    expect(openFresh(stateDir), JSON.stringify(forged)).toBeUndefined();
    expect(keptAside(path, "corrupt"), JSON.stringify(forged)).toHaveLength(1);
    const line = await log.waitFor(/Run journal .* cannot be used/);
    const runIds = Object.keys((forged as { runs?: object }).runs ?? {});
    for (const runId of runIds) expect(line).toContain(runId);
    log.stop();
  }
});

test("a journal over 16 MiB is set aside unread, with an error that it may hold undelivered outcomes", async () => {
  const log = captureLog();
  const { stateDir, path } = plantedJournal((p) => {
    writeFileSync(p, "");
    truncateSync(p, 17 * 1024 * 1024);
  });
  expect(openFresh(stateDir)).toBeUndefined();
  const [kept] = keptAside(path, "too-big");
  expect(kept).toBeDefined();
  expect(statSync(kept!).size).toBe(17 * 1024 * 1024);
  const line = await log.waitFor(/Run journal .* over the 16 MiB limit/);
  expect(line).toContain(path);
  expect(line).toContain("undelivered");
});

test("a 2 MiB journal of 250 undelivered outcomes is read whole", () => {
  const runs = Object.fromEntries(
    Array.from({ length: 250 }, (_, i) => [
      `run_${i}`,
      run({ outcome: { kind: "failed", error: `exit 1: ${"x".repeat(8 * 1024)}` } }),
    ]),
  );
  const { stateDir } = plantedJournal((p) => writeFileSync(p, JSON.stringify({ version: 1, pid: deadPid, runs })));
  const previous = openFresh(stateDir);
  expect(Object.keys(previous?.runs ?? {})).toHaveLength(250);
});

test("a directory at the journal's path is set aside and the start goes on", async () => {
  const log = captureLog();
  const { stateDir, path } = plantedJournal((p) => mkdirSync(p));
  expect(openFresh(stateDir)).toBeUndefined();
  expect(keptAside(path, "not-a-file")).toHaveLength(1);
  expect(await log.waitFor(/Run journal .* is not a regular file/)).toContain("a directory");
});

/** The journal path of a runner started with these flags, as start-runner.ts computes it. */
function runnerJournal(coordinatorUrl: string, stateDir: string, projectDir: string): string {
  const config = resolveConfig({ "coordinator-url": coordinatorUrl, "project-dir": projectDir }, {});
  return journalPath(stateDir, {
    coordinatorUrl: config.coordinatorUrl,
    hostname: hostname(),
    projectDir: config.projectDir,
    profile: "test",
  });
}

for (const [what, plant] of [
  [
    "a FIFO",
    async (path: string) => {
      const made = await runProcess(["mkfifo", path]);
      if (made.exitCode !== 0) throw new Error(`mkfifo ${path}: ${made.stderr}`);
    },
  ],
  ["a link to /dev/zero", async (path: string) => symlinkSync("/dev/zero", path)],
] as const) {
  test(`a runner whose journal is ${what} sets it aside with a warning naming it, registers and runs`, async () => {
    const fake = startFakeCoordinator();
    const stateDir = tempDir("ar-state-");
    const projectDir = tempDir("ar-project-");
    const path = runnerJournal(fake.url, stateDir, projectDir);
    mkdirSync(dirname(path), { recursive: true });
    await plant(path);
    const runner = spawnRunner(["--profile", "test", "-c", fake.url, "--state-dir", stateDir, "-p", projectDir]);
    await fake.waitForRequest("POST", "/runner/register", 15_000);
    await runner.output.waitFor(/is not a regular file/);
    expect(runner.output.output).toContain(path);
    expect(keptAside(path, "not-a-file")).toHaveLength(1);
    fake.handRun({ run_id: "run_j", type: "start_session", session_id: "ses_j", prompt: "hi" });
    await fake.waitForRequest("POST", "/runner/runs/run_j/completed", 15_000);
    expect(statSync(path).isFile()).toBe(true);
    runner.process.kill("SIGINT");
    expect(await runner.process.exited).toBe(0);
  }, 45_000);
}
