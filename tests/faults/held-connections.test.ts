/**
 * Any local process can open TCP connections to the runner's local servers without a token. A
 * runner whose file descriptor limit is low, with hundreds of such connections held open and
 * idle on its MCP and gateway ports, still runs and reports a run, and its open descriptors stay
 * well below its limit. An agent can also open them with its own run's token: that holds no more
 * than its share, and the other runs and the health server still get through.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openConnections } from "../support/connections.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { FAULT_FIXTURES, until } from "../support/fault-tools.ts";
import { cleanEnv, killTree, OutputWatcher, REPO_ROOT, tempDir } from "../support/processes.ts";
import { FIXTURES } from "../support/runner-harness.ts";
import { onTeardown } from "../support/teardown.ts";

const FD_LIMIT = 256;
const HELD_PER_PORT = 400;

/** A runner process under `ulimit -n FD_LIMIT`, by default with the `capture` fixture (it posts an event through the gateway). */
function startLimitedRunner(coordinatorUrl: string, command = join(FIXTURES, "capture"), extra: string[] = []) {
  const profiles = tempDir("held-profiles-");
  writeFileSync(join(profiles, "fixture.json"), JSON.stringify({ type: "fixture", command }));
  const args = ["--profile", "fixture", "--profiles-dir", profiles, "-c", coordinatorUrl, "-v", ...extra];
  const child = Bun.spawn(
    ["sh", "-c", `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`, process.execPath, join(REPO_ROOT, "index.ts"), ...args],
    { cwd: REPO_ROOT, env: cleanEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  onTeardown(() => killTree(child));
  return { child, output: new OutputWatcher([child.stdout, child.stderr]) };
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/**
 * Connections to 127.0.0.1:`port` the runner has not taken yet (Linux /proc/net/tcp): those in
 * its listener's accept queue, and those the kernel holds back until they send data or a second
 * passes (Bun defers the accept of a silent connection).
 */
function notYetAccepted(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let waiting = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, address, , state, queues] = line.trim().split(/\s+/);
    if (address !== local) continue;
    if (state === "03") waiting++; // SYN_RECV
    if (state === "0A") waiting += Number.parseInt(queues!.split(":")[1]!, 16); // LISTEN: its accept queue
  }
  return waiting;
}

/** The status of a request without a token on a new connection, or 0 when none came within 5 s. */
async function answers(port: number): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/`, { keepalive: false, signal: AbortSignal.timeout(5000) });
    return response.status;
  } catch {
    return 0;
  }
}

test(`a runner under ulimit -n ${FD_LIMIT} with ${HELD_PER_PORT} idle connections held on its MCP and gateway ports each still runs and reports a run`, async () => {
  const fake = startFakeCoordinator();
  const { child, output } = startLimitedRunner(fake.url);
  await output.waitFor(/MCP server for agents at http:\/\/127\.0\.0\.1:\d+\/mcp/);
  await output.waitFor(/Gateway for executors at http:\/\/127\.0\.0\.1:\d+/);
  const mcpPort = Number(/MCP server for agents at http:\/\/127\.0\.0\.1:(\d+)/.exec(output.output)![1]);
  const gatewayPort = Number(/Gateway for executors at http:\/\/127\.0\.0\.1:(\d+)/.exec(output.output)![1]);
  await fake.waitForRequest("POST", "/runner/register");

  // Held idle: they send nothing.
  await openConnections(mcpPort, HELD_PER_PORT);
  await openConnections(gatewayPort, HELD_PER_PORT);
  // A runner out of descriptors leaves them in its ports' accept queues.
  const accepted = await until(
    () => notYetAccepted(mcpPort) + notYetAccepted(gatewayPort) === 0,
    "the runner to accept the held connections",
    10_000,
  ).then(
    () => true,
    () => false,
  );
  const heldFds = openFds(child.pid);

  fake.handRun({ run_id: "run_held", type: "start_session", session_id: "ses_held", prompt: "hi" });
  const event = await fake.waitForRequest("POST", "/sessions/ses_held/events", 20_000);
  expect(event.body.event_type).toBe("captured");
  await fake.waitForRequest("POST", "/runner/runs/run_held/completed", 20_000);
  expect(fake.reportsFor("run_held").map((r) => r.kind)).toEqual(["started", "completed"]);
  expect(accepted, "the runner accepted (and closed) the held connections").toBe(true);
  // The held connections cost the runner at most a bounded share of its descriptors.
  expect(heldFds).toBeLessThan(FD_LIMIT / 2);
  expect(openFds(child.pid)).toBeLessThan(FD_LIMIT / 2);
  expect(await answers(mcpPort), "the MCP port answers a new request").toBe(401);
  expect(await answers(gatewayPort), "the gateway port answers a new request").toBe(401);
  // Said once (at most one line a minute), with the bound: an eighth of the limit.
  expect(output.output).toContain(`Open files limit ${FD_LIMIT} (hard ${FD_LIMIT})`);
  expect(output.output.match(/Local servers \(at most 32 open connections/g)).toHaveLength(1);
}, 60_000);

test("an agent holding connections with its own run token takes no more than its share: another run still reports through the gateway, /healthz still answers", async () => {
  const fake = startFakeCoordinator();
  const { output } = startLimitedRunner(fake.url, join(FAULT_FIXTURES, "hold-token"), ["--health-addr", "127.0.0.1:0"]);
  await fake.waitForRequest("GET", "/runner/runs");
  const health = /Health and metrics at (\S+)/.exec(output.output)![1]!;
  fake.handRun({ run_id: "run_hold", type: "start_session", session_id: "ses_hold", prompt: "hold" });
  await output.waitFor(/holding \d+ connections/);

  fake.handRun({ run_id: "run_other", type: "start_session", session_id: "ses_other", prompt: "event" });
  const report = await fake.waitForRequest("POST", /^\/runner\/runs\/run_other\/(completed|failed)$/);
  expect(report.path, JSON.stringify(report.body)).toEndWith("/completed");
  const healthz = await fetch(`${health}/healthz`, { keepalive: false, signal: AbortSignal.timeout(5000) }).then(
    (response) => response.status,
    () => 0,
  );
  expect(healthz).toBe(200);
  expect(fake.reportsFor("run_hold").map((r) => r.kind)).toEqual(["started"]);
}, 60_000);
