/**
 * Ends what a test started. Whatever starts a process, server, temp directory or log reporter
 * registers its end with `onTeardown` (the support helpers that start things do it themselves);
 * the hooks that setup.ts (preloaded for every test file) installs run those ends after each test,
 * the last started first, whether the test passed, failed or timed out. What is started outside a
 * test (in a beforeAll) is ended when the whole run ends, unless its file ends it sooner.
 */
import { afterAll, afterEach, beforeEach } from "bun:test";

type End = () => unknown;

let installed = false;
let inTest = false;
const afterTest: End[] = [];
const afterRun: End[] = [];

/** Runs `end` after the current test (outside a test: after the whole run). */
export function onTeardown(end: End): void {
  if (!installed) throw new Error("onTeardown: tests/support/setup.ts is not preloaded (bunfig.toml [test] preload)");
  (inTest ? afterTest : afterRun).push(end);
}

/** SIGKILLs these processes after the test unless they are gone: for those no helper owns (grandchildren, detached ones). */
export function killAfterTest(...pids: number[]): void {
  for (const pid of pids) {
    onTeardown(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    });
  }
}

/** Runs every end, last first; one that fails does not keep the others from running, and fails the test. */
async function endAll(ends: End[]): Promise<void> {
  const errors: unknown[] = [];
  for (const end of ends.splice(0).reverse()) {
    try {
      await end();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} teardowns failed`);
}

/** Installs the hooks, once, from the preloaded setup.ts: they then apply to every test of every file. */
export function installTeardown(): void {
  if (installed) return;
  installed = true;
  beforeEach(() => {
    inTest = true;
  });
  afterEach(async () => {
    inTest = false;
    await endAll(afterTest);
  });
  afterAll(() => endAll(afterRun));
}
