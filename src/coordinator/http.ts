/** HTTP to the coordinator: the base URL and the shared auth header, in one place. */
import { coordinatorDetail } from "../protocol/error-detail.ts";
import { parseJson } from "../shared/json.ts";
import { Wakeup } from "../shared/retry.ts";
import type { Validator } from "../shared/validation.ts";
import { noAuth, type TokenSource } from "./auth.ts";
import { limitReply } from "./reply-limit.ts";
import { REQUEST_TIMEOUT_MS } from "./request-timeout.ts";

/**
 * What a request to the coordinator is for (the `call` label of its latency): the runner
 * protocol's calls, the executors' requests the gateway forwards, the MCP tools' requests.
 */
const COORDINATOR_CALLS = [
  "protocol_probe",
  "register",
  "poll",
  "heartbeat",
  "report",
  "session_report",
  "run_status",
  "session_status",
  "blueprint",
  "deregister",
  "gateway",
  "mcp",
  "other",
] as const;
export type CoordinatorCall = (typeof COORDINATOR_CALLS)[number];

export interface CoordinatorRequest {
  /** What the request is for (default `other`). */
  call?: CoordinatorCall;
  method?: string;
  /** Serialized as JSON with a JSON content type. */
  json?: unknown;
  /** Raw body, sent as is. */
  body?: RequestInit["body"];
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A coordinator reply that is not 2xx, with the status and the coordinator's own words. */
export class CoordinatorError extends Error {
  override name = "CoordinatorError";
  constructor(
    readonly status: number,
    readonly path: string,
    readonly body: string,
  ) {
    super(`Coordinator answered HTTP ${status} to ${path}: ${coordinatorDetail(body) ?? "(no body)"}`);
  }
}

/** A reply that does not follow the protocol; the runner logs it and carries on. */
export class BadReplyError extends Error {
  override name = "BadReplyError";
}

/**
 * Every part of the runner (worker loop, gateway, MCP tools) talks to the coordinator through
 * this class, so one cached token serves all of them.
 */
export class CoordinatorHttp {
  /** Woken when the coordinator answers again after a network failure or a 5xx: retry waits end early. */
  readonly backOnline = new Wakeup();
  /** When the coordinator last answered (any status below 500), in performance.now() milliseconds. */
  lastAnswerAt?: number;
  /** Told of every answer (any status): what the request was for and how long it took, in seconds. */
  onAnswer?: (call: CoordinatorCall, seconds: number) => void;
  private failing = false;

  constructor(
    readonly baseUrl: string,
    readonly auth: TokenSource = noAuth,
    /** How long a request may take unless it says otherwise. */
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  url(path: string): string {
    return `${this.baseUrl}${path.startsWith("/") ? path : `/${path}`}`;
  }

  /**
   * Sends a request; the Response comes back whatever its status, its body readable up to
   * MAX_REPLY_BYTES (reply-limit.ts). Network failures throw.
   */
  async fetch(path: string, request: CoordinatorRequest = {}): Promise<Response> {
    const headers = new Headers(request.headers);
    const authorization = await this.auth.authorization();
    if (authorization) headers.set("authorization", authorization);
    let body = request.body;
    if (request.json !== undefined) {
      body = JSON.stringify(request.json);
      headers.set("content-type", "application/json");
    }
    const timeout = AbortSignal.timeout(request.timeoutMs ?? this.timeoutMs);
    let response: Response;
    const sentAt = performance.now();
    try {
      response = limitReply(
        await fetch(this.url(path), {
          method: request.method ?? (body === undefined ? "GET" : "POST"),
          headers,
          body,
          signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
        }),
        path,
      );
    } catch (error) {
      if (!request.signal?.aborted) this.failing = true;
      throw error;
    }
    const answeredAt = performance.now();
    this.onAnswer?.(request.call ?? "other", (answeredAt - sentAt) / 1000);
    if (response.status >= 500) this.failing = true;
    else {
      this.lastAnswerAt = answeredAt;
      if (this.failing) {
        this.failing = false;
        this.backOnline.wake();
      }
    }
    if (response.status === 401 && authorization) this.auth.invalidate();
    return response;
  }

  /**
   * Sends a request and checks the JSON reply against a schema. A non-2xx status is a
   * CoordinatorError, a reply that does not fit the schema a BadReplyError naming the field.
   */
  async json<T>(path: string, schema: Validator<T>, request: CoordinatorRequest = {}): Promise<T> {
    const response = await this.fetch(path, request);
    const text = await response.text();
    if (!response.ok) throw new CoordinatorError(response.status, path, text);
    return parseJson(text, schema, `Coordinator reply to ${request.method ?? "GET"} ${path}`, BadReplyError);
  }
}
