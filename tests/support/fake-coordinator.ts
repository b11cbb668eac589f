import type { Server } from "bun";
import { onTeardown } from "./teardown.ts";

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
}

type PollItem =
  | { run: Record<string, unknown> }
  | { stop_runs: string[] }
  | { deregistered: true }
  | Record<string, unknown>;

export type RouteHandler = (request: RecordedRequest) => Response | undefined | Promise<Response | undefined>;

export interface FakeCoordinatorOptions {
  /** `poll_timeout_seconds` given at registration and how long a poll is held. */
  pollTimeoutSeconds?: number;
  heartbeatIntervalSeconds?: number;
  runnerId?: string;
  /** Agent blueprints served by `GET /agents/{name}`. */
  agents?: Record<string, Record<string, unknown>>;
  port?: number;
  /** Like the reference coordinator: run reports from a runner it does not know get 401 "Runner not registered". */
  strictReports?: boolean;
  /**
   * Like the reference coordinator, whose poll handler runs on after the client hangs up: a poll
   * whose client is gone still takes the next item handed out, and the item is lost.
   */
  abortedPollsClaim?: boolean;
}

/** A run's status as the coordinator sees it, changed by hand-outs, reports and stop requests. */
export type RunStatus = "pending" | "claimed" | "running" | "stopping" | "completed" | "failed" | "stopped";

const json = (body: unknown, status = 200) => Response.json(body, { status });

/**
 * A coordinator speaking the runner protocol, on 127.0.0.1, for tests. Records every request,
 * hands out whatever the test queues, and can go down and come back on the same port.
 */
export class FakeCoordinator {
  readonly requests: RecordedRequest[] = [];
  readonly agents: Record<string, Record<string, unknown>>;
  readonly runnerId: string;
  pollTimeoutSeconds: number;
  heartbeatIntervalSeconds: number;
  /** False after `forgetRunner()`: polls and heartbeats get 401 until the runner registers again. */
  registered = false;
  /** Status of every run handed out, as the reports and stop requests left it (applied when answered). */
  readonly runStatus = new Map<string, RunStatus>();
  /** Items a poll took after its client had hung up (abortedPollsClaim): lost, as at the reference. */
  readonly lost: PollItem[] = [];
  /** While set, registration answers 409: another runner holds the identity. */
  heldBy?: string;
  private deregistering = false;
  private statusWaiters: Array<() => boolean> = [];
  private server?: Server<undefined>;
  private queue: PollItem[] = [];
  private pollWaiters: Array<(item: PollItem | undefined) => void> = [];
  private requestWaiters: Array<{ test: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }> = [];
  private routes: Array<{ method: string; path: RegExp; handler: RouteHandler }> = [];
  port = 0;

