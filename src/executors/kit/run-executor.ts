/**
 * The executor kit's entry: `--help` and `--schema`, reading and validating the invocation from
 * stdin, running it, and turning errors into a message on stderr and an exit code.
 */
import {
  type Invocation,
  InvocationError,
  invocationJsonSchema,
  parseInvocation,
  SCHEMA_VERSION,
} from "../../protocol/invocation.ts";
import type { Env } from "../../shared/env.ts";
import { messageOf } from "../../shared/errors.ts";
import { ExecutorLog, isDebugEnabled, redactForLog } from "./executor-log.ts";
import { DEFAULT_GATEWAY_URL, GatewayClient, type SessionRecord, SessionReporter } from "./gateway-client.ts";
import { type ExecutorStopped, StopWatch } from "./stop-watch.ts";

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
}

export interface ExecutorDefinition {
  /** The program's name, as in `executors/…/<name>`. */
  name: string;
  /** One line: what the executor does. */
  summary: string;
  /** Extra help text: the executor_config keys it reads, its environment. */
  details: string;
  /** Does the work and returns the result (printed on stdout). Throw ExecutorError to fail. */
  run(invocation: Invocation, context: ExecutorContext): Promise<string>;
}

export interface ExecutorIO {
  readStdin: () => Promise<string>;
  stdout: (text: string) => Promise<unknown>;
  stderr: (text: string) => void;
  env: Env;
}

/** stdin, stdout, stderr and the environment of this process. */
export const standardIO = (): ExecutorIO => ({
  readStdin: () => Bun.stdin.text(),
  stdout: (text) => Bun.write(Bun.stdout, text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});

function helpText(definition: ExecutorDefinition): string {
  return `${definition.name} — ${definition.summary}

Usage:
  ${definition.name} < invocation.json     run one invocation (schema ${SCHEMA_VERSION}) read from stdin
  ${definition.name} --schema              print the JSON Schema of the invocation
  ${definition.name} --help                this text

The result is printed on stdout; exit code 0 on success, 1 with a message on stderr on failure.
Session events go to the runner's gateway at $AGENT_ORCHESTRATOR_API_URL (default ${DEFAULT_GATEWAY_URL}).

${definition.details.trim()}

Environment:
  AGENT_ORCHESTRATOR_API_URL   the runner's gateway (set by the runner)
  AGENT_SESSION_ID             the run's session id (set by the runner)
  AGENT_RUNNER_DEBUG=1         debug lines on stderr (invocation summary, executor_config with secrets hidden)
  AGENT_RUNNER_LIFELINE_FD     a descriptor that reaches end-of-file when the runner is gone (set by the
                               runner); without it, the parent process is watched. Either way the run stops,
                               what it started is killed, and the executor exits 1 within about a second.

SIGTERM or SIGINT stops the run (exit 143 or 130); the agent gets a second to end.
`;
}

/**
 * Runs an executor: answers `--help`/`--schema`, otherwise reads and validates the invocation
 * from stdin, runs it, prints the result. Returns the exit code (never throws). `watch` is the
 * StopWatch of an entry that started watching before loading the executor; by default one is
 * started here.
 */
export async function runExecutor(
  definition: ExecutorDefinition,
  argv: string[],
  io: ExecutorIO = standardIO(),
  watch?: StopWatch,
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
  const stop = watch ?? new StopWatch(io.env, log);
  try {
    const invocation = parseInvocation(await io.readStdin());
    // A stop that came while the invocation was read: the run does not start.
    stop.signal.throwIfAborted();
    log.debug(() => describeInvocation(invocation));
    if (invocation.executor_config) {
      log.debug(() => `executor_config: ${JSON.stringify(redactForLog(invocation.executor_config))}`);
    }
    const gateway = GatewayClient.fromEnv(io.env);
    const reporter = new SessionReporter(gateway, invocation.session_id, log);
    const context = { log, gateway, reporter, env: io.env, signal: stop.signal };
    const result = await stop.bound(definition.run(invocation, context));
    await io.stdout(result.endsWith("\n") ? result : `${result}\n`);
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
    if (error instanceof InvocationError) log.error(error.message);
    else log.error(`unexpected failure: ${(error as Error)?.stack ?? String(error)}`);
    return 1;
  } finally {
    stop.dispose();
  }
}

function describeInvocation(invocation: Invocation): string {
  const parts = [
    `mode=${invocation.mode}`,
    `session_id=${invocation.session_id}`,
    `prompt=${invocation.prompt.length} chars`,
  ];
  if (invocation.project_dir) parts.push(`project_dir=${invocation.project_dir}`);
  if (invocation.agent_blueprint) parts.push(`blueprint=${String(invocation.agent_blueprint.name ?? "(unnamed)")}`);
  return `invocation ${parts.join(" ")}`;
}
