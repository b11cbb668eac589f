/**
 * The runner as a real process through signals, crashes and restarts: a lost terminal (SIGHUP),
 * SIGKILL mid-run and a restart that must clean up after the dead incarnation (a one-shot run, a
 * persistent session idle or mid-turn), a second runner with the same identity, a hanging
 * registration, a token endpoint that is briefly down.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { type CliRunner, crashRunner, FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { completedBody, GENERATIONS } from "../support/generations.ts";
import { goneWithin, isAlive, tempDir } from "../support/processes.ts";
import { releaseServer } from "../support/release-server.ts";
import { FIXTURES } from "../support/runner-harness.ts";
import { killAfterTest, onTeardown } from "../support/teardown.ts";

/** A runner process for the fault profile running `fixture`, against `fake`, with its own state directory. */
function startRunner(
  fake: FakeCoordinator,
  fixture: string,
  stateDir: string,
  env: Record<string, string> = {},
): CliRunner {
  const profiles = profilesDirFor(join(FAULT_FIXTURES, fixture));
  return startCli(["--profile", "fault", "--profiles-dir", profiles, "-c", fake.url, "--stop-grace-seconds", "1"], {
    AGENT_RUNNER_STATE_DIR: stateDir,
    ...env,
  });
}

/** A runner process whose profile runs the persistent fixture executor (lifecycle persistent). */
function startPersistentRunner(fake: FakeCoordinator, stateDir: string): CliRunner {
  const profiles = tempDir("ar-persistent-");
  const profile = { type: "autonomous", command: join(FIXTURES, "persistent"), lifecycle: "persistent" };
  writeFileSync(join(profiles, "persistent.json"), JSON.stringify(profile));
  return startCli(
    ["--profile", "persistent", "--profiles-dir", profiles, "-c", fake.url, "--stop-grace-seconds", "1"],
    { AGENT_RUNNER_STATE_DIR: stateDir },
  );
}

/** The pid the persistent fixture recorded for the first turn of its process in `sessionId`. */
const turnPid = async (f: FakeCoordinator, sessionId: string): Promise<number> =>
  (await f.waitFor((r) => r.path === `/sessions/${sessionId}/events` && r.body?.turn === 1)).body.pid;

const readyPid = async (f: FakeCoordinator, sessionId: string): Promise<number> =>
  (await f.waitFor((r) => r.path === `/sessions/${sessionId}/events` && r.body?.event_type === "ready")).body.pid;

