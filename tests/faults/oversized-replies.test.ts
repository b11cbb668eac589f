/**
 * A coordinator (or whatever answers at its URL) that sends a reply far larger than any the
 * protocol has: the runner must not read it whole into memory. The request fails as a network
 * failure would, is retried, and the runner goes on taking runs.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { CoordinatorHttp } from "../../src/coordinator/http.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { FAULT_FIXTURES, memoryMb, profilesDirFor, startCli } from "../support/fault-tools.ts";
import { tempDir } from "../support/processes.ts";

const MIB = 1024 * 1024;

/** A body of `mib` MiB of spaces, streamed (chunked, no length declared). */
function streamed(mib: number): Response {
  const chunk = new Uint8Array(MIB).fill(32);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < mib) controller.enqueue(chunk);
      else controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

test("a 1 GiB poll reply, streamed, then one of 200 MiB with its length: neither is read whole; the next run is taken and reported", async () => {
  const fake = startFakeCoordinator();
  let polls = 0;
  fake.on("GET", /^\/runner\/runs$/, () => {
    polls++;
    if (polls === 2) return streamed(1024);
    if (polls === 3) return new Response(" ".repeat(200 * MIB), { headers: { "content-type": "application/json" } });
    return undefined;
  });
  const runner = startCli(
    ["--profile", "fault", "--profiles-dir", profilesDirFor(join(FAULT_FIXTURES, "outcome")), "-c", fake.url],
    { AGENT_RUNNER_STATE_DIR: tempDir("ar-state-") },
  );
  await runner.waitFor(/Poll failed \(attempt 1\): the reply to \/runner\/runs\S* is over the 64 MiB/);
  await runner.waitFor(/Coordinator answers again after 2 failed poll\(s\)/);
  fake.handRun({ run_id: "run_after", type: "start_session", session_id: "ses_after", prompt: "p" });
  await fake.waitForStatus("run_after", ["completed"]);
  expect(memoryMb(runner.process.pid).peak).toBeLessThan(600);
}, 60_000);

test("a reply that declares a length over the bound fails at once, naming its size; one within it is read", async () => {
  const fake = startFakeCoordinator();
  fake.on("GET", /^\/big$/, () => new Response(" ".repeat(65 * MIB)));
  fake.on("GET", /^\/fits$/, () => new Response(" ".repeat(MIB)));
  const http = new CoordinatorHttp(fake.url);
  await expect(http.fetch("/big")).rejects.toThrow(
    `the reply to /big is over the 64 MiB a reply may have (${65 * MIB} bytes)`,
  );
  expect((await (await http.fetch("/fits")).text()).length).toBe(MIB);
});
