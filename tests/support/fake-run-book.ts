/** The fake coordinator's runs and sessions under the reference coordinator's rules: reports, stops, deregistration, /runs, /sessions. */

import {
  Event21,
  Event22,
  type Model,
  Reports22,
  SessionBind,
  SessionMetadata,
  SessionStatusReport,
  validationErrors,
} from "./fake-models.ts";
import { createRun, type Run, runAt22 } from "./fake-runs.ts";
import { type Answer, answer, isoNow, type Protocol, type SessionStatus, SessionStore } from "./fake-sessions.ts";

/** A run's status as the coordinator sees it, changed by hand-outs, reports and stop requests. */
export type RunStatus = "pending" | "claimed" | "running" | "stopping" | "completed" | "failed" | "stopped";

/** What the run book needs from the coordinator around it. */
export interface Coordination {
  protocol: Protocol;
  runnerId: string;
  agents: Record<string, Run>;
  strictReports: boolean;
  strictSessions: boolean;
  registered(): boolean;
  /** Queues an item for the runner's polls. */
  queue(item: Record<string, unknown>): void;
  /** Takes a pending run out of the queue (it was stopped before anyone took it). */
  unqueue(runId: string): void;
  /** Something's status changed (the coordinator's waiters look again). */
  changed(): void;
}

export interface RouteRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: any;
}

const json = (body: unknown, status = 200) => Response.json(body, { status });
const reply = ({ body, status }: Answer) =>
  typeof body === "string" ? new Response(body, { status }) : Response.json(body, { status });
const invalid = (model: Model, body: unknown) => {
  const errors = validationErrors(model, body);
  return errors.length ? json({ detail: errors }, 422) : undefined;
};
const ACTIVE: RunStatus[] = ["pending", "claimed", "running"];

export class RunBook {
  readonly runStatus = new Map<string, RunStatus>();
  readonly sessionStatus = new Map<string, SessionStatus>();
  readonly runs = new Map<string, Run>();
  readonly sessions: SessionStore;
  private readonly protocol: Protocol;

  constructor(private readonly c: Coordination) {
    this.protocol = c.protocol;
    this.sessions = new SessionStore(c.protocol, (id, status) => {
      this.sessionStatus.set(id, status);
      c.changed();
    });
  }

  setStatus(runId: string, status: RunStatus): void {
    this.runStatus.set(runId, status);
    const run = this.runs.get(runId);
    if (run) run.status = status;
    this.c.changed();
  }

  statusOf(run: Run): RunStatus {
    return this.runStatus.get(run.run_id) ?? run.status;
  }

  /** A run for `handRun`: at 2.2 shaped as the reference hands runs out, and recorded; at 2.1 as given. */
  shape(fields: Run): Run {
    if (this.protocol === "2.1") return fields;
    const run = runAt22(fields, this.c.agents);
    this.runs.set(run.run_id, run);
    this.setStatus(run.run_id, "pending");
    this.sessions.ensure(run.session_id, {
      project_dir: run.project_dir,
      agent_name: run.agent_name,
      parent_session_id: run.parent_session_id,
    });
    return run;
  }

  /** `POST /runs`; a created run is recorded and queued. */
  createRun(body: unknown): Answer {
    const { run, ...result } = createRun(this.protocol, body, this.sessions, this.c.agents);
    if (run) {
      this.runs.set(run.run_id, run);
      this.setStatus(run.run_id, "pending");
      this.c.queue({ run });
    }
    return result;
  }

  /** Keeps a copy of a run queued as is (its session becomes known too). */
  remember(run: Run | null | undefined): void {
    if (typeof run?.run_id !== "string" || this.runs.has(run.run_id)) return;
    this.runs.set(run.run_id, { ...run });
    if (typeof run.session_id === "string") this.sessions.ensure(run.session_id);
    if (this.protocol === "2.2") this.setStatus(run.run_id, "pending");
  }

