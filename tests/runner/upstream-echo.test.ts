/**
 * The reference runner's own echo executor (its current version, read from the upstream
 * repository when it is on this machine) runs under this runner, one-shot and persistent: a test
 * of the executor side of protocol 2.2 by a program this project did not write.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/processes.ts";
import { fixtureProfile, startRunnerHarness } from "../support/runner-harness.ts";

/** A clone (or bare git directory) of the reference coordinator's repository, rawe/claude-agent-orchestrator. */
const UPSTREAM = process.env.UPSTREAM_GIT;
const ECHO = "servers/agent-runner/executors/echo-executor/ao-echo-exec";
const PYTHON = "/usr/bin/python3";

/** The echo executor from the upstream repository, with a wrapper that runs it (it is written for `uv run`). */
function upstreamEcho(): string | undefined {
  if (!UPSTREAM || !existsSync(UPSTREAM) || !existsSync(PYTHON)) return undefined;
  const source = Bun.spawnSync(["git", "-C", UPSTREAM, "show", `HEAD:${ECHO}`]);
  if (source.exitCode !== 0) return undefined;
  if (Bun.spawnSync([PYTHON, "-c", "import httpx"]).exitCode !== 0) return undefined;
  const dir = tempDir("ar-upstream-echo-");
  writeFileSync(join(dir, "ao-echo-exec.py"), source.stdout);
  const wrapper = join(dir, "ao-echo-exec");
  writeFileSync(wrapper, `#!/bin/sh\nexec ${PYTHON} ${join(dir, "ao-echo-exec.py")} "$@"\n`, { mode: 0o755 });
  return wrapper;
}

const echo = upstreamEcho();
if (!echo) {
  console.warn(
    `upstream-echo: skipped: needs UPSTREAM_GIT (a clone of rawe/claude-agent-orchestrator; ${UPSTREAM ?? "not set"}) and ${PYTHON} with httpx (Debian's python3-httpx)`,
  );
}

describe.skipIf(!echo)("the reference runner's echo executor, protocol 2.2", () => {
  const profile = (lifecycle: "one_shot" | "persistent") => {
    const base = fixtureProfile("capture");
    return { ...base, command: echo!, argv: [echo!], lifecycle };
  };

  test("one-shot: bound and completed, its session finished", async () => {
    const h = await startRunnerHarness({ profile: profile("one_shot"), fake: { protocol: "2.2" } });
    const run = h.fake.handRun({ run_id: "run_e1", type: "start_session", session_id: "ses_e1", prompt: "hi" });
    await h.fake.waitForStatus(run.run_id, ["completed"]);
    expect(h.fake.reportsFor(run.run_id).at(-1)?.body).toMatchObject({ session_status: "finished" });
    // It binds through the coordinator's own route, which the gateway serves for its session.
    expect(h.fake.find("POST", "/sessions/ses_e1/bind")[0]?.body).toMatchObject({
      executor_session_id: "echo-ses_e1",
      hostname: "test-host",
    });
  });

  test("persistent: two turns in one process, then a stop while idle ends it finished", async () => {
    const h = await startRunnerHarness({ profile: profile("persistent"), fake: { protocol: "2.2" } });
    h.fake.handRun({ run_id: "run_p1", type: "start_session", session_id: "ses_p", prompt: "one" });
    await h.fake.waitForSessionStatus("ses_p", ["idle"]);
    h.fake.handRun({ run_id: "run_p2", type: "resume_session", session_id: "ses_p", prompt: "two" });
    await h.fake.waitForStatus("run_p2", ["completed"]);
    expect(h.fake.reportsFor("run_p2").at(-1)?.body).toMatchObject({ session_status: "idle" });
    // One bind: the second turn went to the same process.
    expect(h.fake.find("POST", "/sessions/ses_p/bind")).toHaveLength(1);
    h.fake.requestSessionStop("ses_p");
    await h.fake.waitForSessionStatus("ses_p", ["finished"]);
    expect(h.fake.find("POST", "/runner/sessions/ses_p/status")[0]?.body).toMatchObject({ status: "finished" });
  });
});
