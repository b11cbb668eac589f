/**
 * What every executor shares: the command line (`--help`, `--schema`), reading and validating the
 * invocation from stdin, a client for the runner's gateway (bind, events, metadata, session read),
 * the event formats of design §7, and how errors become a message on stderr and exit code 1.
 */
import { type Invocation, InvocationError, invocationJsonSchema, parseInvocation, SCHEMA_VERSION } from "../invocation.ts";
import { coordinatorDetail } from "../coordinator-detail.ts";
import { JsonObject } from "../json-object.ts";

/** Where the gateway is when `AGENT_ORCHESTRATOR_API_URL` is not set (a coordinator on this machine). */
const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8765";
const GATEWAY_TIMEOUT_MS = 15_000;

type Env = Record<string, string | undefined>;

/** `AGENT_RUNNER_DEBUG=1` (or true/yes) turns on an executor's debug lines on stderr. */
export function isDebugEnabled(env: Env = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.AGENT_RUNNER_DEBUG ?? "");
}

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

export class GatewayError extends Error {
  override name = "GatewayError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Lines on stderr, prefixed with the executor's name; stdout is only for the result. */
export class ExecutorLog {
  constructor(
    readonly name: string,
    readonly debugEnabled: boolean,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  error(message: string): void {
    this.write(`${this.name}: ${message}\n`);
  }

  warn(message: string): void {
    this.write(`${this.name}: warning: ${message}\n`);
  }

  debug(message: string | (() => string)): void {
    if (this.debugEnabled) this.write(`${this.name}: debug: ${typeof message === "function" ? message() : message}\n`);
  }
}

const SECRET_KEY = /key|token|secret|password|passwd|auth|credential/i;

/** A copy of a config object fit for a log line: values under secret-looking keys are hidden. */
export function redactForLog(value: unknown, key = ""): unknown {
  if (key && SECRET_KEY.test(key) && value !== null && typeof value !== "object") return "[redacted]";
  if (Array.isArray(value)) return value.map((item) => redactForLog(item));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactForLog(v, k)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Events (design §7)

export type EventRole = "user" | "assistant";

export interface SessionEvent extends JsonObject {
  session_id: string;
  event_type: string;
  timestamp: string;
}

const now = () => new Date().toISOString();

export const sessionEvents = {
  message(sessionId: string, role: EventRole, text: string): SessionEvent {
    return { session_id: sessionId, event_type: "message", timestamp: now(), role, content: [{ type: "text", text }] };
  },
  postTool(sessionId: string, tool: { name: string; input: unknown; output: unknown; error: string | null }): SessionEvent {
    return {
      session_id: sessionId,
      event_type: "post_tool",
      timestamp: now(),
      tool_name: tool.name,
      tool_input: tool.input,
      tool_output: tool.output,
      error: tool.error,
    };
  },
  sessionStart(sessionId: string): SessionEvent {
    return { session_id: sessionId, event_type: "session_start", timestamp: now() };
  },
  sessionStop(sessionId: string, exitCode: number, reason: string): SessionEvent {
    return { session_id: sessionId, event_type: "session_stop", timestamp: now(), exit_code: exitCode, reason };
  },
};

// ---------------------------------------------------------------------------------------------
// Gateway client

/** A session as `GET /sessions/{id}` describes it (the coordinator wraps it as `{"session": …}`). */
export interface SessionRecord {
  session_id?: string;
  executor_session_id?: string | null;
  project_dir?: string | null;
  status?: string;
  agent_name?: string | null;
  last_resumed_at?: string | null;
  [key: string]: unknown;
}

/** Talks to the runner's gateway (`AGENT_ORCHESTRATOR_API_URL`); every failure is a GatewayError. */
export class GatewayClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  static fromEnv(env: Env = process.env): GatewayClient {
    return new GatewayClient(env.AGENT_ORCHESTRATOR_API_URL || DEFAULT_GATEWAY_URL);
  }

  bind(body: { session_id: string; executor_session_id: string; project_dir?: string }): Promise<unknown> {
    return this.request("POST", "/bind", body);
  }

  sendEvent(event: SessionEvent): Promise<unknown> {
    return this.request("POST", "/events", event);
  }

  updateMetadata(body: { session_id: string; last_resumed_at?: string; executor_session_id?: string }): Promise<unknown> {
    return this.request("PATCH", "/metadata", body);
  }

  /** The session, or undefined when the coordinator does not know it (404). */
  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    let reply: unknown;
    try {
      reply = await this.request("GET", `/sessions/${encodeURIComponent(sessionId)}`);
    } catch (error) {
      if (error instanceof GatewayError && error.status === 404) return undefined;
      throw error;
    }
    const session = reply !== null && typeof reply === "object" && "session" in reply ? (reply as { session: unknown }).session : reply;
    if (!JsonObject.allows(session)) {
      throw new GatewayError(`GET /sessions/${sessionId}: expected a session object, got ${JSON.stringify(reply)?.slice(0, 200)}`);
    }
    return session as SessionRecord;
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = `${this.baseUrl}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: body === undefined ? undefined : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS),
      });
    } catch (error) {
      throw new GatewayError(`${method} ${path}: cannot reach the gateway at ${this.baseUrl}: ${(error as Error).message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      throw new GatewayError(`${method} ${path}: gateway answered ${response.status}: ${coordinatorDetail(text) ?? "(empty body)"}`, response.status);
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
}

/**
 * The reporting side of the gateway for a running agent: a bind, event or metadata update that
 * fails is logged on stderr and the agent carries on (the work matters more than its telemetry).
 */
export class SessionReporter {
  constructor(
    readonly gateway: GatewayClient,
    readonly sessionId: string,
    private readonly log: ExecutorLog,
  ) {}

  bind(executorSessionId: string, projectDir?: string): Promise<void> {
    return this.bestEffort("bind", () =>
      this.gateway.bind({ session_id: this.sessionId, executor_session_id: executorSessionId, project_dir: projectDir }),
    );
  }

  event(event: SessionEvent): Promise<void> {
    return this.bestEffort(`${event.event_type} event`, () => this.gateway.sendEvent(event));
  }

  message(role: EventRole, text: string): Promise<void> {
    return this.event(sessionEvents.message(this.sessionId, role, text));
  }

  markResumed(): Promise<void> {
    return this.bestEffort("metadata update", () =>
      this.gateway.updateMetadata({ session_id: this.sessionId, last_resumed_at: now() }),
    );
  }

  private async bestEffort(what: string, send: () => Promise<unknown>): Promise<void> {
    try {
      await send();
    } catch (error) {
      this.log.warn(`${what} not delivered (continuing): ${(error as Error).message}`);
    }
  }
}

/** Resume needs the session the coordinator knows: its absence, or no gateway, fails the run. */
export async function readSessionForResume(gateway: GatewayClient, sessionId: string): Promise<SessionRecord> {
  let session: SessionRecord | undefined;
  try {
    session = await gateway.getSession(sessionId);
  } catch (error) {
    throw new ExecutorError(`Cannot resume session '${sessionId}': ${(error as Error).message}`);
  }
  if (!session) {
    throw new ExecutorError(
      `Cannot resume session '${sessionId}': no such session (GET /sessions/${sessionId} answered 404); start it with mode "start" first`,
    );
  }
  return session;
}

// ---------------------------------------------------------------------------------------------
// Command line and main loop

export interface ExecutorContext {
  log: ExecutorLog;
  gateway: GatewayClient;
  reporter: SessionReporter;
  env: Env;
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

const defaultIO = (): ExecutorIO => ({
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
`;
}

/**
 * Runs an executor: answers `--help`/`--schema`, otherwise reads and validates the invocation
 * from stdin, runs it, prints the result. Returns the exit code (never throws).
 */
export async function runExecutor(definition: ExecutorDefinition, argv: string[], io: ExecutorIO = defaultIO()): Promise<number> {
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
  try {
    const invocation = parseInvocation(await io.readStdin());
    log.debug(() => describeInvocation(invocation));
    if (invocation.executor_config) {
      log.debug(() => `executor_config: ${JSON.stringify(redactForLog(invocation.executor_config))}`);
    }
    const gateway = GatewayClient.fromEnv(io.env);
    const reporter = new SessionReporter(gateway, invocation.session_id, log);
    const result = await definition.run(invocation, { log, gateway, reporter, env: io.env });
    await io.stdout(result.endsWith("\n") ? result : `${result}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ExecutorError) {
      log.error(error.message);
      return error.exitCode;
    }
    if (error instanceof InvocationError) log.error(error.message);
    else log.error(`unexpected failure: ${(error as Error)?.stack ?? String(error)}`);
    return 1;
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
