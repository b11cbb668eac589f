/** The environment an executor starts with. */

/** Executors reach the coordinator through a gateway that holds the credentials; they run AI
 * agents, and never get the client secret. */
const WITHHELD_FROM_EXECUTORS = ["AUTH0_RUNNER_CLIENT_SECRET"];

/** The base environment less the secrets, plus `vars`. */
export function executorEnvironment(
  base: Record<string, string | undefined>,
  vars: Record<string, string>,
): Record<string, string | undefined> {
  const env = { ...base, ...vars };
  for (const name of WITHHELD_FROM_EXECUTORS) delete env[name];
  return env;
}
