/** The fake coordinator's sessions: their records, stored events and results, per protocol generation. */

import { Event21, Event22 } from "./fake-models.ts";

export type Protocol = "2.1" | "2.2";

/** A session's status as the reference coordinator keeps it (`idle` only at 2.2). */
export type SessionStatus = "pending" | "running" | "idle" | "stopping" | "stopped" | "finished" | "failed";

export interface FakeSession {
  session_id: string;
  status: SessionStatus;
  created_at: string;
  project_dir: string | null;
  agent_name: string | null;
  last_resumed_at: string | null;
  parent_session_id: string | null;
  execution_mode: string;
  executor_session_id: string | null;
  executor_profile: string | null;
  hostname: string | null;
}

/** A stored event: every field of the generation's Event model (null when not sent), numbered in arrival order. */
export type StoredEvent = Record<string, unknown> & { id: number; event_type: string; timestamp: string };

/** A timestamp as the reference coordinator writes one (Python's isoformat of an aware UTC datetime). */
export function isoNow(offsetSeconds = 0): string {
  return new Date(Date.now() + offsetSeconds * 1000).toISOString().replace("Z", "000+00:00");
}

export const answer = (body: any, status = 200) => ({ status, body });
export type Answer = ReturnType<typeof answer>;

export class SessionStore {
  private readonly records = new Map<string, FakeSession>();
  private readonly events = new Map<string, StoredEvent[]>();
  private nextEventId = 1;

  /** `changed` is told of every status change (the coordinator's waiters listen there). */
  constructor(
    private readonly protocol: Protocol,
    private readonly changed: (sessionId: string, status: SessionStatus) => void,
  ) {}

  get(sessionId: string): FakeSession | undefined {
    return this.records.get(sessionId);
  }

  all(): FakeSession[] {
    return [...this.records.values()];
  }

  /** Creates the session (status `pending`) unless it exists; returns it. */
  ensure(sessionId: string, fields: Partial<FakeSession> = {}): FakeSession {
    let session = this.records.get(sessionId);
    if (!session) {
      session = {
        session_id: sessionId,
        status: "pending",
        created_at: isoNow(),
        project_dir: null,
        agent_name: null,
        last_resumed_at: null,
        parent_session_id: null,
        execution_mode: "sync",
        executor_session_id: null,
        executor_profile: null,
        hostname: null,
        ...fields,
      };
      this.records.set(sessionId, session);
      this.changed(sessionId, session.status);
    }
    return session;
  }

  setStatus(sessionId: string, status: SessionStatus): void {
    const session = this.records.get(sessionId);
    if (!session) return;
    session.status = status;
    this.changed(sessionId, status);
  }

  /** The session as `GET /sessions/{id}` shows it (`execution_mode` only at 2.1, as there). */
  view(session: FakeSession): Record<string, unknown> {
    if (this.protocol === "2.1") return { ...session };
    const { execution_mode: _, ...rest } = session;
    return rest;
  }

  /** `POST /sessions/{id}/bind` (already validated): the session runs, bound to the executor's host and profile. */
  bind(sessionId: string, body: Record<string, any>): FakeSession {
    const session = this.ensure(sessionId);
    session.executor_session_id = body.executor_session_id ?? null;
    session.hostname = body.hostname ?? null;
    session.executor_profile = body.executor_profile ?? null;
    if (body.project_dir) session.project_dir = body.project_dir;
    this.setStatus(sessionId, "running");
    return session;
  }

  /** `PATCH /sessions/{id}/metadata`: the fields given (and not null) replace the session's. */
  updateMetadata(sessionId: string, body: Record<string, any>): FakeSession {
    const session = this.ensure(sessionId);
    for (const key of [
      "project_dir",
      "agent_name",
      "last_resumed_at",
      "executor_session_id",
      "executor_profile",
      "hostname",
    ] as const) {
      if (body[key] !== undefined && body[key] !== null) session[key] = body[key];
    }
    return session;
  }

  /**
   * Stores an event under the session, keeping only its generation's Event fields (the reference
   * drops unknown ones; at 2.1 that includes `result_text`/`result_data`). At 2.1 a `session_stop`
   * finishes the session.
   */
  addEvent(sessionId: string, body: Record<string, unknown>): StoredEvent {
    this.ensure(sessionId);
    const model = this.protocol === "2.1" ? Event21 : Event22;
    const event: Record<string, unknown> = { id: this.nextEventId++, session_id: sessionId };
    for (const name of Object.keys(model)) if (name !== "session_id") event[name] = body[name] ?? null;
    const list = this.events.get(sessionId) ?? [];
    list.push(event as StoredEvent);
    this.events.set(sessionId, list);
    if (this.protocol === "2.1" && body.event_type === "session_stop") this.setStatus(sessionId, "finished");
    return event as StoredEvent;
  }

  /** The session's events ordered by timestamp as text, the reference's `ORDER BY timestamp` (ties in arrival order). */
  eventsOf(sessionId: string): StoredEvent[] {
    return [...(this.events.get(sessionId) ?? [])].sort((a, b) => compareText(a.timestamp, b.timestamp));
  }

  /**
   * `GET /sessions/{id}/result`. 2.2: from the last `result` event, for a finished or idle session.
   * 2.1: the first text block of the last assistant message, for a finished session.
   */
  result(sessionId: string): Answer {
    const session = this.records.get(sessionId);
    if (!session) return answer({ detail: "Session not found" }, 404);
    const latest = (test: (event: StoredEvent) => boolean) => this.eventsOf(sessionId).filter(test).at(-1);
    if (this.protocol === "2.2") {
      if (session.status !== "finished" && session.status !== "idle")
        return answer({ detail: "Session not finished or idle" }, 400);
      const event = latest((e) => e.event_type === "result");
      if (!event) return answer({ detail: "No result found" }, 404);
      return answer({ result_text: event.result_text ?? null, result_data: event.result_data ?? null });
    }
    if (session.status !== "finished") return answer({ detail: "Session not finished" }, 400);
    const message = latest((e) => e.event_type === "message" && e.role === "assistant");
    const first = (message?.content as Array<{ text?: unknown }> | null | undefined)?.[0];
    if (first?.text === undefined || first.text === null) return answer({ detail: "No result found" }, 404);
    return answer({ result: first.text });
  }
}

function compareText(a: unknown, b: unknown): number {
  const [x, y] = [String(a ?? ""), String(b ?? "")];
  return x < y ? -1 : x > y ? 1 : 0;
}
