import { onTeardown } from "./teardown.ts";

/**
 * Holds each GET /<session> until the test releases that session (fixture executors that GET
 * `$FIXTURE_RELEASE_URL/<session>` or `$FAULT_RELEASE_URL/<session>`): lets a test decide exactly when each executor ends. Stopped after the test.
 */
export function releaseServer() {
  const held = new Map<string, () => void>();
  const arrivals = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const arrival = (id: string) => {
    let entry = arrivals.get(id);
    if (!entry) {
      const { promise, resolve } = Promise.withResolvers<void>();
      entry = { promise, resolve };
      arrivals.set(id, entry);
    }
    return entry;
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch(request) {
      const id = new URL(request.url).pathname.slice(1);
      arrival(id).resolve();
      return new Promise<Response>((resolve) => held.set(id, () => resolve(new Response("go"))));
    },
  });
  onTeardown(() => server.stop(true));
  return {
    url: `http://127.0.0.1:${server.port}`,
    /** Resolves when the executor of this session is running and waiting. */
    waiting: (sessionId: string) => arrival(sessionId).promise,
    release(sessionId: string) {
      const go = held.get(sessionId);
      if (!go) throw new Error(`release: ${sessionId} is not waiting`);
      go();
    },
    stop: () => server.stop(true),
  };
}
