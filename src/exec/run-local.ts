/**
 * One invocation run locally, the way the runner would run it, but without a coordinator: the
 * invocation is built from the profile exactly as the runner builds it, and the executor talks to
 * a local recording gateway instead of the runner's forwarding one.
 */
import { constants, hostname } from "node:os";
import { ConfigError } from "../errors.ts";
import { executorEnvironment } from "../executor-process.ts";
import { buildInvocation, type Invocation, type InvocationMode } from "../invocation.ts";
import type { JsonObject } from "../json-object.ts";
import type { ExecutorProfile } from "../profiles.ts";
import { type GatewayRecord, LocalGateway, type LocalSession } from "./local-gateway.ts";

export interface LocalRunOptions {
  profile: ExecutorProfile;
  mode: InvocationMode;
  sessionId: string;
  prompt: string;
  /** The run's project directory (start); also where the executor process starts. */
  projectDir: string;
  agentBlueprint?: JsonObject;
  /** Sessions the gateway knows before the executor starts (for a resume). */
  knownSessions?: LocalSession[];
  /** Each gateway request as it arrives. */
  onRecord?: (record: GatewayRecord) => void;
  onSessionChange?: (session: LocalSession) => void;
  /** Environment for the executor, before the gateway variables are added. Default: this process's. */
  env?: Record<string, string | undefined>;
  /** Aborting stops the executor (SIGTERM), as the runner does for a stopped run. */
  signal?: AbortSignal;
}

export interface LocalRunResult {
  invocation: Invocation;
  exitCode: number;
  /** The signal that ended the executor, if one did. */
  signal?: string;
  /** What the executor printed on stdout: its result. */
  stdout: string;
  records: GatewayRecord[];
  session?: LocalSession;
}

/** 128 + signal number, as a shell reports a process a signal ended. */
function signalExitCode(signal: NodeJS.Signals | number): number {
  return 128 + (typeof signal === "number" ? signal : (constants.signals[signal] ?? 0));
}

export async function runLocal(options: LocalRunOptions): Promise<LocalRunResult> {
  const invocation = buildInvocation({
    mode: options.mode,
    sessionId: options.sessionId,
    prompt: options.prompt,
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
  try {
    let child: Bun.Subprocess<"pipe", "pipe", "inherit">;
    try {
      child = Bun.spawn(options.profile.argv, {
        cwd: options.projectDir,
        env: executorEnvironment(options.env ?? process.env, {
          AGENT_ORCHESTRATOR_API_URL: gateway.url,
          AGENT_SESSION_ID: options.sessionId,
        }),
        stdin: "pipe",
        stdout: "pipe",
        stderr: "inherit",
      });
    } catch (error) {
      throw new ConfigError(`Cannot start executor ${options.profile.argv.join(" ")}: ${(error as Error).message}`);
    }
    const stop = () => child.kill("SIGTERM");
    // A stop that came while the executor was being started still stops it.
    if (options.signal?.aborted) stop();
    else options.signal?.addEventListener("abort", stop, { once: true });
    try {
      child.stdin.write(JSON.stringify(invocation));
      await child.stdin.end();
    } catch {
      // The executor may exit before reading its stdin; its exit code tells what happened.
    }
    const [stdout, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    options.signal?.removeEventListener("abort", stop);
    const signal = child.signalCode ?? undefined;
    return {
      invocation,
      exitCode: signal === undefined ? exitCode : signalExitCode(signal),
      signal: signal?.toString(),
      stdout,
      records: gateway.records,
      session: gateway.session(options.sessionId),
    };
  } finally {
    await gateway.stop();
  }
}
