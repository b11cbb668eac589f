/** The body of `POST /runner/register`: who this runner is and what it runs, in either protocol generation. */
import { type ExecutorProfile, type ProfileSandbox, protocolExecutorType } from "../config/profiles.ts";
import type { ProtocolGeneration } from "../protocol/generation.ts";
import type { Lifecycle } from "../protocol/lifecycle.ts";
import type { JsonObject } from "../shared/json.ts";

/** Body of `POST /runner/register`. */
export interface RegistrationPayload {
  hostname: string;
  project_dir: string;
  executor_profile: string;
  /** `sandbox` only for a sandboxed profile, as the profile says it; `lifecycle` under protocol 2.2. */
  executor: { type: string; command: string; config: JsonObject; lifecycle?: Lifecycle; sandbox?: ProfileSandbox };
  tags?: string[];
  require_matching_tags: boolean;
  /** How many runs this runner executes at once at most; sent only when limited. */
  max_concurrent_runs?: number;
}

export interface RegistrationInput {
  hostname: string;
  projectDir: string;
  profile: Pick<ExecutorProfile, "name" | "type" | "command" | "config" | "lifecycle" | "sandbox">;
  tags: string[];
  requireMatchingTags: boolean;
  maxConcurrentRuns?: number;
}

/**
 * The coordinator routes by the profile name. Under 2.1 it keeps the executor details only to show
 * them; under 2.2 a run goes only to a runner whose `executor.type` is the type the run demands
 * (`autonomous` or `procedural`), and `lifecycle` says whether its executors outlive a turn.
 */
export function buildRegistrationPayload(
  input: RegistrationInput,
  generation: ProtocolGeneration = "2.1",
): RegistrationPayload {
  const { profile } = input;
  const executor =
    generation === "2.1"
      ? { type: profile.type, command: profile.command, config: profile.config }
      : {
          type: protocolExecutorType(profile),
          command: profile.command,
          config: profile.config,
          lifecycle: profile.lifecycle,
        };
  return {
    hostname: input.hostname,
    project_dir: input.projectDir,
    executor_profile: profile.name,
    executor: { ...executor, ...(profile.sandbox ? { sandbox: profile.sandbox } : {}) },
    ...(input.tags.length > 0 ? { tags: input.tags } : {}),
    require_matching_tags: input.requireMatchingTags,
    ...(input.maxConcurrentRuns === undefined ? {} : { max_concurrent_runs: input.maxConcurrentRuns }),
  };
}