  /** A run leaves the queue, claimed by the runner (a run queued as is keeps its body; its record changes). */
  claim(run: Run): void {
    const runId = String(run?.run_id);
    const record = this.runs.get(runId);
    if (record) {
      record.runner_id = this.c.runnerId;
      record.claimed_at = isoNow();
    }
    this.setStatus(runId, "claimed");
  }

  /** See FakeCoordinator.requestStop. */
  requestStop(runId: string): Answer {
    if (this.protocol === "2.1") {
      this.setStatus(runId, "stopping");
      this.c.queue({ stop_runs: [runId] });
      const sessionId = this.runs.get(runId)?.session_id;
      if (sessionId) this.sessions.setStatus(sessionId, "stopping");
      return answer({ ok: true, run_id: runId, session_id: sessionId ?? null, status: "stopping" });
    }
    const run = this.runs.get(runId);
    if (!run) return answer({ detail: "Run not found" }, 404);
    if (ACTIVE.includes(this.statusOf(run))) return this.stopRun(run);
    return this.requestSessionStop(run.session_id);
  }

  /** See FakeCoordinator.requestSessionStop. */
  requestSessionStop(sessionId: string): Answer {
    const session = this.sessions.get(sessionId);
    if (!session) return answer({ detail: "Session not found" }, 404);
    const status = session.status;
    const said = (status: SessionStatus, message: string, extra = {}) =>
      answer({ ok: true, session_id: sessionId, ...extra, status, message });
    if (status === "stopping") return said(status, "Session is already being stopped");
    const terminal: SessionStatus[] = ["stopped", "finished", ...(this.protocol === "2.2" ? ["failed" as const] : [])];
    if (terminal.includes(status)) return said(status, `Session already ${status}`);
    const run = this.latestRunOf(sessionId);
    if (this.protocol === "2.2" && status === "idle") {
      if (!run?.runner_id) {
        this.sessions.setStatus(sessionId, "stopped");
        return said("stopped", "Idle session marked as stopped (no runner info)");
      }
      if (!this.c.registered()) return answer({ detail: "Failed to queue stop command" }, 500);
      this.c.queue({ stop_sessions: [sessionId] });
      this.sessions.setStatus(sessionId, "stopping");
      return said("stopping", "Stop command queued for idle session");
    }
    if (run && ACTIVE.includes(this.statusOf(run))) return this.stopRun(run);
    if (status === "running") this.sessions.setStatus(sessionId, "stopped");
    if (!run) return said("stopped", "No active run found - session marked as stopped");
    const state = `RunStatus.${this.statusOf(run).toUpperCase()}`;
    return said("stopped", `Run already in ${state} state - session marked as stopped`, { run_id: run.run_id });
  }

  /** Self-deregistration at 2.2: the runner's claimed and running runs fail, its idle sessions finish. */
  deregisterSelf(): void {
    if (this.protocol === "2.1") return;
    const mine = [...this.runs.values()].filter((run) => run.runner_id === this.c.runnerId);
    for (const run of mine.filter((r) => ["claimed", "running"].includes(this.statusOf(r)))) {
      run.error = "Runner disconnected during execution";
      run.completed_at = isoNow();
      this.setStatus(run.run_id, "failed");
      this.sessions.setStatus(run.session_id, "failed");
    }
    for (const session of this.sessions.all().filter((s) => s.status === "idle")) {
      if (this.latestRunOf(session.session_id)?.runner_id === this.c.runnerId)
        this.sessions.setStatus(session.session_id, "finished");
    }
  }

