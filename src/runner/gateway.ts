/** The executors' door to the coordinator: adds the credentials and the runner's own facts. */
import type { Server } from "bun";
import type { CoordinatorHttp } from "../coordinator/http.ts";
import { log } from "../shared/log.ts";

/** Executors send events and small documents; anything bigger is a bug or an attack. */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface GatewayOptions {
  http: CoordinatorHttp;
  /** Runner-owned facts added to every bind: the executor does not know them. */
  hostname: string;
  executorProfile: string;
  maxBodyBytes?: number;
}

export interface Gateway {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const HOP_BY_HOP = ["host", "connection", "content-length", "transfer-encoding", "keep-alive", "authorization"];

const problem = (status: number, detail: string) => Response.json({ detail }, { status });

type SessionRoute = {
  method: string;
  target: (sessionId: string) => string;
  body: (body: Record<string, unknown>) => unknown;
};

/**
 * Gateway-only routes (docs/protocol.md, "Gateway"). Each side sends only what it owns: the executor its session
 * facts, the runner its hostname and profile name.
 */
function sessionRoutes(options: GatewayOptions): Record<string, SessionRoute> {
  return {
    "POST /bind": {
      method: "POST",
      target: (id) => `/sessions/${encodeURIComponent(id)}/bind`,
      body: ({ session_id: _, ...rest }) => ({
        ...rest,
        hostname: options.hostname,
        executor_profile: options.executorProfile,
      }),
    },
    "POST /events": {
      method: "POST",
      target: (id) => `/sessions/${encodeURIComponent(id)}/events`,
      body: (body) => body,
    },
    "PATCH /metadata": {
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
 * and the runner's own facts, so executors need neither credentials nor runner knowledge.
 */
export function startGateway(options: GatewayOptions): Gateway {
  const routes = sessionRoutes(options);
  const maxBodyBytes = options.maxBodyBytes ?? GATEWAY_MAX_BODY_BYTES;

  async function forward(
    path: string,
    init: { method: string; json?: unknown; body?: ArrayBuffer; headers?: Record<string, string> },
  ) {
    try {
      return await relay(await options.http.fetch(path, init));
    } catch (error) {
      log.warn(`Gateway: ${init.method} ${path} could not reach the coordinator: ${(error as Error).message}`);
      return problem(502, `Coordinator unreachable: ${(error as Error).message}`);
    }
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const declared = Number(request.headers.get("content-length") ?? 0);
    if (declared > maxBodyBytes) return problem(413, `Request body over ${maxBodyBytes} bytes`);
    const body = await request.arrayBuffer();
    if (body.byteLength > maxBodyBytes) return problem(413, `Request body over ${maxBodyBytes} bytes`);

    const route = routes[`${request.method} ${url.pathname}`];
    if (route) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(body));
      } catch {
        return problem(400, `${url.pathname} expects a JSON object body`);
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        return problem(400, `${url.pathname} expects a JSON object body`);
      }
      const fields = parsed as Record<string, unknown>;
      if (typeof fields.session_id !== "string" || fields.session_id === "") {
        return problem(400, `${url.pathname} needs a non-empty string session_id`);
      }
      return forward(route.target(fields.session_id), { method: route.method, json: route.body(fields) });
    }

    // Everything else passes through as is, with the auth header added.
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.includes(name)) headers[name] = value;
    });
    return forward(`${url.pathname}${url.search}`, {
      method: request.method,
      body: body.byteLength > 0 ? body : undefined,
      headers,
    });
  }

  const server: Server<undefined> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    // Bun refuses larger bodies itself; the checks above give the JSON answer for declared sizes.
    maxRequestBodySize: maxBodyBytes + 1,
    fetch: handle,
    error: (error) => problem(500, `Gateway error: ${error.message}`),
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port!,
    stop: () => server.stop(true),
  };
}
