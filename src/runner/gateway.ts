/** The executors' door to the coordinator: adds the credentials and the runner's own facts. */
import type { CoordinatorHttp } from "../coordinator/http.ts";
import {
  GATEWAY_MAX_BODY_BYTES,
  GATEWAY_ROUTES_SUMMARY,
  type GatewayRoute,
  gatewayRoute,
  withPathSession,
} from "../protocol/gateway-requests.ts";
import { admit, type RunTokens } from "../protocol/run-tokens.ts";
import { type } from "../shared/arktype.ts";
import { messageOf } from "../shared/errors.ts";
import { JsonObject, parseJson } from "../shared/json.ts";
import { serveLocal } from "../shared/local-server.ts";
import { log } from "../shared/log.ts";

export interface GatewayOptions {
  http: CoordinatorHttp;
  /** Runner-owned facts added to every bind: the executor does not know them. */
  hostname: string;
  executorProfile: string;
  /** Each run's executor is served with its own token, and only for its own session's writes. */
  tokens: RunTokens;
  maxBodyBytes?: number;
  /**
   * Told of every request a live run token admitted to a route the gateway serves, before it is
   * forwarded: the token's session, the route, and for the session's own writes (bind, events,
   * metadata) the body that goes on. Must not throw.
   */
  onRequest?: (request: ExecutorRequest) => void;
}

/** A request of a run's executor, as the gateway tells the runner of it. */
export interface ExecutorRequest {
  sessionId: string;
  route: GatewayRoute;
  body?: JsonObject;
}

export interface Gateway {
  /** Without a run token: executors get `urlWithToken(url, token)`. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** The only request headers passed on to the coordinator: no cookies, no forged forwarding headers. */
const PASSED_HEADERS = ["accept", "content-type"];

const problem = (status: number, detail: string) => Response.json({ detail }, { status });

type SessionRoute = {
  method: string;
  target: (sessionId: string) => string;
  body: (body: JsonObject) => unknown;
};

const SessionField = type({ session_id: "string > 0" });

/**
 * The gateway's own routes (docs/protocol.md, "Gateway"). Each side sends only what it owns: the
 * executor its session facts, the runner its hostname and profile name.
 */
function sessionRoutes(options: GatewayOptions): Partial<Record<GatewayRoute, SessionRoute>> {
  return {
    bind: {
      method: "POST",
      target: (id) => `/sessions/${encodeURIComponent(id)}/bind`,
      body: ({ session_id: _, ...rest }) => ({
        ...rest,
        hostname: options.hostname,
        executor_profile: options.executorProfile,
      }),
    },
    event: {
      method: "POST",
      target: (id) => `/sessions/${encodeURIComponent(id)}/events`,
      body: (body) => body,
    },
    metadata: {
      method: "PATCH",
      target: (id) => `/sessions/${encodeURIComponent(id)}/metadata`,
      body: ({ session_id: _, ...rest }) => rest,
    },
  };
}

async function relay(response: Response): Promise<Response> {
  const headers = new Headers();
  const type = response.headers.get("content-type");
  if (type) headers.set("content-type", type);
  return new Response(await response.arrayBuffer(), { status: response.status, headers });
}

/**
 * The executors' door to the coordinator, on 127.0.0.1 and a free port: adds the auth header
 * and the runner's own facts, so executors need neither credentials nor runner knowledge. It
 * lends those credentials to the runner's executors only, for the routes they need.
 */
export function startGateway(options: GatewayOptions): Gateway {
  const routes = sessionRoutes(options);
  const maxBodyBytes = options.maxBodyBytes ?? GATEWAY_MAX_BODY_BYTES;

  async function forward(
    path: string,
    init: { method: string; json?: unknown; body?: ArrayBuffer; headers?: Record<string, string> },
  ) {
    try {
      return await relay(await options.http.fetch(path, { ...init, call: "gateway" }));
    } catch (error) {
      log.warn(`Gateway: ${init.method} ${path} could not reach the coordinator: ${messageOf(error)}`);
      return problem(502, `Coordinator unreachable: ${messageOf(error)}`);
    }
  }

  async function handle(request: Request): Promise<Response> {
    const admission = admit(request, {
      port: server.port,
      tokens: options.tokens,
      urlSource: "AGENT_ORCHESTRATOR_API_URL",
    });
    if (!admission.ok) return problem(admission.status, admission.message);
    const { method } = request;
    const { path, sessionId } = admission;
    const route = gatewayRoute(method, path);
    if (!route)
      return problem(404, `${method} ${path} is not served here: the gateway serves ${GATEWAY_ROUTES_SUMMARY}`);

    const declared = Number(request.headers.get("content-length") ?? 0);
    if (declared > maxBodyBytes) return problem(413, `Request body over ${maxBodyBytes} bytes`);
    const body = await request.arrayBuffer();
    if (body.byteLength > maxBodyBytes) return problem(413, `Request body over ${maxBodyBytes} bytes`);

    const own = routes[route];
    if (own) {
      let fields: JsonObject;
      try {
        fields = withPathSession(path, parseJson(new TextDecoder().decode(body), JsonObject, path)) as JsonObject;
      } catch {
        return problem(400, `${path} expects a JSON object body`);
      }
      if (!SessionField.allows(fields)) return problem(400, `${path} needs a non-empty string session_id`);
      if (fields.session_id !== sessionId) {
        return problem(
          403,
          `This executor's run is for session ${sessionId}; it cannot write session ${String(fields.session_id)}`,
        );
      }
      // A sandboxed run's directory is the runner's word: what it binds, a resume makes writable.
      const pinned = route === "bind" ? options.tokens.projectDirOf(admission.token) : undefined;
      if (pinned !== undefined) fields = { ...fields, project_dir: pinned };
      options.onRequest?.({ sessionId, route, body: fields });
      return forward(own.target(sessionId), { method: own.method, json: own.body(fields) });
    }

    options.onRequest?.({ sessionId, route });
    const headers: Record<string, string> = {};
    for (const name of PASSED_HEADERS) {
      const value = request.headers.get(name);
      if (value) headers[name] = value;
    }
    return forward(`${path}${new URL(request.url).search}`, {
      method,
      body: body.byteLength > 0 ? body : undefined,
      headers,
    });
  }

  const server = serveLocal({
    name: "gateway",
    hostname: "127.0.0.1",
    port: 0,
    // Bun refuses larger bodies itself; the checks above give the JSON answer for declared sizes.
    maxRequestBodySize: maxBodyBytes + 1,
    tokenOf: (path) => options.tokens.carriedBy(path),
    fetch: handle,
    error: (error) => problem(500, `Gateway error: ${error.message}`),
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    stop: () => server.stop(),
  };
}
