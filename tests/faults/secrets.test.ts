/**
 * What executors (same user as the runner) and the coordinator must never get from the runner:
 * the client secret from its /proc environ, secrets and run tokens in a failed run's report,
 * a coordinator URL's password in the log. The runner runs as its own process.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { type CliRunner, FAULT_FIXTURES, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { onTeardown } from "../support/teardown.ts";

const RUN_TOKEN = /agrun_[A-Za-z0-9_-]{43}/;

/** A token endpoint that hands out `access_token` and keeps the request bodies it got. */
function tokenEndpoint(accessToken: string) {
  const bodies: Array<Record<string, string>> = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (request) => {
      bodies.push((await request.json()) as Record<string, string>);
      return Response.json({ access_token: accessToken, expires_in: 3600 });
    },
  });
  onTeardown(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}`, bodies };
}

function start(fixture: string, args: string[], env: Record<string, string>): CliRunner {
  const profiles = profilesDirFor(join(FAULT_FIXTURES, fixture));
  return startCli(["--profile", "fault", "--profiles-dir", profiles, "--stop-grace-seconds", "1", ...args], env);
}

const auth = (domain: string, secret: string) => ({
  AUTH0_DOMAIN: domain,
  AUTH0_RUNNER_CLIENT_ID: "runner-client",
  AUTH0_RUNNER_CLIENT_SECRET: secret,
  AUTH0_AUDIENCE: "agent-coordinator",
});

test("the client secret is gone from the runner's own /proc/<pid>/environ once read, and the runner still authenticates", async () => {
  const secret = "client-secret-3f9a7c21e0";
  const endpoint = tokenEndpoint("access-token-6b1d");
  const fake = startFakeCoordinator();
  const cli = start("outcome", ["-c", fake.url], auth(endpoint.url, secret));
  // Registered and polling: start-up is over.
  await fake.waitForRequest("GET", "/runner/runs");
  const environ = readFileSync(`/proc/${cli.process.pid}/environ`, "utf8");
  // The right block was read: the other settings are still there.
  expect(environ).toContain("\0AUTH0_RUNNER_CLIENT_ID=runner-client\0");
  expect(environ.includes(secret), "the secret is in /proc/<runner>/environ").toBe(false);
  expect(endpoint.bodies[0]?.client_secret).toBe(secret);
  expect(fake.find("POST", "/runner/register")[0]!.headers.get("authorization")).toBe("Bearer access-token-6b1d");
  // And a run still works with the token.
  fake.handRun({ run_id: "run_env", type: "start_session", session_id: "ses_env", prompt: "p" });
  await fake.waitForRequest("POST", "/runner/runs/run_env/completed");
}, 30_000);

test("a failed run's stderr tail is reported with secrets and run tokens cut out", async () => {
  const secret = "client-secret-77e0c1d4aa";
  const endpoint = tokenEndpoint("access-token-90fe");
  const fake = startFakeCoordinator();
  start("leak", ["-c", fake.url], { ...auth(endpoint.url, secret), FAULT_LEAK: secret });
  fake.handRun({ run_id: "run_leak", type: "start_session", session_id: "ses_leak", prompt: "p" });
  const failed = await fake.waitForRequest("POST", "/runner/runs/run_leak/failed");
  const error = String(failed.body.error);
  expect(error).toContain("leaking [redacted] through http://127.0.0.1:");
  expect(error.includes(secret), `the report carries the secret: ${error}`).toBe(false);
  expect(error).not.toMatch(RUN_TOKEN);
}, 30_000);

test("a coordinator URL's password never reaches a log line", async () => {
  const fake = startFakeCoordinator();
  const withUserinfo = fake.url.replace("http://", "http://runner:pw@");
  const cli = start("outcome", ["-c", withUserinfo, "-v"], {});
  await fake.waitForRequest("GET", "/runner/runs");
  cli.process.kill("SIGINT");
  expect(await cli.process.exited).toBe(0);
  await cli.closed;
  const output = cli.output();
  expect(output).toContain("Registered with http://runner:[redacted]@127.0.0.1:");
  expect(output.split("\n").filter((line) => line.includes("runner:pw@"))).toEqual([]);
}, 30_000);
