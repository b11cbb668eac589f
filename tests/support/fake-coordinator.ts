/** The tests' coordinator: the runner protocol of either generation of the reference coordinator, on 127.0.0.1. */
import type { Server } from "bun";
import { RunnerRegister, validationErrors } from "./fake-models.ts";
import { RunBook, type RunStatus } from "./fake-run-book.ts";
import { type Registration, type Run, satisfiesDemands } from "./fake-runs.ts";
import type { Answer, FakeSession, Protocol, SessionStatus, StoredEvent } from "./fake-sessions.ts";
import { onTeardown } from "./teardown.ts";

export type { Answer, FakeSession, Protocol, Run, RunStatus, SessionStatus, StoredEvent };

/** One request the fake coordinator received. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: any;
  at: number;
  /** Resolves once the fake has answered it (and applied what it changes). */
  answered: Promise<void>;
  /** The status it was answered with, once answered. */
  status?: number;
}

type PollItem =
  | { run: Record<string, unknown> }
  | { stop_runs: string[] }
  | { stop_sessions: string[] }
  | { deregistered: true }
  | Record<string, unknown>;

export type RouteHandler = (request: RecordedRequest) => Response | undefined | Promise<Response | undefined>;

export interface FakeCoordinatorOptions {
  /**
   * Which generation of the reference coordinator to act as: "2.1" (runs carry `prompt`, stops are
   * `stop_runs`) or "2.2" (runs carry `parameters` and `resolved_agent_blueprint`, stops are
   * `stop_sessions`, sessions can be `idle`, results come from `result` events). Default "2.1".
   */
  protocol?: Protocol;
  /** `poll_timeout_seconds` given at registration and how long a poll is held. */
  pollTimeoutSeconds?: number;
  heartbeatIntervalSeconds?: number;
  runnerId?: string;
  /** Agent blueprints: served by `GET /agents/{name}`, and at 2.2 a run's `resolved_agent_blueprint`. */
  agents?: Record<string, Record<string, unknown>>;
  port?: number;
  /**
   * Like the reference coordinator: run reports (and at 2.2 session status reports) from a runner it
   * does not know get 401 "Runner not registered". Default: on at 2.2, off at 2.1.
   */
  strictReports?: boolean;
  /**
   * Like the reference coordinator: bind, events and metadata need a session it knows (handed out or
   * created with `POST /runs`) and a body that fits its model, and are answered as it answers them.
   * Without it they are taken for any session and answered `{ok: true, session_id}`. Default: on at
   * 2.2, off at 2.1.
   */
  strictSessions?: boolean;
  /**
   * Like the reference coordinator, whose poll handler runs on after the client hangs up: a poll
   * whose client is gone still takes the next item handed out, and the item is lost.
   */
  abortedPollsClaim?: boolean;
}

const json = (body: unknown, status = 200) => Response.json(body, { status });
/** FastAPI's reading of a boolean query parameter. */
const TRUE_WORDS = ["true", "1", "yes", "on"];

/**
 * A coordinator speaking the runner protocol, on 127.0.0.1, for tests. Records every request,
 * hands out whatever the test queues, keeps runs and sessions as the reference coordinator of its
 * generation does (fake-run-book.ts), and can go down and come back on the same port.
 */
export class FakeCoordinator {
  readonly protocol: Protocol;
  readonly requests: RecordedRequest[] = [];
  readonly agents: Record<string, Record<string, unknown>>;
  readonly runnerId: string;
  pollTimeoutSeconds: number;
  heartbeatIntervalSeconds: number;
  /** False after `forgetRunner()`: polls and heartbeats get 401 until the runner registers again. */
  registered = false;
  /** The body of the last registration (at 2.2 runs are matched on it, `executor.type` included). */
  registration?: Record<string, any>;
  /** Status of every run handed out or created, as the reports and stop requests left it (applied when answered). */
  readonly runStatus: Map<string, RunStatus>;
  /** Status of every session the fake knows, as hand-outs, reports, binds, events and stops left it. */
  readonly sessionStatus: Map<string, SessionStatus>;
  /** Every run handed out or created, by id (at 2.1 a copy of what was handed out). */
  readonly runs: Map<string, Run>;
  /** Items a poll took after its client had hung up (abortedPollsClaim): lost, as at the reference. */
  readonly lost: PollItem[] = [];
  /** While set, registration answers 409: another runner holds the identity. */
  heldBy?: string;
  private readonly book: RunBook;
  private deregistering = false;
  private statusWaiters: Array<() => boolean> = [];
  private server?: Server<undefined>;
  private queue: PollItem[] = [];
  private pollWaiters: Array<(item: PollItem | undefined) => void> = [];
  private requestWaiters: Array<{ test: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }> = [];
  private routes: Array<{ method: string; path: RegExp; handler: RouteHandler }> = [];
  port = 0;

