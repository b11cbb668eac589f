import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "./errors.ts";

export const DEFAULT_COORDINATOR_URL = "http://localhost:8765";
export const DEFAULT_POLL_TIMEOUT_SECONDS = 30;
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 60;
export const DEFAULT_STOP_GRACE_SECONDS = 5;

/** OAuth2 client-credentials settings; present only when all four AUTH0_* variables are set. */
export interface ClientCredentials {
  domain: string;
  clientId: string;
  clientSecret: string;
  audience: string;
}

export interface RunnerConfig {
  coordinatorUrl: string;
  projectDir: string;
  tags: string[];
  requireMatchingTags: boolean;
  profile?: string;
  profilesDir?: string;
  mcpPort?: number;
  /** Overrides of what the coordinator says at registration; unset means use its values. */
  pollTimeoutSeconds?: number;
  heartbeatIntervalSeconds?: number;
  stopGraceSeconds: number;
  verbose: boolean;
  auth?: ClientCredentials;
}

/** Command-line values as citty parsed them; strings until validated here. */
export interface RunnerFlags {
  profile?: string;
  profilesDir?: string;
  requireMatchingTags?: boolean;
  coordinatorUrl?: string;
  projectDir?: string;
  tags?: string;
  mcpPort?: string;
  pollTimeout?: string;
  heartbeatInterval?: string;
  stopGraceSeconds?: string;
  verbose?: boolean;
}

type Env = Record<string, string | undefined>;

/** A value with the name of the flag or variable it came from, for error messages. */
interface Sourced {
  value: string;
  from: string;
}

function pick(flag: string | undefined, flagName: string, env: Env, envName: string): Sourced | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  const fromEnv = env[envName];
  if (fromEnv !== undefined && fromEnv !== "") return { value: fromEnv, from: envName };
  return undefined;
}

function number(input: Sourced | undefined, expected: { min: number; integer?: boolean; max?: number }): number | undefined {
  if (!input) return undefined;
  const value = Number(input.value.trim());
  const ok =
    input.value.trim() !== "" &&
    Number.isFinite(value) &&
    value >= expected.min &&
    (expected.max === undefined || value <= expected.max) &&
    (!expected.integer || Number.isInteger(value));
  if (!ok) {
    const kind = expected.integer ? "a whole number" : "a number";
    const range = expected.max === undefined ? `>= ${expected.min}` : `from ${expected.min} to ${expected.max}`;
    throw new ConfigError(`${input.from} '${input.value}' is not valid: expected ${kind} ${range}`);
  }
  return value;
}

function httpUrl(input: Sourced): string {
  let url: URL;
  try {
    url = new URL(input.value);
  } catch {
    throw new ConfigError(`${input.from} '${input.value}' is not a valid URL: expected e.g. ${DEFAULT_COORDINATOR_URL}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${input.from} '${input.value}' must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/+$/, "");
}

/** An existing directory, resolved to an absolute path; otherwise a ConfigError naming its source. */
export function directory(input: Sourced): string {
  const path = resolve(input.value);
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    throw new ConfigError(`${input.from} '${input.value}': directory ${path} does not exist`);
  }
  if (!isDirectory) throw new ConfigError(`${input.from} '${input.value}': ${path} is not a directory`);
  return path;
}

export function parseTags(text: string | undefined): string[] {
  if (!text) return [];
  return [...new Set(text.split(",").map((tag) => tag.trim()).filter(Boolean))];
}

const AUTH_VARIABLES = ["AUTH0_DOMAIN", "AUTH0_RUNNER_CLIENT_ID", "AUTH0_RUNNER_CLIENT_SECRET", "AUTH0_AUDIENCE"] as const;

function clientCredentials(env: Env): ClientCredentials | undefined {
  const present = AUTH_VARIABLES.filter((name) => env[name]);
  if (present.length === 0) return undefined;
  if (present.length < AUTH_VARIABLES.length) {
    const missing = AUTH_VARIABLES.filter((name) => !env[name]);
    throw new ConfigError(
      `Authentication is half configured: ${present.join(", ")} set but ${missing.join(", ")} missing (set all four to authenticate, or none)`,
    );
  }
  return {
    domain: env.AUTH0_DOMAIN!,
    clientId: env.AUTH0_RUNNER_CLIENT_ID!,
    clientSecret: env.AUTH0_RUNNER_CLIENT_SECRET!,
    audience: env.AUTH0_AUDIENCE!,
  };
}

/** The operator's profile directory, if one is set (all `--profile-list` needs). */
export function resolveProfilesDir(flags: Pick<RunnerFlags, "profilesDir">, env: Env = process.env): string | undefined {
  const profilesDir = pick(flags.profilesDir, "--profiles-dir", env, "AGENT_RUNNER_PROFILES_DIR");
  return profilesDir ? directory(profilesDir) : undefined;
}

/** Flags over environment over defaults; anything malformed is a ConfigError naming its source. */
export function resolveConfig(flags: RunnerFlags, env: Env = process.env): RunnerConfig {
  const coordinator = pick(flags.coordinatorUrl, "--coordinator-url", env, "AGENT_ORCHESTRATOR_API_URL");
  const projectDir = pick(flags.projectDir, "--project-dir", env, "PROJECT_DIR");
  const tags = parseTags(pick(flags.tags, "--tags", env, "RUNNER_TAGS")?.value);
  const requireMatchingTags = flags.requireMatchingTags ?? false;
  if (requireMatchingTags && tags.length === 0) {
    throw new ConfigError("--require-matching-tags needs tags to match: set --tags or RUNNER_TAGS");
  }
  return {
    coordinatorUrl: httpUrl(coordinator ?? { value: DEFAULT_COORDINATOR_URL, from: "default URL" }),
    projectDir: projectDir ? directory(projectDir) : process.cwd(),
    tags,
    requireMatchingTags,
    profile: flags.profile,
    profilesDir: resolveProfilesDir(flags, env),
    mcpPort: number(pick(flags.mcpPort, "--mcp-port", {}, ""), { min: 1, max: 65535, integer: true }),
    pollTimeoutSeconds: number(pick(flags.pollTimeout, "--poll-timeout", env, "POLL_TIMEOUT"), { min: 1 }),
    heartbeatIntervalSeconds: number(pick(flags.heartbeatInterval, "--heartbeat-interval", env, "HEARTBEAT_INTERVAL"), {
      min: 1,
    }),
    stopGraceSeconds:
      number(pick(flags.stopGraceSeconds, "--stop-grace-seconds", {}, ""), { min: 0 }) ?? DEFAULT_STOP_GRACE_SECONDS,
    verbose: flags.verbose ?? false,
    auth: clientCredentials(env),
  };
}
