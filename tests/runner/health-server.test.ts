import { afterEach, describe, expect, test } from "bun:test";
import pkg from "../../package.json" with { type: "json" };
import { type HealthServer, startHealthServer } from "../../src/runner/health-server.ts";
import { configError } from "../support/config-error.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { spawnRunner } from "../support/processes.ts";
import { type MetricFamily, parsePrometheusText, sampleValue } from "../support/prometheus-text.ts";
import { onTeardown } from "../support/teardown.ts";

let server: HealthServer | undefined;
let clock = 0;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  clock = 0;
});

function start(maxConcurrentRuns?: number): HealthServer {
  server = startHealthServer({
    addr: { host: "127.0.0.1", port: 0 },
    profile: "coding",
    maxConcurrentRuns,
    now: () => clock,
  });
  return server;
}

async function get(path: string, init?: RequestInit) {
  const response = await fetch(`${server!.url}${path}`, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text };
}

async function probe(path: "/healthz" | "/readyz") {
  const { status, headers, text } = await get(path);
  expect(headers.get("content-type")).toStartWith("application/json");
  return { status, body: JSON.parse(text) as Record<string, unknown> };
}

async function scrape(): Promise<Map<string, MetricFamily>> {
  const { status, headers, text } = await get("/metrics");
  expect(status).toBe(200);
  expect(headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(text);
}

/** What /readyz says of persistent sessions when there are none. */
const NO_IDLE = { idle_sessions: 0, idle_session_memory_bytes: 0 };

describe("/readyz", () => {
  test("503 while starting, 200 once ready, 503 while re-registering or draining, each saying which", async () => {
    const { monitor } = start();
    expect(await probe("/readyz")).toEqual({
      status: 503,
      body: { ready: false, state: "starting", busy: false, active_runs: 0, ...NO_IDLE },
    });
    monitor.setState("ready");
    expect(await probe("/readyz")).toEqual({
      status: 200,
      body: { ready: true, state: "ready", busy: false, active_runs: 0, ...NO_IDLE },
    });
    monitor.setState("reregistering");
    expect(await probe("/readyz")).toMatchObject({ status: 503, body: { ready: false, state: "reregistering" } });
    monitor.setState("ready");
    monitor.setActiveRuns(2);
    monitor.setState("draining");
    expect(await probe("/readyz")).toEqual({
      status: 503,
      body: { ready: false, state: "draining", busy: false, active_runs: 2, ...NO_IDLE },
    });
  });

  test("busy is not unready: 200 with busy true while --max-concurrent-runs runs are active, and a gauge", async () => {
    const { monitor } = start(2);
    monitor.setState("ready");
    monitor.setActiveRuns(1);
    expect(await probe("/readyz")).toEqual({
      status: 200,
      body: { ready: true, state: "ready", busy: false, active_runs: 1, max_concurrent_runs: 2, ...NO_IDLE },
    });
    expect(sampleValue(await scrape(), "agent_runner_at_capacity")).toBe(0);
    monitor.setActiveRuns(2);
    expect(await probe("/readyz")).toEqual({
      status: 200,
      body: { ready: true, state: "ready", busy: true, active_runs: 2, max_concurrent_runs: 2, ...NO_IDLE },
    });
    const families = await scrape();
    expect(sampleValue(families, "agent_runner_at_capacity")).toBe(1);
    expect(sampleValue(families, "agent_runner_state", { state: "ready" })).toBe(1);
    expect(sampleValue(families, "agent_runner_max_concurrent_runs")).toBe(2);
    monitor.setActiveRuns(1);
    expect((await probe("/readyz")).body.busy).toBe(false);
    // Draining says so, busy or not.
    monitor.setActiveRuns(2);
    monitor.setState("draining");
    expect(await probe("/readyz")).toMatchObject({ status: 503, body: { state: "draining", busy: true } });
  });

  test("coordinator_unreachable once the coordinator has been silent longer than its bound, ready again when it answers", async () => {
    const { monitor } = start();
    let lastAnswer: number | undefined = 0;
    monitor.setState("ready");
    monitor.watchCoordinator(() => lastAnswer, 90_000);
    clock = 90_000;
    expect(await probe("/readyz")).toEqual({
      status: 200,
      body: {
        ready: true,
        state: "ready",
        busy: false,
        active_runs: 0,
        ...NO_IDLE,
        seconds_since_coordinator_answer: 90,
        max_coordinator_silence_seconds: 90,
      },
    });
    clock = 90_001;
    expect(await probe("/readyz")).toMatchObject({
      status: 503,
      body: { ready: false, state: "coordinator_unreachable", seconds_since_coordinator_answer: 90 },
    });
    let families = await scrape();
    expect(sampleValue(families, "agent_runner_state", { state: "coordinator_unreachable" })).toBe(1);
    expect(sampleValue(families, "agent_runner_registered")).toBe(1);
    lastAnswer = 90_001;
    expect(await probe("/readyz")).toMatchObject({ status: 200, body: { state: "ready" } });
    families = await scrape();
    expect(sampleValue(families, "agent_runner_state", { state: "ready" })).toBe(1);
    // Draining and re-registering say what they are, whatever the coordinator does.
    clock = 500_000;
    monitor.setState("draining");
    expect((await probe("/readyz")).body.state).toBe("draining");
  });
});

describe("/healthz", () => {
  test("200 while every watched loop beats within its bound; 503 naming the loop that stalled", async () => {
    const { monitor } = start();
    expect(await probe("/healthz")).toEqual({ status: 200, body: { alive: true, loops: {} } });
    const poll = monitor.watchLoop("poll", 60_000);
    const heartbeat = monitor.watchLoop("heartbeat", 120_000);
    clock = 59_000;
    expect(await probe("/healthz")).toEqual({
      status: 200,
      body: {
        alive: true,
        loops: {
          poll: { seconds_since_beat: 59, max_silence_seconds: 60 },
          heartbeat: { seconds_since_beat: 59, max_silence_seconds: 120 },
        },
      },
    });
    clock = 61_000;
    expect(await probe("/healthz")).toMatchObject({ status: 503, body: { alive: false, stalled: ["poll"] } });
    poll.beat();
    heartbeat.beat();
    expect((await probe("/healthz")).status).toBe(200);
    // A loop that ended on purpose (polling stops when draining) is no longer watched.
    poll.done();
    clock = 200_000;
    expect(await probe("/healthz")).toMatchObject({ status: 503, body: { stalled: ["heartbeat"] } });
    heartbeat.done();
    expect(await probe("/healthz")).toEqual({ status: 200, body: { alive: true, loops: {} } });
  });
});

describe("/metrics", () => {
  test("Prometheus text: counters by profile, gauges, the duration histogram, state and build info", async () => {
    const { monitor } = start();
    let families = await scrape();
    for (const name of ["started", "completed", "failed", "stopped", "timed_out"]) {
      const family = families.get(`agent_runner_runs_${name}_total`);
      expect(family?.type).toBe("counter");
      expect(family?.samples).toEqual([
        { name: `agent_runner_runs_${name}_total`, labels: { profile: "coding" }, value: 0 },
      ]);
    }
    expect(sampleValue(families, "agent_runner_build_info", { version: pkg.version, profile: "coding" })).toBe(1);
    expect(sampleValue(families, "agent_runner_registered")).toBe(0);
    expect(sampleValue(families, "agent_runner_state", { state: "starting" })).toBe(1);

    monitor.setState("ready");
    for (let i = 0; i < 4; i++) monitor.runStarted();
    monitor.setActiveRuns(4);
    monitor.runEnded("completed", 2.5);
    monitor.runEnded("completed", 40);
    monitor.runEnded("stopped", 0.5);
    monitor.runEnded("timed_out", 600);
    monitor.runEnded("failed"); // Failed before its executor started: no duration.
    monitor.setActiveRuns(0);
    monitor.setOutboxPending(3);
    monitor.requestFailed("poll");
    monitor.requestFailed("poll");
    monitor.requestFailed("report");
    monitor.requestFailed("register");

    families = await scrape();
    const value = (name: string, labels?: Record<string, string>) => sampleValue(families, name, labels);
    expect(value("agent_runner_runs_started_total", { profile: "coding" })).toBe(4);
    expect(value("agent_runner_runs_completed_total")).toBe(2);
    expect(value("agent_runner_runs_stopped_total")).toBe(1);
    expect(value("agent_runner_runs_timed_out_total")).toBe(1);
    expect(value("agent_runner_runs_failed_total")).toBe(2);
    expect(value("agent_runner_active_runs")).toBe(0);
    expect(value("agent_runner_outbox_pending_reports")).toBe(3);
    expect(value("agent_runner_poll_errors_total")).toBe(2);
    expect(value("agent_runner_report_errors_total")).toBe(1);
    expect(value("agent_runner_register_errors_total")).toBe(1);
    expect(value("agent_runner_registered")).toBe(1);
    expect(families.get("agent_runner_run_duration_seconds")?.type).toBe("histogram");
    expect(value("agent_runner_run_duration_seconds_count", { profile: "coding" })).toBe(4);
    expect(value("agent_runner_run_duration_seconds_sum")).toBe(643);
    expect(value("agent_runner_run_duration_seconds_bucket", { le: "1" })).toBe(1);
    expect(value("agent_runner_run_duration_seconds_bucket", { le: "5" })).toBe(2);
    expect(value("agent_runner_run_duration_seconds_bucket", { le: "60" })).toBe(3);
    expect(value("agent_runner_run_duration_seconds_bucket", { le: "600" })).toBe(4);
  });

  test("HEAD answers like GET, without a body", async () => {
    start();
    const head = await get("/metrics", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
  });
});

describe("routes", () => {
  test.each(["/", "/health", "/healthz/", "/metrics/x", "/readyz.json", "/favicon.ico"])("%s is 404", async (path) => {
    start();
    const { status, text } = await get(path);
    expect(status).toBe(404);
    expect(JSON.parse(text)).toEqual({ error: `not found: ${path}`, paths: ["/healthz", "/readyz", "/metrics"] });
  });

  test.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("%s is 405 with Allow: GET, HEAD", async (method) => {
    start();
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      const { status, headers } = await get(path, { method });
      expect({ path, status }).toEqual({ path, status: 405 });
      expect(headers.get("allow")).toBe("GET, HEAD");
    }
  });

  test("a query string does not change the route", async () => {
    start();
    expect((await get("/healthz?verbose=1")).status).toBe(200);
  });
});

describe("binding", () => {
  test("a taken port is a ConfigError naming --health-addr", async () => {
    const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    try {
      const error = configError(() =>
        startHealthServer({ addr: { host: "127.0.0.1", port: taken.port! }, profile: "coding" }),
      );
      expect(error.message).toBe(
        `Cannot serve --health-addr 127.0.0.1:${taken.port}: port ${taken.port} is already in use (choose another port, or 0 for any free one)`,
      );
    } finally {
      await taken.stop(true);
    }
  });

  test("an address that is not this machine's is a ConfigError naming --health-addr", () => {
    // 192.0.2.0/24 is reserved for documentation: never a local address.
    const error = configError(() => startHealthServer({ addr: { host: "192.0.2.1", port: 0 }, profile: "coding" }));
    expect(error.message).toBe("Cannot serve --health-addr 192.0.2.1:0: 192.0.2.1 is not an address of this machine");
  });

  test("IPv6 loopback", async () => {
    server = startHealthServer({ addr: { host: "::1", port: 0 }, profile: "coding" });
    expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
    expect((await get("/healthz")).status).toBe(200);
  });
});

describe("the strict Prometheus reader used above", () => {
  test.each([
    ["garbage line here\n", "not a valid sample"],
    ["x{a=1} 3\n# TYPE x counter\n", "not a valid sample"],
    ["x 3\n", "without a TYPE line"],
    ["# TYPE x counter\nx 3", "must end with a newline"],
    ["# TYPE x counter\nx 3\nx 4\n", "duplicate sample"],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', "bucket counts decrease"],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', "no +Inf bucket"],
  ])("refuses %j", (text, problem) => {
    expect(() => parsePrometheusText(text)).toThrow(problem);
  });
});

