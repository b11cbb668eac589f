/** What an executor starts with: the run's project directory, the runner's environment less its own settings. */
import { afterAll, describe, expect, test } from "bun:test";
import { realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { executorEnvironment } from "../../src/config/executor-env.ts";
import { runnerEnvironmentVariables } from "../../src/config/flags.ts";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";
import { FIXTURES, type RunnerHarness, startRunnerHarness } from "../support/runner-harness.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** The runner's own settings, as an operator would have them in the runner's environment. */
const RUNNER_SETTINGS = {
  AUTH0_DOMAIN: "tenant.example.com",
  AUTH0_RUNNER_CLIENT_ID: "client-id",
  AUTH0_RUNNER_CLIENT_SECRET: "client-secret",
  AUTH0_AUDIENCE: "https://api.example.com",
  AGENT_RUNNER_PROFILES_DIR: "/etc/agent-runner/profiles",
  AGENT_RUNNER_EXEC_STATE_DIR: "/var/lib/agent-runner/exec",
  RUNNER_TAGS: "gpu,python",
  POLL_TIMEOUT: "20",
  HEARTBEAT_INTERVAL: "30",
};
/** What the agent's own tools may need: passed on. */
const AGENT_SETTINGS = { ANTHROPIC_API_KEY: "sk-ant-for-the-agent", GIT_AUTHOR_NAME: "Agent", LANG: "C.UTF-8" };

describe("executorEnvironment", () => {
  test("drops AUTH0_* and every runner flag's variable, keeps the rest, adds the run's variables", () => {
    const env = executorEnvironment(
      {
        ...RUNNER_SETTINGS,
        ...AGENT_SETTINGS,
        PROJECT_DIR: "/srv",
        AGENT_ORCHESTRATOR_API_URL: "http://coordinator:8765",
      },
      { AGENT_ORCHESTRATOR_API_URL: "http://127.0.0.1:4000", AGENT_SESSION_ID: "ses_1" },
    );
    expect(env).toEqual({
      ...AGENT_SETTINGS,
      AGENT_ORCHESTRATOR_API_URL: "http://127.0.0.1:4000",
      AGENT_SESSION_ID: "ses_1",
    });
  });

  test("every flag's variable is a runner setting, so a new flag is covered without a second list", () => {
    const vars = runnerEnvironmentVariables();
    expect(vars).toContain("PROJECT_DIR");
    const env = executorEnvironment(Object.fromEntries(vars.map((name) => [name, "x"])), {});
    expect(env).toEqual({});
  });
});

describe("the runner starts executors", () => {
  const environmentEvent = async (h: RunnerHarness, sessionId: string) =>
    (await h.fake.waitFor((r) => r.path === `/sessions/${sessionId}/events` && r.body?.event_type === "environment"))
      .body as { cwd: string; env: Record<string, string> };

  test("in the run's project directory, with the runner's environment less its own settings", async () => {
    const project = temp.make("ar-env-project-");
    const harness = await startRunnerHarness({
      fixture: "record-env",
      env: { ...RUNNER_SETTINGS, ...AGENT_SETTINGS },
      flags: { "project-dir": temp.make("ar-env-default-") },
    });
    harness.handRun({ session_id: "ses_env", project_dir: project });
    const { cwd, env } = await environmentEvent(harness, "ses_env");
    expect(cwd).toBe(realpathSync(project));
    for (const name of Object.keys(RUNNER_SETTINGS)) expect(env[name]).toBeUndefined();
    expect(env).toMatchObject(AGENT_SETTINGS);
    expect(env.AGENT_SESSION_ID).toBe("ses_env");
    // The gateway's URL with the run's own token as its first path segment.
    expect(env.AGENT_ORCHESTRATOR_API_URL).toMatch(new RegExp(`^${harness.gateway.url}/agrun_[\\w-]{43}$`));
  });

  test("in the runner's default project directory when the run names none (a resume)", async () => {
    const fallback = temp.make("ar-env-default-");
    const harness = await startRunnerHarness({ fixture: "record-env", flags: { "project-dir": fallback } });
    harness.handRun({ session_id: "ses_res", type: "resume_session" });
    expect((await environmentEvent(harness, "ses_res")).cwd).toBe(realpathSync(fallback));
  });

  test("a project directory missing on this machine fails the run, naming it", async () => {
    const harness = await startRunnerHarness({ fixture: "record-env" });
    const runId = harness.handRun({ session_id: "ses_gone", project_dir: "/nonexistent/project" });
    const failed = await harness.fake.waitForRequest("POST", `/runner/runs/${runId}/failed`);
    expect(failed.body.error).toContain("working directory /nonexistent/project does not exist");
  });
});

describe("exec starts executors", () => {
  test("in its project directory, with its environment less the runner's settings", async () => {
    const profiles = temp.make("ar-env-profiles-");
    writeFileSync(join(profiles, "env.json"), JSON.stringify({ type: "env", command: join(FIXTURES, "record-env") }));
    const project = temp.make("ar-env-project-");
    const outcome = await runProcess(
      [
        process.execPath,
        join(REPO_ROOT, "index.ts"),
        "exec",
        "--profile",
        "env",
        "--profiles-dir",
        profiles,
        "--prompt",
        "x",
        "-p",
        project,
        "--state-dir",
        temp.make(),
        "--session-id",
        "ses_exec_env",
        "--json",
      ],
      { cwd: temp.make(), env: cleanEnv({ ...RUNNER_SETTINGS, ...AGENT_SETTINGS }) },
    );
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    const event = outcome.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line))
      .find((line) => line.body?.event_type === "environment");
    expect(event.body.cwd).toBe(realpathSync(project));
    for (const name of Object.keys(RUNNER_SETTINGS)) expect(event.body.env[name]).toBeUndefined();
    expect(event.body.env).toMatchObject(AGENT_SETTINGS);
    expect(event.body.env.AGENT_SESSION_ID).toBe("ses_exec_env");
    expect(event.body.env.AGENT_ORCHESTRATOR_API_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/agrun_[\w-]{43}$/);
  });
});
