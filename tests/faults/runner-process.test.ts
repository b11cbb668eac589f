/**
 * Faults that need the runner as its own process: its memory is measured from /proc, and its
 * whole output (stdout + stderr at -v) is checked for secrets.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { type CliRunner, FAULT_FIXTURES, memoryMb, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { releaseServer } from "../support/release-server.ts";
import { FIXTURES } from "../support/runner-harness.ts";
import { onTeardown } from "../support/teardown.ts";

/** A runner process for the fault profile running `command`, against `fake`. */
function start(
  fake: FakeCoordinator,
  command: string,
  args: string[] = [],
  env: Record<string, string> = {},
): CliRunner {
  const profiles = profilesDirFor(command);
  return startCli(
    ["--profile", "fault", "--profiles-dir", profiles, "-c", fake.url, "--stop-grace-seconds", "1", ...args],
    env,
  );
}

/** The runner is registered and holding its first poll: nothing left of start-up. */
async function idle(f: FakeCoordinator): Promise<void> {
  await f.waitForRequest("GET", "/runner/runs");
}

const outcome = (f: FakeCoordinator, runId: string) =>
  f.waitFor((r) => r.path.startsWith(`/runner/runs/${runId}/`) && !r.path.endsWith("/started"), 60_000);

test.each([
  ["", []],
  [" at -v (every output line logged)", ["-v"]],
] as Array<[string, string[]]>)(
  "an executor flooding 50 MB to stdout and stderr finishes and is reported; runner memory stays bounded%s",
  async (_, args) => {
    const fake = startFakeCoordinator();
    const cli = start(fake, join(FIXTURES, "flood"), args, { FIXTURE_FLOOD_BYTES: String(50_000_000) });
    await idle(fake);
    const before = memoryMb(cli.process.pid);
    fake.handRun({ run_id: "run_flood", type: "start_session", session_id: "ses_flood", prompt: "p" });
    const report = await outcome(fake, "run_flood");
    const after = memoryMb(cli.process.pid);
    const growth = after.peak - before.rss;
    console.log(
      `flood 2 × 50 MB${args.length ? " at -v" : ""}: runner RSS ${before.rss} MB before, peak ${after.peak} MB (growth ${growth.toFixed(1)} MB), ${after.rss} MB after`,
    );
    expect(report.path).toEndWith("/completed");
    expect(growth).toBeLessThan(100);
  },
  120_000,
);

test("200 runs in flight at once: all reported; memory per active run printed", async () => {
  const release = releaseServer();
  const fake = startFakeCoordinator();
  const cli = start(fake, join(FAULT_FIXTURES, "outcome"), [], { FAULT_RELEASE_URL: release.url });
  await idle(fake);
  const batch = async (tag: string) => {
    const runs = Array.from({ length: 200 }, (_, i) => ({
      runId: `run_${tag}${i}`,
      sessionId: `ses_${i % 4 === 0 ? "fail" : "ok"}_${tag}${i}`,
    }));
    for (const run of runs)
      fake.handRun({ run_id: run.runId, type: "start_session", session_id: run.sessionId, prompt: "p" });
    // All 200 executors running at once, each held by the release server.
    await Promise.all(runs.map((run) => release.waiting(run.sessionId)));
    const active = memoryMb(cli.process.pid);
    for (const run of runs) release.release(run.sessionId);
    const reports = await Promise.all(runs.map((run) => outcome(fake, run.runId)));
    reports.forEach((report, i) => {
      expect(report.path).toEndWith(runs[i]!.sessionId.includes("_fail_") ? "/failed" : "/completed");
      expect(fake.reportsFor(runs[i]!.runId).map((r) => r.kind)).toHaveLength(2);
    });
    return active;
  };
  // A first batch grows the heap to its working size, so the second measures what 200 runs hold, not start-up garbage.
  const first = await batch("w");
  const idleAfterFirst = memoryMb(cli.process.pid);
  const second = await batch("m");
  const after = memoryMb(cli.process.pid);
  const perRunKb = ((second.rss - idleAfterFirst.rss) * 1024) / 200;
  console.log(
    `200 in flight: runner RSS ${first.rss} MB with the first 200 active, ${idleAfterFirst.rss} MB between batches, ${second.rss} MB with the second 200 active (${perRunKb.toFixed(0)} KB per active run), peak ${after.peak} MB, ${after.rss} MB after`,
  );
}, 120_000);

