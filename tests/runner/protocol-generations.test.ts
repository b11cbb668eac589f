/**
 * The coordinator's protocol generation as the runner meets it: detected before registering or
 * pinned, a URL that is no coordinator, a probe answered with trouble; and what only 2.2 has (its
 * registration, runs with parameters, session stops, script sync replies; its resolved blueprints
 * are tested with the fetched ones in agent-worker.test.ts).
 * The executors are fixture processes, the coordinator the fake at the generation under test.
 */
import { describe, expect, test } from "bun:test";
import { FakeCoordinator } from "../support/fake-coordinator.ts";
import { captureLog, startCli } from "../support/fault-tools.ts";
import { completedBody, persistentProfile } from "../support/generations.ts";
import { goneWithin } from "../support/processes.ts";
import { fixtureProfile, type RunnerHarness, startRunnerHarness } from "../support/runner-harness.ts";
import { onTeardown } from "../support/teardown.ts";

const PROBE = "/runner/sessions/protocol-probe/status";

const finalReport = (h: RunnerHarness, runId: string) =>
  h.fake.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"));

describe("the generation", () => {
  test.each(["2.1", "2.2"] as const)(
    "a %s coordinator is detected before registering, and the log says so",
    async (protocol) => {
      const log = captureLog();
      const h = await startRunnerHarness({ fake: { protocol } });
      const [probe] = h.fake.find("POST", PROBE);
      const [register] = h.fake.find("POST", "/runner/register");
      expect(probe!.body).toEqual({});
      expect(probe!.at).toBeLessThan(register!.at);
      await log.waitFor(
        new RegExp(`Registered with .* as lnch_test \\(protocol ${protocol.replace(".", "\\.")}, detected;`),
      );
    },
  );

  test.each([
    ["2.2", "2.1"],
    ["2.1", "2.2"],
  ] as const)(
    "--coordinator-protocol %s pins it: no probe, the register body of that generation",
    async (pinned, spoken) => {
      const log = captureLog();
      const h = await startRunnerHarness({ fake: { protocol: spoken }, flags: { "coordinator-protocol": pinned } });
      expect(h.fake.find("POST", PROBE)).toEqual([]);
      const [register] = h.fake.find("POST", "/runner/register");
      expect(register!.body.executor.type).toBe(pinned === "2.2" ? "autonomous" : "test-executor");
      expect("lifecycle" in register!.body.executor).toBe(pinned === "2.2");
      await log.waitFor(new RegExp(`\\(protocol ${pinned.replace(".", "\\.")}, pinned by --coordinator-protocol;`));
    },
  );

  test("pinned to 2.1 against a 2.2 coordinator, a run it cannot read is failed, and the log says the pin may be wrong", async () => {
    const log = captureLog();
    // An autonomous profile: what a 2.2 coordinator's runs ask for, so that they are handed to it.
    const h = await startRunnerHarness({
      profile: { ...fixtureProfile("capture"), type: "autonomous" },
      fake: { protocol: "2.2" },
      flags: { "coordinator-protocol": "2.1" },
    });
    const runId = h.handRun({ session_id: "ses_pin", prompt: "p" });
    const report = await finalReport(h, runId);
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toStartWith("Malformed run payload:");
    await log.waitFor(
      /Malformed run payload: .*\(protocol 2\.1 is pinned by --coordinator-protocol: if the coordinator speaks 2\.2, pin that or use auto\)/,
    );
  });

  test("a probe answered 503, then 422, is retried and the coordinator taken for 2.2", async () => {
    const log = captureLog();
    const h = await startRunnerHarness({ fake: { protocol: "2.2" }, manual: true });
    let probes = 0;
    h.fake.on("POST", /^\/runner\/sessions\/protocol-probe\/status$/, () =>
      probes++ === 0 ? new Response("starting", { status: 503 }) : undefined,
    );
    expect(await h.worker.register()).toBe(true);
    expect(h.fake.find("POST", PROBE).map((r) => r.body)).toEqual([{}, {}]);
    expect(h.fake.find("POST", "/runner/register")).toHaveLength(1);
    await log.waitFor(/Cannot register with .*attempt 1.*503/);
    await log.waitFor(/\(protocol 2\.2, detected;/);
  });

  test("a 2.2 coordinator that comes back as 2.1: idle persistent sessions are ended, none is reported on a 2.2 route, a resume runs alone", async () => {
    const log = captureLog();
    const h = await startRunnerHarness({ profile: persistentProfile(), fake: { protocol: "2.2" } });
    const first = h.handRun({ session_id: "ses_gen", prompt: "one" });
    await h.fake.waitForStatus(first, ["completed"]);
    const { pid } = (await h.fake.waitFor((r) => r.path === "/sessions/ses_gen/events" && r.body?.turn === 1)).body;
    await h.fake.down();
    const older = new FakeCoordinator({ protocol: "2.1", port: h.fake.port }).start();
    onTeardown(() => older.stop());
    await log.waitFor(/now speaks protocol 2\.1/);
    expect(await goneWithin(pid, 5000)).toBe(true);
    older.handRun({ run_id: "run_gen", type: "resume_session", session_id: "ses_gen", prompt: "two" });
    await older.waitForStatus("run_gen", ["completed"]);
    expect(older.find("POST", /^\/runner\/sessions\/ses_gen\//)).toEqual([]);
    expect(h.tokens.size).toBe(0);
  });

  test("a URL that is no coordinator (404 for everything): exit 1 naming the URL and the flag", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response("Not Found", { status: 404 }),
    });
    onTeardown(() => server.stop(true));
    const url = `http://127.0.0.1:${server.port}`;
    const cli = startCli(["--profile", "test", "-c", url]);
    expect(await cli.process.exited).toBe(1);
    await cli.closed;
    expect(cli.output()).toContain(`${url} is not an agent coordinator: POST /runner/register answered 404`);
    expect(cli.output()).toContain("Check --coordinator-url");
    expect(cli.output()).not.toMatch(/^\s+at /m);
  });
});

