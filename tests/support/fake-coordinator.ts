import type { Server } from "bun";

/** One request the fake coordinator received. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: any;
  at: number;
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
}

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
  private server?: Server<undefined>;
  private queue: PollItem[] = [];
  private pollWaiters: Array<(item: PollItem | undefined) => void> = [];
  private requestWaiters: Array<{ test: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }> = [];
  private currentSignal?: AbortSignal;
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
    const recorded: RecordedRequest = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body,
      at: performance.now(),
    };
    this.record(recorded);
    this.currentSignal = request.signal;
    for (const route of this.routes) {
      if (route.method === request.method && route.path.test(url.pathname)) {
        const response = await route.handler(recorded);
        if (response) return response;
      }
    }
    return this.defaultRoute(recorded);
  }

  private async defaultRoute(request: RecordedRequest): Promise<Response> {
    const { method, path } = request;
    if (method === "POST" && path === "/runner/register") {
      this.registered = true;
      return json({
        runner_id: this.runnerId,
        poll_endpoint: "/runner/runs",
        poll_timeout_seconds: this.pollTimeoutSeconds,
        heartbeat_interval_seconds: this.heartbeatIntervalSeconds,
      });
    }
    if (method === "GET" && path === "/runner/runs") {
      if (!this.registered) return json({ detail: "Runner not registered" }, 401);
      const item = this.queue.shift() ?? (await this.nextPollItem(this.currentSignal));
      return item ? json(item) : new Response(null, { status: 204 });
    }
    if (method === "POST" && path === "/runner/heartbeat") {
      return this.registered ? json({ ok: true }) : json({ detail: "Runner not registered" }, 401);
    }
    if (method === "POST" && /^\/runner\/runs\/[^/]+\/(started|completed|failed|stopped)$/.test(path)) {
      return json({ ok: true });
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

  /** Holds a poll until something is handed out or the poll times out; a poll whose client hung up gets nothing. */
  private nextPollItem(signal: AbortSignal | undefined): Promise<PollItem | undefined> {
    return new Promise((resolve) => {
      const settle = (item: PollItem | undefined) => {
        clearTimeout(timer);
        this.pollWaiters = this.pollWaiters.filter((w) => w !== settle);
        resolve(item);
      };
      const timer = setTimeout(() => settle(undefined), this.pollTimeoutSeconds * 1000);
      signal?.addEventListener("abort", () => settle(undefined));
      this.pollWaiters.push(settle);
    });
  }
}

function matches(pattern: string | RegExp, path: string): boolean {
  return typeof pattern === "string" ? pattern === path : pattern.test(path);
}

export function startFakeCoordinator(options?: FakeCoordinatorOptions): FakeCoordinator {
  return new FakeCoordinator(options).start();
}
