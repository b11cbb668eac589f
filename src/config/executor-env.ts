/**
 * The environment an executor starts with: the runner's own, less the runner's settings, plus the
 * variables the runner documents for executors (AGENT_ORCHESTRATOR_API_URL, AGENT_SESSION_ID,
 * AGENT_RUNNER_LIFECYCLE, AGENT_RUNNER_DEBUG; the process module adds AGENT_RUNNER_LIFELINE_FD and
 * AGENT_RUNNER_PROCESS_MARK).
 */
import type { Env } from "../shared/env.ts";
import { runnerEnvironmentVariables } from "./flags.ts";

/**
 * Settings of the runner itself, never an executor's: the credentials (AUTH0_*: executors reach
 * the coordinator through the gateway, which holds them) and the variable of every runner and exec
 * flag (so a flag added later is covered without a second list).
 */
function isRunnerSetting(name: string, flagVariables: Set<string>): boolean {
  return name.startsWith("AUTH0_") || flagVariables.has(name);
}

/** The base environment less the runner's settings, plus `vars`. */
export function executorEnvironment(base: Env, vars: Record<string, string>): Env {
  const flagVariables = new Set(runnerEnvironmentVariables());
  const env: Env = {};
  for (const [name, value] of Object.entries(base)) {
    if (!isRunnerSetting(name, flagVariables)) env[name] = value;
  }
  return { ...env, ...vars };
}
