/**
 * The coordinator's runner protocol (docs/protocol.md): paths and reply shapes. Knows nothing of
 * retries or scheduling, which belong to the runner.
 */
import { coordinatorDetail } from "../protocol/error-detail.ts";
import type { ProtocolGeneration } from "../protocol/generation.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
import type { RunUsageReport } from "../protocol/usage.ts";
import { type } from "../shared/arktype.ts";
import type { JsonObject } from "../shared/json.ts";
import { parseJson, validate } from "../shared/json.ts";
import { redact } from "../shared/log.ts";
import { BadReplyError, CoordinatorError, type CoordinatorHttp } from "./http.ts";
import type { RegistrationPayload } from "./registration.ts";
import {
  AgentReply,
  type DuplicateRunner,
  DuplicateRunnerReply,
  PollReply,
  type Registration,
  Registration as RegistrationReply,
  RunIdOnly,
  RunRequest21,
  RunRequest22,
  RunStatusReply,
  WrappedAgentReply,
} from "./replies.ts";

export type { Registration };

/** A run as handed out, the same for both protocol generations: a 2.1 prompt is `parameters.prompt`. */
export type RunRequest = Omit<typeof RunRequest22.infer, "parameters"> & { parameters: JsonObject };

/** What one poll brought; a reply may carry several (stop commands and a run), handled in this order. */
export type PollEvent =
  | { kind: "stop"; runIds: string[] }
  | { kind: "stop_sessions"; sessionIds: string[] }
  | { kind: "run"; run: RunRequest }
  /** A run the runner cannot execute as given; reported failed when it has a run id. */
  | { kind: "bad_run"; runId?: string; sessionId?: string; reason: string }
  | { kind: "deregistered" }
  | { kind: "not_registered" };

/** How a session stands after a run that completed: `idle` while its executor waits for the next turn. */
export type SessionStatusAfterRun = "idle" | "finished";
/** How a session ended while it had no run (protocol 2.2): its persistent executor ended or was stopped. */
export type SessionEnd = "finished" | "failed" | "stopped";

/** `usage`: what the run's agent used, when its executor said (usage events). */
export type RunReport =
  | { kind: "started" }
  | { kind: "completed"; sessionStatus?: SessionStatusAfterRun; usage?: RunUsageReport }
  /** `exitCode`: the executor's, when it exited by itself with a non-zero code. */
  | { kind: "failed"; error: string; exitCode?: number; usage?: RunUsageReport }
  | { kind: "stopped"; signal: StopSignal };

export type ReportOutcome =
  | { kind: "delivered" }
  | { kind: "unknown_run" }
  | { kind: "not_registered" }
  /** Refused for good (a 4xx other than 404/401): retrying would not change it. */
  | { kind: "rejected"; detail: string };

/** The identity is already online at the coordinator (409). */
export class DuplicateRunnerError extends Error {
  override name = "DuplicateRunnerError";
  constructor(
    message: string,
    readonly existing: DuplicateRunner,
  ) {
    super(message);
  }
}

/** The URL answers, but not as a coordinator: it serves no `POST /runner/register`. */
export class NotACoordinatorError extends Error {
  override name = "NotACoordinatorError";
}

/** The coordinator refused our credentials (401/403 at registration). */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
}

/** How long a report may wait for its answer (see `report`). */
const REPORT_TIMEOUT_MS = 5 * 60_000;

function runEvent(data: unknown, generation: ProtocolGeneration): PollEvent {
  if (generation === "2.1") {
    const run = RunRequest21(data);
    if (!(run instanceof type.errors)) {
      const { prompt, ...fields } = run;
      return { kind: "run", run: { ...fields, parameters: { prompt } } };
    }
    return badRun(data, run.summary);
  }
  const run = RunRequest22(data);
  return run instanceof type.errors ? badRun(data, run.summary) : { kind: "run", run };
}

function badRun(data: unknown, summary: string): PollEvent {
  const ids = RunIdOnly(data);
  return {
    kind: "bad_run",
    ...(ids instanceof type.errors ? {} : { runId: ids.run_id, sessionId: ids.session_id }),
    reason: `Malformed run payload: ${summary.replaceAll("\n", "; ")}`,
  };
}

/** A 404 whose detail names something else than the route: the route exists. */
const NotFoundDetail = type({ detail: "string" }).narrow((reply) => reply.detail !== "Not Found");

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const isNotRegistered = (status: number, text: string) =>
  status === 401 && /not registered/i.test(coordinatorDetail(text) ?? "");

function duplicateRunner(text: string): DuplicateRunner {
  try {
    return parseJson(text, DuplicateRunnerReply, "409 reply").detail;
  } catch {
    return {};
  }
}