  constructor(readonly options: FakeCoordinatorOptions = {}) {
    this.protocol = options.protocol ?? "2.1";
    this.pollTimeoutSeconds = options.pollTimeoutSeconds ?? 1;
    this.heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? 60;
    this.runnerId = options.runnerId ?? "lnch_test";
    this.agents = options.agents ?? {};
    this.port = options.port ?? 0;
    this.book = new RunBook({
      protocol: this.protocol,
      runnerId: this.runnerId,
      agents: this.agents,
      strictReports: options.strictReports ?? this.protocol === "2.2",
      strictSessions: options.strictSessions ?? this.protocol === "2.2",
      registered: () => this.registered,
      queue: (item) => this.hand(item),
      unqueue: (runId) => {
        this.queue = this.queue.filter((item) => !("run" in item) || (item.run as Run)?.run_id !== runId);
      },
      changed: () => {
        this.statusWaiters = this.statusWaiters.filter((check) => !check());
      },
    });
    this.runStatus = this.book.runStatus;
    this.sessionStatus = this.book.sessionStatus;
    this.runs = this.book.runs;
  }

  /** The `executor.type` the runner last registered with (at 2.2 runs demanding another type are not handed to it). */
  get executorType(): unknown {
    return this.registration?.executor?.type;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  start(): this {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.port,
      idleTimeout: 0,
      fetch: (request) => this.handle(request),
    });
    this.port = this.server.port!;
    return this;
  }

  /** Goes down: closes every connection, held polls included. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const waiter of this.pollWaiters.splice(0)) waiter(undefined);
    await server?.stop(true);
  }

  /** Comes back on the same port, like a restarted coordinator (runner registrations kept unless told). */
  up(options: { forgetRunner?: boolean } = {}): this {
    if (options.forgetRunner) this.registered = false;
    return this.start();
  }

  async stop(): Promise<void> {
    await this.down();
  }

  /** Makes polls and heartbeats answer 401 "Runner not registered" until the runner registers again. */
  forgetRunner(): void {
    this.registered = false;
    for (const waiter of this.pollWaiters.splice(0)) waiter(undefined);
  }

  /** Overrides a route; return undefined from the handler to fall through to the default. */
  on(method: string, path: RegExp, handler: RouteHandler): this {
    this.routes.unshift({ method, path, handler });
    return this;
  }

  /**
   * Queues something for a poll, as is. At 2.1 polls take items in order. At 2.2, as at the
   * reference, stop commands come first (every queued `stop_sessions` in one reply, each session
   * once) and a run goes only to a runner whose registration satisfies its demands (hostname,
   * project_dir, executor_profile, `executor_type` = `executor.type`, tags, require_matching_tags);
   * a run it does not satisfy stays queued (pending).
   */
  hand(item: PollItem): void {
    if ("run" in item) this.book.remember(item.run as Run);
    this.queue.push(item);
    this.serveWaitingPolls();
  }

  /**
   * Queues a run and returns it as it will be handed out. At 2.1 it goes as given. At 2.2 it is
   * shaped as the reference hands runs out: `prompt` becomes `parameters: {prompt}`, the fields a
   * run has are filled (`demands.executor_type` "autonomous" unless given, `created_at`, …), and
   * `resolved_agent_blueprint` is the one given, else the fake's agent named by `agent_name`, else
   * null; the run is pending and its session (created unless known) pending.
   */
  handRun(run: Record<string, unknown>): Run {
    const shaped = this.book.shape(run);
    this.hand({ run: shaped });
    return shaped;
  }

  /**
   * `POST /runs` as the reference of this generation answers it (validation, new session, demands,
   * blueprint placeholders); a created run is queued. Returns the answer's status and body.
   */
  createRun(body: unknown): Answer {
    return this.book.createRun(body);
  }

  handStop(runIds: string[]): void {
    this.hand({ stop_runs: runIds });
  }

  handStopSessions(sessionIds: string[]): void {
    this.hand({ stop_sessions: sessionIds });
  }

  /**
   * A stop requested from outside (dashboard, a parent agent); returns what `POST /runs/{id}/stop`
   * answers. At 2.1 the run is `stopping` and the runner is told (`stop_runs`), whatever the run's
   * state. At 2.2 as the reference: a pending run is stopped at once (never handed out); a claimed
   * or running one is `stopping`, its session too, and the runner is told (`stop_sessions`);
   * otherwise its session is stopped as `requestSessionStop` does.
   */
  requestStop(runId: string): Answer {
    return this.book.requestStop(runId);
  }

  /**
   * `POST /sessions/{id}/stop` as the reference of this generation answers it. The session's latest
   * run decides: pending → stopped at once; claimed or running → `stopping` and the runner is told
   * (2.1 `stop_runs`, 2.2 `stop_sessions`). At 2.2 an `idle` session becomes `stopping` and its
   * runner is told (`stop_sessions`); the runner then reports how it ended
   * (`POST /runner/sessions/{id}/status`).
   */
  requestSessionStop(sessionId: string): Answer {
    return this.book.requestSessionStop(sessionId);
  }

  /** Removes the runner from outside: the next poll answers `{"deregistered": true}` and the runner is forgotten. */
  deregister(): void {
    this.deregistering = true;
    const waiter = this.pollWaiters.shift();
    if (!waiter) return;
    this.deregistering = false;
    waiter({ deregistered: true });
  }

  /** The session as the fake keeps it (undefined if it does not know it). */
  session(sessionId: string): FakeSession | undefined {
    return this.book.sessions.get(sessionId);
  }

  /** The events stored for a session, as `GET /sessions/{id}/events` lists them. */
  eventsOf(sessionId: string): StoredEvent[] {
    return this.book.sessions.eventsOf(sessionId);
  }

  /** Resolves when the run's status (as last applied) is one of `statuses`. */
  waitForStatus(runId: string, statuses: RunStatus[], timeoutMs = 20_000): Promise<void> {
    return this.waitUntil(
      () => statuses.includes(this.runStatus.get(runId) as RunStatus),
      () => `run ${runId} is ${this.runStatus.get(runId)}, not ${statuses.join("/")}`,
      timeoutMs,
    );
  }

  /** Resolves when the session's status (as last applied) is one of `statuses`. */
  waitForSessionStatus(sessionId: string, statuses: SessionStatus[], timeoutMs = 20_000): Promise<void> {
    return this.waitUntil(
      () => statuses.includes(this.sessionStatus.get(sessionId) as SessionStatus),
      () => `session ${sessionId} is ${this.sessionStatus.get(sessionId)}, not ${statuses.join("/")}`,
      timeoutMs,
    );
  }

  /** Resolves with the next poll received after this call, once it has been answered. */
  async nextPoll(timeoutMs?: number): Promise<RecordedRequest> {
    const after = performance.now();
    const poll = await this.waitFor((r) => r.method === "GET" && r.path === "/runner/runs" && r.at >= after, timeoutMs);
    await poll.answered;
    return poll;
  }

  private waitUntil(done: () => boolean, state: () => string, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.statusWaiters = this.statusWaiters.filter((w) => w !== check);
        reject(new Error(`${state()}; requests:\n${this.describe()}`));
      }, timeoutMs);
      const check = () => {
        if (!done()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      this.statusWaiters.push(check);
    });
  }

  /** Resolves with the first request (already received or still to come) that passes the test. */
  waitFor(test: (request: RecordedRequest) => boolean, timeoutMs = 20_000): Promise<RecordedRequest> {
    const seen = this.requests.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requestWaiters = this.requestWaiters.filter((w) => w.resolve !== resolve);
        reject(new Error(`fake coordinator: no matching request within ${timeoutMs} ms; got:\n${this.describe()}`));
      }, timeoutMs);
      this.requestWaiters.push({
        test,
        resolve: (request) => {
          clearTimeout(timer);
          resolve(request);
        },
      });
    });
  }

  /** Waits for a request by method and path (string = exact, RegExp = match). */
  waitForRequest(method: string, path: string | RegExp, timeoutMs?: number): Promise<RecordedRequest> {
    return this.waitFor((r) => r.method === method && matches(path, r.path), timeoutMs);
  }

  /** Requests by method and path, in arrival order. */
  find(method: string, path: string | RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && matches(path, r.path));
  }

  /** The run reports received for a run, in order: started, completed, failed, stopped. */
  reportsFor(runId: string): Array<{ kind: string; body: any }> {
    const prefix = `/runner/runs/${runId}/`;
    return this.requests
      .filter((r) => r.method === "POST" && r.path.startsWith(prefix))
      .map((r) => ({ kind: r.path.slice(prefix.length), body: r.body }));
  }

  /** The run reports for a run that were taken (answered 2xx), in order: what the coordinator has of the run. */
  reportsTakenFor(runId: string): Array<{ kind: string; body: any }> {
    const prefix = `/runner/runs/${runId}/`;
    return this.requests
      .filter((r) => r.method === "POST" && r.path.startsWith(prefix) && r.status !== undefined && r.status < 300)
      .map((r) => ({ kind: r.path.slice(prefix.length), body: r.body }));
  }

  describe(): string {
    return this.requests
      .map((r) => `${r.method} ${r.path} ${r.body === undefined ? "" : JSON.stringify(r.body)}`)
      .join("\n");
  }

  private record(request: RecordedRequest): void {
    this.requests.push(request);
    const ready = this.requestWaiters.filter((w) => w.test(request));
    this.requestWaiters = this.requestWaiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve(request);
  }

  private async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = await request.text();
    let body: unknown;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const answered = Promise.withResolvers<void>();
    const recorded: RecordedRequest = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body,
      at: performance.now(),
      answered: answered.promise,
    };
    this.record(recorded);
    try {
      const response = await this.answer(recorded, request.signal);
      recorded.status = response.status;
      return response;
    } finally {
      answered.resolve();
    }
  }

  private async answer(recorded: RecordedRequest, signal: AbortSignal): Promise<Response> {
    for (const route of this.routes) {
      if (route.method === recorded.method && route.path.test(recorded.path)) {
        const response = await route.handler(recorded);
        if (response) return response;
      }
    }
    return this.defaultRoute(recorded, signal);
  }

  private async defaultRoute(request: RecordedRequest, signal: AbortSignal): Promise<Response> {
    const { method, path, body } = request;
    if (method === "POST" && path === "/runner/register") return this.register(body);
    if (method === "GET" && path === "/runner/runs") return this.poll(signal);
    if (method === "POST" && path === "/runner/heartbeat") {
      return this.registered ? json({ ok: true }) : json({ detail: "Runner not registered" }, 401);
    }
    if (method === "DELETE" && path.startsWith("/runners/")) {
      if (this.protocol === "2.2" && !this.registered) return json({ detail: "Runner not found" }, 404);
      if (!TRUE_WORDS.includes(request.query.get("self")?.toLowerCase() ?? "")) {
        this.deregister();
        return json({ ok: true, message: "Runner marked for deregistration", initiated_by: "external" });
      }
      this.registered = false;
      this.dropStopCommands();
      this.book.deregisterSelf();
      return json({ ok: true, message: "Runner deregistered", initiated_by: "self" });
    }
    const agent = /^\/agents\/([^/]+)$/.exec(path);
    if (method === "GET" && agent) {
      const blueprint = this.agents[decodeURIComponent(agent[1]!)];
      return blueprint ? json(blueprint) : json({ detail: "Agent not found" }, 404);
    }
    return this.book.route(request) ?? json({ detail: `fake coordinator: no route for ${method} ${path}` }, 404);
  }

  private register(body: any): Response {
    if (this.heldBy) {
      const detail = {
        error: "duplicate_runner",
        message: `Runner is already registered and online as ${this.runnerId}`,
      };
      return json({ detail: { ...detail, runner_id: this.runnerId, hostname: this.heldBy } }, 409);
    }
    const errors = this.protocol === "2.2" ? validationErrors(RunnerRegister, body) : [];
    if (errors.length) return json({ detail: errors }, 422);
    this.registered = true;
    this.registration = body;
    this.serveWaitingPolls();
    return json({
      runner_id: this.runnerId,
      poll_endpoint: "/runner/runs",
      poll_timeout_seconds: this.pollTimeoutSeconds,
      heartbeat_interval_seconds: this.heartbeatIntervalSeconds,
    });
  }

  private async poll(signal: AbortSignal): Promise<Response> {
    if (this.deregistering) {
      this.deregistering = false;
      this.registered = false;
      this.dropStopCommands();
      return json({ deregistered: true });
    }
    if (!this.registered) return json({ detail: "Runner not registered" }, 401);
    const item = this.takeItem() ?? (await this.nextPollItem(signal));
    if (item && "deregistered" in item) {
      this.registered = false;
      this.dropStopCommands();
    }
    if (item && "run" in item) {
      this.book.claim(item.run as Run);
      if (signal?.aborted) {
        this.lost.push(item);
        return new Response(null, { status: 204 });
      }
    }
    return item ? json(item) : new Response(null, { status: 204 });
  }

  /** Stop commands go with the runner's registration, as the reference's stop queue does. */
  private dropStopCommands(): void {
    this.queue = this.queue.filter((item) => !("stop_sessions" in item));
  }

  /** The next item a poll may take now (see `hand`), removed from the queue. */
  private takeItem(): PollItem | undefined {
    if (this.protocol === "2.1") return this.queue.shift();
    const stops = this.queue.filter((item) => "stop_sessions" in item) as Array<{ stop_sessions: string[] }>;
    if (stops.length) {
      this.dropStopCommands();
      return { stop_sessions: [...new Set(stops.flatMap((item) => item.stop_sessions))] };
    }
    const index = this.queue.findIndex(
      (item) => !("run" in item) || satisfiesDemands(this.registration as Registration, (item.run as Run)?.demands),
    );
    return index < 0 ? undefined : this.queue.splice(index, 1)[0];
  }

  /** Gives what the queue has for them to the polls being held. */
  private serveWaitingPolls(): void {
    while (this.pollWaiters.length > 0) {
      const item = this.takeItem();
      if (!item) return;
      this.pollWaiters.shift()!(item);
    }
  }

  /**
   * Holds a poll until something is handed out or the poll times out. A poll whose client hung up
   * gets nothing, unless `abortedPollsClaim` (then it still takes the next item, which is lost).
   */
  private nextPollItem(signal: AbortSignal | undefined): Promise<PollItem | undefined> {
    return new Promise((resolve) => {
      const settle = (item: PollItem | undefined) => {
        clearTimeout(timer);
        this.pollWaiters = this.pollWaiters.filter((w) => w !== settle);
        resolve(item);
      };
      const timer = setTimeout(() => settle(undefined), this.pollTimeoutSeconds * 1000);
      if (!this.options.abortedPollsClaim) signal?.addEventListener("abort", () => settle(undefined));
      this.pollWaiters.push(settle);
    });
  }
}

function matches(pattern: string | RegExp, path: string): boolean {
  return typeof pattern === "string" ? pattern === path : pattern.test(path);
}

/** A fake coordinator on 127.0.0.1, stopped after the test. */
export function startFakeCoordinator(options?: FakeCoordinatorOptions): FakeCoordinator {
  const fake = new FakeCoordinator(options).start();
  onTeardown(() => fake.stop());
  return fake;
}
