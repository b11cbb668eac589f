/** An AgentWorker in this process against the fake coordinator, with fixture executors: what most runner tests start. */
import { join } from "node:path";
import { executorEnvironment } from "../../src/config/executor-env.ts";
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import { type RunnerConfig, resolveConfig } from "../../src/config/runner-config.ts";
import { CoordinatorClient } from "../../src/coordinator/client.ts";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { RunTokens, urlWithToken } from "../../src/protocol/run-tokens.ts";
import { AgentWorker, type AgentWorkerOptions } from "../../src/runner/agent-worker.ts";
import { type Gateway, startGateway } from "../../src/runner/gateway.ts";
import type { RunnerObserver } from "../../src/runner/observer.ts";
import type { JsonObject } from "../../src/shared/json.ts";
import { type FakeCoordinator, type FakeCoordinatorOptions, startFakeCoordinator } from "./fake-coordinator.ts";
import { releaseServer } from "./release-server.ts";
import { onTeardown } from "./teardown.ts";

export const FIXTURES = join(import.meta.dir, "..", "fixtures", "executors");

/** A profile whose command is one of the test fixture executors. */
export function fixtureProfile(fixture: string, config: JsonObject = {}): ExecutorProfile {
  const command = join(FIXTURES, fixture);
  return {
    name: "test",
    type: "test-executor",
    command,
    config,
    lifecycle: "one_shot",
    source: "test",
    argv: [command],
  };
}

export interface RunnerHarness {
  fake: FakeCoordinator;
  worker: AgentWorker;
  gateway: Gateway;
  /** The runner's run tokens: live while a run's executor may use them. */
  tokens: RunTokens;
  /** A gateway URL as an executor of `sessionId` gets it (with a fresh token). */
  executorUrl(sessionId: string): string;
  config: RunnerConfig;
  /** Resolves when the runner's worker loop has finished (after shutdown). */
  done: Promise<void>;
  /** Starts the worker loop of a `manual` harness (once it is registered); `close()` waits for it. */
  run(): Promise<void>;
  /** Hands out a start_session run and returns its id. */
  handRun(fields?: Record<string, unknown>): string;
  close(): Promise<void>;
}

let counter = 0;

export interface HarnessOptions {
  fixture?: string;
  profile?: ExecutorProfile;
  flags?: Parameters<typeof resolveConfig>[0];
  env?: Record<string, string>;
  fake?: FakeCoordinatorOptions;
  flushTimeoutMs?: number;
  /** The coordinator client's request timeout (default 30 s). */
  requestTimeoutMs?: number;
  retryInitialMs?: number;
  /** Don't register and start the loop (for tests of registration itself). */
  manual?: boolean;
  /** The run journal (default: one that keeps nothing). */
  journal?: AgentWorkerOptions["journal"];
  /** What the runner tells /healthz, /readyz and /metrics (default: nobody listens). */
  observer?: RunnerObserver;
}

/** A journal that keeps nothing: the harness's runs need no crash recovery (tests override a part of it). */
export const noJournal: AgentWorkerOptions["journal"] = {
  setRunnerId() {},
  runStarted() {},
  runEnded() {},
  settled() {},
  sessionStarted() {},
  sessionEnded() {},
  sessionSettled() {},
  close() {},
};

/** A Runner wired as the CLI wires it, against a fake coordinator, with a fixture executor; closed after the test. */
export async function startRunnerHarness(options: HarnessOptions = {}): Promise<RunnerHarness> {
  const fake = startFakeCoordinator(options.fake);
  const config = resolveConfig({ "coordinator-url": fake.url, "stop-grace-seconds": "1", ...options.flags }, {});
  const profile = options.profile ?? fixtureProfile(options.fixture ?? "capture");
  const http = new CoordinatorHttp(config.coordinatorUrl, undefined, options.requestTimeoutMs);
  const client = new CoordinatorClient(http);
  const tokens = new RunTokens();
  let worker: AgentWorker | undefined;
  const gateway = startGateway({
    http,
    hostname: "test-host",
    executorProfile: profile.name,
    tokens,
    onRequest: (request) => worker?.executorRequest(request),
  });
  if (options.observer) {
    const { observer } = options;
    http.onAnswer = (call, seconds) => observer.coordinatorAnswered(call, seconds);
  }
  worker = new AgentWorker({
    config,
    profile,
    client,
    registration: {
      hostname: "test-host",
      projectDir: config.projectDir,
      profile,
      tags: config.tags,
      requireMatchingTags: config.requireMatchingTags,
      maxConcurrentRuns: config.maxConcurrentRuns,
    },
    executorEnv: executorEnvironment({ ...process.env, ...options.env }, {}),
    mcpUrl: "http://127.0.0.1:9/mcp",
    gatewayUrl: gateway.url,
    tokens,
    journal: options.journal ?? noJournal,
    observer: options.observer,
    flushTimeoutMs: options.flushTimeoutMs ?? 5000,
    retryInitialMs: options.retryInitialMs ?? 50,
  });
  let done: Promise<void> = Promise.resolve();
  let closed: Promise<void> | undefined;
  // Twice: the second signal stops the runs still active. Closed once, whether by the test or after it.
  const close = () =>
    (closed ??= (async () => {
      worker.shutdown("test cleanup");
      worker.shutdown("test cleanup");
      await done;
      await gateway.stop();
      await fake.stop();
    })());
  onTeardown(close);
  if (!options.manual) {
    await worker.register();
    done = worker.run();
  }
  return {
    fake,
    worker,
    gateway,
    tokens,
    executorUrl: (sessionId) => urlWithToken(gateway.url, tokens.issue(sessionId)),
    config,
    get done() {
      return done;
    },
    run() {
      done = worker.run();
      return done;
    },
    handRun(fields = {}) {
      const id = `run_${++counter}`;
      fake.handRun({ run_id: id, type: "start_session", session_id: `ses_${counter}`, prompt: "hello", ...fields });
      return id;
    },
    close,
  };
}

/**
 * A harness whose runs each wait until the test releases their session (the wait-release fixture
 * against a release server): the test decides when each run ends.
 */
export async function startHeldRunsHarness(options: Omit<HarnessOptions, "fixture" | "profile"> = {}) {
  const release = releaseServer();
  const harness = await startRunnerHarness({
    ...options,
    fixture: "wait-release",
    env: { ...options.env, FIXTURE_RELEASE_URL: release.url },
  });
  return { harness, release };
}
