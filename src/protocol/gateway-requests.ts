/** What executors send to the gateway's own routes (docs/protocol.md, "Gateway"), as arktype schemas. */
import { type } from "../shared/arktype.ts";

const SessionId = type("string > 0");

/**
 * The largest request body a gateway takes (the runner's and exec's): executors send events and
 * small documents; anything bigger is a bug or an attack, answered 413.
 */
export const GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** `POST /bind`: the executor's own session id, once its framework has one. */
export const BindRequest = type({
  session_id: SessionId,
  executor_session_id: "string > 0",
  "project_dir?": "string",
});

/** `POST /events`: one session event; its other fields depend on `event_type`. */
export const EventRequest = type({
  session_id: SessionId,
  event_type: "string > 0",
  /** Message events: who spoke, and the text blocks. */
  "role?": "string",
  "content?": "unknown",
});

/** `PATCH /metadata`. */
export const MetadataRequest = type({
  session_id: SessionId,
  "last_resumed_at?": "string",
  "executor_session_id?": "string",
});

/** A message event's content: text blocks (others are shown by type only). */
export const MessageContent = type({ type: "string", "text?": "string" }).array().or("string");

/**
 * What a gateway serves: its own routes, the session reads executors make, and the coordinator
 * routes an agent's orchestration tools need. Nothing else of the coordinator's API.
 */
export type GatewayRoute = "bind" | "event" | "metadata" | "session-read" | "orchestration";

const GATEWAY_ROUTES: ReadonlyArray<[method: string, path: RegExp, route: GatewayRoute]> = [
  ["POST", /^\/bind$/, "bind"],
  // The coordinator's own bind route, as executors written for other runners call it: the
  // session is in the path, and the body may carry only the executor's session id.
  ["POST", /^\/sessions\/[^/]+\/bind$/, "bind"],
  ["POST", /^\/events$/, "event"],
  ["PATCH", /^\/metadata$/, "metadata"],
  ["GET", /^\/sessions\/[^/]+(\/status|\/result)?$/, "session-read"],
  ["GET", /^\/sessions$/, "orchestration"],
  ["DELETE", /^\/sessions\/[^/]+$/, "orchestration"],
  ["GET", /^\/agents$/, "orchestration"],
  ["GET", /^\/agents\/[^/]+$/, "orchestration"],
  ["POST", /^\/runs$/, "orchestration"],
  ["GET", /^\/runs\/[^/]+$/, "orchestration"],
];

/**
 * A request body with the session a route's path names (`/sessions/{id}/bind`) as its
 * `session_id`; other bodies as they are.
 */
export function withPathSession(path: string, body: unknown): unknown {
  const named = /^\/sessions\/([^/]+)\/bind$/.exec(path)?.[1];
  if (named === undefined || body === null || typeof body !== "object" || Array.isArray(body)) return body;
  return { ...body, session_id: decodeURIComponent(named) };
}

/** The route a request is for, or undefined when no gateway serves it. */
export function gatewayRoute(method: string, path: string): GatewayRoute | undefined {
  return GATEWAY_ROUTES.find(([m, p]) => m === method && p.test(path))?.[2];
}

export const GATEWAY_ROUTES_SUMMARY =
  "POST /bind (or POST /sessions/{id}/bind), POST /events, PATCH /metadata, GET /sessions/{id}[/status|/result], and the orchestration routes GET /sessions, DELETE /sessions/{id}, GET /agents[/{name}], POST /runs, GET /runs/{id}";
