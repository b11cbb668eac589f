/** The body of `POST /runner/register`: who this runner is and what it runs. */
import type { ExecutorProfile, ProfileSandbox } from "../config/profiles.ts";
import type { JsonObject } from "../shared/json.ts";

/** Body of `POST /runner/register`. */
export interface RegistrationPayload {
  hostname: string;
  project_dir: string;
  executor_profile: string;
  /** `sandbox` only for a sandboxed profile, as the profile says it. */
  executor: { type: string; command: string; config: JsonObject; sandbox?: ProfileSandbox };
  tags?: string[];
  require_matching_tags: boolean;
  /** How many runs this runner executes at once at most; sent only when limited. */
  max_concurrent_runs?: number;
}

export interface RegistrationInput {
  hostname: string;
  projectDir: string;
  profile: Pick<ExecutorProfile, "name" | "type" | "command" | "config" | "sandbox">;
  tags: string[];
  requireMatchingTags: boolean;
  maxConcurrentRuns?: number;
}

/** The coordinator routes by the profile name; it keeps the executor details only to show them. */
export function buildRegistrationPayload(input: RegistrationInput): RegistrationPayload {
  const { profile } = input;
  return {
    hostname: input.hostname,
    project_dir: input.projectDir,
    executor_profile: profile.name,
    executor: {
      type: profile.type,
      command: profile.command,
      config: profile.config,
      ...(profile.sandbox ? { sandbox: profile.sandbox } : {}),
    },
    ...(input.tags.length > 0 ? { tags: input.tags } : {}),
    require_matching_tags: input.requireMatchingTags,
    ...(input.maxConcurrentRuns === undefined ? {} : { max_concurrent_runs: input.maxConcurrentRuns }),
  };
}
