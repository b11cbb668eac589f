/**
 * The executor kit's entry: `--help` and `--schema`, reading and validating the invocation from
 * stdin, running its session (one turn, or a persistent session's turns), and turning errors into
 * a message on stderr and an exit code.
 */
import {
  type Invocation,
  InvocationError,
  invocationJsonSchema,
  invocationParameters,
  parseInvocation,
  SCHEMA_VERSIONS,
} from "../../protocol/invocation.ts";
import { LIFECYCLE_ENV, type Lifecycle, LifecycleError, lifecycleFrom } from "../../protocol/lifecycle.ts";
import type { Env } from "../../shared/env.ts";
import { messageOf } from "../../shared/errors.ts";
import { ExecutorLog, isDebugEnabled, redactForLog } from "./executor-log.ts";
import { DEFAULT_GATEWAY_URL, GatewayClient, type SessionRecord, SessionReporter } from "./gateway-client.ts";
import { type ExecutorSession, runPersistentSession, TurnRunner } from "./session-loop.ts";
import { StdinReader } from "./stdin-reader.ts";
import { type ExecutorStopped, StopWatch } from "./stop-watch.ts";

export type { ExecutorSession, TurnOutcome } from "./session-loop.ts";

/** An error whose message is the whole story: printed as is, the executor exits with `exitCode` (1). */
export class ExecutorError extends Error {
  override name = "ExecutorError";
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Resume needs the session the coordinator knows: its absence, or no gateway, fails the run. */
export async function readSessionForResume(gateway: GatewayClient, sessionId: string): Promise<SessionRecord> {
  let session: SessionRecord | undefined;
  try {
    session = await gateway.getSession(sessionId);
  } catch (error) {
    throw new ExecutorError(`Cannot resume session '${sessionId}': ${messageOf(error)}`);
  }
  if (!session) {
    throw new ExecutorError(
      `Cannot resume session '${sessionId}': no such session (GET /sessions/${sessionId} answered 404); start it with mode "start" first`,
    );
  }
  return session;
}

export interface ExecutorContext {
  log: ExecutorLog;
  gateway: GatewayClient;
  reporter: SessionReporter;
  env: Env;
  /**
   * Aborts when the run must stop (SIGTERM, SIGINT, or the runner gone), its reason an
   * ExecutorStopped. The run then has a second to end its agent; `signal.throwIfAborted()` after
   * that reports the stop. A run that ignores it is left behind when the executor exits.
   */
  signal: AbortSignal;
  /** `one_shot`: the session runs one turn. `persistent`: one per `turn` line, until shutdown. */
  lifecycle: Lifecycle;
}

export interface ExecutorDefinition {
  /** The program's name, as in `executors/…/<name>`. */
  name: string;
  /** One line: what the executor does. */
  summary: string;
  /** Extra help text: the executor_config keys it reads, its environment. */
  details: string;
  /** Prepares the session (the first turn comes through `turn`). Throw ExecutorError to fail the run. */
  startSession(invocation: Invocation, context: ExecutorContext): Promise<ExecutorSession>;
}

export interface ExecutorIO {
  stdin: StdinReader;
  stdout: (text: string) => Promise<unknown>;
  stderr: (text: string) => void;
  env: Env;
}

/** stdin, stdout, stderr and the environment of this process. */
export const standardIO = (): ExecutorIO => ({
  stdin: StdinReader.standard(),
  stdout: (text) => Bun.write(Bun.stdout, text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});

/** What an entry did before the kit runs: started watching for stops, read the invocation. */
export interface EntryStart {
  watch: StopWatch;
  /** The invocation's text, already read from stdin as the lifecycle has it. */
  invocationText?: string;
}

function helpText(definition: ExecutorDefinition): string {
  return `${definition.name} — ${definition.summary}

Usage:
  ${definition.name} < invocation.json     run one invocation (schema ${SCHEMA_VERSIONS.join(" or ")}) read from stdin
  ${definition.name} --schema              print the JSON Schema of the invocation
  ${definition.name} --help                this text

The result is printed on stdout; exit code 0 on success, 1 with a message on stderr on failure.
Session events go to the runner's gateway at $AGENT_ORCHESTRATOR_API_URL (default ${DEFAULT_GATEWAY_URL}).

With ${LIFECYCLE_ENV}=persistent the session outlives its first turn: the invocation is stdin's first
line, then each line {"type": "turn", "parameters": {…}} runs a turn and {"type": "interrupt"} ends the
running one early; after each turn a line {"type": "turn_complete", "result": "…"} goes to stdout.
{"type": "shutdown"} or the end of stdin ends the session (exit 0); a turn that fails ends it (exit 1).

${definition.details.trim()}

Environment:
  AGENT_ORCHESTRATOR_API_URL   the runner's gateway (set by the runner)
  AGENT_SESSION_ID             the run's session id (set by the runner)
  ${LIFECYCLE_ENV}       one_shot (default) or persistent (set by the runner)
  AGENT_RUNNER_DEBUG=1         debug lines on stderr (invocation summary, executor_config with secrets hidden)
  AGENT_RUNNER_LIFELINE_FD     a descriptor that reaches end-of-file when the runner is gone (set by the
                               runner); without it, the parent process is watched. Either way the run stops,
                               what it started is killed, and the executor exits 1 within about a second.

SIGTERM or SIGINT stops the run (exit 143 or 130); the agent gets a second to end.
`;
}

/**
 * Runs an executor: answers `--help`/`--schema`, otherwise reads and validates the invocation
 * from stdin, runs its session (one turn, or turn after turn when persistent), prints the
 * results. Returns the exit code (never throws). `start` is what an entry that started watching
 * (and maybe reading) before loading the executor has done; by default the kit does both.
 */
export async function runExecutor(
  definition: ExecutorDefinition,
  argv: string[],
  io: ExecutorIO = standardIO(),
  start?: EntryStart,
): Promise<number> {
  const log = new ExecutorLog(definition.name, isDebugEnabled(io.env), io.stderr);
  if (argv.includes("--help") || argv.includes("-h")) {
    await io.stdout(helpText(definition));
    return 0;
  }
  if (argv.includes("--schema")) {
    await io.stdout(`${JSON.stringify(invocationJsonSchema(), null, 2)}\n`);
    return 0;
  }
  if (argv.length > 0) {
    log.error(`unexpected argument '${argv[0]}': the invocation is read from stdin (options: --help, --schema)`);
    return 1;
  }
  const stop = start?.watch ?? new StopWatch(io.env, log);
  let session: ExecutorSession | undefined;
  try {
    const lifecycle = lifecycleFrom(io.env);
    const invocation = parseInvocation(start?.invocationText ?? (await io.stdin.readInvocation(lifecycle)));
    // A stop that came while the invocation was read: the run does not start.
    stop.signal.throwIfAborted();
    log.debug(() => describeInvocation(invocation, lifecycle));
    if (invocation.executor_config) {
      log.debug(() => `executor_config: ${JSON.stringify(redactForLog(invocation.executor_config))}`);
    }
    const gateway = GatewayClient.fromEnv(io.env);
    const reporter = new SessionReporter(gateway, invocation.session_id, log);
    const context = { log, gateway, reporter, env: io.env, signal: stop.signal, lifecycle };
    session = await stop.bound(definition.startSession(invocation, context));
    const turns = new TurnRunner(session, invocation, reporter, stop);
    if (lifecycle === "one_shot") {
      const outcome = await turns.run(invocationParameters(invocation));
      await stop.bound(session.finish());
      await io.stdout(outcome.result.endsWith("\n") ? outcome.result : `${outcome.result}\n`);
    } else {
      await runPersistentSession(turns, io.stdin, io.stdout, log, stop);
      await stop.bound(session.finish());
    }
    return 0;
  } catch (error) {
    if (stop.signal.aborted) {
      // Whatever the run threw on its way out, the stop is the story.
      const stopped = stop.signal.reason as ExecutorStopped;
      stop.killLeftovers();
      log.error(stopped.message);
      return stopped.exitCode;
    }
    if (error instanceof ExecutorError) {
      log.error(error.message);
      return error.exitCode;
    }
    if (error instanceof InvocationError || error instanceof LifecycleError) log.error(error.message);
    else log.error(`unexpected failure: ${(error as Error)?.stack ?? String(error)}`);
    return 1;
  } finally {
    await session?.dispose?.().catch(() => {});
    stop.dispose();
  }
}

function describeInvocation(invocation: Invocation, lifecycle: Lifecycle): string {
  const parts = [
    `mode=${invocation.mode}`,
    `session_id=${invocation.session_id}`,
    invocation.schema_version === "2.2"
      ? `parameters=${Object.keys(invocation.parameters).join(",") || "(none)"}`
      : `prompt=${invocation.prompt.length} chars`,
  ];
  if (invocation.project_dir) parts.push(`project_dir=${invocation.project_dir}`);
  if (invocation.agent_blueprint) parts.push(`blueprint=${String(invocation.agent_blueprint.name ?? "(unnamed)")}`);
  parts.push(`schema=${invocation.schema_version}`, `lifecycle=${lifecycle}`);
  return `invocation ${parts.join(" ")}`;
}
