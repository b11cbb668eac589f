import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO_ROOT, runProcess } from "../support/processes.ts";

const MODULE = join(REPO_ROOT, "src/shared/proc-environ.ts");

test("a removed variable's value is gone from /proc/self/environ and process.env; the rest is untouched", async () => {
  const script = `
    import { readFileSync } from "node:fs";
    import { removeFromEnvironment } from ${JSON.stringify(MODULE)};
    removeFromEnvironment(["THE_SECRET", "NOT_SET_AT_ALL"]);
    console.log(JSON.stringify({
      environ: readFileSync("/proc/self/environ", "utf8"),
      env: process.env.THE_SECRET ?? null,
      other: process.env.MY_THE_SECRET,
    }));`;
  const outcome = await runProcess([process.execPath, "-e", script], {
    env: { PATH: process.env.PATH, MY_THE_SECRET: "kept-1", THE_SECRET: "s3cret-value-xyz", AFTER: "kept-2" },
  });
  expect(outcome.exitCode, outcome.stderr).toBe(0);
  const seen = JSON.parse(outcome.stdout) as { environ: string; env: string | null; other: string };
  expect(seen.environ).not.toContain("s3cret-value-xyz");
  expect(seen.environ).toContain("\0THE_SECRET=\0");
  expect(seen.environ).toContain("MY_THE_SECRET=kept-1\0");
  expect(seen.environ).toContain("\0AFTER=kept-2\0");
  expect(seen.env).toBeNull();
  expect(seen.other).toBe("kept-1");
});
