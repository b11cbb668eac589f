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
    options.signal?.removeEventListener("abort", stop);
    options.kill?.removeEventListener("abort", kill);
    return {
      invocation,
      exitCode: status.signal === null ? status.code : signalExitCode(status.signal),
      signal: status.signal ?? undefined,
      stdout: executor.stdout(),
      records: gateway.records,
      session: gateway.session(options.sessionId),
    };
  } finally {
    await gateway.stop();
  }
}