test("with auth at -v: a run, a failing run, gateway requests, a token refresh and a shutdown never log the secret or a token", async () => {
  const secret = "client-secret-9d1e4b7a";
  const tokens = ["access-token-first-5c2f", "access-token-second-a83d"];
  let issued = 0;
  const tokenServer = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => Response.json({ access_token: tokens[Math.min(issued++, 1)], expires_in: 3600 }),
  });
  onTeardown(() => tokenServer.stop(true));
  const fake = startFakeCoordinator();
  // Replies that echo the caller's token back: the runner logs these errors, and must cut the token out.
  fake.on("GET", /^\/agents\/leaky$/, (r) =>
    Response.json({ detail: `upstream refused ${r.headers.get("authorization")}` }, { status: 500 }),
  );
  let rejectedOnce = false;
  fake.on("GET", /^\/runner\/runs$/, (r) => {
    if (
      rejectedOnce ||
      r.headers.get("authorization") !== `Bearer ${tokens[0]}` ||
      fake.find("POST", /\/completed$/).length === 0
    )
      return undefined;
    rejectedOnce = true;
    // Not "not registered": the token was refused, so the runner must fetch a new one.
    return Response.json({ detail: `invalid token ${r.headers.get("authorization")}` }, { status: 401 });
  });
  const cli = start(fake, join(FAULT_FIXTURES, "gateway-call"), ["-v"], {
    AUTH0_DOMAIN: `http://127.0.0.1:${tokenServer.port}`,
    AUTH0_RUNNER_CLIENT_ID: "runner-client",
    AUTH0_RUNNER_CLIENT_SECRET: secret,
    AUTH0_AUDIENCE: "agent-coordinator",
  });
  fake.handRun({ run_id: "run_a1", type: "start_session", session_id: "ses_a1", prompt: "hi" });
  await fake.waitForRequest("POST", "/sessions/ses_a1/events");
  expect((await outcome(fake, "run_a1")).path).toEndWith("/completed");
  // The refused token is dropped and a new one fetched.
  await fake.waitFor((r) => r.headers.get("authorization") === `Bearer ${tokens[1]}`);
  fake.handRun({ run_id: "run_a2", type: "start_session", session_id: "ses_a2", prompt: "hi", agent_name: "leaky" });
  const failed = await outcome(fake, "run_a2");
  expect(failed.path).toEndWith("/failed");
  // A gateway request straight from here, without a run's token: refused.
  await cli.waitFor(/Gateway for executors at (http:\/\/127\.0\.0\.1:\d+)/);
  const gatewayUrl = /Gateway for executors at (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.output())![1]!;
  expect((await fetch(`${gatewayUrl}/sessions/ses_a1`)).status).toBe(401);
  expect((await fetch(`${gatewayUrl}/events`, { method: "POST", body: "{}" })).status).toBe(401);
  cli.process.kill("SIGINT");
  expect(await cli.process.exited).toBe(0);
  await cli.closed;
  const output = cli.output();
  expect(issued).toBe(2);
  expect(output).toContain("Run run_a1 completed");
  expect(output).toContain("[redacted]");
  // The executor logged its environment at -v: its gateway URL is there, its run token is not.
  expect(output).toMatch(/AGENT_ORCHESTRATOR_API_URL=http:\/\/127\.0\.0\.1:\d+\/\[redacted\]/);
  const leaks = output
    .split("\n")
    .filter((line) => [secret, ...tokens].some((value) => line.includes(value)) || /agrun_[\w-]{43}/.test(line));
  console.log(
    `auth at -v: ${output.split("\n").length} lines of output, ${leaks.length} containing the secret or a token`,
  );
  expect(leaks).toEqual([]);
}, 60_000);
