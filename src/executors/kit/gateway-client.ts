/**
 * An executor's side of the runner's gateway (`AGENT_ORCHESTRATOR_API_URL`): bind, events,
 * metadata, session reads; and the reporter that keeps an agent going when reporting fails.
 */
import type { RootSchema } from "@ark/schema";
import { coordinatorDetail } from "../../protocol/error-detail.ts";
import { type EventRole, type SessionEvent, sessionEvents } from "../../protocol/session-events.ts";
import type { Env } from "../../shared/env.ts";
import { messageOf } from "../../shared/errors.ts";
import { JSON_OBJECT_SCHEMA, JsonObject, parseJson, schemaValidator, validate } from "../../shared/validation.ts";
import type { ExecutorLog } from "./executor-log.ts";

/** Where the gateway is when `AGENT_ORCHESTRATOR_API_URL` is not set (a coordinator on this machine). */
export const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8765";
const GATEWAY_TIMEOUT_MS = 15_000;

export class GatewayError extends Error {
  override name = "GatewayError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** A session as `GET /sessions/{id}` describes it; other fields are ignored. */
export interface SessionRecord extends JsonObject {
  session_id?: string;
  executor_session_id?: string | null;
  project_dir?: string | null;
  status?: string;
  agent_name?: string | null;
  last_resumed_at?: string | null;
}

const NULLABLE_STRING = ["string", { unit: null }] satisfies RootSchema;
const SessionRecord = schemaValidator<SessionRecord>({
  ...JSON_OBJECT_SCHEMA,
  optional: [
    { key: "session_id", value: "string" },
    { key: "executor_session_id", value: NULLABLE_STRING },
    { key: "project_dir", value: NULLABLE_STRING },
    { key: "status", value: "string" },
    { key: "agent_name", value: NULLABLE_STRING },
    { key: "last_resumed_at", value: NULLABLE_STRING },
  ],
});

/** Talks to the runner's gateway; every failure is a GatewayError. */
export class GatewayClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  static fromEnv(env: Env = process.env): GatewayClient {
    return new GatewayClient(env.AGENT_ORCHESTRATOR_API_URL || DEFAULT_GATEWAY_URL);
  }

  bind(body: { session_id: string; executor_session_id: string; project_dir?: string }): Promise<string> {
    return this.request("POST", "/bind", body);
  }

  sendEvent(event: SessionEvent): Promise<string> {
    return this.request("POST", "/events", event);
  }

  updateMetadata(body: {
    session_id: string;
    last_resumed_at?: string;
    executor_session_id?: string;
  }): Promise<string> {
    return this.request("PATCH", "/metadata", body);
  }

  /** The session, or undefined when the coordinator does not know it (404). */
  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    const path = `/sessions/${encodeURIComponent(sessionId)}`;
    let text: string;
    try {
      text = await this.request("GET", path);
    } catch (error) {
      if (error instanceof GatewayError && error.status === 404) return undefined;
      throw error;
    }
    // The coordinator wraps it as `{"session": …}`; a bare session object is accepted too.
    const origin = `GET ${path}: the gateway's reply`;
    const reply = parseJson(text, JsonObject, origin, GatewayError);
    return validate("session" in reply ? reply.session : reply, SessionRecord, origin, GatewayError);
  }

  /** Sends a request; resolves with the reply's text when it is 2xx. */
  private async request(method: string, path: string, body?: unknown): Promise<string> {
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
      throw new GatewayError(`${method} ${path}: cannot reach the gateway at ${this.baseUrl}: ${messageOf(error)}`);
    }
    const text = await response.text();
    if (!response.ok) {
      const detail = coordinatorDetail(text) ?? "(empty body)";
      throw new GatewayError(`${method} ${path}: gateway answered ${response.status}: ${detail}`, response.status);
    }
    return text;
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
      this.gateway.bind({
        session_id: this.sessionId,
        executor_session_id: executorSessionId,
        project_dir: projectDir,
      }),
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
      this.gateway.updateMetadata({ session_id: this.sessionId, last_resumed_at: new Date().toISOString() }),
    );
  }

  private async bestEffort(what: string, send: () => Promise<unknown>): Promise<void> {
    try {
      await send();
    } catch (error) {
      this.log.warn(`${what} not delivered (continuing): ${messageOf(error)}`);
    }
  }
}
