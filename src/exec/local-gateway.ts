/**
 * The gateway `agent-runner exec` gives its executor: the same routes and door checks as the
 * runner's gateway, but instead of forwarding to a coordinator it records what the executor sends
 * and keeps the session state itself, so `GET /sessions/{id}` (and with it a resume) works offline.
 */

import {
  BindRequest,
  EventRequest,
  GATEWAY_MAX_BODY_BYTES,
  GATEWAY_ROUTES_SUMMARY,
  type GatewayRoute,
  gatewayRoute,
  MessageContent,
  MetadataRequest,
  withPathSession,
} from "../protocol/gateway-requests.ts";
import { admit, RunTokens, urlWithToken } from "../protocol/run-tokens.ts";
import { UsageEvent } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import { JsonObject } from "../shared/json.ts";
import { type LocalServer, serveLocal } from "../shared/local-server.ts";
import { redact } from "../shared/log.ts";
import type { Validator } from "../shared/validation.ts";

/** A session as the local gateway knows it; the fields a coordinator's `GET /sessions/{id}` gives. */
export const LocalSession = type({
  session_id: "string > 0",
  status: "'pending' | 'running' | 'finished'",
  created_at: "string",
  "executor_session_id?": "string",
  "project_dir?": "string",
  "hostname?": "string",
  "executor_profile?": "string",
  "last_resumed_at?": "string",
  "agent_name?": "string",
  /**
   * The session's result (what exec prints and `GET /sessions/{id}/result` answers): the last
   * result event's (its result_text, or its result_data as JSON), else the last assistant message's text.
   */
  "result?": "string",
  /** The last result event's fields (invocation 2.2), as it sent them; both set once one came. */
  "result_text?": "string | null",
  "result_data?": JsonObject.or("null"),
  /** The agent session's running cost as its last usage event said: where a resume's count goes on. */
  "total_cost_usd?": "number",
});
export type LocalSession = typeof LocalSession.infer;

/** The fields of a `result` event (invocation 2.2), each optional as the coordinator's Event model has them. */
const ResultEventFields = type({ "result_text?": "string | null", "result_data?": JsonObject.or("null") });

type SessionResult = Pick<LocalSession, "result" | "result_text" | "result_data">;

/** True once a result event set the session's result: from then on assistant messages no longer do. */
const fromResultEvent = (session: SessionResult) =>
  session.result_text !== undefined || session.result_data !== undefined;

/**
 * Applies one accepted event to a session's result: a result event sets it; an assistant message
 * sets it while no result event has come (an executor of invocation 2.1 sends none).
 */
function applyToResult(session: SessionResult, event: unknown): void {
  if (!JsonObject.allows(event)) return;
  if (event.event_type === "result") {
    const fields = ResultEventFields(event);
    if (fields instanceof type.errors) return;
    session.result_text = fields.result_text ?? null;
    session.result_data = fields.result_data ?? null;
    session.result = session.result_data ? JSON.stringify(session.result_data) : (session.result_text ?? "");
  } else if (event.event_type === "message" && event.role === "assistant" && !fromResultEvent(session)) {
    session.result = textOfContent(event.content);
  }
}

/**
 * The result of these requests' events alone (one turn's, or one run's), by the same rule as a
 * session's; undefined when none of them carried one.
 */
export function resultOfRecords(records: GatewayRecord[]): { text: string; data?: JsonObject } | undefined {
  const result: SessionResult = {};
  for (const record of records) if (record.kind === "event" && record.status < 400) applyToResult(result, record.body);
  if (result.result === undefined) return undefined;
  return result.result_data ? { text: result.result, data: result.result_data } : { text: result.result };
}

export type GatewayRecordKind = "bind" | "event" | "metadata" | "request";

/** One request the executor made, in arrival order. */
export interface GatewayRecord {
  kind: GatewayRecordKind;
  method: string;
  path: string;
  body?: unknown;
  /** The status the gateway answered, and its `detail` when it refused. */
  status: number;
  detail?: string;
  at: string;
}

export interface LocalGatewayOptions {
  /** Sessions known before the executor starts (from an earlier `exec`, or given for a resume). */
  sessions?: LocalSession[];
  /** What the runner adds to a bind (the runner owns these, not the executor). */
  hostname?: string;
  executorProfile?: string;
  /** Called for every request, as it arrives. */
  onRecord?: (record: GatewayRecord) => void;
  /** Called whenever a session changes, e.g. to keep it for a later resume. */
  onSessionChange?: (session: LocalSession) => void;
}

/** The gateway's own routes; every other request is a plain "request". */
const RECORD_KINDS: Partial<Record<GatewayRoute, GatewayRecordKind>> = {
  bind: "bind",
  event: "event",
  metadata: "metadata",
};

