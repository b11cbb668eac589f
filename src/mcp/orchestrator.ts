/**
 * The seven orchestration tools' work against the coordinator, without MCP: each method returns
 * the tool's answer or throws a ToolError whose message the calling agent reads.
 */
import { CoordinatorError, type CoordinatorHttp, type CoordinatorRequest } from "../coordinator/http.ts";
import type { ProtocolGeneration } from "../protocol/generation.ts";
import { sleep } from "../shared/retry.ts";
import type { Validator } from "../shared/validation.ts";
import type { RequestContext } from "./context.ts";
import {
  AgentList,
  AnyReply,
  RunReply,
  type SessionEntry,
  SessionList,
  SessionResultReply,
  SessionStatusReply,
} from "./replies.ts";
import {
  type BlueprintSummary,
  checkMode,
  checkPrompt,
  type ExecutionMode,
  formatDuration,
  type SessionRunResult,
  type SessionSummary,
  ToolError,
  truncateResult,
  usableDemands,
} from "./tool-rules.ts";

const DEFAULT_SYNC_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_POLL_INTERVAL_MS = 2_000;
/** Consecutive failed polls (coordinator unreachable or 5xx) a sync wait rides out before giving up. */
const MAX_POLL_FAILURES = 3;

export interface WaitOptions {
  /** Ends a sync wait early: the client went away or the server is stopping. */
  signal: AbortSignal;
  /** Called after every poll of a sync wait (used for MCP progress notifications). */
  onPoll?: (poll: { runId: string; runStatus: string; elapsedMs: number }) => void;
}

const STILL_GOING = new Set(["pending", "claimed", "running", "stopping"]);

/** A session's result as the tools return it: text (cut when long), and structured data when there is some. */
interface ResultFields {
  result: string;
  result_data?: Record<string, unknown>;
}
type SessionResult = { session_id: string } & ResultFields;

const segment = (id: string) => encodeURIComponent(id);

function isTransient(error: unknown): boolean {
  if (error instanceof CoordinatorError) return error.status >= 500;
  // fetch failures (connection refused, reset) and per-request timeouts
  return error instanceof TypeError || (error instanceof DOMException && error.name === "TimeoutError");
}

/**
 * The seven orchestration tools' work, against the coordinator. Knows nothing of MCP: every
 * method returns the tool's answer or throws a ToolError whose message the agent reads.
 */
export class Orchestrator {
  readonly syncTimeoutMs: number;
  readonly pollIntervalMs: number;
  private readonly generation: () => ProtocolGeneration;

  constructor(
    private readonly coordinator: CoordinatorHttp,
    options: { syncTimeoutMs?: number; pollIntervalMs?: number; generation?: () => ProtocolGeneration } = {},
  ) {
    this.syncTimeoutMs = options.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.generation = options.generation ?? (() => "2.1");
  }

  /** The run's input as the coordinator's generation takes it: a prompt (2.1), or parameters (2.2). */
  private input(prompt: string): Record<string, unknown> {
    return this.generation() === "2.1" ? { prompt } : { parameters: { prompt } };
  }

  async listBlueprints(context: RequestContext): Promise<BlueprintSummary[]> {
    const query = context.tags ? `?tags=${encodeURIComponent(context.tags)}` : "";
    const agents = await this.call("Could not list agent blueprints", `/agents${query}`, AgentList);
    return agents
      .filter((agent) => (agent.status ?? "active") === "active")
      .map((agent) => ({ name: agent.name, description: agent.description ?? "", tags: agent.tags ?? [] }));
  }

  async listSessions(): Promise<SessionSummary[]> {
    return (await this.fetchSessions("Could not list sessions")).map((session) => ({
      session_id: session.session_id,
      status: session.status ?? null,
      agent_name: session.agent_name ?? null,
      created_at: session.created_at ?? null,
      last_resumed_at: session.last_resumed_at ?? null,
    }));
  }

