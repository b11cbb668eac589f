import { afterEach, describe, expect, test } from "bun:test";
import pkg from "../../package.json" with { type: "json" };
import { type HealthServer, startHealthServer } from "../../src/runner/health-server.ts";
import { FAILURE_REASONS } from "../../src/runner/observer.ts";
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
  test("Prometheus text: runs by outcome and failure reason, durations by outcome, gauges, state and build info", async () => {
    const { monitor } = start();
    let families = await scrape();
    expect(families.get("agent_runner_runs_total")?.type).toBe("counter");
    expect(families.get("agent_runner_runs_total")?.samples).toEqual(
      ["completed", "failed", "stopped", "timed_out"].map((outcome) => ({
        name: "agent_runner_runs_total",
        labels: { profile: "coding", outcome },
        value: 0,
      })),
    );
    // Every failure reason is there from the start, at 0.
    expect(families.get("agent_runner_runs_failed_total")?.samples.map((s) => s.labels.reason)).toEqual([
      ...FAILURE_REASONS,
    ]);
    for (const old of ["completed", "failed_total_", "stopped", "timed_out"])
      expect(families.has(`agent_runner_runs_${old}_total`)).toBe(false);
    expect(sampleValue(families, "agent_runner_runs_started_total", { profile: "coding" })).toBe(0);
    expect(
      sampleValue(families, "agent_runner_build_info", { version: pkg.version, profile: "coding", runner_id: "" }),
    ).toBe(1);
    expect(sampleValue(families, "agent_runner_registered")).toBe(0);
    expect(sampleValue(families, "agent_runner_state", { state: "starting" })).toBe(1);

    monitor.setState("ready");
    for (let i = 0; i < 4; i++) monitor.runStarted();
    monitor.setActiveRuns(4);
    monitor.runEnded({ outcome: "completed", durationSeconds: 2.5 });
    monitor.runEnded({ outcome: "completed", durationSeconds: 40 });
    monitor.runEnded({ outcome: "stopped", durationSeconds: 0.5 });
    monitor.runEnded({ outcome: "timed_out", reason: "timeout", durationSeconds: 600 });
    monitor.runEnded({ outcome: "failed", reason: "executor_exit", durationSeconds: 3 });
    // Failed before its executor started: no duration.
    monitor.runEnded({ outcome: "failed", reason: "blueprint_error" });
    monitor.runEnded({ outcome: "failed", reason: "budget", durationSeconds: 100 });
    monitor.setActiveRuns(0);
    monitor.setOutboxPending(3);
    monitor.requestFailed("poll");
    monitor.requestFailed("poll");
    monitor.requestFailed("report");
    monitor.requestFailed("register");
    monitor.requestFailed("heartbeat");

    families = await scrape();
    const value = (name: string, labels?: Record<string, string>) => sampleValue(families, name, labels);
    expect(value("agent_runner_runs_started_total", { profile: "coding" })).toBe(4);
    expect(value("agent_runner_runs_total", { outcome: "completed" })).toBe(2);
    expect(value("agent_runner_runs_total", { outcome: "stopped" })).toBe(1);
    expect(value("agent_runner_runs_total", { outcome: "timed_out" })).toBe(1);
    expect(value("agent_runner_runs_total", { outcome: "failed" })).toBe(3);
    // Reported failed, timed-out runs included, each by its reason.
    expect(value("agent_runner_runs_failed_total", { reason: "timeout" })).toBe(1);
    expect(value("agent_runner_runs_failed_total", { reason: "executor_exit" })).toBe(1);
    expect(value("agent_runner_runs_failed_total", { reason: "blueprint_error" })).toBe(1);
    expect(value("agent_runner_runs_failed_total", { reason: "budget" })).toBe(1);
    expect(value("agent_runner_runs_failed_total", { reason: "spawn_error" })).toBe(0);
    expect(value("agent_runner_active_runs")).toBe(0);
    expect(value("agent_runner_outbox_pending_reports")).toBe(3);
    expect(value("agent_runner_poll_errors_total")).toBe(2);
    expect(value("agent_runner_report_errors_total")).toBe(1);
    expect(value("agent_runner_register_errors_total")).toBe(1);
    expect(value("agent_runner_heartbeat_errors_total")).toBe(1);
    expect(value("agent_runner_registered")).toBe(1);
    expect(families.get("agent_runner_run_duration_seconds")?.type).toBe("histogram");
    const duration = (outcome: string, suffix: string, labels: Record<string, string> = {}) =>
      value(`agent_runner_run_duration_seconds_${suffix}`, { profile: "coding", outcome, ...labels });
    expect(duration("completed", "count")).toBe(2);
    expect(duration("completed", "sum")).toBe(42.5);
    expect(duration("completed", "bucket", { le: "1" })).toBe(0);
    expect(duration("completed", "bucket", { le: "5" })).toBe(1);
    expect(duration("completed", "bucket", { le: "60" })).toBe(2);
    expect(duration("stopped", "bucket", { le: "1" })).toBe(1);
    expect(duration("timed_out", "bucket", { le: "300" })).toBe(0);
    expect(duration("timed_out", "bucket", { le: "600" })).toBe(1);
    expect(duration("failed", "count")).toBe(2);
    expect(duration("failed", "sum")).toBe(103);
  });

  test("waits and latencies: queue wait, executor start, the coordinator's answers by call (polls left out)", async () => {
    const { monitor } = start();
    let families = await scrape();
    for (const name of ["agent_runner_run_queue_wait_seconds", "agent_runner_executor_start_seconds"]) {
      expect(families.get(name)?.type).toBe("histogram");
      expect(sampleValue(families, `${name}_count`, { profile: "coding" })).toBe(0);
    }
    expect(families.get("agent_runner_coordinator_request_duration_seconds")?.samples).toEqual([]);

    monitor.runStarted(12.5);
    monitor.runStarted(); // A run that does not say when it was created: counted, no wait observed.
    monitor.executorResponded(0.03);
    monitor.coordinatorAnswered("register", 0.004);
    monitor.coordinatorAnswered("report", 0.02);
    monitor.coordinatorAnswered("report", 0.3);
    monitor.coordinatorAnswered("poll", 29.9);

    families = await scrape();
    const value = (name: string, labels?: Record<string, string>) => sampleValue(families, name, labels);
    expect(value("agent_runner_runs_started_total")).toBe(2);
    expect(value("agent_runner_run_queue_wait_seconds_count")).toBe(1);
    expect(value("agent_runner_run_queue_wait_seconds_sum")).toBe(12.5);
    expect(value("agent_runner_run_queue_wait_seconds_bucket", { le: "10" })).toBe(0);
    expect(value("agent_runner_run_queue_wait_seconds_bucket", { le: "30" })).toBe(1);
    expect(value("agent_runner_executor_start_seconds_bucket", { le: "0.025" })).toBe(0);
    expect(value("agent_runner_executor_start_seconds_bucket", { le: "0.05" })).toBe(1);
    const requests = (call: string, suffix: string, labels: Record<string, string> = {}) =>
      value(`agent_runner_coordinator_request_duration_seconds_${suffix}`, { call, ...labels });
    expect(requests("register", "count")).toBe(1);
    expect(requests("register", "bucket", { le: "0.005" })).toBe(1);
    expect(requests("report", "count")).toBe(2);
    expect(requests("report", "bucket", { le: "0.025" })).toBe(1);
    expect(requests("report", "bucket", { le: "0.5" })).toBe(2);
    // A poll's answer is the coordinator's hold, not its latency.
    expect(requests("poll", "count")).toBeUndefined();
  });

  test("the coordinator's last answer as Unix time, 0 before registration; runner_id on build_info once registered", async () => {
    const { monitor } = start();
    let families = await scrape();
    expect(sampleValue(families, "agent_runner_last_contact_timestamp_seconds")).toBe(0);
    clock = 50_000;
    monitor.watchCoordinator(() => 45_000, 90_000);
    monitor.registered("lnch_abc");
    const before = Date.now();
    families = await scrape();
    const after = Date.now();
    const contact = sampleValue(families, "agent_runner_last_contact_timestamp_seconds")!;
    // Five seconds before the scrape, on the wall clock.
    expect(contact).toBeGreaterThanOrEqual((before - 5000) / 1000 - 0.001);
    expect(contact).toBeLessThanOrEqual((after - 5000) / 1000 + 0.001);
    expect(families.get("agent_runner_build_info")?.samples).toEqual([
      {
        name: "agent_runner_build_info",
        labels: { version: pkg.version, profile: "coding", runner_id: "lnch_abc" },
        value: 1,
      },
    ]);
    // Registered again under another id: one series, the new one.
    monitor.registered("lnch_def");
    families = await scrape();
    expect(families.get("agent_runner_build_info")?.samples.map((s) => s.labels.runner_id)).toEqual(["lnch_def"]);
  });

  test("the idle persistent sessions and their memory, read once per scrape (the memory is a look at /proc)", async () => {
    const { monitor } = start();
    let families = await scrape();
    expect(sampleValue(families, "agent_runner_idle_sessions")).toBe(0);
    expect(sampleValue(families, "agent_runner_idle_session_memory_bytes")).toBe(0);
    let reads = 0;
    monitor.trackIdleSessions(() => {
      reads++;
      return { count: 3, memoryBytes: 123_456_789 };
    });
    families = await scrape();
    expect(sampleValue(families, "agent_runner_idle_sessions")).toBe(3);
    expect(sampleValue(families, "agent_runner_idle_session_memory_bytes")).toBe(123_456_789);
    expect(reads).toBe(1);
  });

  test("the process's own figures: CPU, resident memory, descriptors, start time; nothing Bun cannot tell", async () => {
    start();
    const families = await scrape();
    const value = (name: string) => sampleValue(families, name);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
    expect(value("process_open_fds")).toBeGreaterThan(2);
    expect(value("process_max_fds")).toBeGreaterThan(0);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    // Started before this test (prom-client rounds it to the second).
    const startTime = value("process_start_time_seconds")!;
    expect(startTime).toBeLessThanOrEqual(Math.round(Date.now() / 1000));
    expect(startTime).toBeGreaterThan(Date.now() / 1000 - 3600);
    expect(families.has("nodejs_eventloop_lag_seconds")).toBe(true);
    for (const name of families.keys()) {
      expect(name).not.toStartWith("nodejs_heap_space");
      expect(name).not.toStartWith("nodejs_active_");
      expect(name).not.toBe("nodejs_gc_duration_seconds");
      expect(name).not.toBe("nodejs_version_info");
    }
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