  constructor(readonly options: FakeCoordinatorOptions = {}) {
    this.pollTimeoutSeconds = options.pollTimeoutSeconds ?? 1;
    this.heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? 60;
    this.runnerId = options.runnerId ?? "lnch_test";
    this.agents = options.agents ?? {};
    this.port = options.port ?? 0;
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

  /** Queues something for the next poll. */
  hand(item: PollItem): void {
    const waiter = this.pollWaiters.shift();
    if (waiter) waiter(item);
    else this.queue.push(item);
  }

  handRun(run: Record<string, unknown>): void {
    this.hand({ run });
  }

  handStop(runIds: string[]): void {
    this.hand({ stop_runs: runIds });
  }

  /** A stop requested from outside (dashboard, a parent agent): the run is `stopping` and the runner is told. */
  requestStop(runId: string): void {
    this.setStatus(runId, "stopping");
    this.handStop([runId]);
  }

  /** Removes the runner from outside: the next poll answers `{"deregistered": true}` and the runner is forgotten. */
  deregister(): void {
    this.deregistering = true;
    const waiter = this.pollWaiters.shift();
    if (waiter) waiter({ deregistered: true });
  }

  /** Resolves when the run's status (as last applied) is one of `statuses`. */
  waitForStatus(runId: string, statuses: RunStatus[], timeoutMs = 20_000): Promise<void> {
    if (statuses.includes(this.runStatus.get(runId) as RunStatus)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.statusWaiters = this.statusWaiters.filter((w) => w !== check);
        reject(
          new Error(
            `run ${runId} is ${this.runStatus.get(runId)}, not ${statuses.join("/")}; requests:\n${this.describe()}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        if (!statuses.includes(this.runStatus.get(runId) as RunStatus)) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      this.statusWaiters.push(check);
    });
  }

  private setStatus(runId: string, status: RunStatus): void {
    this.runStatus.set(runId, status);
    this.statusWaiters = this.statusWaiters.filter((check) => !check());
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
      for (const route of this.routes) {
        if (route.method === request.method && route.path.test(url.pathname)) {
          const response = await route.handler(recorded);
          if (response) return response;
        }
      }
      return await this.defaultRoute(recorded, request.signal);
    } finally {
      answered.resolve();
    }
  }

  private async defaultRoute(request: RecordedRequest, signal: AbortSignal): Promise<Response> {
    const { method, path } = request;
    if (method === "POST" && path === "/runner/register") {
      if (this.heldBy) {
        const detail = {
          error: "duplicate_runner",
          message: `Runner is already registered and online as ${this.runnerId}`,
        };
        return json({ detail: { ...detail, runner_id: this.runnerId, hostname: this.heldBy } }, 409);
      }
      this.registered = true;
      return json({
        runner_id: this.runnerId,
        poll_endpoint: "/runner/runs",
        poll_timeout_seconds: this.pollTimeoutSeconds,
        heartbeat_interval_seconds: this.heartbeatIntervalSeconds,
      });
    }
    if (method === "GET" && path === "/runner/runs") {
      if (this.deregistering) {
        this.deregistering = false;
        this.registered = false;
        return json({ deregistered: true });
      }
      if (!this.registered) return json({ detail: "Runner not registered" }, 401);
      const item = this.queue.shift() ?? (await this.nextPollItem(signal));
      if (item && "deregistered" in item) this.registered = false;
      if (item && "run" in item) {
        const runId = String((item.run as { run_id?: unknown } | null)?.run_id);
        if (signal?.aborted) {
          this.lost.push(item);
          this.setStatus(runId, "claimed");
          return new Response(null, { status: 204 });
        }
        this.setStatus(runId, "claimed");
      }
      return item ? json(item) : new Response(null, { status: 204 });
    }
    if (method === "POST" && path === "/runner/heartbeat") {
      return this.registered ? json({ ok: true }) : json({ detail: "Runner not registered" }, 401);
    }
    const report = /^\/runner\/runs\/([^/]+)\/(started|completed|failed|stopped)$/.exec(path);
    if (method === "POST" && report) {
      if (this.options.strictReports && !this.registered) return json({ detail: "Runner not registered" }, 401);
      const runId = decodeURIComponent(report[1]!);
      // Applied as the reference does: whatever arrives last wins, `started` included.
      this.setStatus(runId, report[2] === "started" ? "running" : (report[2] as RunStatus));
      return json({ ok: true });
    }
    const run = /^\/runs\/([^/]+)$/.exec(path);
    if (method === "GET" && run) {
      const runId = decodeURIComponent(run[1]!);
      const status = this.runStatus.get(runId);
      return status ? json({ run_id: runId, status }) : json({ detail: "Run not found" }, 404);
    }
    if (method === "DELETE" && path.startsWith("/runners/")) {
      this.registered = false;
      return json({ ok: true });
    }
    const agent = /^\/agents\/([^/]+)$/.exec(path);
    if (method === "GET" && agent) {
      const blueprint = this.agents[decodeURIComponent(agent[1]!)];
      return blueprint ? json(blueprint) : json({ detail: "Agent not found" }, 404);
    }
    const session = /^\/sessions\/([^/]+)\/(bind|events|metadata)$/.exec(path);
    if (session) return json({ ok: true, session_id: session[1] });
    return json({ detail: `fake coordinator: no route for ${method} ${path}` }, 404);
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