  /** The routes for run reports, session status reports, `/runs` and `/sessions`; undefined for others. */
  route({ method, path, query, body }: RouteRequest): Response | undefined {
    const report = /^\/runner\/runs\/([^/]+)\/(started|completed|failed|stopped)$/.exec(path);
    if (method === "POST" && report) return this.runReport(decodeURIComponent(report[1]!), report[2]!, body);
    if (path.startsWith("/runner/sessions/")) {
      // The generation probe: the route exists only at 2.2.
      const sessionReport = /^\/runner\/sessions\/([^/]+)\/status$/.exec(path);
      if (this.protocol === "2.1" || !sessionReport) return json({ detail: "Not Found" }, 404);
      if (method !== "POST") return json({ detail: "Method Not Allowed" }, 405);
      return this.sessionStatusReport(decodeURIComponent(sessionReport[1]!), body);
    }
    if (method === "POST" && path === "/runs") return reply(this.createRun(body));
    if (method === "GET" && path === "/runs") {
      const status = query.get("status");
      const runs = [...this.runs.values()].filter((run) => !status || this.statusOf(run) === status);
      return json({ runs: runs.map((run) => this.runView(run)) });
    }
    const run = /^\/runs\/([^/]+)(\/stop)?$/.exec(path);
    if (run) return this.runRoute(method, decodeURIComponent(run[1]!), Boolean(run[2]));
    if (method === "GET" && path === "/sessions")
      return json({ sessions: this.sessions.all().map((s) => this.sessions.view(s)) });
    const session = /^\/sessions\/([^/]+)(?:\/(bind|events|metadata|result|status|stop))?$/.exec(path);
    if (session) return this.sessionRoute(method, session[1]!, session[2], body);
    return undefined;
  }

  private latestRunOf(sessionId: string): Run | undefined {
    return [...this.runs.values()].filter((run) => run.session_id === sessionId).at(-1);
  }

  /** The reference's _stop_run: a pending run is stopped at once, a claimed or running one is stopping and its runner told. */
  private stopRun(run: Run): Answer {
    const base = { ok: true, run_id: run.run_id, session_id: run.session_id };
    const status = this.statusOf(run);
    if (status === "pending") {
      this.c.unqueue(run.run_id);
      this.setStatus(run.run_id, "stopped");
      this.sessions.setStatus(run.session_id, "stopped");
      return answer({ ...base, status: "stopped", message: "Run cancelled before execution" });
    }
    if (status !== "claimed" && status !== "running")
      return answer({ detail: `Run cannot be stopped (status: RunStatus.${status.toUpperCase()})` }, 400);
    if (!this.c.registered()) return answer({ detail: "Failed to queue stop command" }, 500);
    this.c.queue(this.protocol === "2.2" ? { stop_sessions: [run.session_id] } : { stop_runs: [run.run_id] });
    this.setStatus(run.run_id, "stopping");
    this.sessions.setStatus(run.session_id, "stopping");
    return answer({ ...base, status: "stopping" });
  }

  /** A run report: the run takes the report's status; its session follows as at the reference of the generation. */
  private runReport(runId: string, kind: string, body: any): Response {
    const refused = this.protocol === "2.2" && invalid(Reports22[kind]!, body);
    if (refused) return refused;
    if (this.c.strictReports && !this.c.registered()) return json({ detail: "Runner not registered" }, 401);
    if (this.protocol === "2.2" && !this.runStatus.has(runId)) return json({ detail: "Run not found" }, 404);
    // Applied as the reference does: whatever arrives last wins, `started` included.
    this.setStatus(runId, kind === "started" ? "running" : (kind as RunStatus));
    const run = this.runs.get(runId);
    if (!run) return json({ ok: true });
    if (kind === "started") run.started_at = isoNow();
    else run.completed_at = isoNow();
    if (kind === "failed") run.error = body?.error ?? null;
    const sessionId: string = run.session_id;
    if (kind === "stopped") this.sessions.setStatus(sessionId, "stopped");
    if (this.protocol === "2.1") return json({ ok: true });
    // The reference records each turn's start and completion among the session's events.
    const lifecycle = { session_id: sessionId, timestamp: isoNow() };
    if (kind === "started") this.sessions.addEvent(sessionId, { ...lifecycle, event_type: "run_start" });
    if (kind === "completed")
      this.sessions.addEvent(sessionId, {
        ...lifecycle,
        event_type: "run_completed",
        exit_code: 0,
        reason: "completed",
      });
    if (kind === "started" && this.sessions.get(sessionId)?.status === "idle")
      this.sessions.setStatus(sessionId, "running");
    // The reference takes `session_status` as sent, unchecked; without it the session is finished.
    if (kind === "completed") this.sessions.setStatus(sessionId, body?.session_status ?? "finished");
    if (kind === "failed") this.sessions.setStatus(sessionId, "failed");
    return json({ ok: true });
  }

