import { expect } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { TokenSource } from "../../src/coordinator/auth.ts";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { type RunningMcpServer, startMcpServer } from "../../src/mcp/server.ts";
import { RunTokens, urlWithToken } from "../../src/protocol/run-tokens.ts";
import { type FakeCoordinator, startFakeCoordinator } from "./fake-coordinator.ts";
import { onTeardown } from "./teardown.ts";

export interface Harness {
  coordinator: FakeCoordinator;
  mcp: RunningMcpServer;
  /** The server's run tokens; `url` carries a live one (for session `ses_harness`), as a run's agents get it. */
  tokens: RunTokens;
  url: string;
  client: Client;
  /** Calls a tool and returns the raw MCP result. */
  call(name: string, args?: Record<string, unknown>): Promise<CallToolResult>;
  /** Calls a tool that must succeed; returns its answer parsed from the JSON text. */
  ok(name: string, args?: Record<string, unknown>): Promise<any>;
  /** Calls a tool that must fail; returns the error text. */
  fails(name: string, args?: Record<string, unknown>): Promise<string>;
  /** Another client on the same server, with its own headers. */
  connect(headers?: Record<string, string>): Promise<Client>;
}

export interface HarnessOptions {
  headers?: Record<string, string>;
  auth?: TokenSource;
  syncTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Coordinator URL to use instead of the fake's (e.g. one nobody listens on). */
  coordinatorUrl?: string;
  /** The protocol generation the fake coordinator speaks and the tools are told (default 2.1). */
  protocol?: "2.1" | "2.2";
}

export async function connectClient(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "mcp-test-client", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  onTeardown(() => client.close());
  return client;
}

export function textOf(result: CallToolResult): string {
  const first = result.content[0];
  if (first?.type !== "text") throw new Error(`tool result has no text: ${JSON.stringify(result)}`);
  return first.text;
}

/** The MCP server against a fake coordinator, with a connected client; everything is stopped after the test. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const protocol = options.protocol ?? "2.1";
  const coordinator = startFakeCoordinator({ protocol });
  const tokens = new RunTokens();
  const mcp = await startMcpServer({
    coordinator: new CoordinatorHttp(options.coordinatorUrl ?? coordinator.url, options.auth),
    tokens,
    syncTimeoutMs: options.syncTimeoutMs,
    pollIntervalMs: options.pollIntervalMs ?? 5,
    generation: () => protocol,
  });
  onTeardown(() => mcp.stop());
  const url = urlWithToken(mcp.url, tokens.issue("ses_harness"));
  const client = await connectClient(url, options.headers);
  const call = async (name: string, args: Record<string, unknown> = {}) =>
    (await client.callTool({ name, arguments: args })) as CallToolResult;
  return {
    coordinator,
    mcp,
    tokens,
    url,
    client,
    call,
    async ok(name, args) {
      const result = await call(name, args);
      expect(result.isError ?? false, `${name} failed: ${textOf(result)}`).toBe(false);
      return JSON.parse(textOf(result));
    },
    async fails(name, args) {
      const result = await call(name, args);
      expect(result.isError, `${name} should have failed, answered: ${textOf(result)}`).toBe(true);
      return textOf(result);
    },
    connect: (headers) => connectClient(url, headers),
  };
}

export const json = (body: unknown, status = 200) => Response.json(body, { status });
