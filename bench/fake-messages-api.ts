import type { Server } from "bun";
import { monoNs } from "./clock.ts";
import { serveOnLoopback, urlOf } from "./loopback-server.ts";

/**
 * The Anthropic Messages API as far as Claude Code needs it to finish a turn, on 127.0.0.1, for
 * the executor-overhead bench. Not tests/support/fake-anthropic.ts: the bench only needs a fixed
 * "OK" reply and the exact arrival time (CLOCK_MONOTONIC, the clock the bench spawns by) of every
 * `POST /v1/messages`, stamped before the body is read.
 */
const encoder = new TextEncoder();

function sse(model: string): Uint8Array {
  const usage = { input_tokens: 42, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  const events: Array<[string, unknown]> = [
    [
      "message_start",
      {
        type: "message_start",
        message: {
          id: "msg_bench",
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage,
        },
      },
    ],
    ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
    ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "OK" } }],
    ["content_block_stop", { type: "content_block_stop", index: 0 }],
    [
      "message_delta",
      { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 1 } },
    ],
    ["message_stop", { type: "message_stop" }],
  ];
  return encoder.encode(events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join(""));
}

export class FakeMessagesApi {
  /** Arrival time of every `POST /v1/messages`, in order. */
  readonly messageArrivals: bigint[] = [];
  private readonly server: Server<undefined>;
  private waiters: Array<{ after: bigint; resolve: (at: bigint) => void }> = [];

  constructor() {
    this.server = serveOnLoopback((request) => this.handle(request));
  }

  get url(): string {
    return urlOf(this.server);
  }

  stop(): Promise<void> {
    return this.server.stop(true);
  }

  /** The arrival time of the first `POST /v1/messages` at or after `after` (already there, or still to come). */
  arrivalAfter(after: bigint): Promise<bigint> {
    const seen = this.messageArrivals.find((at) => at >= after);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ after, resolve }));
  }

  private async handle(request: Request): Promise<Response> {
    const at = monoNs();
    const path = new URL(request.url).pathname;
    if (request.method === "POST" && path === "/v1/messages") {
      this.messageArrivals.push(at);
      const ready = this.waiters.filter((w) => at >= w.after);
      this.waiters = this.waiters.filter((w) => !ready.includes(w));
      for (const waiter of ready) waiter.resolve(at);
      const body = (await request.json()) as { model?: string; stream?: boolean };
      const model = body.model ?? "claude-bench";
      if (body.stream) return new Response(sse(model), { headers: { "content-type": "text/event-stream" } });
      return Response.json({
        id: "msg_bench",
        type: "message",
        role: "assistant",
        model,
        content: [{ type: "text", text: "OK" }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 42, output_tokens: 1 },
      });
    }
    await request.arrayBuffer();
    if (request.method === "POST" && path === "/v1/messages/count_tokens") return Response.json({ input_tokens: 42 });
    if (request.method === "GET" && path === "/v1/models")
      return Response.json({ data: [], has_more: false, first_id: null, last_id: null });
    // Connectivity checks (HEAD /api/hello, …).
    return new Response("ok");
  }
}
