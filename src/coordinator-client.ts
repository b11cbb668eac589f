import { type } from "./validation.ts";
import { coordinatorDetail } from "./coordinator-detail.ts";
import { CoordinatorError, type CoordinatorHttp } from "./coordinator-http.ts";
import { JsonObject } from "./json-object.ts";
import type { RegistrationPayload } from "./registration.ts";

/** What `POST /runner/register` answers. */
const Registration = type({
  runner_id: "string > 0",
  "poll_endpoint?": "string",
  "poll_timeout_seconds?": "number > 0",
  "heartbeat_interval_seconds?": "number > 0",
});
export type Registration = typeof Registration.infer;

const NullableObject = JsonObject.or("null");

/** A run as the coordinator hands it out; extra fields are kept for forward compatibility. */
export const RunRequest = type({
  run_id: "string > 0",
  type: "string > 0",
  session_id: "string > 0",
  prompt: "string",
  "agent_name?": "string | null",
  "project_dir?": "string | null",
  "parent_session_id?": "string | null",
  "execution_mode?": "string | null",
  "demands?": NullableObject,
  "metadata?": NullableObject,
});
export type RunRequest = typeof RunRequest.infer;

export type PollResult =
  | { kind: "idle" }
  | { kind: "run"; run: RunRequest }
  /** A run the runner cannot execute as given; reported failed when it has a run id. */
  | { kind: "bad_run"; runId?: string; reason: string }
  | { kind: "stop"; runIds: string[] }
  | { kind: "deregistered" }
  | { kind: "not_registered" };

export type RunReport =
  | { kind: "started" }
  | { kind: "completed" }
  | { kind: "failed"; error: string }
  | { kind: "stopped"; signal: "SIGTERM" | "SIGKILL" };

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
    readonly existing: { runner_id?: string; hostname?: string; project_dir?: string; executor_profile?: string },
  ) {
    super(message);
  }
}

/** The coordinator refused our credentials (401/403 at registration). */
export class AuthenticationError extends Error {
  override name = "AuthenticationError";
}

/** A reply that does not follow the protocol; the runner logs it and carries on. */
export class BadReplyError extends Error {
  override name = "BadReplyError";
}

function summary(errors: InstanceType<typeof type.errors>): string {
  return errors.summary.replaceAll("\n", "; ");
}

function parseBody(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BadReplyError(`${what}: reply is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
}

const isNotRegistered = (status: number, text: string) =>
  status === 401 && /not registered/i.test(coordinatorDetail(text) ?? "");

/**
 * The coordinator's runner protocol (design §5). Knows paths and reply shapes; knows nothing
 * of retries or scheduling, which belong to the runner.
 */
export class CoordinatorClient {
  /** Set by a successful registration; reports and heartbeats carry it. */
  runnerId?: string;

  constructor(readonly http: CoordinatorHttp) {}

  async register(payload: RegistrationPayload): Promise<Registration> {
    const response = await this.http.fetch("/runner/register", { json: payload });
    const text = await response.text();
    if (response.status === 409) {
      const detail = (() => {
        try {
          return (JSON.parse(text) as { detail?: Record<string, string> }).detail ?? {};
        } catch {
          return {};
        }
      })();
      throw new DuplicateRunnerError(
        typeof detail.message === "string" ? detail.message : "A runner with this identity is already online",
        detail,
      );
    }
    if (response.status === 401 || response.status === 403) {
      throw new AuthenticationError(
        response.status === 401
          ? `The coordinator requires authentication (HTTP 401: ${coordinatorDetail(text) ?? "no detail"}). Set AUTH0_DOMAIN, AUTH0_RUNNER_CLIENT_ID, AUTH0_RUNNER_CLIENT_SECRET and AUTH0_AUDIENCE, or disable auth on the coordinator.`
          : `The coordinator rejected the runner's credentials (HTTP 403: ${coordinatorDetail(text) ?? "no detail"}). Check the AUTH0_* settings and the client's permissions.`,
      );
    }
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/register", text);
    const registration = Registration(parseBody(text, "register"));
    if (registration instanceof type.errors) throw new BadReplyError(`register: ${summary(registration)}`);
    this.runnerId = registration.runner_id;
    return registration;
  }

  /** One long poll. Network failures and 5xx throw; everything else is a PollResult. */
  async poll(timeoutMs: number, signal?: AbortSignal): Promise<PollResult> {
    const path = `/runner/runs?runner_id=${encodeURIComponent(this.requireId())}`;
    const response = await this.http.fetch(path, { timeoutMs, signal });
    if (response.status === 204) return { kind: "idle" };
    const text = await response.text();
    if (isNotRegistered(response.status, text)) return { kind: "not_registered" };
    if (!response.ok) throw new CoordinatorError(response.status, "/runner/runs", text);
    if (text.trim() === "") return { kind: "idle" };
    const body = parseBody(text, "poll");
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new BadReplyError(`poll: expected a JSON object, got ${text.slice(0, 200)}`);
    }
    const reply = body as Record<string, unknown>;
    if (reply.deregistered === true) return { kind: "deregistered" };
    if ("stop_runs" in reply) {
      const ids = reply.stop_runs;
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === "string")) {
        throw new BadReplyError(`poll: stop_runs must be a list of run ids, got ${JSON.stringify(ids).slice(0, 200)}`);
      }
      return { kind: "stop", runIds: ids };
    }
    if ("run" in reply) {
      const run = RunRequest(reply.run);
      if (run instanceof type.errors) {
        const raw = reply.run as { run_id?: unknown } | null;
        const runId = typeof raw?.run_id === "string" && raw.run_id !== "" ? raw.run_id : undefined;
        return { kind: "bad_run", runId, reason: `Malformed run payload: ${summary(run)}` };
      }
      return { kind: "run", run };
    }
    throw new BadReplyError(`poll: reply has none of run, stop_runs, deregistered: ${text.slice(0, 200)}`);
  }

  /** Sends one run report. Network failures and 5xx throw (the caller retries); the rest is an outcome. */
  async report(runId: string, report: RunReport): Promise<ReportOutcome> {
    const { kind, ...fields } = report;
    const body = { runner_id: this.requireId(), ...(kind === "completed" ? { status: "success" } : {}), ...fields };
    const path = `/runner/runs/${encodeURIComponent(runId)}/${kind}`;
    const response = await this.http.fetch(path, { json: body });
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
    const body = JsonObject(parseBody(text, path));
    if (body instanceof type.errors) throw new BadReplyError(`${path}: ${summary(body)}`);
    // Some coordinators wrap it as {"agent": {…}}.
    const wrapped = JsonObject(body.agent);
    return wrapped instanceof type.errors ? body : wrapped;
  }

  private requireId(): string {
    if (!this.runnerId) throw new Error("runner is not registered yet");
    return this.runnerId;
  }
}
