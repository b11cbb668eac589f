/**
 * The coordinator's runner protocol (docs/protocol.md): paths and reply shapes. Knows nothing of
 * retries or scheduling, which belong to the runner.
 */
import { coordinatorDetail } from "../protocol/error-detail.ts";
import type { StopSignal } from "../protocol/stop-signal.ts";
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
  RunRequest,
  RunStatusReply,
  WrappedAgentReply,
} from "./replies.ts";

export type { Registration, RunRequest };

/** What one poll brought; a reply may carry several (stop commands and a run), handled in this order. */
export type PollEvent =
  | { kind: "stop"; runIds: string[] }
  | { kind: "run"; run: RunRequest }
  /** A run the runner cannot execute as given; reported failed when it has a run id. */
  | { kind: "bad_run"; runId?: string; reason: string }
  | { kind: "deregistered" }
  | { kind: "not_registered" };

export type RunReport =
  | { kind: "started" }
  | { kind: "completed" }
  | { kind: "failed"; error: string }
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

/** The coordinator refused our credentials (401/403 at registration). */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
}

/** How long a report may wait for its answer (see `report`). */
const REPORT_TIMEOUT_MS = 5 * 60_000;

function runEvent(data: unknown): PollEvent {
  const run = RunRequest(data);
  if (!(run instanceof type.errors)) return { kind: "run", run };
  const runId = RunIdOnly(data);
  return {
    kind: "bad_run",
    runId: runId instanceof type.errors ? undefined : runId.run_id,
    reason: `Malformed run payload: ${run.summary.replaceAll("\n", "; ")}`,
  };
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

  constructor(readonly http: CoordinatorHttp) {}

  async register(payload: RegistrationPayload, signal?: AbortSignal): Promise<Registration> {
    const response = await this.http.fetch("/runner/register", { json: payload, signal });
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
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/register", text);
    const registration = parseJson(text, RegistrationReply, "Coordinator reply to register", BadReplyError);
    this.runnerId = registration.runner_id;
    return registration;
  }

  /** One long poll: what it brought, nothing for an empty reply. Network failures and 5xx throw. */
  async poll(timeoutMs: number, signal?: AbortSignal): Promise<PollEvent[]> {
    const path = `/runner/runs?runner_id=${encodeURIComponent(this.requireId())}`;
    const response = await this.http.fetch(path, { timeoutMs, signal });
    if (response.status === 204) return [];
    const text = await response.text();
    if (isNotRegistered(response.status, text)) return [{ kind: "not_registered" }];
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/runs", text);
    if (text.trim() === "") return [];
    const reply = parseJson(text, PollReply, "Coordinator reply to poll", BadReplyError);
    const events: PollEvent[] = [];
    if (reply.stop_runs !== undefined && reply.stop_runs.length > 0)
      events.push({ kind: "stop", runIds: reply.stop_runs });
    if ("run" in reply) events.push(runEvent(reply.run));
    if (reply.deregistered === true) events.push({ kind: "deregistered" });
    if (events.length === 0 && reply.stop_runs === undefined) {
      throw new BadReplyError(
        `Coordinator reply to poll has none of run, stop_runs, deregistered: ${text.slice(0, 200)}`,
      );
    }
    return events;
  }

  /** A run's status at the coordinator (`stopping` once a stop was requested), undefined if it does not know it. */
  async runStatus(runId: string, signal?: AbortSignal): Promise<string | undefined> {
    const path = `/runs/${encodeURIComponent(runId)}`;
    const response = await this.http.fetch(path, { signal });
    const text = await response.text();
    if (response.status === 404) return undefined;
    if (!response.ok) throw new CoordinatorError(response.status, path, text);
    return parseJson(text, RunStatusReply, `Coordinator reply to GET ${path}`, BadReplyError).status;
  }
  /**
   * Sends one run report. Network failures and 5xx throw (the caller retries); the rest is an
   * outcome. A report waits long for its answer: given up early, it could still land after a
   * later report of the same run and undo it.
   */
  async report(runId: string, report: RunReport): Promise<ReportOutcome> {
    const { kind, ...fields } = report;
    // A failure's text is often the executor's stderr: cut out secrets and run tokens, as in log lines.
    if ("error" in fields) fields.error = redact(fields.error);
    const body = { runner_id: this.requireId(), ...(kind === "completed" ? { status: "success" } : {}), ...fields };
    const path = `/runner/runs/${encodeURIComponent(runId)}/${kind}`;
    const response = await this.http.fetch(path, { json: body, timeoutMs: REPORT_TIMEOUT_MS });
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
    const response = await this.http.fetch("/runner/heartbeat", { json: { runner_id: this.requireId() } });
    const text = await response.text();
    if (isNotRegistered(response.status, text)) return false;
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/heartbeat", text);
    return true;
  }

  async deregister(): Promise<void> {
    const path = `/runners/${encodeURIComponent(this.requireId())}?self=true`;
    const response = await this.http.fetch(path, { method: "DELETE", timeoutMs: 5000 });
    const text = await response.text();
    if (!response.ok && response.status !== 404) throw new CoordinatorError(response.status, path, text);
  }

  /** The agent blueprint, or undefined when the coordinator does not know the agent. */
  async getAgent(name: string): Promise<JsonObject | undefined> {
    const path = `/agents/${encodeURIComponent(name)}`;
    const response = await this.http.fetch(path);
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