  async startSession(
    context: RequestContext,
    args: { agent_name: string; prompt: string; project_dir?: string; mode: ExecutionMode },
    wait: WaitOptions,
  ): Promise<SessionRunResult> {
    checkPrompt(args.prompt);
    checkMode(args.mode, context);
    const demands = usableDemands(context);
    const projectDir = args.project_dir || (typeof demands?.project_dir === "string" ? demands.project_dir : undefined);
    const run = await this.createRun("Could not start the session", {
      type: "start_session",
      agent_name: args.agent_name,
      ...this.input(args.prompt),
      project_dir: projectDir,
      parent_session_id: context.parentSessionId,
      execution_mode: args.mode,
      additional_demands: demands,
    });
    return this.finish(run, args.mode, wait);
  }

  async resumeSession(
    context: RequestContext,
    args: { session_id: string; prompt: string; mode: ExecutionMode },
    wait: WaitOptions,
  ): Promise<SessionRunResult> {
    checkPrompt(args.prompt);
    checkMode(args.mode, context);
    const demands = usableDemands(context);
    await this.requireSession(args.session_id);
    // project_dir and agent_name are left out: the coordinator takes them from the session.
    const run = await this.createRun("Could not resume the session", {
      type: "resume_session",
      session_id: args.session_id,
      ...this.input(args.prompt),
      parent_session_id: context.parentSessionId,
      execution_mode: args.mode,
      additional_demands: demands,
    });
    return this.finish(run, args.mode, wait);
  }

  async sessionStatus(sessionId: string): Promise<{ session_id: string; status: string }> {
    return { session_id: sessionId, status: await this.fetchStatus(sessionId) };
  }

  async sessionResult(sessionId: string): Promise<SessionResult> {
    const status = await this.fetchStatus(sessionId);
    if (status === "not_existent")
      throw new ToolError(`Session ${sessionId} does not exist; list_agent_sessions shows the sessions there are`);
    // 2.2: a persistent session waiting for its next turn has the result of its last one.
    if (status !== "finished" && !(status === "idle" && this.generation() === "2.2")) {
      throw new ToolError(
        `Session ${sessionId} is not finished (status: ${status}); check again later with get_agent_session_status`,
      );
    }
    return { session_id: sessionId, ...(await this.fetchResult(sessionId)) };
  }

  async deleteAllSessions(): Promise<{ deleted_count: number }> {
    const sessions = await this.fetchSessions("Could not delete sessions");
    let deleted = 0;
    for (const { session_id: sessionId } of sessions) {
      if (typeof sessionId !== "string" || sessionId === "") continue;
      try {
        const path = `/sessions/${segment(sessionId)}`;
        const response = await this.coordinator.fetch(path, { call: "mcp", method: "DELETE" });
        if (!response.ok) throw new CoordinatorError(response.status, path, await response.text());
        deleted += 1;
      } catch (error) {
        // Gone already (deleted by someone else meanwhile): nothing left to do for it.
        if (error instanceof CoordinatorError && error.status === 404) continue;
        throw this.toToolError(
          `Deleted ${deleted} of ${sessions.length} sessions, then could not delete session ${sessionId}`,
          error,
        );
      }
    }
    return { deleted_count: deleted };
  }

