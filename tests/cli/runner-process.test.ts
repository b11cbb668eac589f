import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { spawnRunner, tempDir } from "../support/processes.ts";
import { FIXTURES } from "../support/runner-harness.ts";
import { onTeardown } from "../support/teardown.ts";

/** A profiles directory with one profile, `fixture`, running the named fixture executor. */
function profilesDir(fixture: string): string {
  const dir = tempDir("runner-cli-");
  writeFileSync(
    join(dir, "fixture.json"),
    JSON.stringify({ type: "fixture", command: join(FIXTURES, fixture), config: { model: "m1" } }),
  );
  return dir;
}

function start(fake: FakeCoordinator, fixture: string, extraArgs: string[] = [], env: Record<string, string> = {}) {
  return spawnRunner(
    [
      "--profile",
      "fixture",
      "--profiles-dir",
      profilesDir(fixture),
      "-c",
      fake.url,
      "--stop-grace-seconds",
      "2",
      ...extraArgs,
    ],
    env,
  );
}

/**
 * A runner of the `fail` fixture, with `extraArgs` and `env`, through one run (`run_<name>`) to its
 * failed report, then SIGINT; resolves with all it wrote, once it exited 0.
 */
async function failedRunThenSigint(name: string, extraArgs: string[], env: Record<string, string> = {}) {
  const fake = startFakeCoordinator();
  const runner = start(fake, "fail", extraArgs, env);
  await fake.waitForRequest("GET", "/runner/runs");
  fake.handRun({ run_id: `run_${name}`, type: "start_session", session_id: `ses_${name}`, prompt: "hi" });
  await fake.waitForRequest("POST", `/runner/runs/run_${name}/failed`);
  runner.process.kill("SIGINT");
  expect(await runner.process.exited).toBe(0);
  await runner.output.closed;
  return runner.output.output;
}

test("runs a run, then SIGINT deregisters and exits 0", async () => {
  const fake = startFakeCoordinator();
  const { process: runner, output } = start(fake, "capture");
  const register = await fake.waitForRequest("POST", "/runner/register");
  expect(register.body.executor_profile).toBe("fixture");
  expect(register.body.executor.config).toEqual({ model: "m1" });
  await output.waitFor(/MCP server for agents at http:\/\/127\.0\.0\.1:\d+\/mcp/);
  fake.handRun({ run_id: "run_cli", type: "start_session", session_id: "ses_cli", prompt: "hi" });
  await fake.waitForRequest("POST", "/runner/runs/run_cli/completed");
  runner.kill("SIGINT");
  expect(await runner.exited).toBe(0);
  expect(fake.find("DELETE", "/runners/lnch_test")).toHaveLength(1);
  expect(output.output).toContain("Run run_cli completed");
});

test("SIGINT waits for the active run; a second SIGINT stops it and it is reported", async () => {
  const fake = startFakeCoordinator();
  const { process: runner, output } = start(fake, "hang");
  await fake.waitForRequest("POST", "/runner/register");
  fake.handRun({ run_id: "run_hang", type: "start_session", session_id: "ses_hang", prompt: "hi" });
  await fake.waitForRequest("POST", "/sessions/ses_hang/events");
  runner.kill("SIGINT");
  await output.waitFor(/waiting for 1 active run\(s\) to finish\. Press Ctrl\+C again/);
  expect(fake.find("DELETE", /^\/runners\//)).toHaveLength(0);
  runner.kill("SIGINT");
  expect(await runner.exited).toBe(0);
  expect(fake.reportsFor("run_hang").map((r) => r.kind)).toEqual(["started", "stopped"]);
  expect(fake.find("DELETE", "/runners/lnch_test")).toHaveLength(1);
});

test("a duplicate runner identity: boxed message with the existing runner, exit 1", async () => {
  const fake = startFakeCoordinator();
  fake.on("POST", /^\/runner\/register$/, () =>
    Response.json(
      {
        detail: {
          error: "duplicate_runner",
          message: "already online",
          runner_id: "lnch_dup",
          hostname: "h1",
          project_dir: "/w",
          executor_profile: "fixture",
        },
      },
      { status: 409 },
    ),
  );
  const { process: runner, output } = start(fake, "capture");
  expect(await runner.exited).toBe(1);
  await output.closed;
  expect(output.output).toContain("agent-runner cannot start");
  expect(output.output).toContain("lnch_dup");
});

test("credentials refused at registration: authentication message, exit 1", async () => {
  const fake = startFakeCoordinator();
  fake.on("POST", /^\/runner\/register$/, () => Response.json({ detail: "Forbidden" }, { status: 403 }));
  const { process: runner, output } = start(fake, "capture");
  expect(await runner.exited).toBe(1);
  await output.closed;
  expect(output.output).toContain("rejected the runner's credentials");
});

test("with auth: every request carries the token; neither secret nor token is ever logged", async () => {
  const secret = "client-secret-4f9a7c";
  const token = "access-token-b81e22";
  const tokenServer = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => Response.json({ access_token: token, expires_in: 3600 }),
  });
  onTeardown(() => tokenServer.stop(true));
  const fake = startFakeCoordinator();
  const { process: runner, output } = start(fake, "capture", ["-v"], {
    AUTH0_DOMAIN: `http://127.0.0.1:${tokenServer.port}`,
    AUTH0_RUNNER_CLIENT_ID: "runner-client",
    AUTH0_RUNNER_CLIENT_SECRET: secret,
    AUTH0_AUDIENCE: "agent-coordinator",
  });
  fake.handRun({ run_id: "run_auth", type: "start_session", session_id: "ses_auth", prompt: "hi" });
  const event = await fake.waitForRequest("POST", "/sessions/ses_auth/events");
  await fake.waitForRequest("POST", "/runner/runs/run_auth/completed");
  runner.kill("SIGINT");
  expect(await runner.exited).toBe(0);
  await output.closed;
  for (const request of fake.requests) expect(request.headers.get("authorization")).toBe(`Bearer ${token}`);
  // The executor got no secret in its environment.
  expect(event.body.env.AUTH0_RUNNER_CLIENT_SECRET).toBeNull();
  expect(output.output).toContain("Run run_auth completed");
  expect(output.output).not.toContain(secret);
  expect(output.output).not.toContain(token);
});

test("--log-level warn keeps warnings and errors only; LOG_LEVEL=debug adds debug lines and the executor's output", async () => {
  const warn = await failedRunThenSigint("warn", ["--log-level", "warn"]);
  expect(warn).toContain("Run run_warn failed (exit code 3)");
  expect(warn).not.toContain("Registered with");
  expect(warn).not.toContain("Run run_warn started");

  const debug = await failedRunThenSigint("debug", [], { LOG_LEVEL: "debug" });
  expect(debug).toContain("Gateway for executors at http://127.0.0.1:");
  expect(debug).toContain("[run_debug stderr] boom: the agent crashed");
  expect(debug).toContain("Registered with");
});

test("a bad LOG_LEVEL stops the start, naming the variable", async () => {
  const fake = startFakeCoordinator();
  const child = start(fake, "capture", [], { LOG_LEVEL: "loud" });
  expect(await child.process.exited).toBe(1);
  await child.output.closed;
  expect(child.output.output).toContain("LOG_LEVEL 'loud' is not valid: expected one of error, warn, info, debug");
  expect(fake.find("POST", "/runner/register")).toHaveLength(0);
});
