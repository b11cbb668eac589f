/**
 * The door of every local HTTP server of the runner (gateway, MCP server, health server, exec's
 * gateway): a bound on the connections they hold together, so that no local process can take the
 * runner's file descriptors by opening connections and keeping them.
 *
 * Bun.serve accepts every connection it is offered and cannot be told to stop, and a process out
 * of descriptors cannot poll, spawn or report (Bun then spins on the accept that fails). So the
 * port is a Bun.listen socket that counts what it accepts and passes each connection's bytes to
 * the Bun.serve that answers it, on a unix socket in a directory only this user can enter.
 */
import { lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, Socket, TCPSocketListener } from "bun";
import { log } from "./log.ts";
import { openFilesLimit } from "./open-files.ts";

/**
 * Seconds a connection without a live run token may pass with no byte either way (Bun's timer
 * moves in 4 s steps: it may be up to 8 s more). A run's own connections have no idle timeout: an
 * MCP `sync` call waits for its run with nothing sent meanwhile; they end with the run's processes.
 */
const IDLE_TIMEOUT_SECONDS = 10;
/** A request line longer than this cannot carry a run token the runner issued. */
const MAX_REQUEST_LINE_BYTES = 8192;
/** At most one log line about closed or refused connections per this many ms. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;

/**
 * Connections all local servers of a process may hold together: an eighth of the open-files
 * limit (a connection costs up to three descriptors: the client's, and both ends of the unix
 * socket), between 16 and 1024.
 */
export function defaultConnectionBound(limit = openFilesLimit().soft): number {
  return Math.min(1024, Math.max(16, Math.floor(limit / 8)));
}

/**
 * Connections one run token may hold as its run's (kept, no idle timeout): a quarter of the bound,
 * at least 4. More of them are taken like connections without a token, so that one agent, whose
 * executor has its run's token, cannot hold every place and shut out the other runs and the
 * health probes.
 */
function perTokenBound(bound: number): number {
  return Math.max(4, Math.floor(bound / 4));
}

/** One accepted connection, as the budget sees it. */
interface Held {
  server: string;
  /** Its first request carries a live run token within the token's share: it is never closed to make room. */
  readonly trusted: boolean;
  /** The run token it holds one of that token's places for, once granted. */
  grant?: string;
  /** Being closed: it still counts until its sockets are gone, but it cannot make room again. */
  ended: boolean;
  /** Closes its sockets; the server releases it from the budget once they are closed. */
  close(): void;
}

/**
 * The connections a process's local servers hold, and their bound. A connection counts from its
 * accept until its last socket is closed. At the bound, a new connection takes the place of the
 * oldest one without a live run token (a silent connection, an unknown or revoked token, a
 * health probe); when every one has a live token, the new one is refused. A run token holds at
 * most `perToken` connections as its run's; more of its connections count as without a token.
 */
export class ConnectionBudget {
  private readonly held = new Set<Held>();
  /** Connections held as a run's, by run token. */
  private readonly granted = new Map<string, number>();
  private closed = new Map<string, number>();
  private refused = new Map<string, number>();
  private overShare = new Map<string, number>();
  private window?: ReturnType<typeof setTimeout>;
  /** Connections one run token may hold as its run's. */
  readonly perToken: number;

  constructor(readonly bound: number = defaultConnectionBound()) {
    this.perToken = perTokenBound(bound);
  }

  get size(): number {
    return this.held.size;
  }

  /** Takes `connection` in if there is room or room can be made; false when it must be refused. */
  admit(connection: Held): boolean {
    if (this.held.size >= this.bound) {
      const oldest = this.oldestUntrusted();
      if (oldest) {
        this.count(this.closed, oldest.server);
        oldest.close();
      }
      // A closed connection whose socket to the server is still opening counts until it is gone.
      if (this.held.size >= this.bound) {
        this.count(this.refused, connection.server);
        return false;
      }
    }
    this.held.add(connection);
    return true;
  }

  /**
   * A held connection's first request carries the live run `token`: it becomes one of the run's
   * own while the token holds fewer than its share. False when it does not (it stays a connection
   * without a token).
   */
  grant(connection: Held, token: string): boolean {
    if (!this.held.has(connection) || connection.grant !== undefined) return connection.grant === token;
    const count = this.granted.get(token) ?? 0;
    if (count >= this.perToken) {
      this.count(this.overShare, connection.server);
      return false;
    }
    this.granted.set(token, count + 1);
    connection.grant = token;
    return true;
  }