  private async createRun(
    what: string,
    body: Record<string, unknown>,
  ): Promise<{ run_id: string; session_id: string; status?: string }> {
    const json = Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined && value !== null));
    const reply = await this.call(what, "/runs", RunReply, { method: "POST", json });
    const sessionId = reply.session_id ?? (typeof body.session_id === "string" ? body.session_id : undefined);
    if (!reply.run_id || !sessionId)
      throw new ToolError(`${what}: the coordinator's reply to POST /runs has no run_id or session_id`);
    return { run_id: reply.run_id, session_id: sessionId, status: reply.status };
  }

  private async finish(
    run: { run_id: string; session_id: string; status?: string },
    mode: ExecutionMode,
    wait: WaitOptions,
  ): Promise<SessionRunResult> {
    if (mode !== "sync") return { session_id: run.session_id, run_id: run.run_id, status: run.status ?? "pending" };
    return { session_id: run.session_id, ...(await this.waitForRun(run.run_id, run.session_id, wait)) };
  }

  /** Polls `GET /runs/{id}` until the run ends; returns the session's result when it completed. */
  private async waitForRun(runId: string, sessionId: string, { signal, onPoll }: WaitOptions): Promise<ResultFields> {
    const started = Date.now();
    const deadline = started + this.syncTimeoutMs;
    let failures = 0;
    let lastStatus = "pending";
    for (;;) {
      if (signal.aborted)
        throw new ToolError(
          `Stopped waiting for session ${sessionId}: the request was cancelled or the runner is shutting down`,
        );
      let run: RunReply | undefined;
      try {
        run = await this.coordinator.json(`/runs/${segment(runId)}`, RunReply, { call: "mcp", signal });
        failures = 0;
      } catch (error) {
        if (signal.aborted) continue;
        failures += 1;
        if (!isTransient(error) || failures >= MAX_POLL_FAILURES) {
          throw this.toToolError(`Lost track of run ${runId} of session ${sessionId}`, error);
        }
      }
      if (run) {
        lastStatus = run.status ?? "unknown";
        onPoll?.({ runId, runStatus: lastStatus, elapsedMs: Date.now() - started });
        if (lastStatus === "completed") return this.fetchResult(sessionId);
        if (lastStatus === "failed")
          throw new ToolError(`Session ${sessionId} failed: ${run.error || "the coordinator gave no reason"}`);
        if (lastStatus === "stopped")
          throw new ToolError(`Session ${sessionId} was stopped before it finished (run ${runId})`);
        if (!STILL_GOING.has(lastStatus))
          throw new ToolError(`Run ${runId} of session ${sessionId} has an unexpected status: ${lastStatus}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ToolError(
          `Session ${sessionId} did not finish within ${formatDuration(this.syncTimeoutMs)} (run ${runId} is ${lastStatus}). ` +
            `It goes on running: check it with get_agent_session_status and fetch the result with get_agent_session_result.`,
        );
      }
      // Aborted: the loop's first check reports it.
      await sleep(Math.min(this.pollIntervalMs, remaining), signal);
    }
  }

  private async requireSession(sessionId: string): Promise<void> {
    try {
      await this.coordinator.json(`/sessions/${segment(sessionId)}`, AnyReply, { call: "mcp" });
    } catch (error) {
      if (error instanceof CoordinatorError && error.status === 404) {
        throw new ToolError(`Session ${sessionId} does not exist; list_agent_sessions shows the sessions there are`);
      }
      throw this.toToolError(`Could not look up session ${sessionId}`, error);
    }
  }

  private async fetchStatus(sessionId: string): Promise<string> {
    try {
      const reply = await this.coordinator.json(`/sessions/${segment(sessionId)}/status`, SessionStatusReply, {
        call: "mcp",
      });
      return reply.status ?? "not_existent";
    } catch (error) {
      if (error instanceof CoordinatorError && error.status === 404) return "not_existent";
      throw this.toToolError(`Could not get the status of session ${sessionId}`, error);
    }
  }

  /**
   * The session's result: 2.1's `result`, or 2.2's result event (`result_text`, and `result_data`
   * when the agent answered with structured output: then the text is that data as JSON).
   */
  private async fetchResult(sessionId: string): Promise<ResultFields> {
    const reply = await this.call(
      `Could not get the result of session ${sessionId}`,
      `/sessions/${segment(sessionId)}/result`,
      SessionResultReply,
    );
    const data = reply.result_data ?? undefined;
    const value = data ?? reply.result_text ?? reply.result;
    const text = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
    return { result: truncateResult(text), ...(data ? { result_data: data } : {}) };
  }

  private async fetchSessions(what: string): Promise<SessionEntry[]> {
    return (await this.call(what, "/sessions", SessionList)).sessions;
  }

  private async call<T>(what: string, path: string, schema: Validator<T>, request?: CoordinatorRequest): Promise<T> {
    try {
      return await this.coordinator.json(path, schema, { ...request, call: "mcp" });
    } catch (error) {
      throw this.toToolError(what, error);
    }
  }

  private toToolError(what: string, error: unknown): ToolError {
    if (error instanceof ToolError) return error;
    if (error instanceof CoordinatorError) return new ToolError(`${what}: ${error.message}`);
    const reason = error instanceof Error ? error.message : String(error);
    if (isTransient(error))
      return new ToolError(`${what}: the coordinator at ${this.coordinator.baseUrl} could not be reached (${reason})`);
    return new ToolError(`${what}: ${reason}`);
  }
}
