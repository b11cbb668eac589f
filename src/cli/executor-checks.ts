/**
 * Whether a profile's executor can run on this host: its command, the sandbox of a sandboxed
 * profile, the Claude Code binary of a Claude Code profile. `agent-runner doctor` prints these
 * checks; the runner runs the same ones at start and refuses to register when one fails.
 */
import { executorEnvironment } from "../config/executor-env.ts";
import { type ExecutorProfile, resolveExecutorCommand, sandboxOptions } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import { claudeCodeNotFound, findClaudeCode } from "../executors/claude-code-binary.ts";
import {
  checkSandboxPlaces,
  closeSandboxFds,
  type SandboxOptions,
  type SandboxPrefix,
  sandboxPrefix,
} from "../process/sandbox.ts";
import { checkBubblewrap } from "../process/sandbox-check.ts";
import type { ExecutorVerdict } from "../runner/start-runner.ts";
import type { Env } from "../shared/env.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";

export interface CheckResult {
  ok: boolean;
  detail: string;
  /**
   * A failure only some runs meet (the default project directory is one the sandbox refuses;
   * runs that bring their own work): the runner warns at start instead of refusing.
   */
  someRuns?: boolean;
}

/** One check, started at once; those that run a process are settled later. */
export interface ExecutorCheck {
  name: "executor" | "sandbox" | "claude code";
  result: Promise<CheckResult>;
}

const PROCESS_TIMEOUT_MS = 15_000;

/** The checks of a profile's executor, in the order doctor prints them; all are started now. */
export function executorChecks(
  profile: Pick<ExecutorProfile, "type" | "command" | "sandbox">,
  config: Pick<RunnerConfig, "projectDir" | "stateDir">,
  runnerEnv: Env,
): ExecutorCheck[] {
  // What the executor would see: the runner's environment less its own settings.
  const env = executorEnvironment(runnerEnv, {});
  const argv = resolveExecutorCommand(profile.command);
  const checks: ExecutorCheck[] = [
    {
      name: "executor",
      result: Promise.resolve(
        "error" in argv
          ? { ok: false, detail: `${profile.command} cannot be run: ${argv.error}` }
          : { ok: true, detail: `runs ${argv.join(" ")}` },
      ),
    },
  ];
  const sandbox = sandboxOptions(profile, [config.stateDir], env);
  if (sandbox) checks.push({ name: "sandbox", result: checkSandbox(config, sandbox, env) });
  if (profile.type === "claude-code") checks.push({ name: "claude code", result: checkClaudeCode(env) });
  return checks;
}

/**
 * The start-up check of a runner: the same checks as doctor. Never rejects, so the runner can
 * start its servers meanwhile and await it only before registering.
 */
export async function runnable(
  profile: Omit<ExecutorProfile, "argv">,
  config: Pick<RunnerConfig, "projectDir" | "stateDir">,
  runnerEnv: Env,
): Promise<ExecutorVerdict> {
  const startedAt = performance.now();
  const checks = executorChecks(profile, config, runnerEnv);
  const results = await Promise.all(checks.map(async ({ name, result }) => ({ name, ...(await result) })));
  log.debug(
    `Executor checks in ${Math.round(performance.now() - startedAt)} ms: ${results.map((check) => `${check.ok ? "✓" : "✗"} ${check.name}: ${check.detail}`).join("; ")}`,
  );
  const failed = results.filter((check) => !check.ok && !check.someRuns);
  if (failed.length > 0) {
    const lines = failed.map((check) => `✗ ${check.name}: ${check.detail}`);
    return {
      refusal: [
        `Profile '${profile.name}' cannot run on this host; it would fail every run (\`agent-runner doctor\` runs the same checks):`,
        ...lines,
      ].join("\n"),
    };
  }
  const argv = resolveExecutorCommand(profile.command);
  if ("error" in argv) return { refusal: `✗ executor: ${profile.command} cannot be run: ${argv.error}` };
  const warnings = results
    .filter((check) => !check.ok)
    .map((check) => `Runs without a project_dir of their own will fail: ${check.detail} (see --project-dir)`);
  return { profile: { ...profile, argv }, warnings };
}

/** Which Claude Code binary the executor will use, and that it runs (a binary for another libc does not). */
async function checkClaudeCode(env: Env): Promise<CheckResult> {
  const lookup = findClaudeCode(env);
  if ("tried" in lookup) return { ok: false, detail: claudeCodeNotFound(lookup.tried) };
  const { path, from } = lookup.found;
  const where = `${path} (${from})`;
  try {
    const proc = Bun.spawn([path, "--version"], {
      env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: PROCESS_TIMEOUT_MS,
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (proc.signalCode) return { ok: false, detail: `${where} did not answer --version (${proc.signalCode})` };
    if (code !== 0) {
      const said = (stderr.trim() || stdout.trim()).slice(0, 300);
      return {
        ok: false,
        detail: `${where} does not run: --version exited with code ${code}${said ? `: ${said}` : ""}`,
      };
    }
    return { ok: true, detail: `${where}: ${stdout.trim() || "runs"}` };
  } catch (error) {
    return { ok: false, detail: `${where} cannot be started: ${messageOf(error)}` };
  }
}

/**
 * A sandboxed profile's executors need bubblewrap and user namespaces, and a project directory
 * the sandbox accepts: the sandbox of a run in the default project directory is created, running `true`.
 */
async function checkSandbox(
  config: Pick<RunnerConfig, "projectDir" | "stateDir">,
  sandbox: SandboxOptions,
  env: Env,
): Promise<CheckResult> {
  const check = checkBubblewrap({ env });
  if (!check.ok) return { ok: false, detail: check.reason };
  const inProject = { ...sandbox, projectDir: config.projectDir, env };
  try {
    checkSandboxPlaces(inProject);
  } catch (error) {
    return { ok: false, detail: messageOf(error), someRuns: true };
  }
  let prefix: SandboxPrefix;
  try {
    prefix = sandboxPrefix(inProject);
  } catch (error) {
    return { ok: false, detail: messageOf(error) };
  }
  let proc: Bun.Subprocess<"ignore", "ignore", "pipe">;
  try {
    proc = Bun.spawn([...prefix.argv, "true"], {
      env,
      stdio: ["ignore", "ignore", "pipe", "ignore", ...prefix.fds],
      timeout: PROCESS_TIMEOUT_MS,
    });
  } finally {
    closeSandboxFds(prefix);
  }
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    return {
      ok: false,
      detail: `the sandbox of a run in ${config.projectDir} fails (exit ${code}): ${stderr.trim().slice(0, 300)}`,
    };
  }
  return { ok: true, detail: `${check.bwrap} runs executors in a sandbox; a run in ${config.projectDir} can write it` };
}
