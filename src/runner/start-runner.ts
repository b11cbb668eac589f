/**
 * Assembles a runner process (auth, gateway, MCP server, worker loop), wires the signals, and
 * exits when the worker loop is done: 0 after a clean shutdown, 1 when it cannot start.
 */
import { hostname } from "node:os";
import type { ExecutorProfile } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import { createTokenSource } from "../coordinator/auth.ts";
import { CoordinatorClient } from "../coordinator/client.ts";
import { CoordinatorHttp } from "../coordinator/http.ts";
import { buildRegistrationPayload } from "../coordinator/registration.ts";
import { executorEnvironment } from "../process/executor-env.ts";
import { isDebug, log, setLogContext } from "../shared/log.ts";
import { AgentWorker, RunnerStartError } from "./agent-worker.ts";
import { startGateway } from "./gateway.ts";
import { noObserver, type RunnerObserver } from "./observer.ts";

/** The `--health-addr` server, imported only when asked for (it brings prom-client). */
async function startHealth(config: RunnerConfig, profile: ExecutorProfile) {
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

export async function startRunner(config: RunnerConfig, profile: ExecutorProfile): Promise<never> {
  // First: a taken --health-addr stops the start before anything else is up.
  const health = await startHealth(config, profile);
  const observer: RunnerObserver = health?.monitor ?? noObserver;
  const http = new CoordinatorHttp(config.coordinatorUrl, createTokenSource(config.auth));
  const client = new CoordinatorClient(http);
  const machine = hostname();
  const gateway = startGateway({ http, hostname: machine, executorProfile: profile.name });
  log.debug(`Gateway for executors at ${gateway.url}`);
  const { startMcpServer } = await import("../mcp/server.ts");
  const mcp = await startMcpServer({ coordinator: http, port: config.mcpPort });
  log.info(`MCP server for agents at ${mcp.url}`);

  const executorEnv = executorEnvironment(process.env, { AGENT_ORCHESTRATOR_API_URL: gateway.url });
  // A verbose runner logs executors' stderr; ask them for their debug lines too.
  if (isDebug()) executorEnv.AGENT_RUNNER_DEBUG ??= "1";

  const worker = new AgentWorker({
    config,
    profile,
    client,
    registration: buildRegistrationPayload({
      hostname: machine,
      projectDir: config.projectDir,
      profile,
      tags: config.tags,
      requireMatchingTags: config.requireMatchingTags,
    }),
    executorEnv,
    mcpUrl: mcp.url,
  });

  const onSignal = (signal: NodeJS.Signals) => {
    observer.setState("draining");
    if (worker.shutdown(signal) >= 3) {
      log.error(`${signal} a third time: exiting now, without waiting for runs or reports`);
      process.exit(130);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // A bug in one run's handling must not take down the others and lose their outcomes.
  const onUnexpected = (error: unknown) => log.error("Unexpected error (a bug; the runner carries on):", error);
  process.on("unhandledRejection", onUnexpected);
  process.on("uncaughtException", onUnexpected);

  let exitCode = 0;
  try {
    if (await worker.register()) {
      setLogContext({ runner_id: worker.runnerId });
      observer.setState("ready");
      await worker.run();
    }
  } catch (error) {
    if (!(error instanceof RunnerStartError)) throw error;
    log.box({ title: "agent-runner cannot start", message: error.message });
    exitCode = 1;
  }
  await Promise.all([gateway.stop(), mcp.stop(), health?.stop()]);
  process.exit(exitCode);
}