  release(connection: Held): void {
    if (!this.held.delete(connection) || connection.grant === undefined) return;
    const count = (this.granted.get(connection.grant) ?? 1) - 1;
    if (count > 0) this.granted.set(connection.grant, count);
    else this.granted.delete(connection.grant);
  }

  private oldestUntrusted(): Held | undefined {
    for (const connection of this.held) if (!connection.ended && !connection.trusted) return connection;
    return undefined;
  }

  /** Counts a refusal; the first of a window is logged at once, the others when the window ends. */
  private count(counts: Map<string, number>, server: string): void {
    counts.set(server, (counts.get(server) ?? 0) + 1);
    if (!this.window) this.report();
  }

  private report(): void {
    this.window = undefined;
    if (this.closed.size === 0 && this.refused.size === 0 && this.overShare.size === 0) return;
    const list = (counts: Map<string, number>) =>
      [...counts].map(([server, count]) => `${count} to the ${server}`).join(", ");
    const what = [
      this.closed.size > 0 ? `closed ${list(this.closed)} (the oldest without a live run token)` : "",
      this.refused.size > 0 ? `refused ${list(this.refused)} (the others belong to live runs)` : "",
      this.overShare.size > 0
        ? `took ${list(this.overShare)} as connections without a token (their run token already held ${this.perToken})`
        : "",
    ].filter(Boolean);
    log.warn(
      `Local servers (at most ${this.bound} open connections, ${this.perToken} of them a run's): ${what.join("; ")}. ` +
        `A local process is opening many connections; the runner carries on. (At most one such line per ${REFUSAL_LOG_INTERVAL_MS / 1000} s.)`,
    );
    this.closed = new Map();
    this.refused = new Map();
    this.overShare = new Map();
    this.window = setTimeout(() => this.report(), REFUSAL_LOG_INTERVAL_MS);
    this.window.unref();
  }
}

let processBudget: ConnectionBudget | undefined;

/** The budget all local servers of this process share. */
function localConnectionBudget(): ConnectionBudget {
  processBudget ??= new ConnectionBudget();
  return processBudget;
}

/** Logs (at debug) the open-files limit the process runs with and the local servers' bound drawn from it. */
export function logDescriptorLimits(): void {
  const { soft, hard } = openFilesLimit();
  log.debug(
    `Open files limit ${soft} (hard ${hard}); the local servers hold at most ${localConnectionBudget().bound} connections`,
  );
}

export interface LocalServerOptions {
  /** What the server is, in log lines: "gateway", "MCP server", … */
  name: string;
  hostname: string;
  /** 0: any free port. */
  port: number;
  fetch(request: Request): Response | Promise<Response>;
  error?(error: Error): Response | Promise<Response>;
  maxRequestBodySize?: number;
  /** The live run token a request path carries, if any (a connection's first request decides). */
  tokenOf?(path: string): string | undefined;
  /** Default: the process's budget. */
  budget?: ConnectionBudget;
  /** Default IDLE_TIMEOUT_SECONDS. */
  idleTimeoutSeconds?: number;
}

export interface LocalServer {
  readonly port: number;
  /** Connections this server holds open now. */
  readonly connections: number;
  /** Closes the port and every connection. */
  stop(): Promise<void>;
}

/** One connection through the door: the client's socket and the one to the HTTP server. */
interface Link extends Held {
  client: Socket<Link>;
  clientOpen: boolean;
  /** Opened with the client's first bytes: a silent connection costs one descriptor. */
  upstream?: Socket<Link>;
  upstreamState: "none" | "connecting" | "open" | "closed";
  /** Bytes the other side has not taken yet (it pushed back, or is still connecting), in order. */
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  /** The first request line so far, until it is complete. */
  head?: string;
  /** The first request's path, once read. */
  path?: string;
}

/** Writes what it can of `chunk`; keeps the rest and pauses `from` until `to` drains. */
function pass(to: Socket<Link> | undefined, queue: Uint8Array[], chunk: Uint8Array, from: Socket<Link>): void {
  if (!to || queue.length > 0) {
    queue.push(chunk.slice());
    from.pause();
    return;
  }
  const written = to.write(chunk);
  if (written >= 0 && written < chunk.byteLength) {
    queue.push(chunk.slice(written));
    from.pause();
  }
}