describe("protocol 2.2", () => {
  test("the registration: executor type autonomous, the profile's command, config and lifecycle", async () => {
    const h = await startRunnerHarness({
      fake: { protocol: "2.2" },
      profile: fixtureProfile("capture", { model: "opus" }),
      flags: { tags: "python" },
    });
    const [register] = h.fake.find("POST", "/runner/register");
    expect(register!.body).toEqual({
      hostname: "test-host",
      project_dir: h.config.projectDir,
      executor_profile: "test",
      executor: {
        type: "autonomous",
        command: fixtureProfile("capture").command,
        config: { model: "opus" },
        lifecycle: "one_shot",
      },
      tags: ["python"],
      require_matching_tags: false,
    });
  });

  test("a run without parameters is reported failed naming the field; the next run completes", async () => {
    const h = await startRunnerHarness({ fake: { protocol: "2.2" } });
    // Queued as is: a run as a 2.1 coordinator would hand it out.
    h.fake.hand({ run: { run_id: "run_noparams", type: "start_session", session_id: "ses_noparams", prompt: "p" } });
    const report = await finalReport(h, "run_noparams");
    expect(report.path).toEndWith("/failed");
    expect(report.body.error).toContain("parameters must be an object (was missing)");
    const good = h.handRun();
    expect((await finalReport(h, good)).body).toEqual(completedBody("2.2"));
  });

  test("stop_sessions stops the session's running run: reported stopped, the session stopped", async () => {
    const h = await startRunnerHarness({ fake: { protocol: "2.2" }, fixture: "hang" });
    const runId = h.handRun({ session_id: "ses_stop22" });
    await h.fake.waitFor((r) => r.path === "/sessions/ses_stop22/events");
    h.fake.handStopSessions(["ses_stop22", "ses_not_here"]);
    const report = await finalReport(h, runId);
    expect(report.path).toEndWith("/stopped");
    expect(report.body).toEqual({ runner_id: "lnch_test", signal: "SIGTERM" });
    expect(h.fake.sessionStatus.get("ses_stop22")).toBe("stopped");
    expect(h.fake.find("POST", /^\/runner\/sessions\//).filter((r) => r.path !== PROBE)).toEqual([]);
  });

  test("script sync replies are ignored without an error; polling and runs go on", async () => {
    const log = captureLog();
    const h = await startRunnerHarness({ fake: { protocol: "2.2" } });
    h.fake.hand({ sync_scripts: ["deploy"], remove_scripts: ["old"] });
    const polls = h.fake.find("GET", "/runner/runs").length;
    await h.fake.waitFor(() => h.fake.find("GET", "/runner/runs").length >= polls + 2);
    const runId = h.handRun();
    expect((await finalReport(h, runId)).body).toEqual(completedBody("2.2"));
    expect(log.lines.filter((line) => /poll|Malformed|retrying/i.test(line))).toEqual([]);
  });
});