const finalReport = (f: FakeCoordinator, runId: string, after = 0) =>
  f.waitFor((r) => r.at > after && r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"), 20_000);

test("SIGHUP (terminal closed) is a graceful stop: the active run finishes and is reported", async () => {
  const fake = startFakeCoordinator();
  const release = releaseServer();
  const runner = startRunner(fake, "outcome", tempDir("ar-state-"), { FAULT_RELEASE_URL: release.url });
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_hup", type: "start_session", session_id: "ses_hup", prompt: "p" });
  await release.waiting("ses_hup");
  runner.process.kill("SIGHUP");
  await runner.waitFor(/SIGHUP: taking no new runs/);
  release.release("ses_hup");
  expect((await finalReport(fake, "run_hup")).path).toEndWith("/completed");
  expect(await runner.process.exited).toBe(0);
});

test.each(GENERATIONS)(
  "after SIGKILL, the restarted runner adopts its identity, kills the orphaned executor and reports the run failed (protocol %s)",
  async (protocol) => {
    const fake = startFakeCoordinator({ protocol });
    const stateDir = tempDir("ar-state-");
    const first = startRunner(fake, "ignore-term", stateDir);
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun({ run_id: "run_crash", type: "start_session", session_id: "ses_crash", prompt: "p" });
    const orphan = await readyPid(fake, "ses_crash");
    killAfterTest(orphan);
    await crashRunner(fake, first);
    expect(isAlive(orphan)).toBe(true);
    const restartedAt = performance.now();
    const second = startRunner(fake, "ignore-term", stateDir);
    const report = await finalReport(fake, "run_crash", restartedAt);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("runner process ended unexpectedly");
    expect(await goneWithin(orphan, 5000)).toBe(true);
    await second.waitFor(/[Aa]dopt/);
    await fake.waitFor((r) => r.path === "/runner/runs" && r.at > report.at);
  },
);

test.each(GENERATIONS)(
  "an outcome known before the crash but not delivered is delivered by the restarted runner (protocol %s)",
  async (protocol) => {
    const fake = startFakeCoordinator({ protocol });
    const stateDir = tempDir("ar-state-");
    const release = releaseServer();
    const first = startRunner(fake, "outcome", stateDir, { FAULT_RELEASE_URL: release.url });
    await fake.waitForRequest("GET", "/runner/runs");
    fake.handRun({ run_id: "run_known", type: "start_session", session_id: "ses_known", prompt: "p" });
    await release.waiting("ses_known");
    await fake.down();
    release.release("ses_known");
    await first.waitFor(/Run run_known completed/);
    await crashRunner(fake, first);
    fake.up();
    const second = startRunner(fake, "outcome", stateDir);
    const report = await finalReport(fake, "run_known");
    expect(report.path, `${JSON.stringify(report.body)}\n${first.output()}\n${second.output()}`).toEndWith(
      "/completed",
    );
    // As it was known: at 2.2 with how the session stands.
    expect(report.body).toEqual(completedBody(protocol));
  },
);

test("while reports are flushed at exit, another signal exits at once and the next start delivers them", async () => {
  const stateDir = tempDir("ar-state-");
  const fake = startFakeCoordinator();
  let reportsHang = true;
  fake.on("POST", /\/completed$/, () => (reportsHang ? new Promise<Response>(() => {}) : undefined));
  const first = startRunner(fake, "outcome", stateDir);
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: "run_flush", type: "start_session", session_id: "ses_flush", prompt: "p" });
  await fake.waitForRequest("POST", "/runner/runs/run_flush/completed");
  first.process.kill("SIGTERM");
  await first.waitFor(/Delivering 1 report\(s\) \(up to 30 s; another signal exits now/);
  first.process.kill("SIGTERM");
  expect(await first.process.exited).toBe(130);
  expect(first.output()).toContain("SIGTERM again: exiting now");
  reportsHang = false;
  fake.heldBy = hostname();
  startRunner(fake, "outcome", stateDir);
  const report = await finalReport(fake, "run_flush", performance.now());
  expect(report.path).toEndWith("/completed");
});

test("a second runner with the same identity and state directory refuses to start while the first lives", async () => {
  const fake = startFakeCoordinator();
  const stateDir = tempDir("ar-state-");
  const first = startRunner(fake, "outcome", stateDir);
  await fake.waitForRequest("GET", "/runner/runs");
  const second = startRunner(fake, "outcome", stateDir);
  expect(await second.process.exited).toBe(1);
  expect(second.output()).toContain(`pid ${first.process.pid}`);
  expect(isAlive(first.process.pid)).toBe(true);
});

test.each([
  ["register request", /^\/runner\/register$/, "2.1"],
  ["generation probe", /^\/runner\/sessions\/protocol-probe\/status$/, "2.2"],
] as const)("SIGINT while the %s hangs ends the runner at once", async (_, path, protocol) => {
  const fake = startFakeCoordinator({ protocol });
  fake.on("POST", path, () => new Promise<Response>(() => {}));
  const runner = startRunner(fake, "outcome", tempDir("ar-state-"));
  await fake.waitFor((r) => r.method === "POST" && path.test(r.path));
  const signalledAt = performance.now();
  runner.process.kill("SIGINT");
  expect(await runner.process.exited).toBe(0);
  expect(performance.now() - signalledAt).toBeLessThan(5000);
});

