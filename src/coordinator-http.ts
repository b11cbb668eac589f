import type { TokenSource } from "./auth.ts";
import { noAuth } from "./auth.ts";
import { coordinatorDetail } from "./coordinator-detail.ts";

export interface CoordinatorRequest {
  method?: string;
  /** Serialized as JSON with a JSON content type. */
  json?: unknown;
  /** Raw body, sent as is (the gateway's pass-through). */
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

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * HTTP to the coordinator with the shared auth header. The one place that knows the base URL
 * and the token; every part of the runner talks to the coordinator through it.
 */
export class CoordinatorHttp {
  constructor(
    readonly baseUrl: string,
    readonly auth: TokenSource = noAuth,
  ) {}

  url(path: string): string {
    return `${this.baseUrl}${path.startsWith("/") ? path : `/${path}`}`;
  }

  /** Sends a request; the Response comes back whatever its status. Network failures throw. */
  async fetch(path: string, request: CoordinatorRequest = {}): Promise<Response> {
    const headers = new Headers(request.headers);
    const authorization = await this.auth.authorization();
    if (authorization) headers.set("authorization", authorization);
    let body = request.body;
    if (request.json !== undefined) {
      body = JSON.stringify(request.json);
      headers.set("content-type", "application/json");
    }
    const timeout = AbortSignal.timeout(request.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const response = await fetch(this.url(path), {
      method: request.method ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
      signal: request.signal ? AbortSignal.any([request.signal, timeout]) : timeout,
    });
    if (response.status === 401 && authorization) this.auth.invalidate();
    return response;
  }

  /** Sends a request and parses the JSON reply; a non-2xx status is a CoordinatorError. */
  async json<T = unknown>(path: string, request: CoordinatorRequest = {}): Promise<T | undefined> {
    const response = await this.fetch(path, request);
    const text = await response.text();
    if (!response.ok) throw new CoordinatorError(response.status, path, text);
    if (text === "") return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CoordinatorError(response.status, path, `reply is not JSON: ${text.slice(0, 200)}`);
    }
  }
}
