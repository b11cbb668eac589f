/** The runner's configuration: flags over environment over defaults, each value checked. */
import { statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { addSecret, log } from "../shared/log.ts";
import { removeFromEnvironment } from "../shared/proc-environ.ts";
import { type FlagDefs, type FlagValues, runnerFlags } from "./flags.ts";

export const DEFAULT_COORDINATOR_URL = "http://localhost:8765";
export const DEFAULT_POLL_TIMEOUT_SECONDS = 30;
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 60;
export const DEFAULT_STOP_GRACE_SECONDS = 5;
/** Upper bounds for durations: far below setTimeout's ceiling (~24.8 days), and beyond any sane use. */
export const MAX_POLL_TIMEOUT_SECONDS = 600;
export const MAX_HEARTBEAT_INTERVAL_SECONDS = 3600;
export const MAX_STOP_GRACE_SECONDS = 3600;

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
  /** Where the run journal is kept. */
  stateDir: string;
  verbose: boolean;
  auth?: ClientCredentials;
}

/** A value with the name of the flag or variable it came from, for error messages. */
export interface Sourced {
  value: string;
  from: string;
}

/** Reads one flag's value, else its environment variable's; undefined when neither is set. */
export function flagReader<F extends FlagDefs>(defs: F, values: FlagValues<F>, env: Env) {
  return (name: keyof F & string): Sourced | undefined => {
    const given = values[name];
    if (typeof given === "string") return { value: given, from: `--${name}` };
    const variable = defs[name]?.env;
    const fromEnv = variable === undefined ? undefined : env[variable];
    if (variable !== undefined && fromEnv !== undefined && fromEnv !== "") return { value: fromEnv, from: variable };
    return undefined;
  };
}

/** A number within bounds, else a ConfigError naming its source. */
export function number(
  input: Sourced | undefined,
  expected: { min: number; max: number; integer?: boolean },
): number | undefined {
  if (!input) return undefined;
  const value = Number(input.value.trim());
  const ok =
    input.value.trim() !== "" &&
    Number.isFinite(value) &&
    value >= expected.min &&
    value <= expected.max &&
    (!expected.integer || Number.isInteger(value));
  if (!ok) {
    const kind = expected.integer ? "a whole number" : "a number";
    throw new ConfigError(
      `${input.from} '${input.value}' is not valid: expected ${kind} from ${expected.min} to ${expected.max}`,
    );
  }
  return value;
}

function httpUrl(input: Sourced): string {
  let url: URL;
  try {
    url = new URL(input.value);
  } catch {
    throw new ConfigError(
      `${input.from} '${input.value}' is not a valid URL: expected e.g. ${DEFAULT_COORDINATOR_URL}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${input.from} '${input.value}' must be an http:// or https:// URL`);
  }
  // Log lines show such URLs with the password cut out; the password alone is cut out too.
  addSecret(url.password);
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
  return [
    ...new Set(
      text
        .split(",")
        .map((tag) => tag.trim())
        .filter(Boolean),
    ),
  ];
}

const AUTH_VARIABLES = [
  "AUTH0_DOMAIN",
  "AUTH0_RUNNER_CLIENT_ID",
  "AUTH0_RUNNER_CLIENT_SECRET",
  "AUTH0_AUDIENCE",
] as const;

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

/** How long a stopped executor gets between SIGTERM and SIGKILL (runner and exec alike). */
export function stopGraceSeconds(input: Sourced | undefined): number {
  return number(input, { min: 0, max: MAX_STOP_GRACE_SECONDS }) ?? DEFAULT_STOP_GRACE_SECONDS;
}

/** `$XDG_STATE_HOME/agent-runner`, else `~/.local/state/agent-runner`. */
export function defaultStateDir(env: Env = process.env): string {
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(stateHome, "agent-runner");
}

/**
 * Executors run as this user and may read /proc/<runner pid>/environ: once the configuration holds
 * the client secret, the process environment must not (also for exec, which never needs it).
 */
export function hideClientSecret(): void {
  const name = "AUTH0_RUNNER_CLIENT_SECRET";
  if (!process.env[name]) return;
  try {
    removeFromEnvironment([name]);
  } catch (error) {
    log.warn(
      `Could not remove ${name} from /proc/${process.pid}/environ, where this user's processes can read it: ${messageOf(error)}`,
    );
  }
}

/** The operator's profile directory, if one is set (all `--profile-list` needs). */
export function resolveProfilesDir(values: FlagValues<typeof runnerFlags>, env: Env = process.env): string | undefined {
  const profilesDir = flagReader(runnerFlags, values, env)("profiles-dir");
  return profilesDir ? directory(profilesDir) : undefined;
}

/** Flags over environment over defaults; anything malformed is a ConfigError naming its source. */
export function resolveConfig(values: FlagValues<typeof runnerFlags>, env: Env = process.env): RunnerConfig {
  const input = flagReader(runnerFlags, values, env);
  const coordinator = input("coordinator-url");
  const projectDir = input("project-dir");
  const tags = parseTags(input("tags")?.value);
  const requireMatchingTags = values["require-matching-tags"] ?? false;
  if (requireMatchingTags && tags.length === 0) {
    throw new ConfigError("--require-matching-tags needs tags to match: set --tags or RUNNER_TAGS");
  }
  return {
    coordinatorUrl: httpUrl(coordinator ?? { value: DEFAULT_COORDINATOR_URL, from: "default URL" }),
    projectDir: projectDir ? directory(projectDir) : process.cwd(),
    tags,
    requireMatchingTags,
    profile: values.profile,
    profilesDir: resolveProfilesDir(values, env),
    mcpPort: number(input("mcp-port"), { min: 1, max: 65535, integer: true }),
    pollTimeoutSeconds: number(input("poll-timeout"), { min: 1, max: MAX_POLL_TIMEOUT_SECONDS }),
    heartbeatIntervalSeconds: number(input("heartbeat-interval"), { min: 1, max: MAX_HEARTBEAT_INTERVAL_SECONDS }),
    stopGraceSeconds: stopGraceSeconds(input("stop-grace-seconds")),
    stateDir: resolve(input("state-dir")?.value ?? defaultStateDir(env)),
    verbose: values.verbose ?? false,
    auth: clientCredentials(env),
  };
}