export class CoordinatorClient {
  /** Set by a successful registration; reports and heartbeats carry it. */
  runnerId?: string;
  /** The protocol generation the coordinator speaks: how runs are read and reports written. */
  generation: ProtocolGeneration = "2.1";

  constructor(readonly http: CoordinatorHttp) {}

  async register(payload: RegistrationPayload, signal?: AbortSignal): Promise<Registration> {
    const response = await this.http.fetch("/runner/register", { call: "register", json: payload, signal });
    const text = await response.text();
    if (response.status === 409) {
      const existing = duplicateRunner(text);
      throw new DuplicateRunnerError(existing.message ?? "A runner with this identity is already online", existing);
    }
    if (response.status === 401 || response.status === 403) {
      const detail = coordinatorDetail(text) ?? "no detail";
      throw new AuthenticationError(
        response.status === 401
          ? `The coordinator requires authentication (HTTP 401: ${detail}). Set AUTH0_DOMAIN, AUTH0_RUNNER_CLIENT_ID, AUTH0_RUNNER_CLIENT_SECRET and AUTH0_AUDIENCE, or disable auth on the coordinator.`
          : `The coordinator rejected the runner's credentials (HTTP 403: ${detail}). Check the AUTH0_* settings and the client's permissions.`,
      );
    }
    if (response.status === 404 || response.status === 405) {
      throw new NotACoordinatorError(
        `${this.http.baseUrl} is not an agent coordinator: POST /runner/register answered ${response.status} (${coordinatorDetail(text) ?? "no detail"}). Check --coordinator-url.`,
      );
    }
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/register", text);
    const registration = parseJson(text, RegistrationReply, "Coordinator reply to register", BadReplyError);
    this.runnerId = registration.runner_id;
    return registration;
  }

