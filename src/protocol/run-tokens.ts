/**
 * Per-run credentials for the runner's local doors (gateway, MCP server, exec's gateway): each
 * executor gets its own unguessable token, carried as the first path segment of the URL it is
 * given, that maps to its run's session. Also the door check every such server shares.
 */
import { randomBytes } from "node:crypto";
import { addSecretPattern } from "../shared/log.ts";

/** `agrun_` and 32 random bytes, base64url: one pattern finds (and redacts) any of them. */
const TOKEN_PREFIX = "agrun_";
export const RUN_TOKEN_PATTERN = /agrun_[A-Za-z0-9_-]{43}/g;
addSecretPattern(RUN_TOKEN_PATTERN);

/** What a token lets its holder act for. */
interface Grant {
  sessionId: string;
  /**
   * The project directory the runner gave the run, when the executor may not name its own (a
   * sandboxed one: what it binds becomes what a later resume makes writable).
   */
  projectDir?: string;
}

/** The live tokens and the session each one may act for. */
export class RunTokens {
  private readonly grants = new Map<string, Grant>();

  /** A fresh token for one run of `sessionId`, live until revoked. */
  issue(sessionId: string, options: { projectDir?: string } = {}): string {
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
    this.grants.set(token, {
      sessionId,
      ...(options.projectDir === undefined ? {} : { projectDir: options.projectDir }),
    });
    return token;
  }

  revoke(token: string): void {
    this.grants.delete(token);
  }

  /** The session a live token acts for, else undefined. */
  sessionOf(token: string): string | undefined {
    return this.grants.get(token)?.sessionId;
  }

  /** The project directory the runner pinned for a live token's binds, if it did. */
  projectDirOf(token: string): string | undefined {
    return this.grants.get(token)?.projectDir;
  }

  get size(): number {
    return this.grants.size;
  }

  /** The live token a request path starts with (`/<token>/…`), if it does. */
  carriedBy(path: string): string | undefined {
    const token = path.split("/")[1] ?? "";
    return this.grants.has(token) ? token : undefined;
  }
}

/** `base` with the token as its first path segment: `http://127.0.0.1:P/mcp` → `http://127.0.0.1:P/<token>/mcp`. */
export function urlWithToken(base: string, token: string): string {
  const url = new URL(base);
  url.pathname = `/${token}${url.pathname === "/" ? "" : url.pathname}`;
  return url.href;
}

/** What a door decided: the caller's session and the path after the token, or a refusal. */
export type Admission =
  | { ok: true; token: string; sessionId: string; path: string }
  | { ok: false; status: number; message: string };

export interface DoorOptions {
  port: number;
  tokens: RunTokens;
  /** Where a refused caller finds its URL, e.g. "AGENT_ORCHESTRATOR_API_URL". */
  urlSource: string;
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
const JSON_TYPE = /^application\/json\s*(;|$)/i;

/**
 * The checks every local door makes before anything else. The Host must name this server (a web
 * page that rebinds a DNS name to 127.0.0.1 still sends its own name); a body must be declared
 * JSON (a page's `text/plain` form or simple POST cannot); and the path must start with a live
 * run token (another local process does not have one).
 */
export function admit(request: Request, options: DoorOptions): Admission {
  const { port, tokens, urlSource } = options;
  const host = request.headers.get("host") ?? "";
  if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
    return {
      ok: false,
      status: 403,
      message: `Forbidden: the Host header must be 127.0.0.1:${port} or localhost:${port}`,
    };
  }
  const [, token = "", ...rest] = new URL(request.url).pathname.split("/");
  const sessionId = tokens.sessionOf(token);
  if (sessionId === undefined) {
    return {
      ok: false,
      status: 401,
      message: `Unknown or missing run token: use the URL the runner gave this executor (${urlSource}) as it is, with the route appended to it`,
    };
  }
  if (BODY_METHODS.has(request.method) && !JSON_TYPE.test(request.headers.get("content-type") ?? "")) {
    return {
      ok: false,
      status: 415,
      message: `${request.method} needs a JSON body with Content-Type: application/json`,
    };
  }
  return { ok: true, token, sessionId, path: `/${rest.join("/")}` };
}
