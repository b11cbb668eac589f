/**
 * The door of the runner's local servers: a bound on the connections they hold, room made by
 * closing the oldest connection without a run token, a share of the bound per run token,
 * refusals logged at most once a minute, long waits allowed only where the server holds them,
 * and bytes passed on exactly.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, utimesSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConnectionBudget,
  defaultConnectionBound,
  serveLocal,
  sweepSocketDirectories,
} from "../../src/shared/local-server.ts";
import { openConnections } from "../support/connections.ts";
import { captureLog, until } from "../support/fault-tools.ts";
import { killTree, tempDir } from "../support/processes.ts";
import { onTeardown } from "../support/teardown.ts";

const TOKEN = "/tok_live";
const OTHER = "/tok_other";
/** The test's live tokens: a path's first segment, when it is one of them. */
const tokenOf = (path: string) => [TOKEN, OTHER].find((token) => path.startsWith(`${token}/`));

/** A local server on 127.0.0.1 under a bound of `bound` connections; by default it answers with the path it got. */
function start(options: {
  bound: number;
  fetch?: (request: Request) => Response | Promise<Response>;
  idleTimeoutSeconds?: number;
  tokenOf?: (path: string) => string | undefined;
}) {
  const budget = new ConnectionBudget(options.bound);
  const server = serveLocal({
    name: "test server",
    hostname: "127.0.0.1",
    port: 0,
    budget,
    idleTimeoutSeconds: options.idleTimeoutSeconds,
    tokenOf: options.tokenOf ?? tokenOf,
    fetch: options.fetch ?? ((request) => Response.json({ path: new URL(request.url).pathname })),
  });
  onTeardown(() => server.stop());
  return { server, budget };
}

const fds = () => readdirSync("/proc/self/fd").length;
const get = (port: number, path = "/x") =>
  fetch(`http://127.0.0.1:${port}${path}`, { keepalive: false, signal: AbortSignal.timeout(5000) });

test("the bound is an eighth of the open-files limit, between 16 and 1024", () => {
  expect(defaultConnectionBound(256)).toBe(32);
  expect(defaultConnectionBound(1024)).toBe(128);
  expect(defaultConnectionBound(64)).toBe(16);
  expect(defaultConnectionBound(1 << 20)).toBe(1024);
});

test("600 silent connections: the server holds at most its bound, the process's descriptors stay bounded, a new request is answered", async () => {
  const { server, budget } = start({ bound: 16 });
  const before = fds();
  const sockets = await openConnections(server.port, 600);
  await until(() => sockets.filter((s) => !s.destroyed).length <= 16, "the server to close all but 16");
  // The test's own ends of the 16 still open, and the server's: no more.
  expect(fds() - before).toBeLessThanOrEqual(2 * 16);
  expect(server.connections).toBeLessThanOrEqual(16);
  expect(budget.size).toBeLessThanOrEqual(16);
  const response = await get(server.port);
  expect(await response.json()).toEqual({ path: "/x" });
});

