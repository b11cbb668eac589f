/** The bench's servers: on 127.0.0.1, a free port, no idle timeout (held polls and slow runs stay open). */
import type { Server } from "bun";

export function serveOnLoopback(fetch: (request: Request) => Response | Promise<Response>): Server<undefined> {
  return Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch });
}

export const urlOf = (server: Server<undefined>) => `http://127.0.0.1:${server.port}`;
