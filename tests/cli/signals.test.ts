/** exec's signal wiring, in a process of its own: a signal that arrives after the work does not cut exec short. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT, runProcess } from "../support/processes.ts";

/** A program that runs work under withSignals, then gets `late` SIGINTs, then prints and exits 0. */
function program(late: number): string {
  return `
import { withSignals } from ${JSON.stringify(join(REPO_ROOT, "src/cli/signals.ts"))};
const seen = [];
await withSignals(["SIGINT", "SIGTERM"], (signal) => seen.push(signal), async () => {
  process.kill(process.pid, "SIGINT");
  await new Promise((resolve) => process.once("SIGINT", resolve));
});
for (let i = 0; i < ${late}; i++) {
  process.kill(process.pid, "SIGINT");
  await new Promise((resolve) => setImmediate(resolve));
  await Bun.sleep(20);
}
console.log("printed after the work, handled during it:", seen.join(","));
`;
}

test("a late Ctrl+C after the work is ignored: the outcome is printed, the exit code is the work's", async () => {
  const outcome = await runProcess([process.execPath, "-e", program(1)]);
  expect(outcome.exitCode, outcome.stderr).toBe(0);
  expect(outcome.stdout).toBe("printed after the work, handled during it: SIGINT\n");
});

test("a second late Ctrl+C exits at once (130): exec never becomes unstoppable", async () => {
  const outcome = await runProcess([process.execPath, "-e", program(2)]);
  expect(outcome.exitCode).toBe(130);
  expect(outcome.stdout).toBe("");
});