/** Sends one whole request on `socket` and resolves with the answer's head once it arrives. */
function request(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once("data", (chunk) => resolve(chunk.toString()));
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

test("connections of live runs are kept; once all held ones are, new ones are refused, and that is logged once", async () => {
  const log = captureLog();
  const { server } = start({ bound: 8 });
  const runs = await openConnections(server.port, 8);
  for (const [i, socket] of runs.entries()) {
    expect(await request(socket, `${i % 2 ? TOKEN : OTHER}/a`)).toStartWith("HTTP/1.1 200");
  }
  const flood = await openConnections(server.port, 200);
  await until(() => flood.every((s) => s.destroyed), "every new connection to be refused");
  expect(runs.filter((s) => s.destroyed)).toHaveLength(0);
  const lines = log.lines.filter((line) => line.includes("at most 8 open connections"));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("refused 1 to the test server");
});

test("one run token holds at most a quarter of the bound as its run's: more of its connections make room like any other", async () => {
  const log = captureLog();
  const { server, budget } = start({ bound: 16 });
  expect(budget.perToken).toBe(4);
  const held = await openConnections(server.port, 16);
  for (const socket of held) expect(await request(socket, `${TOKEN}/held`)).toStartWith("HTTP/1.1 200");
  const other = await openConnections(server.port, 8);
  for (const socket of other) expect(await request(socket, `${OTHER}/a`)).toStartWith("HTTP/1.1 200");
  expect(other.filter((s) => s.destroyed)).toHaveLength(0);
  expect((await get(server.port)).status).toBe(200);
  // The first four of the holder's are its run's: kept; the others made room.
  expect(held.slice(0, 4).filter((s) => s.destroyed)).toHaveLength(0);
  await until(() => held.filter((s) => !s.destroyed).length <= 8, "the holder's extra connections to be closed");
  expect(log.lines.find((line) => line.includes("at most 16 open connections"))).toContain(
    "took 1 to the test server as connections without a token (their run token already held 4)",
  );
});

test("a flood of silent connections closes the oldest untrusted ones: a request with a token still gets through", async () => {
  const { server } = start({ bound: 8 });
  await openConnections(server.port, 300);
  const response = await get(server.port, `${TOKEN}/b`);
  expect(await response.json()).toEqual({ path: `${TOKEN}/b` });
});

test("a connection whose token is no longer live makes room like any other", async () => {
  let live = true;
  const { server } = start({
    bound: 2,
    tokenOf: (path) => (live ? tokenOf(path) : undefined),
    fetch: () => new Response("ok"),
  });
  const runs = await openConnections(server.port, 2);
  for (const socket of runs) expect(await request(socket, `${TOKEN}/a`)).toStartWith("HTTP/1.1 200");
  const refused = await openConnections(server.port, 1);
  await until(() => refused[0]!.destroyed, "the new connection to be refused");
  live = false;
  const admitted = await openConnections(server.port, 1);
  await until(() => runs[0]!.destroyed, "the oldest run connection to be closed");
  expect(admitted[0]!.destroyed).toBe(false);
});

test("idle timeout: connections without a token are closed when idle; a run's request and event stream wait past it", async () => {
  const { server } = start({
    bound: 8,
    idleTimeoutSeconds: 1,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (!path.endsWith("/events")) {
        await Bun.sleep(9000);
        return Response.json({ path });
      }
      const body = new ReadableStream({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("data: first\n\n"));
          await Bun.sleep(9000);
          controller.enqueue(new TextEncoder().encode("data: last\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
  });
  const [silent] = await openConnections(server.port, 1);
  const silentClosed = new Promise((resolve) => silent!.once("close", resolve));
  const url = `http://127.0.0.1:${server.port}`;
  const [run, events, stranger] = await Promise.allSettled([
    fetch(`${url}${TOKEN}/wait`).then((r) => r.json()),
    fetch(`${url}${TOKEN}/events`).then((r) => r.text()),
    fetch(`${url}/wait`).then((r) => r.json()),
  ]);
  expect(run).toEqual({ status: "fulfilled", value: { path: `${TOKEN}/wait` } });
  expect(events).toEqual({ status: "fulfilled", value: "data: first\n\ndata: last\n\n" });
  expect(stranger.status).toBe("rejected");
  await silentClosed;
}, 30_000);

test("10 MiB each way pass unchanged, the server reading and answering at its own pace", async () => {
  const { server } = start({
    bound: 8,
    async fetch(request) {
      const body = new Uint8Array(await request.arrayBuffer());
      const reversed = body.slice().reverse();
      return new Response(reversed);
    },
  });
  const sent = new Uint8Array(10 * 1024 * 1024);
  for (let i = 0; i < sent.length; i++) sent[i] = (i * 7919) & 0xff;
  const response = await fetch(`http://127.0.0.1:${server.port}/echo`, { method: "POST", body: sent });
  const answer = new Uint8Array(await response.arrayBuffer());
  expect(answer.length).toBe(sent.length);
  expect(Buffer.compare(answer, sent.slice().reverse())).toBe(0);
});

test("stop closes every connection and removes the unix socket's directory", async () => {
  const dirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith("agent-runner-"));
  const before = new Set(dirs());
  const { server } = start({ bound: 8 });
  const created = dirs().filter((dir) => !before.has(dir));
  expect(created).toHaveLength(1);
  expect(existsSync(join(tmpdir(), created[0]!, "http.sock"))).toBe(true);
  const sockets = await openConnections(server.port, 4, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  await server.stop();
  await until(() => sockets.every((s) => s.destroyed), "the connections to close");
  expect(existsSync(join(tmpdir(), created[0]!))).toBe(false);
  expect(server.connections).toBe(0);
});

test("socket directories a killed process left are removed; those a live server listens in, or still young, are kept", async () => {
  const base = tempDir("ar-sockets-");
  const dir = (name: string) => {
    const path = join(base, `agent-runner-${name}`);
    mkdirSync(path);
    return path;
  };
  const [dead, live, young] = [dir("dead01"), dir("live01"), dir("young1")];
  // A process serving on a socket in `dead`, killed: its socket file stays, nobody listens on it.
  const child = Bun.spawn(
    [
      process.execPath,
      "-e",
      `Bun.serve({ unix: ${JSON.stringify(join(dead, "http.sock"))}, fetch: () => new Response("") }); console.log("up")`,
    ],
    { stdout: "pipe" },
  );
  onTeardown(() => killTree(child));
  const reader = child.stdout.getReader();
  await reader.read();
  await killTree(child);
  const server = Bun.serve({ unix: join(live, "http.sock"), fetch: () => new Response("") });
  onTeardown(() => server.stop(true));
  Bun.serve({ unix: join(young, "http.sock"), fetch: () => new Response("") }).stop(true);
  const old = new Date(Date.now() - 5 * 60_000);
  for (const path of [dead, live]) utimesSync(path, old, old);
  expect(existsSync(join(dead, "http.sock"))).toBe(true);

  await sweepSocketDirectories(base);
  expect(existsSync(dead)).toBe(false);
  expect(existsSync(live)).toBe(true);
  expect(existsSync(young)).toBe(true);
});