describe("a runner process with --health-addr", () => {
  test("serves the probes from the start, ready once registered, not ready while draining", async () => {
    // A graceful stop waits for the poll in flight: keep it short.
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 3 });
    // The coordinator holds registration until the test has seen /readyz say "starting".
    let releaseRegistration!: () => void;
    const registrationHeld = new Promise<void>((resolve) => (releaseRegistration = resolve));
    fake.on("POST", /^\/runner\/register$/, async () => {
      await registrationHeld;
      return undefined;
    });
    const child = spawnRunner(["--profile", "test", "-c", fake.url, "--health-addr", "127.0.0.1:0"]);
    await child.output.waitFor(/Health and metrics at http:\/\/127\.0\.0\.1:\d+ /);
    const url = /Health and metrics at (\S+)/.exec(child.output.output)![1]!;
    const readyz = async () => {
      const response = await fetch(`${url}/readyz`);
      return { status: response.status, state: ((await response.json()) as { state: string }).state };
    };
    await fake.waitForRequest("POST", "/runner/register");
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await readyz()).toEqual({ status: 503, state: "starting" });
    releaseRegistration();
    await child.output.waitFor(/Registered with/);
    expect(await readyz()).toEqual({ status: 200, state: "ready" });
    const metrics = parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
    expect(sampleValue(metrics, "agent_runner_build_info", { profile: "test", version: pkg.version })).toBe(1);
    expect(sampleValue(metrics, "agent_runner_registered")).toBe(1);
    child.process.kill("SIGTERM");
    await child.output.waitFor(/SIGTERM: shutting down/);
    expect(await readyz()).toEqual({ status: 503, state: "draining" });
    expect(await child.process.exited).toBe(0);
  });

  test("a taken --health-addr port stops the start with exit 1, naming the flag", async () => {
    const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    onTeardown(() => taken.stop(true));
    const child = spawnRunner(["--profile", "test", "-c", "http://127.0.0.1:9", "--health-addr", `:${taken.port}`]);
    expect(await child.process.exited).toBe(1);
    await child.output.closed;
    expect(child.output.output).toContain(
      `Cannot serve --health-addr 127.0.0.1:${taken.port}: port ${taken.port} is already in use`,
    );
  });
});
