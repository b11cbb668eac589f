import type { Server } from "bun";

/**
 * The runner's gateway as an executor sees it, minus the coordinator: POST /bind, POST /events and
 * PATCH /metadata answered at once with 200 JSON and counted, so an executor run costs no gateway
 * latency and the bench can check that the run really went through (bind + events).
 */
export class RecordingGateway {
  /** "POST /bind", "POST /events", … in arrival order since the last reset(). */
  requests: string[] = [];
  private readonly server: Server<undefined>;

  constructor() {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: async (request) => {
        const path = new URL(request.url).pathname;
        const route = `${request.method} ${path}`;
        await request.arrayBuffer();
        if (route === "POST /bind" || route === "POST /events" || route === "PATCH /metadata") {
          this.requests.push(route);
          return Response.json({ ok: true });
        }
        return Response.json({ detail: `bench gateway: no route for ${route}` }, { status: 404 });
      },
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  reset(): void {
    this.requests = [];
  }

  stop(): Promise<void> {
    return this.server.stop(true);
  }
}
