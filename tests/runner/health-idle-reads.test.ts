/**
 * What the idle sessions take is read from /proc, a look at every process on the machine: a local
 * process asking /readyz or /metrics as fast as it can must not make the runner do that per request.
 */
import { expect, test } from "bun:test";
import { startHealthServer } from "../../src/runner/health-server.ts";
import { onTeardown } from "../support/teardown.ts";

test("the idle sessions' figures are read at most once a second, however often /readyz and /metrics are asked", async () => {
  let clock = 0;
  const server = startHealthServer({ addr: { host: "127.0.0.1", port: 0 }, profile: "p", now: () => clock });
  onTeardown(() => server.stop());
  let reads = 0;
  server.monitor.trackIdleSessions(() => {
    reads++;
    return { count: 2, memoryBytes: 1000 * reads };
  });
  const ask = async (path: string) => (await fetch(`${server.url}${path}`)).text();

  for (let i = 0; i < 20; i++) await Promise.all([ask("/readyz"), ask("/metrics")]);
  expect(reads).toBe(1);
  expect(JSON.parse(await ask("/readyz"))).toMatchObject({ idle_sessions: 2, idle_session_memory_bytes: 1000 });

  clock += 1000;
  expect(JSON.parse(await ask("/readyz"))).toMatchObject({ idle_sessions: 2, idle_session_memory_bytes: 2000 });
  await ask("/metrics");
  expect(reads).toBe(2);
});