/** Writes what was kept for `to`; true when all of it went. */
function flush(to: Socket<Link>, queue: Uint8Array[]): boolean {
  while (queue.length > 0) {
    const chunk = queue[0]!;
    const written = to.write(chunk);
    if (written < 0) {
      queue.length = 0;
      return true;
    }
    if (written < chunk.byteLength) {
      queue[0] = chunk.subarray(written);
      return false;
    }
    queue.shift();
  }
  return true;
}

/** The path of a request line's target (`GET /x HTTP/1.1`, or an absolute URL). */
function targetPath(line: string): string {
  const target = line.split(" ")[1] ?? "";
  if (target.startsWith("/")) return target;
  try {
    return new URL(target).pathname;
  } catch {
    return "";
  }
}

const SOCKET_DIR_PREFIX = "agent-runner-";
/** A socket directory younger than this may belong to a server still starting. */
const STALE_AFTER_MS = 60_000;
let swept = false;

/** A private directory for the unix socket (mode 0700): only this user may connect through it. */
function socketDirectory(): string {
  const base = join(tmpdir(), `${SOCKET_DIR_PREFIX}XXXXXX/http.sock`).length < 100 ? tmpdir() : "/tmp";
  if (!swept) {
    swept = true;
    void sweepSocketDirectories(base).catch((error) => log.debug("Sweeping old socket directories:", error));
  }
  return mkdtempSync(join(base, SOCKET_DIR_PREFIX));
}

/** Whether a server listens on the unix socket at `path` (refused or gone: no). */
function listening(path: string): Promise<boolean> {
  return Bun.connect({
    unix: path,
    socket: { open: (socket) => void socket.end(), data() {}, connectError() {} },
  }).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== "ECONNREFUSED" && error.code !== "ENOENT",
  );
}

/**
 * Removes the socket directories of local servers whose process ended without stopping them
 * (SIGKILL, a crash): this user's, over a minute old, with no server listening on their socket.
 * Whether a process is alive cannot tell, since another pid namespace may share this directory.
 */
export async function sweepSocketDirectories(base: string): Promise<void> {
  const uid = process.getuid?.();
  for (const name of readdirSync(base)) {
    if (!name.startsWith(SOCKET_DIR_PREFIX) || name.length !== SOCKET_DIR_PREFIX.length + 6) continue;
    const dir = join(base, name);
    const stat = lstatSync(dir, { throwIfNoEntry: false });
    if (!stat?.isDirectory() || stat.uid !== uid || Date.now() - stat.mtimeMs < STALE_AFTER_MS) continue;
    const sockets = readdirSync(dir).map((socket) => join(dir, socket));
    if ((await Promise.all(sockets.map(listening))).includes(true)) continue;
    rmSync(dir, { recursive: true, force: true });
    log.debug(`Removed ${dir}: a local server's socket directory left by a process that ended without stopping it`);
  }
}

/**
 * Serves HTTP on `hostname:port` through the bounded door. An error binding the port is Bun's
 * (with `code`, e.g. EADDRINUSE), thrown with nothing left behind.
 */
