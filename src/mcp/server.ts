/** The embedded MCP server (streamable HTTP on 127.0.0.1) through which agents start and steer agents. */
import pkg from "../../package.json" with { type: "json" };
import type { CoordinatorHttp } from "../coordinator/http.ts";
import type { ProtocolGeneration } from "../protocol/generation.ts";
import { admit, type RunTokens } from "../protocol/run-tokens.ts";
import { ConfigError } from "../shared/errors.ts";
import { type LocalServer, serveLocal } from "../shared/local-server.ts";
import { log } from "../shared/log.ts";
import { contextFromHeaders } from "./context.ts";

const MCP_PATH = "/mcp";
/** Loopback only: the tools act with the runner's credentials, so nothing off this machine may call them. */
const HOSTNAME = "127.0.0.1";

export interface McpServerOptions {
  /** Every coordinator call goes through it, so it carries the runner's shared auth token. */
  coordinator: CoordinatorHttp;
  /** Only a live run's agents are served: its URL carries the run's token (`urlWithToken`). */
  tokens: RunTokens;
  /** Fixed port (`--mcp-port`); default: any free port. */
  port?: number;
  /** How long a `sync` start/resume waits for its run (default 10 minutes). */
  syncTimeoutMs?: number;
  /** How often a `sync` wait polls `GET /runs/{id}` (default 2 s). */
  pollIntervalMs?: number;
  /** The coordinator's protocol generation, as the runner knows it when a tool runs (default 2.1). */
  generation?: () => ProtocolGeneration;
}

export interface RunningMcpServer {
  /** Streamable HTTP endpoint, path included: `http://127.0.0.1:PORT/mcp`; a run's agents get it with the run's token. */
  url: string;
  port: number;
  /** Ends waits in progress and closes every connection. */
  stop(): Promise<void>;
}

function jsonRpcError(status: number, message: string, headers?: Record<string, string>): Response {
  return Response.json({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }, { status, headers });
}

function isAddressInUse(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === "EADDRINUSE" || (typeof message === "string" && /in use|EADDRINUSE/i.test(message));
}

type McpHandler = (request: Request) => Promise<Response>;

/**
 * Loads the MCP SDK and the tools, and returns the handler for one MCP request. Stateless
 * streamable HTTP: each POST gets its own MCP server and transport, built with that request's
 * headers as the tools' context, so calls from different agents (and a long `sync` wait) never
 * share or block anything.
 */
async function loadMcpHandler(options: McpServerOptions, lifetime: AbortSignal): Promise<McpHandler> {
  const [{ McpServer }, { WebStandardStreamableHTTPServerTransport }, { registerTools }, { Orchestrator }] =
    await Promise.all([
      import("@modelcontextprotocol/sdk/server/mcp.js"),
      import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"),
      import("./tools.ts"),
      import("./orchestrator.ts"),
    ]);
  const orchestrator = new Orchestrator(options.coordinator, {
    syncTimeoutMs: options.syncTimeoutMs,
    pollIntervalMs: options.pollIntervalMs,
    generation: options.generation,
  });
  return async (request) => {
    const server = new McpServer({ name: "agent-orchestrator", version: pkg.version }, { capabilities: { tools: {} } });
    registerTools(server, orchestrator, {
      context: contextFromHeaders(request.headers),
      signal: AbortSignal.any([request.signal, lifetime]),
    });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await server.connect(transport);
    request.signal.addEventListener("abort", () => void server.close().catch(() => {}), { once: true });
    return transport.handleRequest(request);
  };
}

/**
 * Starts the embedded MCP server (docs/protocol.md, "MCP tools"). The port is bound at once (so its URL is known and
 * a taken --mcp-port fails the start), but the MCP SDK is loaded on the first request: most
 * runners never get one, and the SDK would cost every runner's start-up time and memory.
 */
export async function startMcpServer(options: McpServerOptions): Promise<RunningMcpServer> {
  const lifetime = new AbortController();
  let handler: Promise<McpHandler> | undefined;
  const handleMcp = async (request: Request) => {
    handler ??= loadMcpHandler(options, lifetime.signal).catch((error) => {
      handler = undefined;
      throw error;
    });
    return (await handler)(request);
  };

  let server: LocalServer;
  try {
    server = serveLocal({
      name: "MCP server",
      hostname: HOSTNAME,
      port: options.port ?? 0,
      tokenOf: (path) => options.tokens.carriedBy(path),
      async fetch(request) {
        // Host (DNS rebinding), a live run's token (other local processes), a JSON body (web pages).
        const admission = admit(request, {
          port: server.port,
          tokens: options.tokens,
          urlSource: "${AGENT_ORCHESTRATOR_MCP_URL} in the agent's blueprint",
        });
        if (!admission.ok) return jsonRpcError(admission.status, admission.message);
        if (admission.path !== MCP_PATH && admission.path !== `${MCP_PATH}/`) {
          return Response.json({ detail: `Not found: the MCP endpoint is ${MCP_PATH}` }, { status: 404 });
        }
        // Stateless server: no standalone SSE stream (GET) and no session to end (DELETE).
        if (request.method !== "POST") return jsonRpcError(405, "Method not allowed: use POST", { allow: "POST" });
        try {
          return await handleMcp(request);
        } catch (error) {
          log.warn("MCP request failed:", error);
          return jsonRpcError(500, `Internal error: ${error instanceof Error ? error.message : String(error)}`);
        }
      },
    });
  } catch (error) {
    if (options.port && isAddressInUse(error)) {
      throw new ConfigError(
        `--mcp-port ${options.port} is already in use on ${HOSTNAME}; choose another port or leave --mcp-port out to use any free port`,
      );
    }
    throw error;
  }

  const port = server.port;
  const url = `http://${HOSTNAME}:${port}${MCP_PATH}`;
  log.debug(`Embedded MCP server listening on ${url}`);

  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    stop() {
      stopped ??= (async () => {
        lifetime.abort();
        await server.stop();
        log.debug("Embedded MCP server stopped");
      })();
      return stopped;
    },
  };
}
