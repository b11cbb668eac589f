/**
 * How long an executor lives, shared by the runner (which says it) and the executors (which read
 * it). No runtime imports on purpose: the Claude Code executor's entry reads it before anything
 * heavy loads.
 */
import type { Env } from "../shared/env.ts";

/** Tells an executor how long it lives (set by the runner and by `exec`): one of LIFECYCLES. */
export const LIFECYCLE_ENV = "AGENT_RUNNER_LIFECYCLE";

/**
 * `one_shot`: the whole of stdin is one invocation, one turn, its result on stdout, exit.
 * `persistent`: the invocation is stdin's first line, then the executor runs a turn per `turn`
 * line, answering each with a `turn_complete` line, until `shutdown` or the end of stdin
 * (session-lines.ts).
 */
export const LIFECYCLES = ["one_shot", "persistent"] as const;
export type Lifecycle = (typeof LIFECYCLES)[number];

export class LifecycleError extends Error {
  override name = "LifecycleError";
}

/** The lifecycle the environment asks for: `one_shot` when the variable is not set (or empty). */
export function lifecycleFrom(env: Env): Lifecycle {
  const value = env[LIFECYCLE_ENV];
  if (value === undefined || value === "") return "one_shot";
  const known = LIFECYCLES.find((lifecycle) => lifecycle === value);
  if (!known) {
    throw new LifecycleError(
      `${LIFECYCLE_ENV} must be ${LIFECYCLES.map((l) => `"${l}"`).join(" or ")} (was ${JSON.stringify(value)})`,
    );
  }
  return known;
}
