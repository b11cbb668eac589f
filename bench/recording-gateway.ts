import type { Server } from "bun";
import { serveOnLoopback, urlOf } from "./loopback-server.ts";

/** The path prefix of the gateway URL, standing in for a run token (`agrun_` and 43 characters). */
const RUN_TOKEN = `agrun_${"b".repeat(43)}`;

/**
 * The runner's gateway as an executor sees it, minus the coordinator: its URL carries a run token
 * as the runner's does (`http://127.0.0.1:<port>/<token>`); POST /bind, POST /events and PATCH
 * /metadata under it are answered at once with 200 JSON and counted, so an executor run costs no
 * gateway latency and the bench can check that the run really went through (bind + events).
 */
export class RecordingGateway {
  /** "POST /bind", "POST /events", … in arrival order since the last reset(). */
  requests: string[] = [];
  private readonly server: Server<undefined>;

  constructor() {
    this.server = serveOnLoopback(async (request) => {
      const path = new URL(request.url).pathname;
      await request.arrayBuffer();
      const prefix = `/${RUN_TOKEN}/`;
      if (!path.startsWith(prefix)) return Response.json({ detail: "bench gateway: no run token" }, { status: 401 });
      const route = `${request.method} ${path.slice(prefix.length - 1)}`;
      if (route === "POST /bind" || route === "POST /events" || route === "PATCH /metadata") {
        this.requests.push(route);
        return Response.json({ ok: true });
      }
      return Response.json({ detail: `bench gateway: no route for ${route}` }, { status: 404 });
    });
  }

  get url(): string {
    return `${urlOf(this.server)}/${RUN_TOKEN}`;
  }

  reset(): void {
    this.requests = [];
  }

  stop(): Promise<void> {
    return this.server.stop(true);
  }
}
