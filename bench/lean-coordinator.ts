import type { Server } from "bun";
import { monoNs } from "./clock.ts";
import { serveOnLoopback, urlOf } from "./loopback-server.ts";

/**
 * A coordinator for the benchmark only: the runner protocol (both generations' runs; for
 * persistent sessions, what their executors report through the gateway) and nothing else. Not
 * tests/support/fake-coordinator.ts, which parses and keeps every request with its headers and
 * scans its waiters on each one; here the hot path (poll → run, report → ok) does no more than
 * a real coordinator's cheapest answer, and timestamps are taken with the shared clock
 * (CLOCK_MONOTONIC) at the exact moment a run is handed out and a report arrives.
 */
/** A run of protocol 2.1 (`prompt`) or 2.2 (`parameters`). */
export interface BenchRun {
  run_id: string;
  type: "start_session";
  session_id: string;
  prompt?: string;
  parameters?: Record<string, unknown>;
}

type Kind = "started" | "completed" | "failed" | "stopped";

const OK = () => new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
const REPORT = /^\/runner\/runs\/([^/]+)\/(started|completed|failed|stopped)$/;

export class LeanCoordinator {
  readonly handedAt = new Map<string, bigint>();
  readonly reports = new Map<string, Array<{ kind: Kind; at: bigint }>>();
  registrations: bigint[] = [];
  polls = 0;
  onReport?: (runId: string, kind: Kind, at: bigint) => void;
  private readonly queue: BenchRun[] = [];
  private heldPoll?: (response: Response) => void;
  private waiters: Array<{ test: () => boolean; resolve: () => void }> = [];
  private server: Server<undefined>;

  /**
   * `protocol`: the generation it speaks, which the runner asks it before registering; a 2.1
   * coordinator has no `/runner/sessions/…` routes.
   */
  constructor(
    readonly pollTimeoutSeconds = 30,
    readonly protocol: "2.1" | "2.2" = "2.1",
  ) {
    this.server = serveOnLoopback((request) => this.handle(request));
  }

  get url(): string {
    return urlOf(this.server);
  }

  hand(run: BenchRun): void {
    const held = this.heldPoll;
    if (held) {
      this.heldPoll = undefined;
      held(this.answerRun(run));
    } else {
      this.queue.push(run);
    }
  }

  /**
   * Ends the poll a runner holds with "no run" (204) at once. A stopping runner waits for its poll
   * in flight (it may bring a run); the bench, which will hand out none, lets it go at once.
   */
  releasePoll(): void {
    const held = this.heldPoll;
    this.heldPoll = undefined;
    held?.(new Response(null, { status: 204 }));
  }

  /** Resolves once `test()` holds; checked after every request. */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  stop(): Promise<void> {
    return this.server.stop(true);
  }

  private answerRun(run: BenchRun): Response {
    this.handedAt.set(run.run_id, monoNs());
    return new Response(JSON.stringify({ run }), { headers: { "content-type": "application/json" } });
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.test());
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve();
  }

  private handle(request: Request): Response | Promise<Response> {
    const at = monoNs();
    const path = request.url.slice(request.url.indexOf("/", 8)).split("?", 1)[0]!;
    try {
      const report = REPORT.exec(path);
      if (report && request.method === "POST") {
        const runId = decodeURIComponent(report[1]!);
        const kind = report[2] as Kind;
        const list = this.reports.get(runId) ?? [];
        this.reports.set(runId, list);
        list.push({ kind, at });
        this.onReport?.(runId, kind, at);
        return OK();
      }
      if (path === "/runner/runs" && request.method === "GET") {
        this.polls++;
        const run = this.queue.shift();
        if (run) return this.answerRun(run);
        return new Promise<Response>((resolve) => {
          const answer = (response: Response) => {
            clearTimeout(timer);
            resolve(response);
          };
          const timer = setTimeout(() => {
            if (this.heldPoll === answer) this.heldPoll = undefined;
            answer(new Response(null, { status: 204 }));
          }, this.pollTimeoutSeconds * 1000);
          request.signal.addEventListener("abort", () => {
            if (this.heldPoll === answer) this.heldPoll = undefined;
            answer(new Response(null, { status: 204 }));
          });
          this.heldPoll = answer;
        });
      }
      if (path === "/runner/register" && request.method === "POST") {
        this.registrations.push(at);
        return Response.json({
          runner_id: "lnch_bench",
          poll_endpoint: "/runner/runs",
          poll_timeout_seconds: this.pollTimeoutSeconds,
          heartbeat_interval_seconds: 60,
        });
      }
      if (path === "/runner/heartbeat" || path.startsWith("/runners/")) return OK();
      // Protocol 2.2 with persistent sessions: what their executors report through the runner's
      // gateway, a session's end, and a draining runner's question about an idle session.
      if (path.startsWith("/runner/sessions/") && this.protocol === "2.1") {
        return Response.json({ detail: "Not Found" }, { status: 404 });
      }
      if (/^\/sessions\/[^/]+\/(bind|events|metadata)$/.test(path) || path.startsWith("/runner/sessions/")) {
        return OK();
      }
      if (request.method === "GET" && /^\/sessions\/[^/]+\/status$/.test(path))
        return Response.json({ status: "idle" });
      return Response.json({ detail: `bench coordinator: no route for ${request.method} ${path}` }, { status: 404 });
    } finally {
      this.settle();
    }
  }
}
