import type { Server } from "bun";
import { onTeardown } from "./teardown.ts";

/** One request the fake Anthropic API received. */
export interface AnthropicRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: any;
}

/** The token counts a reply reports, as the API's `usage` has them. */
export interface ReplyUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** What the model "says" for one Messages request: text, a tool call, or both, and what it used. */
export interface ScriptedReply {
  text?: string;
  toolUse?: { name: string; input: Record<string, unknown>; id?: string };
  /** Token counts for this reply; those not given are 42 input, 17 output and no cache. */
  usage?: Partial<ReplyUsage>;
}

/** Picks the reply to a Messages request; `undefined` falls back to the default reply. */
export type Responder = (request: MessagesRequest) => ScriptedReply | undefined;

/** A `POST /v1/messages` body, with helpers for scripting replies. */
export interface MessagesRequest {
  body: any;
  /** The text of every user turn, tool results excluded, joined. */
  userText: string;
  /** The tool results in the last user turn. */
  toolResults: Array<{ tool_use_id: string; content: unknown; is_error?: boolean }>;
  /** True for Claude Code's main agent loop (it offers tools); side queries (titles, summaries) offer none. */
  offersTools: boolean;
}

const encoder = new TextEncoder();
let idCounter = 0;
const nextId = (prefix: string) => `${prefix}_fake${(++idCounter).toString().padStart(20, "0")}`;

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((block) => block?.type === "text")
    .map((block) => String(block.text))
    .join("\n");
}

function describeMessages(body: any): MessagesRequest {
  const messages: any[] = Array.isArray(body?.messages) ? body.messages : [];
  const userTurns = messages.filter((m) => m.role === "user");
  const last = userTurns.at(-1);
  const toolResults = Array.isArray(last?.content) ? last.content.filter((b: any) => b?.type === "tool_result") : [];
  return {
    body,
    userText: userTurns.map((m) => textOf(m.content)).join("\n"),
    toolResults,
    offersTools: Array.isArray(body?.tools) && body.tools.length > 0,
  };
}

function contentBlocks(reply: ScriptedReply): any[] {
  const blocks: any[] = [];
  if (reply.text !== undefined) blocks.push({ type: "text", text: reply.text });
  if (reply.toolUse) {
    blocks.push({
      type: "tool_use",
      id: reply.toolUse.id ?? nextId("toolu"),
      name: reply.toolUse.name,
      input: reply.toolUse.input,
    });
  }
  if (blocks.length === 0) blocks.push({ type: "text", text: "" });
  return blocks;
}

const DEFAULT_USAGE: ReplyUsage = {
  input_tokens: 42,
  output_tokens: 17,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
};

/**
 * The reply's usage as a whole message reports it; a stream reports it in two parts, as the API
 * does: the input side (and one output token) in `message_start`, the output tokens in `message_delta`.
 */
function usage(reply: ScriptedReply, part: "whole" | "start" = "whole") {
  const counts = { ...DEFAULT_USAGE, ...reply.usage };
  return { ...counts, output_tokens: part === "start" ? 1 : counts.output_tokens, service_tier: "standard" };
}

/** Splits a string in a few pieces, like the API's deltas. */
function chunks(text: string, size = 12): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [""];
}

/** The event stream the real API sends for one message, event for event. */
function sseEvents(model: string, reply: ScriptedReply): Array<[string, unknown]> {
  const blocks = contentBlocks(reply);
  const messageId = nextId("msg");
  const events: Array<[string, unknown]> = [
    [
      "message_start",
      {
        type: "message_start",
        message: {
          id: messageId,
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: usage(reply, "start"),
        },
      },
    ],
  ];
  blocks.forEach((block, index) => {
    if (block.type === "text") {
      events.push([
        "content_block_start",
        { type: "content_block_start", index, content_block: { type: "text", text: "" } },
      ]);
      if (index === 0) events.push(["ping", { type: "ping" }]);
      for (const piece of chunks(block.text)) {
        events.push([
          "content_block_delta",
          { type: "content_block_delta", index, delta: { type: "text_delta", text: piece } },
        ]);
      }
    } else {
      events.push([
        "content_block_start",
        {
          type: "content_block_start",
          index,
          content_block: { type: "tool_use", id: block.id, name: block.name, input: {} },
        },
      ]);
      for (const piece of chunks(JSON.stringify(block.input), 20)) {
        events.push([
          "content_block_delta",
          { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } },
        ]);
      }
    }
    events.push(["content_block_stop", { type: "content_block_stop", index }]);
  });
  events.push([
    "message_delta",
    {
      type: "message_delta",
      delta: { stop_reason: reply.toolUse ? "tool_use" : "end_turn", stop_sequence: null },
      usage: { output_tokens: usage(reply).output_tokens },
    },
  ]);
  events.push(["message_stop", { type: "message_stop" }]);
  return events;
}

function apiError(status: number, type: string, message: string): Response {
  return Response.json(
    { type: "error", error: { type, message } },
    { status, headers: { "request-id": nextId("req") } },
  );
}

/**
 * The Anthropic Messages API as Claude Code sees it, on 127.0.0.1, for tests: streaming replies
 * exactly as the real API sends them, token counting, and sensible answers for the other
 * endpoints. Replies come from a responder the test gives; every request is recorded.
 */
export class FakeAnthropic {
  readonly requests: AnthropicRequest[] = [];
  private server?: Server<undefined>;
  private responders: Responder[] = [];
  private messagesError?: { status: number; type: string; message: string };
  /** While set, Messages requests get no answer until released (a model that is "thinking"). */
  private held?: Array<() => void>;
  private waiters: Array<{ test: (r: AnthropicRequest) => boolean; resolve: (r: AnthropicRequest) => void }> = [];