export function serveLocal(options: LocalServerOptions): LocalServer {
  const budget = options.budget ?? localConnectionBudget();
  const idleSeconds = options.idleTimeoutSeconds ?? IDLE_TIMEOUT_SECONDS;
  const dir = socketDirectory();
  const unix = join(dir, "http.sock");
  const links = new Set<Link>();

  let backend: Server<undefined>;
  try {
    // Idle connections are the door's to time out (Bun's per-request timeouts do not work on a
    // unix socket, and a run's connections must be able to wait).
    backend = Bun.serve({
      unix,
      ...({ idleTimeout: 0 } as object),
      maxRequestBodySize: options.maxRequestBodySize,
      error: options.error,
      fetch: (request) => options.fetch(request),
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  /** Its first request carried a live token that granted it one of its places, and the token is still live. */
  const isTrusted = (link: Link) =>
    link.grant !== undefined && link.path !== undefined && options.tokenOf?.(link.path) === link.grant;
  /** Bytes moved: a connection without a live token gets its idle time again. */
  const active = (link: Link) => {
    if (link.clientOpen && !isTrusted(link)) link.client.timeout(idleSeconds);
  };

  /** Once neither socket is open or opening, the connection no longer counts. */
  const settle = (link: Link) => {
    if (link.clientOpen || link.upstreamState === "connecting" || link.upstreamState === "open") return;
    links.delete(link);
    budget.release(link);
  };
  const end = (link: Link) => {
    link.ended = true;
    if (link.clientOpen) link.client.terminate();
    if (link.upstreamState === "open") link.upstream?.terminate();
    settle(link);
  };
  const endClient = (link: Link) => {
    link.client.end();
    // A client that never closes its side is not waited for.
    link.client.timeout(idleSeconds);
  };
  /** The server closed it (after `Connection: close`): the client gets what is left, then its end. */
  const upstreamGone = (link: Link) => {
    if (link.upstreamState === "closed") return;
    link.upstreamState = "closed";
    if (link.ended) end(link);
    else if (link.toClient.length === 0) endClient(link);
    settle(link);
  };

  const connectUpstream = (link: Link) => {
    link.upstreamState = "connecting";
    Bun.connect<Link>({
      unix,
      data: link,
      socket: {
        binaryType: "uint8array",
        open(upstream) {
          link.upstream = upstream;
          link.upstreamState = "open";
          if (link.ended) upstream.terminate();
          else if (flush(upstream, link.toUpstream)) link.client.resume();
        },
        data(upstream, chunk) {
          active(link);
          pass(link.client, link.toClient, chunk, upstream);
        },
        drain(upstream) {
          if (flush(upstream, link.toUpstream)) link.client.resume();
        },
        close() {
          upstreamGone(link);
        },
        connectError() {
          link.ended = true;
          upstreamGone(link);
        },
      },
    }).catch(() => {
      link.ended = true;
      upstreamGone(link);
    });
  };

  /** Reads the first request line, whose path says whether the connection is a run's. */
  const readHead = (link: Link, chunk: Uint8Array) => {
    const part = chunk.subarray(0, MAX_REQUEST_LINE_BYTES + 1 - link.head!.length);
    link.head += Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString("latin1");
    const eol = link.head!.indexOf("\n");
    if (eol < 0 && link.head!.length <= MAX_REQUEST_LINE_BYTES) return;
    link.path = eol < 0 ? "" : targetPath(link.head!.slice(0, eol).trimEnd());
    link.head = undefined;
    const token = options.tokenOf?.(link.path);
    if (token !== undefined && budget.grant(link, token)) link.client.timeout(0);
  };

  let listener: TCPSocketListener<Link>;
  try {
    listener = Bun.listen<Link>({
      hostname: options.hostname,
      port: options.port,
      exclusive: true,
      socket: {
        binaryType: "uint8array",
        open(client) {
          const link: Link = {
            server: options.name,
            get trusted() {
              return isTrusted(link);
            },
            ended: false,
            client,
            clientOpen: true,
            upstreamState: "none",
            toUpstream: [],
            toClient: [],
            head: "",
            close: () => end(link),
          };
          client.data = link;
          if (!budget.admit(link)) {
            link.ended = true;
            client.terminate();
            return;
          }
          links.add(link);
          active(link);
        },
        data(client, chunk) {
          const link = client.data;
          if (link.ended) return;
          if (link.head !== undefined) readHead(link, chunk);
          active(link);
          if (link.upstreamState === "none") connectUpstream(link);
          pass(link.upstreamState === "open" ? link.upstream : undefined, link.toUpstream, chunk, client);
        },
        drain(client) {
          const link = client.data;
          if (!flush(client, link.toClient)) return;
          if (link.upstreamState === "closed") endClient(link);
          else link.upstream?.resume();
        },
        close(client) {
          const link = client.data;
          if (!link) return;
          link.clientOpen = false;
          end(link);
        },
        timeout(client) {
          if (client.data) end(client.data);
        },
      },
    });
  } catch (error) {
    void backend.stop(true);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    port: listener.port,
    get connections() {
      return links.size;
    },
    stop() {
      stopped ??= (async () => {
        listener.stop(true);
        for (const link of [...links]) end(link);
        await backend.stop(true);
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