  /** `POST /runner/sessions/{id}/status` (2.2): how a session whose executor outlived its turn ended. */
  private sessionStatusReport(sessionId: string, body: any): Response {
    const refused = invalid(SessionStatusReport, body);
    if (refused) return refused;
    if (this.c.strictReports && !this.c.registered()) return json({ detail: "Runner not registered" }, 401);
    if (!this.sessions.get(sessionId)) return json({ detail: "Session not found" }, 404);
    if (!["finished", "failed", "stopped"].includes(body.status))
      return json({ detail: "Status must be 'finished', 'failed', or 'stopped'" }, 400);
    this.sessions.setStatus(sessionId, body.status);
    return json({ ok: true });
  }

  private runRoute(method: string, runId: string, stop: boolean): Response | undefined {
    const known = this.runs.get(runId);
    if (method === "POST" && stop) {
      if (this.protocol === "2.2") return reply(this.requestStop(runId));
      return known ? reply(this.stopRun(known)) : json({ detail: "Run not found" }, 404);
    }
    if (method !== "GET" || stop) return undefined;
    if (known) return json(this.runView(known));
    const status = this.runStatus.get(runId);
    return status ? json({ run_id: runId, status }) : json({ detail: "Run not found" }, 404);
  }

  /** A run as `GET /runs` and `GET /runs/{id}` show it (2.2 leaves out `scope` and the blueprint). */
  private runView(run: Run): Run {
    const view: Run = { ...run, status: this.statusOf(run) };
    if (this.protocol === "2.2") {
      delete view.scope;
      delete view.resolved_agent_blueprint;
    }
    return view;
  }

  /** The `/sessions/{id}…` routes; undefined for a method the route does not serve. */
  private sessionRoute(method: string, rawId: string, action: string | undefined, body: any): Response | undefined {
    const sessionId = decodeURIComponent(rawId);
    const known = this.sessions.get(sessionId);
    const notFound = () => json({ detail: "Session not found" }, 404);
    const writes = method === "POST" && (action === "bind" || action === "events");
    if (writes || (method === "PATCH" && action === "metadata")) {
      if (!this.c.strictSessions) {
        // Taken for any session, as the fake always has; what fits is kept.
        if (typeof body === "object" && body !== null) {
          if (action === "bind") this.sessions.bind(sessionId, body);
          else if (action === "events") this.sessions.addEvent(sessionId, body);
          else this.sessions.updateMetadata(sessionId, body);
        }
        return json({ ok: true, session_id: rawId });
      }
      const event = this.protocol === "2.1" ? Event21 : Event22;
      const refused = invalid(action === "bind" ? SessionBind : action === "metadata" ? SessionMetadata : event, body);
      if (refused) return refused;
      if (!known) return notFound();
      if (action === "bind")
        return json({ ok: true, session: this.sessions.view(this.sessions.bind(sessionId, body)) });
      if (action === "metadata")
        return json({ ok: true, session: this.sessions.view(this.sessions.updateMetadata(sessionId, body)) });
      if (body.session_id !== sessionId) return json({ detail: "Event session_id must match URL session_id" }, 400);
      this.sessions.addEvent(sessionId, body);
      return json({ ok: true }, this.protocol === "2.2" ? 201 : 200);
    }
    if (method === "POST" && action === "stop") return reply(this.requestSessionStop(sessionId));
    if (method !== "GET") return undefined;
    if (action === "status") return json({ status: known?.status ?? "not_existent" });
    if (action === "result") return reply(this.sessions.result(sessionId));
    if (!known) return action === "events" || action === undefined ? notFound() : undefined;
    if (action === "events") return json({ events: this.sessions.eventsOf(sessionId) });
    if (action === undefined) return json({ session: this.sessions.view(known) });
    return undefined;
  }
}