  /**
   * Which protocol generation the coordinator speaks, asked without side effects: only 2.2 has
   * `POST /runner/sessions/{id}/status`, and an empty body never reaches its handler (refused as
   * invalid, or for missing credentials, before). Where the route does not exist the answer is
   * 404 Not Found. Network failures, 5xx, 408 and 429 throw (ask again).
   */
  async detectGeneration(signal?: AbortSignal): Promise<ProtocolGeneration> {
    const path = "/runner/sessions/protocol-probe/status";
    const response = await this.http.fetch(path, { call: "protocol_probe", json: {}, signal });
    const text = await response.text();
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      throw new CoordinatorError(response.status, path, text);
    }
    if (response.status === 405) return "2.1";
    // A route that exists and looked the session up would say which session it did not find.
    if (response.status === 404) return NotFoundDetail.allows(jsonOrUndefined(text)) ? "2.2" : "2.1";
    return "2.2";
  }

  /** One long poll: what it brought, nothing for an empty reply. Network failures and 5xx throw. */
  async poll(timeoutMs: number, signal?: AbortSignal): Promise<PollEvent[]> {
    const path = `/runner/runs?runner_id=${encodeURIComponent(this.requireId())}`;
    const response = await this.http.fetch(path, { call: "poll", timeoutMs, signal });
    if (response.status === 204) return [];
    const text = await response.text();
    if (isNotRegistered(response.status, text)) return [{ kind: "not_registered" }];
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/runs", text);
    if (text.trim() === "") return [];
    const reply = parseJson(text, PollReply, "Coordinator reply to poll", BadReplyError);
    const events: PollEvent[] = [];
    if (reply.stop_runs !== undefined && reply.stop_runs.length > 0)
      events.push({ kind: "stop", runIds: reply.stop_runs });
    if (reply.stop_sessions !== undefined && reply.stop_sessions.length > 0)
      events.push({ kind: "stop_sessions", sessionIds: reply.stop_sessions });
    if ("run" in reply) events.push(runEvent(reply.run, this.generation));
    if (reply.deregistered === true) events.push({ kind: "deregistered" });
    // Script sync is for procedural runners, which this runner does not register as: nothing to do.
    const known = ["stop_runs", "stop_sessions", "sync_scripts", "remove_scripts"].some((key) => key in reply);
    if (events.length === 0 && !known) {
      throw new BadReplyError(
        `Coordinator reply to poll has none of run, stop_runs, stop_sessions, deregistered: ${text.slice(0, 200)}`,
      );
    }
    return events;
  }

  /** A run's status at the coordinator (`stopping` once a stop was requested), undefined if it does not know it. */
  runStatus(runId: string, signal?: AbortSignal): Promise<string | undefined> {
    return this.status(`/runs/${encodeURIComponent(runId)}`, "run_status", signal);
  }

  /** A session's status at the coordinator (`stopping` once a stop was requested), undefined if it does not know it. */
  sessionStatus(sessionId: string, signal?: AbortSignal): Promise<string | undefined> {
    return this.status(`/sessions/${encodeURIComponent(sessionId)}/status`, "session_status", signal);
  }

  private async status(
    path: string,
    call: "run_status" | "session_status",
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const response = await this.http.fetch(path, { call, signal });
    const text = await response.text();
    if (response.status === 404) return undefined;
    if (!response.ok) throw new CoordinatorError(response.status, path, text);
    return parseJson(text, RunStatusReply, `Coordinator reply to GET ${path}`, BadReplyError).status;
  }

  /** Sends one run report: see `sendReport`. */
  async report(runId: string, report: RunReport): Promise<ReportOutcome> {
    const path = `/runner/runs/${encodeURIComponent(runId)}/${report.kind}`;
    return this.sendReport(path, "report", { runner_id: this.requireId(), ...this.reportFields(report) });
  }

  /** Protocol 2.2: a session ended while it had no run (its persistent executor ended or was stopped). */
  async reportSessionEnd(sessionId: string, status: SessionEnd): Promise<ReportOutcome> {
    const path = `/runner/sessions/${encodeURIComponent(sessionId)}/status`;
    return this.sendReport(path, "session_report", { runner_id: this.requireId(), status });
  }

  private reportFields(report: RunReport): Record<string, unknown> {
    switch (report.kind) {
      case "started":
        return {};
      // usage and exit_code are fields the coordinator may not know: the reference one's request
      // models ignore them (both generations).
      case "completed":
        // 2.1 knows no session status: a completed run there says nothing of its session.
        return {
          status: "success",
          ...(this.generation === "2.1" ? {} : { session_status: report.sessionStatus ?? "finished" }),
          ...(report.usage ? { usage: report.usage } : {}),
        };
      case "failed":
        // A failure's text is often the executor's stderr: cut out secrets and run tokens, as in log lines.
        return {
          error: redact(report.error),
          ...(report.exitCode === undefined ? {} : { exit_code: report.exitCode }),
          ...(report.usage ? { usage: report.usage } : {}),
        };
      case "stopped":
        return { signal: report.signal };
    }
  }

  /**
   * Sends one report. Network failures and 5xx throw (the caller retries); the rest is an outcome.
   * A report waits long for its answer: given up early, it could still land after a later report
   * of the same run and undo it.
   */
  private async sendReport(
    path: string,
    call: "report" | "session_report",
    body: Record<string, unknown>,
  ): Promise<ReportOutcome> {
    const response = await this.http.fetch(path, { call, json: body, timeoutMs: REPORT_TIMEOUT_MS });
    const text = await response.text();
    if (response.ok) return { kind: "delivered" };
    if (response.status === 404) return { kind: "unknown_run" };
    if (isNotRegistered(response.status, text)) return { kind: "not_registered" };
    // Overload and server errors pass, and so do auth failures (the token was just dropped and
    // is fetched anew, or an operator fixes the credentials): retry. Any other refusal is final.
    if (response.status >= 500 || [401, 403, 408, 429].includes(response.status)) {
      throw new CoordinatorError(response.status, path, text);
    }
    return { kind: "rejected", detail: `HTTP ${response.status}: ${coordinatorDetail(text) ?? "no detail"}` };
  }

  /** `true` when the coordinator still knows this runner. */
  async heartbeat(): Promise<boolean> {
    const response = await this.http.fetch("/runner/heartbeat", {
      call: "heartbeat",
      json: { runner_id: this.requireId() },
    });
    const text = await response.text();
    if (isNotRegistered(response.status, text)) return false;
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/heartbeat", text);
    return true;
  }

  async deregister(): Promise<void> {
    const path = `/runners/${encodeURIComponent(this.requireId())}?self=true`;
    const response = await this.http.fetch(path, { call: "deregister", method: "DELETE", timeoutMs: 5000 });
    const text = await response.text();
    if (!response.ok && response.status !== 404) throw new CoordinatorError(response.status, path, text);
  }

  /** The agent blueprint, or undefined when the coordinator does not know the agent. */
  async getAgent(name: string): Promise<JsonObject | undefined> {
    const path = `/agents/${encodeURIComponent(name)}`;
    const response = await this.http.fetch(path, { call: "blueprint" });
    const text = await response.text();
    if (response.status === 404) return undefined;
    if (!response.ok) throw new CoordinatorError(response.status, path, text);
    const body = parseJson(text, AgentReply, `Coordinator reply to GET ${path}`, BadReplyError);
    // Some coordinators wrap it as {"agent": {…}}.
    return WrappedAgentReply.allows(body) ? validate(body, WrappedAgentReply, path).agent : body;
  }

  private requireId(): string {
    if (!this.runnerId) throw new Error("runner is not registered yet");
    return this.runnerId;
  }
}
