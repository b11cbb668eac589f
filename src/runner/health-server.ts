/**
 * The `--health-addr` server: GET /healthz (liveness), /readyz (readiness) and /metrics
 * (Prometheus text). Imported only when the flag is set, so other runners do not load
 * prom-client.
 */
import pkg from "../../package.json" with { type: "json" };
import type { HostPort } from "../config/runner-config.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { type LocalServer, serveLocal } from "../shared/local-server.ts";
import { HealthMonitor } from "./health.ts";
import { RunnerMetrics } from "./metrics.ts";

export interface HealthServer {
  /** Base URL, with the port actually bound. */
  url: string;
  /** Feed it what the worker does; it answers the probes and keeps the metrics. */
  monitor: HealthMonitor;
  stop(): Promise<void>;
}

export interface HealthServerOptions {
  addr: HostPort;
  profile: string;
  maxConcurrentRuns?: number;
  /** Monotonic milliseconds for the liveness bounds (tests pass their own clock). */
  now?: () => number;
}

const PATHS = ["/healthz", "/readyz", "/metrics"];
const ALLOWED_METHODS = "GET, HEAD";

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  Response.json(body, { status, headers: { "cache-control": "no-store", ...headers } });

function bindError(addr: HostPort, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `--health-addr ${formatHost(addr.host)}:${addr.port}`;
  const why =
    code === "EADDRINUSE"
      ? `port ${addr.port} is already in use (choose another port, or 0 for any free one)`
      : code === "EADDRNOTAVAIL"
        ? `${addr.host} is not an address of this machine`
        : code === "EACCES"
          ? `not allowed to listen on port ${addr.port} (ports below 1024 need privileges)`
          : messageOf(error);
  return new ConfigError(`Cannot serve ${where}: ${why}`);
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Starts the server; a taken port or a foreign address is a ConfigError naming `--health-addr`. */
export function startHealthServer(options: HealthServerOptions): HealthServer {
  const metrics = new RunnerMetrics({
    profile: options.profile,
    version: pkg.version,
    maxConcurrentRuns: options.maxConcurrentRuns,
  });
  const monitor = new HealthMonitor({ metrics, maxConcurrentRuns: options.maxConcurrentRuns, now: options.now });

  const handle = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (!PATHS.includes(path)) return json(404, { error: `not found: ${path}`, paths: PATHS });
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: `method ${request.method} not allowed` }, { allow: ALLOWED_METHODS });
    }
    if (path === "/metrics") {
      monitor.syncMetrics();
      return new Response(await metrics.render(), {
        headers: { "content-type": metrics.contentType, "cache-control": "no-store" },
      });
    }
    const answer = path === "/healthz" ? monitor.liveness() : monitor.readiness();
    return json(answer.status, answer.body);
  };

  let server: LocalServer;
  try {
    server = serveLocal({ name: "health server", hostname: options.addr.host, port: options.addr.port, fetch: handle });
  } catch (error) {
    throw bindError(options.addr, error);
  }
  return {
    url: `http://${formatHost(options.addr.host)}:${server.port}`,
    monitor,
    stop: () => server.stop(),
  };
}