  constructor(private readonly defaultReply: (request: MessagesRequest) => ScriptedReply = () => ({ text: "OK" })) {}

  get url(): string {
    return `http://127.0.0.1:${this.server?.port}`;
  }

  start(): this {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: (request) => this.handle(request),
    });
    return this;
  }

  async stop(): Promise<void> {
    this.releaseHeld();
    await this.server?.stop(true);
    this.server = undefined;
  }

  /** Adds a responder, consulted before earlier ones. */
  respond(responder: Responder): this {
    this.responders.unshift(responder);
    return this;
  }

  /** Holds every Messages request unanswered until `releaseHeld()` (or `stop()`). */
  holdMessages(): this {
    this.held ??= [];
    return this;
  }

  releaseHeld(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const release of held) release();
  }

  /**
   * Holds Messages requests (as `holdMessages`), runs `send`, which starts a turn saying `marker`, and
   * resolves once that turn's request has arrived: the turn is then under way until `releaseHeld()`.
   */
  async holdTurn(marker: string, send: () => void): Promise<void> {
    this.holdMessages();
    const from = this.requests.length;
    send();
    await this.waitFor((r) => this.requests.indexOf(r) >= from && JSON.stringify(r.body).includes(marker));
  }

  /** Resolves with the first request (received or still to come) that passes the test. */
  waitFor(test: (request: AnthropicRequest) => boolean, timeoutMs = 30_000): Promise<AnthropicRequest> {
    const seen = this.requests.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`fake Anthropic API: no matching request within ${timeoutMs} ms; got:\n${this.describe()}`));
      }, timeoutMs);
      const done = (request: AnthropicRequest) => {
        clearTimeout(timer);
        resolve(request);
      };
      this.waiters.push({ test, resolve: done });
    });
  }

  /** Makes every Messages request fail the way the real API fails (e.g. 400 invalid_request_error). */
  failMessages(status: number, type: string, message: string): this {
    this.messagesError = { status, type, message };
    return this;
  }

  /** The Messages requests of the main agent loop (the ones offering tools), in order. */
  agentRequests(): any[] {
    return this.messageRequests()
      .map((r) => r.body)
      .filter((body) => Array.isArray(body?.tools) && body.tools.length > 0);
  }

  /** The messages the agent loop's requests carried, from its `from`th request on, as one JSON text. */
  conversationSince(from: number): string {
    return JSON.stringify(
      this.agentRequests()
        .slice(from)
        .map((body) => body.messages),
    );
  }

  messageRequests(): AnthropicRequest[] {
    return this.requests.filter((r) => r.method === "POST" && r.path === "/v1/messages");
  }

  describe(): string {
    return this.requests.map((r) => `${r.method} ${r.path}${r.query.size ? `?${r.query}` : ""}`).join("\n");
  }

  private async handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const text = await request.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const recorded: AnthropicRequest = {
      method: request.method,
      path: url.pathname,
      query: url.searchParams,
      headers: request.headers,
      body,
    };
    this.requests.push(recorded);
    const ready = this.waiters.filter((w) => w.test(recorded));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve(recorded);

    if (request.method === "HEAD" || (request.method === "GET" && url.pathname === "/")) return new Response("ok");
    if (!request.headers.get("x-api-key") && !request.headers.get("authorization")) {
      return apiError(401, "authentication_error", "x-api-key header is required");
    }
    if (request.method === "POST" && url.pathname === "/v1/messages/count_tokens") {
      // Roughly what the real endpoint answers: one token per four characters.
      return Response.json({ input_tokens: Math.max(1, Math.ceil(text.length / 4)) });
    }
    if (request.method === "POST" && url.pathname === "/v1/messages") {
      if (this.held) await new Promise<void>((release) => this.held!.push(release));
      return this.messages(body as any);
    }
    if (request.method === "GET" && url.pathname === "/v1/models") {
      return Response.json({ data: [], has_more: false, first_id: null, last_id: null });
    }
    return apiError(404, "not_found_error", `fake Anthropic API: no route for ${request.method} ${url.pathname}`);
  }

  private messages(body: any): Response {
    if (!body || typeof body.model !== "string" || !Array.isArray(body.messages)) {
      return apiError(400, "invalid_request_error", "model and messages are required");
    }
    if (this.messagesError) {
      const { status, type, message } = this.messagesError;
      return apiError(status, type, message);
    }
    const described = describeMessages(body);
    let reply: ScriptedReply | undefined;
    for (const responder of this.responders) {
      reply = responder(described);
      if (reply) break;
    }
    reply ??= this.defaultReply(described);
    const headers = { "request-id": nextId("req"), "anthropic-organization-id": "fake-org" };
    if (!body.stream) {
      return Response.json(
        {
          id: nextId("msg"),
          type: "message",
          role: "assistant",
          model: body.model,
          content: contentBlocks(reply),
          stop_reason: reply.toolUse ? "tool_use" : "end_turn",
          stop_sequence: null,
          usage: usage(reply),
        },
        { headers },
      );
    }
    const events = sseEvents(body.model, reply);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const [event, data] of events)
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        controller.close();
      },
    });
    return new Response(stream, {
      headers: { ...headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
    });
  }
}

/** A default reply: the last line of what the user said last, echoed ("You said: …"). */
export function echoLastLine(request: MessagesRequest): ScriptedReply {
  return { text: `You said: ${request.userText.trim().split("\n").at(-1)}` };
}

/** A fake Messages API on 127.0.0.1, stopped after the test (or, started in a beforeAll, after the run). */
export function startFakeAnthropic(defaultReply?: (request: MessagesRequest) => ScriptedReply): FakeAnthropic {
  const api = new FakeAnthropic(defaultReply).start();
  onTeardown(() => api.stop());
  return api;
}