test("a token endpoint that answers 503 at start is retried, not fatal", async () => {
  const fake = startFakeCoordinator();
  let failures = 2;
  const tokens = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () =>
      failures-- > 0
        ? new Response("unavailable", { status: 503 })
        : Response.json({ access_token: "tok-abc123", expires_in: 3600 }),
  });
  onTeardown(() => tokens.stop(true));
  const runner = startRunner(fake, "outcome", tempDir("ar-state-"), {
    AUTH0_DOMAIN: `http://127.0.0.1:${tokens.port}`,
    AUTH0_RUNNER_CLIENT_ID: "client",
    AUTH0_RUNNER_CLIENT_SECRET: "secret-value-503",
    AUTH0_AUDIENCE: "aud",
  });
  const register = await fake.waitForRequest("POST", "/runner/register", 20_000);
  expect(register.headers.get("authorization")).toBe("Bearer tok-abc123");
  expect(runner.process.exitCode).toBeNull();
});

test("after SIGKILL with a persistent session idle, the restarted runner kills its process and reports the session finished; a resume starts a new one", async () => {
  const fake = startFakeCoordinator({ protocol: "2.2" });
  const stateDir = tempDir("ar-state-");
  const first = startPersistentRunner(fake, stateDir);
  await fake.waitForRequest("GET", "/runner/runs");
  // This process outlives the runner: it ignores the end of its input and SIGTERM.
  const started = fake.handRun({ session_id: "ses_orphan", prompt: "ignore-shutdown" });
  await fake.waitForStatus(started.run_id, ["completed"]);
  expect(fake.sessionStatus.get("ses_orphan")).toBe("idle");
  const orphan = await turnPid(fake, "ses_orphan");
  killAfterTest(orphan);
  await crashRunner(fake, first);
  expect(isAlive(orphan)).toBe(true);
  const second = startPersistentRunner(fake, stateDir);
  await fake.waitForSessionStatus("ses_orphan", ["finished"]);
  expect(fake.find("POST", "/runner/sessions/ses_orphan/status").map((r) => r.body)).toEqual([
    { runner_id: "lnch_test", status: "finished" },
  ]);
  expect(await goneWithin(orphan, 5000)).toBe(true);
  await second.waitFor(/[Aa]dopt/);
  fake.heldBy = undefined;

  const resumed = fake.handRun({ session_id: "ses_orphan", type: "resume_session", prompt: "again" });
  await fake.waitForStatus(resumed.run_id, ["completed"]);
  const invocations = fake
    .find("POST", "/sessions/ses_orphan/events")
    .filter((r) => r.body?.invocation)
    .map((r) => r.body.invocation);
  expect(invocations.map((i) => [i.mode, i.parameters.prompt])).toEqual([
    ["start", "ignore-shutdown"],
    ["resume", "again"],
  ]);
  expect(fake.reportsFor(resumed.run_id).at(-1)!.body).toEqual({
    runner_id: "lnch_test",
    status: "success",
    session_status: "idle",
  });
});

test("after SIGKILL during a persistent session's turn, the restarted runner kills its process and reports the run failed", async () => {
  const fake = startFakeCoordinator({ protocol: "2.2" });
  const stateDir = tempDir("ar-state-");
  const first = startPersistentRunner(fake, stateDir);
  await fake.waitForRequest("GET", "/runner/runs");
  const { run_id: runId } = fake.handRun({ session_id: "ses_midturn", prompt: "ignore-shutdown hang" });
  const orphan = await turnPid(fake, "ses_midturn");
  killAfterTest(orphan);
  await crashRunner(fake, first);
  expect(isAlive(orphan)).toBe(true);
  const restartedAt = performance.now();
  startPersistentRunner(fake, stateDir);
  const report = await finalReport(fake, runId, restartedAt);
  expect(report.path).toEndWith("/failed");
  expect(report.body.error).toContain("runner process ended unexpectedly");
  expect(await goneWithin(orphan, 5000)).toBe(true);
  expect(fake.sessionStatus.get("ses_midturn")).toBe("failed");
  expect(fake.find("POST", "/runner/sessions/ses_midturn/status")).toEqual([]);
});