type Reply = { status: number; body: unknown };
const reply = (body: unknown, status = 200): Reply => ({ status, body });
const detail = (status: number, message: string): Reply => reply({ detail: message }, status);

/**
 * The request body if it fits the schema and is for the caller's own session; else the 400
 * reply naming what is wrong, or the 403 for another session.
 */
function check<T extends { session_id: string }>(
  route: string,
  body: unknown,
  schema: Validator<T>,
  sessionId: string,
): T | Reply {
  const result = schema(body);
  if (result instanceof type.errors) return detail(400, `${route}: ${result.summary.replaceAll("\n", "; ")}`);
  const fields = result as T;
  if (fields.session_id !== sessionId) {
    return detail(403, `This executor's run is for session ${sessionId}; it cannot write session ${fields.session_id}`);
  }
  return fields;
}

const isReply = (value: unknown): value is Reply =>
  typeof value === "object" && value !== null && "status" in value && "body" in value;

function textOfContent(content: unknown): string {
  const blocks = MessageContent(content);
  if (blocks instanceof type.errors) return "";
  if (typeof blocks === "string") return blocks;
  return blocks
    .filter((block) => block.type === "text")
    .map((block) => block.text ?? "")
    .join("");
}

export class LocalGateway {
  readonly records: GatewayRecord[] = [];
  readonly sessions = new Map<string, LocalSession>();
  private server?: LocalServer;
  private readonly tokens = new RunTokens();
  private waiters: Array<{ test: (record: GatewayRecord) => boolean; resolve: (record: GatewayRecord) => void }> = [];

  constructor(private readonly options: LocalGatewayOptions = {}) {
    for (const session of options.sessions ?? []) this.sessions.set(session.session_id, { ...session });
  }

  /** Serves on 127.0.0.1, on a free port. */
  start(): this {
    this.server = serveLocal({
      name: "exec gateway",
      hostname: "127.0.0.1",
      port: 0,
      tokenOf: (path) => this.tokens.carriedBy(path),
      // Bun refuses larger bodies itself; handle() gives the JSON answer for declared sizes.
      maxRequestBodySize: GATEWAY_MAX_BODY_BYTES + 1,
      fetch: (request) => this.handle(request),
      // An executor reads JSON errors; Bun's own error page is HTML.
      error: (error) =>
        Response.json({ detail: `agent-runner exec's gateway failed: ${error.message}` }, { status: 500 }),
    });
    return this;
  }

