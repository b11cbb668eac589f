/**
 * One invocation run locally, the way the runner runs it, but without a coordinator: the
 * invocation is built from the profile exactly as the runner builds it, the executor is spawned
 * through the same process module, and it talks to a local recording gateway. One spawn path for
 * both lifecycles: a one-shot run (`runLocal`), and a persistent session's executor
 * (`startLocalExecutor(…, "persistent")`, which `exec --interactive` talks to).
 */
import { constants, hostname } from "node:os";
import { executorEnvironment } from "../config/executor-env.ts";
import { type ExecutorProfile, sandboxOptions } from "../config/profiles.ts";
import { ExecutorProcess, type ExitStatus } from "../process/executor-process.ts";
import { PersistentExecutor, type PersistentExecutorOptions } from "../process/persistent-executor.ts";
import { buildInvocation, type Invocation, type InvocationMode } from "../protocol/invocation.ts";
import { LIFECYCLE_ENV, type Lifecycle } from "../protocol/lifecycle.ts";
import { RunUsage, SessionCosts, UsageEvent } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { type GatewayRecord, LocalGateway, type LocalSession, resultOfRecords } from "./local-gateway.ts";

/**
 * The invocation exec hands executors: 2.2, what the coordinator's current generation sends, so
 * that a blueprint's output_schema and parameters_schema work and each turn ends with a result
 * event. The built-in executors read both; `prompt` becomes `{"prompt": …}`.
 */
const EXEC_SCHEMA_VERSION = "2.2";

export interface LocalExecutorOptions {
  profile: ExecutorProfile;
  mode: InvocationMode;
  sessionId: string;
  /** The first turn's prompt. */
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
}

export interface LocalRunOptions extends LocalExecutorOptions {
  /** Aborting stops the executor: SIGTERM, then SIGKILL after `stopGraceMs`. */
  signal?: AbortSignal;
  stopGraceMs: number;
  /** Aborting kills the executor's process group at once (SIGKILL), also during a stop's grace. */
  kill?: AbortSignal;
}

/** How a local run (or an interactive session) ended, for exec to print. */
export interface LocalRunResult {
  invocation: Invocation;
  exitCode: number;
  /** From the executor's spawn to its end. */
  durationMs: number;
  /** What its agent used, from the usage events it sent (each turn's own share of the cost). */
  usage: RunUsage;
  /** The signal that ended the executor, if one did. */
  signal?: string;
  /** What the executor printed on stdout (one-shot: its result; interactive: nothing). */
  stdout: string;
  /** The session's result: what the executor printed, else what its events said (a result event, else the last assistant message). */
  result: string;
  /** The structured output of the last result event, when the agent answered with one. */
  resultData?: JsonObject;
  /** When the executor ended if that was not the end of the work (interactive: "during turn 2"). */
  endedWhen?: string;
  records: GatewayRecord[];
  session?: LocalSession;
}

/** An executor of a profile, started against a local gateway of its own. */
export interface LocalExecutor<E> {
  invocation: Invocation;
  gateway: LocalGateway;
  executor: E;
  /** When it was spawned (performance.now()). */
  spawnedAt: number;
  /** Stops the gateway; once the executor has ended. */
  close(): Promise<void>;
}

/** How each lifecycle's executor is spawned from the same options: stderr straight to the terminal. */
const SPAWN = {
  one_shot: (options: PersistentExecutorOptions) =>
    new ExecutorProcess({ ...options, stdout: "capture", stderr: "inherit" }),
  persistent: (options: PersistentExecutorOptions) => new PersistentExecutor({ ...options, stderr: "inherit" }),
} satisfies Record<Lifecycle, (options: PersistentExecutorOptions) => unknown>;
type Spawned = { [L in Lifecycle]: ReturnType<(typeof SPAWN)[L]> };

/** 128 + signal number, as a shell reports a process a signal ended. */
export function signalExitCode(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/**
 * The usage of a run (or a whole interactive session) from the usage events the gateway took: a
 * start counts from 0, a resume from the running total recorded when the session last ran here
 * (Claude Code restores it).
 */
function usageOf(
  records: GatewayRecord[],
  options: Pick<LocalExecutorOptions, "mode" | "sessionId" | "knownSessions">,
): RunUsage {
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

/**
 * Starts the profile's executor for one session, with the invocation built as the runner builds
 * it, against a new local gateway. The caller ends the executor, then `close()`s. A program that
 * cannot be started is a ConfigError (the gateway is stopped first).
 */
export async function startLocalExecutor<L extends Lifecycle>(
  options: LocalExecutorOptions,
  lifecycle: L,
): Promise<LocalExecutor<Spawned[L]>> {
  const invocation = buildInvocation({
    mode: options.mode,
    sessionId: options.sessionId,
    schemaVersion: EXEC_SCHEMA_VERSION,
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
    [LIFECYCLE_ENV]: lifecycle,
  });
  try {
    const spawnedAt = performance.now();
    const executor = SPAWN[lifecycle]({
      argv: options.profile.argv,
      input: JSON.stringify(invocation),
      cwd: options.projectDir,
      sandbox: sandboxOptions(options.profile, options.stateDirs ?? [], env),
      env,
    }) as Spawned[L];
    return { invocation, gateway, executor, spawnedAt, close: () => gateway.stop() };
  } catch (error) {
    await gateway.stop();
    throw new ConfigError(`Cannot start executor ${options.profile.argv.join(" ")}: ${messageOf(error)}`);
  }
}

/**
 * What a local executor's end says, the same for a one-shot run and an interactive session: its
 * exit code (128 + the number of a signal that ended it), how long it ran, what its agent used,
 * and what the gateway recorded.
 */
export function endOf(
  started: LocalExecutor<unknown>,
  status: ExitStatus,
  options: Pick<LocalExecutorOptions, "mode" | "sessionId" | "knownSessions">,
): Pick<LocalRunResult, "invocation" | "exitCode" | "durationMs" | "usage" | "signal" | "records" | "session"> {
  const { invocation, gateway, spawnedAt } = started;
  return {
    invocation,
    exitCode: status.signal === null ? status.code : signalExitCode(status.signal),
    durationMs: performance.now() - spawnedAt,
    usage: usageOf(gateway.records, options),
    ...(status.signal === null ? {} : { signal: status.signal }),
    records: gateway.records,
    session: gateway.session(options.sessionId),
  };
}

/** Runs one turn in a one-shot executor, to its exit. */
export async function runLocal(options: LocalRunOptions): Promise<LocalRunResult> {
  const started = await startLocalExecutor(options, "one_shot");
  const { gateway, executor } = started;
  try {
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
    const end = endOf(started, status, options);
    options.signal?.removeEventListener("abort", stop);
    options.kill?.removeEventListener("abort", kill);
    const stdout = executor.stdout();
    const printed = stdout.replace(/\n$/, "");
    // This run's own events only: a resumed session's record still holds the earlier run's result.
    const reported = resultOfRecords(gateway.records);
    return {
      ...end,
      stdout,
      result: printed !== "" ? printed : (reported?.text ?? ""),
      ...(reported?.data ? { resultData: reported.data } : {}),
    };
  } finally {
    await started.close();
  }
}
