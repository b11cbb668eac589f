/**
 * Assembles a runner process (health server, journal, auth, gateway, MCP server, worker loop),
 * wires the signals, and exits when the worker loop is done: 0 after a clean shutdown, 1 when it
 * cannot start.
 */
import { hostname } from "node:os";
import { executorEnvironment } from "../config/executor-env.ts";
import type { ExecutorProfile, ProfileContent } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import { createTokenSource } from "../coordinator/auth.ts";
import { CoordinatorClient } from "../coordinator/client.ts";
import { CoordinatorHttp } from "../coordinator/http.ts";
import { describeContainment, setUpContainment } from "../process/containment.ts";
import { RunTokens } from "../protocol/run-tokens.ts";
import { ConfigError } from "../shared/errors.ts";
import { logDescriptorLimits } from "../shared/local-server.ts";
import { isDebug, log } from "../shared/log.ts";
import { AgentWorker, RunnerStartError } from "./agent-worker.ts";
import { startGateway } from "./gateway.ts";
import { noObserver, type RunnerObserver } from "./observer.ts";
import { JournalInUseError, RunJournal } from "./run-journal.ts";

/**
 * Whether the profile's executor can run here (cli/executor-checks.ts, the checks doctor prints):
 * the profile with its command resolved and what to warn about, or why the runner must not start.
 */
export type ExecutorVerdict = { profile: ExecutorProfile; warnings: string[] } | { refusal: string };

/** SIGHUP too: a closed terminal must not kill the runner and orphan its executors. */
const STOP_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** The `--health-addr` server, imported only when asked for (it brings prom-client). */
async function startHealth(config: RunnerConfig, profile: ProfileContent) {
  if (!config.healthAddr) return undefined;
  const { startHealthServer } = await import("./health-server.ts");
  const server = startHealthServer({
    addr: config.healthAddr,
    profile: profile.name,
    maxConcurrentRuns: config.maxConcurrentRuns,
  });
  log.info(`Health and metrics at ${server.url} (/healthz, /readyz, /metrics)`);
  return server;
}

/** Takes this identity's run journal, or ends the process with the reason it cannot. */
function openJournal(config: RunnerConfig, profile: ProfileContent, machine: string, observer: RunnerObserver) {
  try {
    return RunJournal.open(
      config.stateDir,
      {
        coordinatorUrl: config.coordinatorUrl,
        hostname: machine,
        projectDir: config.projectDir,
        profile: profile.name,
      },
      { onWriteFailed: () => observer.journalWriteFailed() },
    );
  } catch (error) {
    if (!(error instanceof JournalInUseError || error instanceof ConfigError)) throw error;
    log.box({ title: "agent-runner cannot start", message: error.message });
    process.exit(1);
  }
}

/**
 * Runs the runner. `executor` is awaited after the servers are up and before anything is
 * registered: a refusal ends the process with exit 1 and the reason.
 */
export async function startRunner(
  config: RunnerConfig,
  written: ProfileContent,
  executor: Promise<ExecutorVerdict>,
): Promise<never> {
  logDescriptorLimits();
  // First: a taken --health-addr stops the start before anything else is up.
  const health = await startHealth(config, written);
  const observer: RunnerObserver = health?.monitor ?? noObserver;
  const machine = hostname();
  // Before the journal's leftovers are killed and any executor starts: what holds is said once.
  log.info(`Executors are contained by ${describeContainment(setUpContainment())}`);
  const { journal, previous } = openJournal(config, written, machine, observer);

  const http = new CoordinatorHttp(config.coordinatorUrl, createTokenSource(config.auth));
  http.onAnswer = (call, seconds) => observer.coordinatorAnswered(call, seconds);
  const client = new CoordinatorClient(http);
  const tokens = new RunTokens();
  // The worker is built once the executor checks passed; the gateway serves no run before that.
  let worker: AgentWorker | undefined;
  const gateway = startGateway({
    http,
    hostname: machine,
    executorProfile: written.name,
    tokens,
    onRequest: (request) => worker?.executorRequest(request),
  });
  log.debug(`Gateway for executors at ${gateway.url}`);
  const { startMcpServer } = await import("../mcp/server.ts");
  const mcp = await startMcpServer({
    coordinator: http,
    port: config.mcpPort,
    tokens,
    generation: () => client.generation,
  });
  log.info(`MCP server for agents at ${mcp.url}`);

  const waitFrom = performance.now();
  const verdict = await executor;
  log.debug(`Waited ${Math.round(performance.now() - waitFrom)} ms for the executor checks`);
  if ("refusal" in verdict) {
    log.box({ title: "agent-runner cannot start", message: verdict.refusal });
    journal.close();
    await Promise.all([gateway.stop(), mcp.stop(), health?.stop()]);
    process.exit(1);
  }
  for (const warning of verdict.warnings) log.warn(warning);
  const { profile } = verdict;

  // Each run adds its own gateway URL (with its token) and session id.
  const executorEnv = executorEnvironment(process.env, {});
  // A verbose runner logs executors' stderr; ask them for their debug lines too.
  if (isDebug()) executorEnv.AGENT_RUNNER_DEBUG ??= "1";

  worker = new AgentWorker({
    config,
    profile,
    client,
    registration: {
      hostname: machine,
      projectDir: config.projectDir,
      profile,
      tags: config.tags,
      requireMatchingTags: config.requireMatchingTags,
      maxConcurrentRuns: config.maxConcurrentRuns,
    },
    executorEnv,
    mcpUrl: mcp.url,
    gatewayUrl: gateway.url,
    tokens,
    journal,
    previous,
    observer,
  });

  const onSignal = (signal: NodeJS.Signals) => {
    if (worker.shutdown(signal) >= 3) {
      // Their executors are killed as the process exits (executor-process.ts); the journal keeps
      // the active runs and undelivered reports: the next start reports them.
      log.error(`${signal} again: exiting now, killing the executors still running, without waiting for reports`);
      process.exit(130);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  // A bug in one run's handling must not take down the others and lose their outcomes.
  const onUnexpected = (error: unknown) => log.error("Unexpected error (a bug; the runner carries on):", error);
  process.on("unhandledRejection", onUnexpected);
  process.on("uncaughtException", onUnexpected);

  let exitCode = 0;
  try {
    if (await worker.register()) {
      // Start-up ran in the interpreter (index.ts); what runs from now on runs again and again.
      Bun.unsafe.setJITPolicy(1);
      await worker.run();
    } else journal.close();
  } catch (error) {
    if (!(error instanceof RunnerStartError)) throw error;
    log.box({ title: "agent-runner cannot start", message: error.message });
    journal.close();
    exitCode = 1;
  }
  await Promise.all([gateway.stop(), mcp.stop(), health?.stop()]);
  process.exit(exitCode);
}