  /** Without a run token: an executor gets `urlFor(its session)`. */
  get url(): string {
    if (!this.server) throw new Error("local gateway not started");
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** The URL to give the executor of `sessionId`: it carries a token for that session only. */
  urlFor(sessionId: string): string {
    return urlWithToken(this.url, this.tokens.issue(sessionId));
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.stop();
  }

  session(sessionId: string): LocalSession | undefined {
    return this.sessions.get(sessionId);
  }

  /** Resolves with the first record (received or still to come) that passes the test. */
  waitFor(test: (record: GatewayRecord) => boolean, timeoutMs = 30_000): Promise<GatewayRecord> {
    const seen = this.records.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`local gateway: no matching request within ${timeoutMs} ms; got:\n${this.describe()}`));
      }, timeoutMs);
      const done = (record: GatewayRecord) => {
        clearTimeout(timer);
        resolve(record);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  describe(): string {
    return this.records
      .map((r) => `${r.method} ${r.path} ${r.status} ${r.body === undefined ? "" : JSON.stringify(r.body)}`)
      .join("\n");
  }

  private async handle(request: Request): Promise<Response> {
    const admission = admit(request, {
      port: this.server!.port,
      tokens: this.tokens,
      urlSource: "AGENT_ORCHESTRATOR_API_URL",
    });
    // What is recorded never shows a token.
    const path = admission.ok ? admission.path : redact(new URL(request.url).pathname);
    // The body of a refused request is neither read nor kept: it may come from any local process.
    const read = admission.ok ? await readBody(request) : undefined;
    let body: unknown;
    let badJson = false;
    if (read?.text) {
      try {
        body = JSON.parse(read.text);
      } catch {
        body = read.text;
        badJson = true;
      }
    }
    const route = admission.ok ? gatewayRoute(request.method, path) : undefined;
    const kind = (route && RECORD_KINDS[route]) ?? "request";
    const answer = !admission.ok
      ? detail(admission.status, admission.message)
      : read?.tooBig
        ? detail(413, `Request body over ${GATEWAY_MAX_BODY_BYTES} bytes`)
        : badJson
          ? detail(400, "request body is not valid JSON")
          : this.route(route, request.method, path, body, admission.sessionId);
    const record: GatewayRecord = {
      kind,
      method: request.method,
      path,
      status: answer.status,
      at: new Date().toISOString(),
    };
    if (body !== undefined) record.body = body;
    if (answer.status >= 400) record.detail = String((answer.body as { detail?: unknown }).detail ?? "");
    this.records.push(record);
    this.options.onRecord?.(record);
    const ready = this.waiters.filter((w) => w.test(record));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve(record);
    return Response.json(answer.body, { status: answer.status });
  }

  private route(
    route: GatewayRoute | undefined,
    method: string,
    path: string,
    body: unknown,
    sessionId: string,
  ): Reply {
    if (route === "bind") return this.bind(withPathSession(path, body), sessionId);
    if (route === "event") return this.event(body, sessionId);
    if (route === "metadata") return this.metadata(body, sessionId);
    const sessionPath = /^\/sessions\/([^/]+)(?:\/(status|result))?$/.exec(path);
    if (route === "session-read" && sessionPath) {
      const session = this.sessions.get(decodeURIComponent(sessionPath[1]!));
      if (sessionPath[2] === "status") return reply({ status: session?.status ?? "not_existent" });
      if (!session) return detail(404, "Session not found");
      if (sessionPath[2] === "result") {
        if (session.status !== "finished") return detail(400, "Session not finished");
        if (session.result === undefined) return detail(404, "No result found");
        // Both generations' shapes: 2.1's `result`, and 2.2's result event fields when one came.
        const { result, result_text, result_data } = session;
        return reply(fromResultEvent(session) ? { result, result_text, result_data } : { result });
      }
      return reply({ session });
    }
    if (route === "orchestration") {
      return detail(
        501,
        `agent-runner exec has no coordinator: its local gateway serves POST /bind, POST /events, PATCH /metadata and GET /sessions/{id}[/status|/result], not ${method} ${path}`,
      );
    }
    return detail(404, `${method} ${path} is not served here: the gateway serves ${GATEWAY_ROUTES_SUMMARY}`);
  }

  private upsert(sessionId: string): LocalSession {
    let session = this.sessions.get(sessionId);
    if (!session) {
      session = { session_id: sessionId, status: "pending", created_at: new Date().toISOString() };
      this.sessions.set(sessionId, session);
    }
    return session;
  }

  private changed(session: LocalSession): void {
    this.options.onSessionChange?.({ ...session });
  }

  private bind(body: unknown, sessionId: string): Reply {
    const fields = check("POST /bind", body, BindRequest, sessionId);
    if (isReply(fields)) return fields;
    const session = this.upsert(fields.session_id);
    session.executor_session_id = fields.executor_session_id;
    if (fields.project_dir !== undefined) session.project_dir = fields.project_dir;
    if (this.options.hostname) session.hostname = this.options.hostname;
    if (this.options.executorProfile) session.executor_profile = this.options.executorProfile;
    session.status = "running";
    this.changed(session);
    return reply({ ok: true, session });
  }

  private event(body: unknown, sessionId: string): Reply {
    const event = check("POST /events", body, EventRequest, sessionId);
    if (isReply(event)) return event;
    if (event.event_type === "result") {
      const fields = ResultEventFields(event);
      if (fields instanceof type.errors) return detail(400, `POST /events: ${fields.summary.replaceAll("\n", "; ")}`);
    }
    const session = this.upsert(event.session_id);
    if (event.event_type === "session_start") session.status = "running";
    if (event.event_type === "session_stop") session.status = "finished";
    applyToResult(session, event);
    const usage = UsageEvent(body);
    if (!(usage instanceof type.errors)) session.total_cost_usd = usage.usage.total_cost_usd;
    this.changed(session);
    return reply({ ok: true });
  }

  private metadata(body: unknown, sessionId: string): Reply {
    const fields = check("PATCH /metadata", body, MetadataRequest, sessionId);
    if (isReply(fields)) return fields;
    const session = this.sessions.get(fields.session_id);
    if (!session) return detail(404, "Session not found");
    if (fields.last_resumed_at !== undefined) session.last_resumed_at = fields.last_resumed_at;
    if (fields.executor_session_id !== undefined) session.executor_session_id = fields.executor_session_id;
    this.changed(session);
    return reply({ ok: true, session });
  }
}

/** A request's body as text, unless it is declared, or turns out, larger than a gateway takes. */
async function readBody(request: Request): Promise<{ text?: string; tooBig?: true }> {
  if (Number(request.headers.get("content-length") ?? 0) > GATEWAY_MAX_BODY_BYTES) return { tooBig: true };
  const text = await request.text();
  return Buffer.byteLength(text) > GATEWAY_MAX_BODY_BYTES ? { tooBig: true } : { text };
}
