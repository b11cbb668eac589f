/**
 * One invocation run locally, the way the runner runs it, but without a coordinator: the
 * invocation is built from the profile exactly as the runner builds it, the executor is spawned
 * through the same process module, and it talks to a local recording gateway.
 */
import { constants, hostname } from "node:os";
import { executorEnvironment } from "../config/executor-env.ts";
import { type ExecutorProfile, sandboxOptions } from "../config/profiles.ts";
import { ExecutorProcess } from "../process/executor-process.ts";
import { buildInvocation, type Invocation, type Invocation22, type InvocationMode } from "../protocol/invocation.ts";
import { RunUsage, SessionCosts, UsageEvent } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { type GatewayRecord, LocalGateway, type LocalSession } from "./local-gateway.ts";

export interface LocalRunOptions {
  profile: ExecutorProfile;
  mode: InvocationMode;
  sessionId: string;
  prompt: string;
  /** The run's project directory (start); also where the executor process starts, and what a sandbox makes writable. */
  projectDir: string;
  /** Directories a sandboxed executor must not see: exec's own state. */
  stateDirs?: string[];
  agentBlueprint?: JsonObject;
  /** Sessions the gateway knows before the executor starts (for a resume). */
  knownSessions?: LocalSession[];
  /** Each gateway request as it arrives. */
  onRecord?: (record: GatewayRecord) => void;
  onSessionChange?: (session: LocalSession) => void;
  /** Environment for the executor, before the gateway variables are added. Default: this process's. */
  env?: Env;
  /** Aborting stops the executor: SIGTERM, then SIGKILL after `stopGraceMs`. */
  signal?: AbortSignal;
  stopGraceMs: number;
  /** Aborting kills the executor's process group at once (SIGKILL), also during a stop's grace. */
  kill?: AbortSignal;
}

export interface LocalRunResult {
  invocation: Invocation | Invocation22;
  exitCode: number;
  /** From the executor's spawn to its end. */
  durationMs: number;
  /** What its agent used, from the usage events it sent (each turn's own share of the cost). */
  usage: RunUsage;
  /** The signal that ended the executor, if one did. */
  signal?: string;
  /** What the executor printed on stdout: its result. */
  stdout: string;
  records: GatewayRecord[];
  session?: LocalSession;
}

/** 128 + signal number, as a shell reports a process a signal ended. */
function signalExitCode(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/**
 * The run's usage from the usage events the gateway took: a start counts from 0, a resume from
 * the running total recorded when the session last ran here (Claude Code restores it).
 */
function usageOf(records: GatewayRecord[], options: LocalRunOptions): RunUsage {
  const costs = new SessionCosts();
  const known = options.knownSessions?.find((session) => session.session_id === options.sessionId);
  if (options.mode === "start") costs.sessionStarted(options.sessionId);
  else if (known?.total_cost_usd !== undefined) costs.sessionResumed(options.sessionId, known.total_cost_usd);
  const usage = new RunUsage();
  for (const record of records) {
    if (record.kind !== "event" || record.status >= 400) continue;
    const event = UsageEvent(record.body);
    if (event instanceof type.errors) continue;
    usage.add(costs.turnShare(options.sessionId, event.usage), event.usage);
  }
  return usage;
}

export async function runLocal(options: LocalRunOptions): Promise<LocalRunResult> {
  const invocation = buildInvocation({
    mode: options.mode,
    sessionId: options.sessionId,
    schemaVersion: "2.1",
    parameters: { prompt: options.prompt },
    projectDir: options.projectDir,
    agentBlueprint: options.agentBlueprint,
    executorConfig: options.profile.config,
  });
  const gateway = new LocalGateway({
    sessions: options.knownSessions,
    hostname: hostname(),
    executorProfile: options.profile.name,
    onRecord: options.onRecord,
    onSessionChange: options.onSessionChange,
  }).start();
  const env = executorEnvironment(options.env ?? process.env, {
    AGENT_ORCHESTRATOR_API_URL: gateway.urlFor(options.sessionId),
    AGENT_SESSION_ID: options.sessionId,
  });
  try {
    let executor: ExecutorProcess;
    const spawnedAt = performance.now();
    try {
      executor = new ExecutorProcess({
        argv: options.profile.argv,
        input: JSON.stringify(invocation),
        cwd: options.projectDir,
        sandbox: sandboxOptions(options.profile, options.stateDirs ?? [], env),
        env,
        stdout: "capture",
        stderr: "inherit",
      });
    } catch (error) {
      throw new ConfigError(`Cannot start executor ${options.profile.argv.join(" ")}: ${messageOf(error)}`);
    }
    const stop = () => void executor.stop(options.stopGraceMs);
    const kill = () => executor.kill();
    // A stop that came while the executor was being started still stops it.
    for (const [signal, act] of [
      [options.signal, stop],
      [options.kill, kill],
    ] as const) {
      if (signal?.aborted) act();
      else signal?.addEventListener("abort", act, { once: true });
    }
    const status = await executor.exited;
    const durationMs = performance.now() - spawnedAt;
    options.signal?.removeEventListener("abort", stop);
    options.kill?.removeEventListener("abort", kill);
    return {
      invocation,
      exitCode: status.signal === null ? status.code : signalExitCode(status.signal),
      durationMs,
      usage: usageOf(gateway.records, options),
      signal: status.signal ?? undefined,
      stdout: executor.stdout(),
      records: gateway.records,
      session: gateway.session(options.sessionId),
    };
  } finally {
    await gateway.stop();
  }
}
